// SPDX-License-Identifier: Apache-2.0

package egress

import (
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"
	"time"
)

func TestCheck(t *testing.T) {
	p := Policy{HostAddrs: func() []netip.Addr { return []netip.Addr{netip.MustParseAddr("203.0.113.7")} }}
	for _, a := range []string{"127.0.0.1", "::1", "10.1.2.3", "172.20.0.1", "192.168.1.1", "169.254.169.254", "100.127.100.127", "0.0.0.0", "::", "fe80::1", "fd00::1", "224.0.0.1", "::ffff:127.0.0.1", "203.0.113.7"} {
		var de *DeniedError
		if err := p.Check(netip.MustParseAddr(a)); !errors.As(err, &de) {
			t.Errorf("%s allowed", a)
		}
	}
	for _, a := range []string{"203.0.113.8", "8.8.8.8", "2001:db8::1"} {
		if err := p.Check(netip.MustParseAddr(a)); err != nil {
			t.Errorf("%s refused: %v", a, err)
		}
	}
	p.Allow = []netip.Prefix{netip.MustParsePrefix("10.1.0.0/16")}
	if err := p.Check(netip.MustParseAddr("10.1.2.3")); err != nil {
		t.Errorf("an allowed private prefix refused: %v", err)
	}
	if err := p.Check(netip.MustParseAddr("10.2.0.1")); err == nil {
		t.Error("outside the allowed prefix allowed")
	}
}

// The check runs on the dialled address: a redirect to loopback is
// refused at its connection, though the first server was allowed.
func TestRedirectRefused(t *testing.T) {
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("secret")) }))
	defer target.Close()
	// The first hop is "allowed" by policy (127.0.0.2 only), the redirect
	// goes to 127.0.0.1, which is not.
	ln, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		t.Skip("no 127.0.0.2 on this host")
	}
	first := &httptest.Server{Listener: ln, Config: &http.Server{Handler: http.RedirectHandler(target.URL, http.StatusFound)}}
	first.Start()
	defer first.Close()
	p := Policy{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.2/32")}}
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DialContext: p.Dialer(net.Dialer{}).DialContext}}
	_, err = c.Get(first.URL)
	var de *DeniedError
	if !errors.As(err, &de) || de.Addr != netip.MustParseAddr("127.0.0.1") {
		t.Fatalf("redirect to loopback: %v", err)
	}
}

// Breakout's check refuses the networks the host is on (a public subnet
// beside the gateway), unless allowed.
func TestCheckOnLink(t *testing.T) {
	p := Policy{HostAddrs: func() []netip.Addr { return nil }, HostPrefixes: func() []netip.Prefix {
		return []netip.Prefix{netip.MustParsePrefix("2001:db8:5::/64"), netip.MustParsePrefix("203.0.113.0/24")}
	}}
	for _, a := range []string{"2001:db8:5::9", "203.0.113.77"} {
		if err := p.CheckOnLink(netip.MustParseAddr(a)); err == nil {
			t.Errorf("%s on the host's network was allowed", a)
		}
		if err := p.Check(netip.MustParseAddr(a)); err != nil {
			t.Errorf("%s refused by the plain check: %v", a, err)
		}
	}
	if err := p.CheckOnLink(netip.MustParseAddr("198.51.100.1")); err != nil {
		t.Errorf("an address off the host's networks: %v", err)
	}
	p.Allow = []netip.Prefix{netip.MustParsePrefix("203.0.113.0/25")}
	if err := p.CheckOnLink(netip.MustParseAddr("203.0.113.77")); err != nil {
		t.Errorf("an allowed on-link address: %v", err)
	}
	if got := interfacePrefixes(); len(got) == 0 {
		t.Error("no interface prefixes read (loopback at least)")
	}
}
