// SPDX-License-Identifier: Apache-2.0

package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"

	"github.com/wirefleet/wirefleet/controlplane"
	"github.com/wirefleet/wirefleet/fleet"
	"github.com/wirefleet/wirefleet/wgkey"
)

// Two standard WireGuard devices configured from wg-quick files with both
// families reach each other over IPv6 (ping6, TCP), resolve a SIM name's
// AAAA record over the platform DNS's IPv6 address, and read their own
// metadata over IPv6; group policy holds for IPv6 as for IPv4, an offline
// SIM's IPv6 address is answered "address unreachable", and a source that
// is not the SIM's own is dropped and counted.
func TestIPv6Overlay(t *testing.T) {
	f := newFixture(t)
	o6, err := f.svc.Overlay6(context.Background())
	if err != nil || !o6.Enabled() {
		t.Fatalf("the fleet has no IPv6 plan: %v", err)
	}
	grp := f.group("dual", fleet.GroupSettings{DeviceToDevice: fleet.D2DPolicy{Mode: fleet.D2DGroup}})
	other := f.group("other", fleet.GroupSettings{DeviceToDevice: fleet.D2DPolicy{Mode: fleet.D2DGroup}})
	a, b := f.newDevice(grp.ID), f.newDevice(grp.ID)
	c := f.newDevice(other.ID)
	a6, b6 := o6.Addr(a.sim.Address), o6.Addr(b.sim.Address)
	meta6, dns6 := o6.Addr(MetadataAddr), o6.Addr(DNSAddrs[0])

	// The export carries both families.
	if out, err := a.ns.Exec("ip", "-6", "addr", "show", "dev", a.wg.Name); err != nil || !strings.Contains(out, a6.String()+"/128") {
		t.Fatalf("device A's interface lacks its IPv6 address %s: %v %s", a6, err, out)
	}

	if err := a.pingUntil(meta6.String(), 10*time.Second); err != nil {
		t.Fatalf("A cannot ping the metadata service over IPv6: %v", err)
	}
	if err := a.ping(b6.String(), 3, 5*time.Second); err != nil {
		t.Fatalf("A → B over IPv6: %v", err)
	}
	if err := b.ping(a6.String(), 3, 5*time.Second); err != nil {
		t.Fatalf("B → A over IPv6: %v", err)
	}

	// TCP over IPv6, B listening on its IPv6 address.
	var ln net.Listener
	b.ns.MustDo(func() (err error) {
		ln, err = net.Listen("tcp", netip.AddrPortFrom(b6, 7006).String())
		return err
	})
	defer ln.Close()
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(conn, conn); conn.Close() }()
		}
	}()
	conn, err := a.dial(netip.AddrPortFrom(b6, 7006).String())
	if err != nil {
		t.Fatalf("TCP A → B over IPv6: %v", err)
	}
	payload := strings.Repeat("wirefleet6 ", 100_000)
	go conn.Write([]byte(payload))
	got := make([]byte, len(payload))
	conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	if _, err := io.ReadFull(conn, got); err != nil || string(got) != payload {
		t.Fatalf("TCP echo over IPv6 through the gateway: %v", err)
	}
	if ra := conn.LocalAddr().(*net.TCPAddr).AddrPort().Addr(); ra != a6 {
		t.Fatalf("A's connection left from %s, not its IPv6 address %s", ra, a6)
	}
	conn.Close()

	// Another group: no path over IPv6 either.
	if err := c.ping(a6.String(), 2, 1*time.Second); err == nil {
		t.Fatal("C (other group) reached A over IPv6")
	}

	// DNS on the platform's IPv6 address: AAAA for a SIM and for a
	// platform name, A still there; a SIM policy hides stays hidden.
	name := b.sim.ID + ".sim." + DefaultZone + "."
	if ip, rc, err := a.resolveType(dns6.String(), name, dnsmessage.TypeAAAA); err != nil || rc != dnsmessage.RCodeSuccess || ip != b6 {
		t.Fatalf("AAAA %s via %s: %v %v %v, want %s", name, dns6, ip, rc, err, b6)
	}
	if ip, _, err := a.resolveType(dns6.String(), name, dnsmessage.TypeA); err != nil || ip != b.sim.Address {
		t.Fatalf("A %s over IPv6 DNS: %v %v", name, ip, err)
	}
	if ip, _, err := a.resolveType(DNSAddrs[0].String(), "metadata."+DefaultZone+".", dnsmessage.TypeAAAA); err != nil || ip != meta6 {
		t.Fatalf("AAAA metadata: %v %v, want %s", ip, err, meta6)
	}
	if ip, rc, err := c.resolveType(dns6.String(), name, dnsmessage.TypeAAAA); err != nil || ip.IsValid() || rc != dnsmessage.RCodeNameError {
		t.Fatalf("C resolved B's name over IPv6 DNS: %v %v %v", ip, rc, err)
	}

	// Metadata over IPv6 knows the caller.
	for _, d := range []*device{a, b} {
		out, err := d.curl("http://[" + meta6.String() + "]/v1/subscriber")
		if err != nil || !strings.HasSuffix(out, "\n200") {
			t.Fatalf("%s: metadata over IPv6: %v %s", d.sim.ID, err, out)
		}
		var sub struct {
			SIMID string `json:"id"`
		}
		body, _, _ := strings.Cut(out, "\n200")
		if err := json.Unmarshal([]byte(body), &sub); err != nil || sub.SIMID != d.sim.ID {
			t.Fatalf("metadata over IPv6 answered %s for SIM %s: %v", body, d.sim.ID, err)
		}
	}

	// An offline SIM of the group: "address unreachable" at once.
	k, _ := wgkey.NewPrivate()
	gone, _, err := f.svc.CreateSIM(context.Background(), f.admin, controlplane.SIMSpec{Name: "never-up", GroupID: grp.ID, PublicKey: k.Public()})
	if err != nil {
		t.Fatal(err)
	}
	gone6 := o6.Addr(gone.Address)
	out, _ := a.ns.Exec("ping", "-c", "1", "-W", "2", "-n", gone6.String())
	if !strings.Contains(out, "Address unreachable") {
		t.Fatalf("ping6 to an offline SIM: want an ICMPv6 address unreachable, got %s", out)
	}

	// A source that is not the SIM's own IPv6 address.
	before := f.gw.Engine().Counters().Dropped["source-not-allowed"]
	spoof := o6.Addr(netip.MustParseAddr("10.128.255.250"))
	a.wg.AddAddr(netip.PrefixFrom(spoof, 128))
	a.ns.Exec("ping", "-c", "2", "-i", "0.2", "-W", "1", "-I", spoof.String(), meta6.String())
	waitFor(t, "the spoofed IPv6 packets to be dropped", func() bool {
		return f.gw.Engine().Counters().Dropped["source-not-allowed"] > before
	})
	if n := f.gw.router.drops.get(dropIPv6); n != 0 {
		t.Fatalf("%d IPv6 packets dropped as ipv6-not-enabled in a fleet with IPv6", n)
	}
}

// An IPv6 LAN behind a SIM (routed as it is): a device of the group
// reaches a host on it over HTTP, and resolves its name to an AAAA record;
// a device of another group is refused, and the LAN host's answers come
// back through the router's tunnel with their own source.
func TestIPv6LANBehindSIM(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	grp := f.group("sites6", fleet.GroupSettings{DeviceToDevice: fleet.D2DPolicy{Mode: fleet.D2DGroup}})
	other := f.group("outsiders6", fleet.GroupSettings{DeviceToDevice: fleet.D2DPolicy{Mode: fleet.D2DGroup}})
	router, client, outsider := f.newDevice(grp.ID), f.newDevice(grp.ID), f.newDevice(other.ID)

	lanPfx := netip.MustParsePrefix("2001:db8:77::/64")
	host := netip.MustParseAddr("2001:db8:77::10")
	lan := f.env.NewNS("lan6")
	f.env.Veth(router.ns, netip.MustParsePrefix("2001:db8:77::1/64"), lan, netip.PrefixFrom(host, 64))
	lan.MustExec("ip", "-6", "route", "add", "default", "via", "2001:db8:77::1")
	router.ns.MustExec("sysctl", "-q", "-w", "net.ipv6.conf.all.forwarding=1")
	var ln net.Listener
	lan.MustDo(func() (err error) { ln, err = net.Listen("tcp", netip.AddrPortFrom(host, 80).String()); return err })
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprintf(w, "site six, for %s", r.RemoteAddr) })}
	go srv.Serve(ln)
	defer srv.Close()

	if _, err := f.svc.AddSIMRoute(ctx, f.admin, router.sim.ID, controlplane.RouteSpec{Prefix: lanPfx, Hosts: map[string]netip.Addr{"plc": host}}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the router's tunnel to accept the LAN's sources", func() bool {
		p := f.gw.Engine().Peer(router.wg.Public)
		return p != nil && slices.Contains(p.AllowedIPs(), lanPfx)
	})
	o6, _ := f.svc.Overlay6(ctx)
	client.allowMore(lanPfx.String())
	body, err := getIn(client.ns, "http://["+host.String()+"]/")
	if want := "site six, for [" + o6.Addr(client.sim.Address).String() + "]:"; err != nil || !strings.HasPrefix(body, want) {
		t.Fatalf("the IPv6 LAN host from a device of the group: %v %q, want %q…", err, body, want)
	}
	name := "plc." + router.sim.ID + ".lan." + DefaultZone + "."
	if ip, _, err := client.resolveType(DNSAddrs[0].String(), name, dnsmessage.TypeAAAA); err != nil || ip != host {
		t.Fatalf("AAAA %s: %v %v", name, ip, err)
	}
	outsider.allowMore(lanPfx.String())
	if _, err := getIn(outsider.ns, "http://["+host.String()+"]/"); err == nil {
		t.Fatal("a device of another group reached the IPv6 LAN")
	}
	if r := f.gw.lans.lookup(host); r == nil || r.drops.get(dropPolicy) == 0 || r.inPackets.Load() == 0 || r.outPackets.Load() == 0 {
		t.Fatalf("the route's counters: %+v", r)
	}
}

// 4via6: two routers with the same IPv4 LAN (192.168.1.0/24, a host at
// .10 serving its own answer) are each reached by an IPv6 client at
// P:1:<router>:<host> — no mapped prefix — over HTTP and ping6; the LAN
// host sees the client's own IPv4 address; a device of another group is
// refused.
func TestVia6(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	o6, err := f.svc.Overlay6(ctx)
	if err != nil {
		t.Fatal(err)
	}
	sites := f.group("sites", fleet.GroupSettings{DeviceToDevice: fleet.D2DPolicy{Mode: fleet.D2DGroup}})
	others := f.group("others", fleet.GroupSettings{DeviceToDevice: fleet.D2DPolicy{Mode: fleet.D2DGroup}})
	routerA, routerB := f.newDevice(sites.ID), f.newDevice(sites.ID)
	lan := netip.MustParsePrefix("192.168.1.0/24")
	for _, r := range []struct {
		d    *device
		ns   string
		name string
		mapd bool
	}{{routerA, "lana", "site A", false}, {routerB, "lanb", "site B", true}} {
		name := r.name
		f.behind(r.d, r.ns, netip.MustParsePrefix("192.168.1.1/24"), netip.MustParsePrefix("192.168.1.10/24"),
			http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) { fmt.Fprintf(w, "%s, for %s", name, req.RemoteAddr) }))
		if _, err := f.svc.AddSIMRoute(ctx, f.admin, r.d.sim.ID, controlplane.RouteSpec{Prefix: lan, Map: r.mapd}); err != nil {
			t.Fatal(err)
		}
	}
	// The client comes after the routes: its wg-quick file names the
	// 4via6 view (the pool's twin and P:1::/64 with device-to-device on).
	client, outsider := f.newDevice(sites.ID), f.newDevice(others.ID)
	if out := client.ns.MustExec("ip", "-6", "route", "show", "dev", client.wg.Name); !strings.Contains(out, o6.Via6().String()) {
		t.Fatalf("the client's routes lack the 4via6 view %s:\n%s", o6.Via6(), out)
	}
	host := netip.MustParseAddr("192.168.1.10")
	for _, r := range []struct {
		d    *device
		want string
	}{{routerA, "site A"}, {routerB, "site B"}} {
		via := o6.Via6Addr(r.d.sim.Address, host)
		var body string
		deadline := time.Now().Add(10 * time.Second)
		for {
			if body, err = getIn(client.ns, "http://["+via.String()+"]/"); err == nil || time.Now().After(deadline) {
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
		if want := r.want + ", for " + client.sim.Address.String() + ":"; err != nil || !strings.HasPrefix(body, want) {
			t.Fatalf("%s by 4via6 %s: %v %q, want %q…", r.want, via, err, body, want)
		}
		if err := client.ping(via.String(), 2, 3*time.Second); err != nil {
			t.Fatalf("ping6 to %s's host by 4via6: %v", r.want, err)
		}
	}
	before := f.gw.router.drops.get(dropPolicy)
	if _, err := getIn(outsider.ns, "http://["+o6.Via6Addr(routerA.sim.Address, host).String()+"]/"); err == nil {
		t.Fatal("a device of another group reached a LAN by 4via6")
	}
	if f.gw.router.drops.get(dropPolicy) == before {
		t.Fatal("the refused 4via6 packets are not counted")
	}
	// A host on no LAN of the SIM.
	if err := client.ping(o6.Via6Addr(routerA.sim.Address, netip.MustParseAddr("172.16.0.1")).String(), 1, 1*time.Second); err == nil {
		t.Fatal("a 4via6 address outside the SIM's LANs answered")
	}
}
