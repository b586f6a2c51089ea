// SPDX-License-Identifier: Apache-2.0

package gateway

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"
	"golang.org/x/net/icmp"

	"github.com/wirefleet/wirefleet/fleet"
	"github.com/wirefleet/wirefleet/gateway/monitor"
	"github.com/wirefleet/wirefleet/internal/netns"
)

// internet is a namespace standing for the Internet: web servers, a UDP
// echo and a DNS zone at documentation addresses (TEST-NET-2/3 and
// 2001:db8::/32), reached from the gateway's namespace only.
type internet struct {
	ns   *netns.NS
	gwV4 netip.Addr // the gateway host's address as the Internet sees it
	gwV6 netip.Addr
}

// Documentation addresses the test's Internet serves.
var (
	webA    = netip.MustParseAddr("203.0.113.10") // api.example.com
	webB    = netip.MustParseAddr("203.0.113.11") // other.example.org: never allowed by name
	echoUDP = netip.MustParseAddr("203.0.113.20")
	denied  = netip.MustParseAddr("198.51.100.10")
	dnsAddr = netip.MustParseAddr("203.0.113.53")
	webA6   = netip.MustParseAddr("2001:db8::10")
)

func newInternet(t *testing.T, f *fixture) *internet {
	in := &internet{ns: f.env.NewNS("inet"), gwV4: netip.MustParseAddr("192.0.2.1"), gwV6: netip.MustParseAddr("2001:db8:ffff::1")}
	gwEnd, inEnd := f.env.Veth(f.gwNS, netip.PrefixFrom(in.gwV4, 24), in.ns, netip.MustParsePrefix("192.0.2.2/24"))
	gwEnd.AddAddr(netip.PrefixFrom(in.gwV6, 64))
	inEnd.AddAddr(netip.MustParsePrefix("2001:db8:ffff::2/64"))
	in.ns.MustExec("ip", "link", "set", "lo", "up")
	for _, a := range []netip.Addr{webA, webB, echoUDP, denied, dnsAddr, webA6} {
		in.ns.AddAddr("lo", netip.PrefixFrom(a, a.BitLen()))
	}
	f.env.AddRoute(f.gwNS, "203.0.113.0/24", "via", "192.0.2.2")
	f.env.AddRoute(f.gwNS, "198.51.100.0/24", "via", "192.0.2.2")
	f.env.AddRoute(f.gwNS, "2001:db8::/48", "via", "2001:db8:ffff::2")

	// Web: says which address the connection came from.
	var web net.Listener
	in.ns.MustDo(func() (err error) { web, err = net.Listen("tcp", ":80"); return err })
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello %s from %s", r.Host, r.RemoteAddr)
	})}
	go srv.Serve(web)
	t.Cleanup(func() { srv.Close() })
	// UDP echo, prefixed with the sender's address.
	var echo net.PacketConn
	in.ns.MustDo(func() (err error) {
		echo, err = net.ListenPacket("udp", netip.AddrPortFrom(echoUDP, 7).String())
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
	in.ns.MustDo(func() (err error) {
		dnsConn, err = net.ListenPacket("udp", netip.AddrPortFrom(dnsAddr, 53).String())
		return err
	})
	t.Cleanup(func() { dnsConn.Close() })
	zone := map[string][]netip.Addr{
		"api.example.com.":   {webA, webA6},
		"other.example.org.": {webB},
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

// outsideIn sends the gateway's breakout traffic from inside its namespace
// (sockets belong to the namespace they are made in): the test's traffic
// stays in the namespaces it made.
func outsideIn(ns **netns.NS) Outside {
	return Outside{
		Dial: func(ctx context.Context, network, addr string) (net.Conn, error) {
			var c net.Conn
			err := (*ns).Do(func() (err error) { c, err = (&net.Dialer{}).DialContext(ctx, network, addr); return err })
			return c, err
		},
		ListenICMP: func(network string) (net.PacketConn, error) {
			var pc net.PacketConn
			addr := "0.0.0.0"
			if network == "udp6" {
				addr = "::"
			}
			err := (*ns).Do(func() (err error) { pc, err = icmp.ListenPacket(network, addr); return err })
			return pc, err
		},
	}
}

// Breakout under egress rules, with real devices and a real Internet in
// namespaces: a name an FQDN rule allows is resolved by the gateway's DNS
// and fetched (IPv4 and IPv6, through a CNAME too); the server sees the
// gateway host's address; a denied prefix and a name outside the rules
// are refused, and counted, and raise the monitor's alert; UDP and ICMP
// echo leave under their rules; a rule change applies to the open session
// at once; a group without breakout reaches nothing outside.
func TestEgressBreakout(t *testing.T) {
	var gwNS *netns.NS
	f := newFixture(t, func(c *Config) {
		c.Outside = outsideIn(&gwNS)
		c.DNSUpstreams = []netip.AddrPort{netip.AddrPortFrom(dnsAddr, 53)}
	})
	gwNS = f.gwNS
	// Unprivileged ping sockets in the gateway's namespace (Debian's
	// default on the host; a new namespace starts with none).
	f.gwNS.MustExec("sysctl", "-q", "-w", "net.ipv4.ping_group_range=0 2147483647")
	inet := newInternet(t, f)

	rules := []fleet.EgressRule{
		{Action: "deny", Prefix: "198.51.100.0/24", Description: "a denied network"},
		{Action: "allow", FQDN: "api.example.com", Protocol: "tcp", Ports: "80"},
		{Action: "allow", Prefix: echoUDP.String() + "/32", Protocol: "udp", Ports: "7"},
		{Action: "allow", Prefix: "203.0.113.0/24", Protocol: "icmp"},
	}
	grp := f.group("breakout", fleet.GroupSettings{Egress: fleet.EgressSettings{Breakout: true, Rules: rules}})
	// Rules, and a route to the Internet pushed to its devices, but no breakout.
	closed := f.group("closed", fleet.GroupSettings{Routes: []string{"203.0.113.0/24"}, Egress: fleet.EgressSettings{Rules: []fleet.EgressRule{{Action: "allow", Prefix: "0.0.0.0/0"}}}})
	a := f.newDevice(grp.ID)
	c := f.newDevice(closed.ID)
	if err := a.pingUntil(MetadataAddr.String(), 10*time.Second); err != nil {
		t.Fatalf("device A's tunnel: %v", err)
	}

	// Nothing granted yet: the address alone is not enough.
	if out, err := a.curl("--max-time", "2", "http://"+webA.String()+"/"); err == nil {
		t.Fatalf("reached %s before resolving its name: %s", webA, out)
	}
	// The gateway's DNS resolves outside names for the group, and the
	// answer for an allowed name opens the way.
	ip, rc, err := a.resolve(DNSAddrs[0].String(), "api.example.com.")
	if err != nil || rc != dnsmessage.RCodeSuccess || ip != webA {
		t.Fatalf("resolving api.example.com through the gateway: %v %v %v", ip, rc, err)
	}
	out, err := a.curl("-H", "Host: api.example.com", "http://"+webA.String()+"/")
	if err != nil || !strings.HasSuffix(out, "\n200") || !strings.Contains(out, "from "+inet.gwV4.String()+":") {
		t.Fatalf("fetching the allowed name: %v %q (the server must see %s)", err, out, inet.gwV4)
	}
	// IPv6, the same name's AAAA.
	ip6, _, err := a.resolveType(DNSAddrs[0].String(), "api.example.com.", dnsmessage.TypeAAAA)
	if err != nil || ip6 != webA6 {
		t.Fatalf("AAAA api.example.com: %v %v", ip6, err)
	}
	out, err = a.curl("http://[" + webA6.String() + "]/")
	if err != nil || !strings.HasSuffix(out, "\n200") || !strings.Contains(out, "from ["+inet.gwV6.String()+"]:") {
		t.Fatalf("fetching the allowed name over IPv6: %v %q", err, out)
	}
	// Port 80 only.
	if out, err := a.curl("--max-time", "2", "http://"+webA.String()+":8080/"); err == nil {
		t.Fatalf("reached a port the rule does not allow: %s", out)
	}

	// A name no rule allows resolves, and grants nothing.
	if ip, _, err := a.resolve(DNSAddrs[0].String(), "other.example.org."); err != nil || ip != webB {
		t.Fatalf("resolving an unlisted name: %v %v", ip, err)
	}
	if out, err := a.curl("--max-time", "2", "http://"+webB.String()+"/"); err == nil {
		t.Fatalf("reached an unlisted name's address: %s", out)
	}
	// A denied prefix, whatever else.
	before := f.gw.router.drops.get(dropEgress)
	if out, err := a.curl("--max-time", "2", "http://"+denied.String()+"/"); err == nil {
		t.Fatalf("reached the denied network: %s", out)
	}
	if f.gw.router.drops.get(dropEgress) == before {
		t.Fatal("egress denials are not counted")
	}
	waitFor(t, "an egress-denied alert", func() bool { return contains(f.alerts(a.sim.ID), monitor.KindEgressDenied) })
	if pol := f.gw.policies.get(grp.ID); pol == nil || func() bool { hits, _ := pol.egress.Hits(); return hits[0] == 0 || hits[1] == 0 }() {
		t.Fatal("the deciding rules' counters did not move")
	}

	// UDP and ICMP echo under their rules.
	out, err = a.ns.Exec("sh", "-c", fmt.Sprintf("printf 'ping' | nc -u -w 2 %s 7", echoUDP))
	if err != nil || !strings.HasPrefix(out, inet.gwV4.String()+":") || !strings.HasSuffix(out, " ping") {
		t.Fatalf("UDP echo through the breakout: %v %q", err, out)
	}
	if err := a.ping(webB.String(), 2, 3*time.Second); err != nil {
		t.Fatalf("ICMP echo through the breakout: %v", err)
	}
	if err := a.ping(denied.String(), 1, 1*time.Second); err == nil {
		t.Fatal("ICMP echo to the denied network answered")
	}

	// A rule change reaches the open session at once: without the name
	// rule, the granted address is refused, with no new handshake.
	hsBefore := a.connection().LastHandshake
	settings := grp.Settings
	settings.Egress.Rules = []fleet.EgressRule{rules[0], rules[2], rules[3]}
	if _, err := f.svc.UpdateGroup(context.Background(), f.admin, grp.ID, nil, &settings); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the rule change to apply", func() bool {
		_, err := a.curl("--max-time", "1", "http://"+webA.String()+"/")
		return err != nil
	})
	if hs := a.connection().LastHandshake; !hs.Equal(hsBefore) {
		t.Fatalf("the rule change took a new handshake (%v, before %v)", hs, hsBefore)
	}

	// Without breakout, nothing leaves, whatever the rules allow.
	if out, err := c.curl("--max-time", "2", "http://"+webA.String()+"/"); err == nil {
		t.Fatalf("a group without breakout reached the Internet: %s", out)
	}
	if ip, rc, _ := c.resolve(DNSAddrs[0].String(), "api.example.com."); ip.IsValid() || rc != dnsmessage.RCodeRefused {
		t.Fatalf("a group without breakout had an outside name resolved: %v %v", ip, rc)
	}
}
