// SPDX-License-Identifier: Apache-2.0

package gateway

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"
	"golang.org/x/net/icmp"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wirefleet/wirefleet/fleet"
	"github.com/wirefleet/wirefleet/gateway/monitor"
	"github.com/wirefleet/wirefleet/internal/inettest"
	"github.com/wirefleet/wirefleet/internal/netns"
)

// outsideIn sends the gateway's breakout traffic from inside its namespace
// (sockets belong to the namespace they are made in): the test's traffic
// stays in the namespaces it made.
func outsideIn(ns **netns.NS) Outside {
	return Outside{
		Dial: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return (*ns).DialContext(ctx, network, addr) // *ns is set once the namespace exists
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
		c.DNSUpstreams = []netip.AddrPort{netip.AddrPortFrom(inettest.DNS, 53)}
	})
	gwNS = f.gwNS
	// Unprivileged ping sockets in the gateway's namespace (Debian's
	// default on the host; a new namespace starts with none).
	f.gwNS.MustExec("sysctl", "-q", "-w", "net.ipv4.ping_group_range=0 2147483647")
	inet := inettest.New(t, f.env, f.gwNS)

	rules := []fleet.EgressRule{
		{Action: "deny", Prefix: "198.51.100.0/24", Description: "a denied network"},
		{Action: "allow", FQDN: "*.example.com", Protocol: "tcp", Ports: "80"},
		{Action: "allow", Prefix: inettest.EchoUDP.String() + "/32", Protocol: "udp", Ports: "7"},
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
	if out, err := a.curl("--max-time", "2", "http://"+inettest.WebA.String()+"/"); err == nil {
		t.Fatalf("reached %s before resolving its name: %s", inettest.WebA, out)
	}
	// The gateway's DNS resolves outside names for the group, and the
	// answer for an allowed name opens the way.
	// www.example.com is a CNAME of api.example.com: the address is
	// granted for the name asked, through the chain.
	ip, rc, err := a.resolve(DNSAddrs[0].String(), "www.example.com.")
	if err != nil || rc != dnsmessage.RCodeSuccess || ip != inettest.WebA {
		t.Fatalf("resolving www.example.com through the gateway: %v %v %v", ip, rc, err)
	}
	out, err := a.curl("-H", "Host: www.example.com", "http://"+inettest.WebA.String()+"/")
	if err != nil || !strings.HasSuffix(out, "\n200") || !strings.Contains(out, "from "+inet.GatewayV4.String()+":") {
		t.Fatalf("fetching the allowed name: %v %q (the server must see %s)", err, out, inet.GatewayV4)
	}
	// IPv6, the same name's AAAA.
	ip6, _, err := a.resolveType(DNSAddrs[0].String(), "api.example.com.", dnsmessage.TypeAAAA)
	if err != nil || ip6 != inettest.WebA6 {
		t.Fatalf("AAAA api.example.com: %v %v", ip6, err)
	}
	out, err = a.curl("http://[" + inettest.WebA6.String() + "]/")
	if err != nil || !strings.HasSuffix(out, "\n200") || !strings.Contains(out, "from ["+inet.GatewayV6.String()+"]:") {
		t.Fatalf("fetching the allowed name over IPv6: %v %q", err, out)
	}
	// Port 80 only.
	if out, err := a.curl("--max-time", "2", "http://"+inettest.WebA.String()+":8080/"); err == nil {
		t.Fatalf("reached a port the rule does not allow: %s", out)
	}

	// A name no rule allows resolves, and grants nothing.
	if ip, _, err := a.resolve(DNSAddrs[0].String(), "other.example.org."); err != nil || ip != inettest.WebB {
		t.Fatalf("resolving an unlisted name: %v %v", ip, err)
	}
	if out, err := a.curl("--max-time", "2", "http://"+inettest.WebB.String()+"/"); err == nil {
		t.Fatalf("reached an unlisted name's address: %s", out)
	}
	// A denied prefix, whatever else.
	before := f.gw.router.drops.get(dropEgress)
	if out, err := a.curl("--max-time", "2", "http://"+inettest.WebC.String()+"/"); err == nil {
		t.Fatalf("reached the denied network: %s", out)
	}
	if f.gw.router.drops.get(dropEgress) == before {
		t.Fatal("egress denials are not counted")
	}
	waitFor(t, "an egress-denied alert", func() bool { return contains(f.alerts(a.sim.ID), monitor.KindEgressDenied) })
	if pol := f.gw.policies.get(grp.ID); pol == nil || func() bool { hits, _ := pol.egress.Hits(); return hits[0] == 0 || hits[1] == 0 }() {
		t.Fatal("the deciding rules' counters did not move")
	}

	// The same counters, as Prometheus sees them.
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(f.gw.Collector())
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	metrics := map[string]float64{}
	for _, fam := range families {
		for _, m := range fam.GetMetric() {
			name := fam.GetName()
			for _, l := range m.GetLabel() {
				name += "/" + l.GetValue()
			}
			metrics[name] = m.GetCounter().GetValue()
		}
	}
	if metrics["wirefleet_gateway_egress_rule_packets_total/deny/breakout/0"] == 0 || metrics["wirefleet_gateway_egress_rule_packets_total/allow/breakout/1"] == 0 ||
		metrics["wirefleet_gateway_breakout_flows_total/tcp"] < 2 || metrics["wirefleet_gateway_dropped_packets_total/egress-denied/router"] == 0 {
		t.Fatalf("egress metrics: %v", metrics)
	}

	// UDP and ICMP echo under their rules.
	out, err = a.ns.Exec("sh", "-c", fmt.Sprintf("printf 'ping' | nc -u -w 2 %s 7", inettest.EchoUDP))
	if err != nil || !strings.HasPrefix(out, inet.GatewayV4.String()+":") || !strings.HasSuffix(out, " ping") {
		t.Fatalf("UDP echo through the breakout: %v %q", err, out)
	}
	if err := a.ping(inettest.WebB.String(), 2, 3*time.Second); err != nil {
		t.Fatalf("ICMP echo through the breakout: %v", err)
	}
	if err := a.ping(inettest.WebC.String(), 1, 1*time.Second); err == nil {
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
		_, err := a.curl("--max-time", "1", "http://"+inettest.WebA.String()+"/")
		return err != nil
	})
	if hs := a.connection().LastHandshake; !hs.Equal(hsBefore) {
		t.Fatalf("the rule change took a new handshake (%v, before %v)", hs, hsBefore)
	}

	// Without breakout, nothing leaves, whatever the rules allow.
	if out, err := c.curl("--max-time", "2", "http://"+inettest.WebA.String()+"/"); err == nil {
		t.Fatalf("a group without breakout reached the Internet: %s", out)
	}
	if ip, rc, _ := c.resolve(DNSAddrs[0].String(), "api.example.com."); ip.IsValid() || rc != dnsmessage.RCodeRefused {
		t.Fatalf("a group without breakout had an outside name resolved: %v %v", ip, rc)
	}
}
