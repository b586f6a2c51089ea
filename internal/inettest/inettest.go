// SPDX-License-Identifier: Apache-2.0

// Package inettest is a stand-in Internet for end-to-end tests of traffic
// leaving the fleet: a network namespace with web servers, a UDP echo and
// a small DNS zone at documentation addresses (TEST-NET-2 and -3,
// 2001:db8::/32), linked to the gateway's namespace and reached from it
// only — so tests send nothing beyond the namespaces they made.
package inettest

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"

	"golang.org/x/net/dns/dnsmessage"

	"github.com/wirefleet/wirefleet/internal/netns"
)

// Internet is the stand-in: its namespace, and the addresses the
// gateway's namespace has towards it (what servers see as the gateway
// host's address).
type Internet struct {
	NS        *netns.NS
	GatewayV4 netip.Addr
	GatewayV6 netip.Addr
}

// The addresses the stand-in serves.
var (
	// WebA is api.example.com (and its IPv6 address WebA6); www.example.com
	// is a CNAME of it.
	WebA  = netip.MustParseAddr("203.0.113.10")
	WebA6 = netip.MustParseAddr("2001:db8::10")
	// WebB is other.example.org.
	WebB = netip.MustParseAddr("203.0.113.11")
	// EchoUDP answers UDP port 7 with the sender's address and the data.
	EchoUDP = netip.MustParseAddr("203.0.113.20")
	// WebC is a web server on another network (198.51.100.0/24).
	WebC = netip.MustParseAddr("198.51.100.10")
	// DNS serves the zone on UDP port 53.
	DNS = netip.MustParseAddr("203.0.113.53")
)

// New builds the stand-in in a namespace of env, linked to gw (the
// gateway's namespace), with routes in gw to every network it serves; its
// servers stop with the test.
func New(t testing.TB, env *netns.Env, gw *netns.NS) *Internet {
	t.Helper()
	in := &Internet{NS: env.NewNS("inet"), GatewayV4: netip.MustParseAddr("192.0.2.1"), GatewayV6: netip.MustParseAddr("2001:db8:ffff::1")}
	gwEnd, inEnd := env.Veth(gw, netip.PrefixFrom(in.GatewayV4, 24), in.NS, netip.MustParsePrefix("192.0.2.2/24"))
	gwEnd.AddAddr(netip.PrefixFrom(in.GatewayV6, 64))
	inEnd.AddAddr(netip.MustParsePrefix("2001:db8:ffff::2/64"))
	in.NS.MustExec("ip", "link", "set", "lo", "up")
	for _, a := range []netip.Addr{WebA, WebB, EchoUDP, WebC, DNS, WebA6} {
		in.NS.AddAddr("lo", netip.PrefixFrom(a, a.BitLen()))
	}
	env.AddRoute(gw, "203.0.113.0/24", "via", "192.0.2.2")
	env.AddRoute(gw, "198.51.100.0/24", "via", "192.0.2.2")
	env.AddRoute(gw, "2001:db8::/48", "via", "2001:db8:ffff::2")

	// Web: says which address the connection came from.
	var web net.Listener
	in.NS.MustDo(func() (err error) { web, err = net.Listen("tcp", ":80"); return err })
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello %s from %s", r.Host, r.RemoteAddr)
	})}
	go srv.Serve(web)
	t.Cleanup(func() { srv.Close() })
	// UDP echo, prefixed with the sender's address.
	var echo net.PacketConn
	in.NS.MustDo(func() (err error) {
		echo, err = net.ListenPacket("udp", netip.AddrPortFrom(EchoUDP, 7).String())
		return err
	})
	t.Cleanup(func() { echo.Close() })
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := echo.ReadFrom(buf)
			if err != nil {
				return
			}
			echo.WriteTo([]byte(fmt.Sprintf("%s %s", from, buf[:n])), from)
		}
	}()
	// DNS: a small authoritative zone.
	var dnsConn net.PacketConn
	in.NS.MustDo(func() (err error) {
		dnsConn, err = net.ListenPacket("udp", netip.AddrPortFrom(DNS, 53).String())
		return err
	})
	t.Cleanup(func() { dnsConn.Close() })
	zone := map[string][]netip.Addr{
		"api.example.com.":   {WebA, WebA6},
		"other.example.org.": {WebB},
	}
	go serveZone(dnsConn, zone, map[string]string{"www.example.com.": "api.example.com."})
	return in
}

// serveZone answers A and AAAA queries from zone (TTL 300), CNAMEs from
// aliases, NXDOMAIN otherwise.
func serveZone(pc net.PacketConn, zone map[string][]netip.Addr, aliases map[string]string) {
	buf := make([]byte, 1500)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			return
		}
		var p dnsmessage.Parser
		h, err := p.Start(buf[:n])
		if err != nil {
			continue
		}
		q, err := p.Question()
		if err != nil {
			continue
		}
		rh := dnsmessage.Header{ID: h.ID, Response: true, Authoritative: true, RecursionDesired: h.RecursionDesired}
		name := strings.ToLower(q.Name.String())
		target := name
		if a, ok := aliases[name]; ok {
			target = a
		}
		addrs, ok := zone[target]
		if !ok {
			rh.RCode = dnsmessage.RCodeNameError
		}
		b := dnsmessage.NewBuilder(nil, rh)
		b.StartQuestions()
		b.Question(q)
		b.StartAnswers()
		if target != name && ok {
			b.CNAMEResource(dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: 300}, dnsmessage.CNAMEResource{CNAME: dnsmessage.MustNewName(target)})
		}
		for _, a := range addrs {
			hdr := dnsmessage.ResourceHeader{Name: dnsmessage.MustNewName(target), Class: dnsmessage.ClassINET, TTL: 300}
			switch {
			case a.Is4() && q.Type == dnsmessage.TypeA:
				b.AResource(hdr, dnsmessage.AResource{A: a.As4()})
			case a.Is6() && q.Type == dnsmessage.TypeAAAA:
				b.AAAAResource(hdr, dnsmessage.AAAAResource{AAAA: a.As16()})
			}
		}
		out, _ := b.Finish()
		pc.WriteTo(out, from)
	}
}
