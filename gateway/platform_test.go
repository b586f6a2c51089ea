// SPDX-License-Identifier: Apache-2.0

package gateway

import (
	"net/netip"
	"testing"

	"github.com/wirefleet/wirefleet/services/platform"
)

type fakeService struct{ addrs []netip.Addr }

func (f fakeService) Addrs() []netip.Addr       { return f.addrs }
func (f fakeService) Start(platform.Host) error { return nil }
func (f fakeService) Close() error              { return nil }

type fakeDialer struct {
	fakeService
	src netip.Addr
}

func (f fakeDialer) DialSource() netip.Addr { return f.src }

// TestStackAddrs: a dialing service's source address is the stack's first
// (gVisor's choice for dials), whatever the order of services; the built-in
// addresses follow; duplicates go; two dialers are refused.
func TestStackAddrs(t *testing.T) {
	src := netip.MustParseAddr("100.127.10.17")
	store := netip.MustParseAddr("100.127.20.1")
	got, err := stackAddrs([]platform.Service{fakeService{[]netip.Addr{store}}, fakeDialer{fakeService{[]netip.Addr{src}}, src}})
	if err != nil {
		t.Fatal(err)
	}
	want := append([]netip.Addr{src}, DNSAddrs...)
	want = append(want, MetadataAddr, RouterAddr, store)
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("got %v, want %v", got, want)
		}
	}
	if _, err := stackAddrs([]platform.Service{fakeDialer{src: src}, fakeDialer{src: store}}); err == nil {
		t.Fatal("two dialers accepted")
	}
}
