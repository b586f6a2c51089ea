// SPDX-License-Identifier: Apache-2.0

package engine

import (
	"context"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/wirefleet/wirefleet/wgkey"
)

// TestInitiateToOneShot: an initiation InitiateTo sends (asked by a packet
// nobody could authenticate) is sent once, not retransmitted, to an
// endpoint that does not answer.
func TestInitiateToOneShot(t *testing.T) {
	devKey, _ := wgkey.NewPrivate()
	res := mapResolver{devKey.Public(): {AllowedIPs: pfx(netip.MustParseAddr("10.9.0.2"))}}
	n := newNode(t, nil, func(c *Config) { c.Resolver = res })
	sink, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	ep, err := n.e.bind.ParseEndpoint(sink.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	if err := n.e.InitiateTo(context.Background(), devKey.Public(), ep); err != nil {
		t.Fatal(err)
	}
	got := 0
	buf := make([]byte, 2048)
	sink.SetReadDeadline(time.Now().Add(RekeyTimeout + 2*time.Second))
	for {
		if _, err := sink.Read(buf); err != nil {
			break
		}
		got++
	}
	if got != 1 {
		t.Fatalf("%d initiations reached a silent endpoint in %s, want 1 (not retransmitted)", got, RekeyTimeout+2*time.Second)
	}
}

// TestFixedEndpoint: a peer held with FixedEndpoint keeps the endpoint it
// was given when its packets come from another address (here B sends from
// 127.0.0.1 while A holds it at 127.0.0.2, both B's); a peer without it
// roams to where the packets came from.
func TestFixedEndpoint(t *testing.T) {
	for _, fixed := range []bool{true, false} {
		a, b := newNode(t, nil, nil), newNode(t, nil, nil)
		given := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.2"), b.e.Port())
		pb, err := a.e.AddPeer(PeerConfig{PublicKey: b.ks.PublicKey(), AllowedIPs: pfx(netip.MustParseAddr("10.9.0.2")), Endpoint: given, FixedEndpoint: fixed})
		if err != nil {
			t.Fatal(err)
		}
		pa, err := b.e.AddPeer(PeerConfig{PublicKey: a.ks.PublicKey(), AllowedIPs: pfx(netip.MustParseAddr("10.9.0.1")), Endpoint: a.endpoint()})
		if err != nil {
			t.Fatal(err)
		}
		b.e.Send(pa, [][]byte{ping(netip.MustParseAddr("10.9.0.1"), netip.MustParseAddr("10.9.0.2"))})
		recv(t, a.in, "B's packet at A")
		got := pb.Endpoint()
		if fixed && got != given {
			t.Fatalf("a fixed endpoint moved to %v (given %v)", got, given)
		}
		if !fixed && got == given {
			t.Fatalf("a roaming peer stayed at %v after packets from %v", got, b.endpoint())
		}
	}
}
