// SPDX-License-Identifier: Apache-2.0

package gateway

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/wirefleet/wirefleet/controlplane"
	"github.com/wirefleet/wirefleet/fleet"
	"github.com/wirefleet/wirefleet/internal/netns"
)

// lanSite is a namespace behind a device (a router): the device forwards,
// the LAN namespace holds one host serving HTTP.
type lanSite struct {
	lan  *netns.NS
	host netip.Addr
}

// behind puts a LAN namespace behind router d: d's side gets gw (the LAN
// router's address), the LAN host hostAddr, with a default route back
// through d; d forwards. handler serves HTTP on the host's port 80.
func (f *fixture) behind(d *device, suffix string, gw, hostAddr netip.Prefix, handler http.Handler) *lanSite {
	f.t.Helper()
	lan := f.env.NewNS(suffix)
	f.env.Veth(d.ns, gw, lan, hostAddr)
	f.env.AddRoute(lan, "default", "via", gw.Addr().String())
	d.ns.MustExec("sh", "-c", "echo 1 > /proc/sys/net/ipv4/ip_forward")
	var ln net.Listener
	lan.MustDo(func() (err error) {
		ln, err = net.Listen("tcp", netip.AddrPortFrom(hostAddr.Addr(), 80).String())
		return err
	})
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	f.t.Cleanup(func() { srv.Close() })
	return &lanSite{lan: lan, host: hostAddr.Addr()}
}

// bigBody is the 10 MB a LAN host serves at /big.
var bigBody = func() []byte {
	b := make([]byte, 10<<20)
	for i := range b {
		b[i] = byte(i*7 + i>>11)
	}
	return b
}()

func siteHandler(name string) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintf(w, "%s\n", name) })
	mux.HandleFunc("/big", func(w http.ResponseWriter, r *http.Request) { w.Write(bigBody) })
	return mux
}

// httpIn is an HTTP client whose connections are opened inside ns.
func httpIn(ns *netns.NS) *http.Client {
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			var c net.Conn
			err := ns.Do(func() (err error) {
				c, err = (&net.Dialer{Timeout: 5 * time.Second}).DialContext(ctx, network, addr)
				return err
			})
			return c, err
		},
	}}
}

func getIn(ns *netns.NS, url string) (string, error) {
	resp, err := httpIn(ns).Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return strings.TrimSpace(string(b)), err
}

// allowMore adds prefixes to device d's peer (the gateway) and routes them
// into its tunnel, as a wg-quick file naming them would.
func (d *device) allowMore(prefixes ...string) {
	d.f.t.Helper()
	out := strings.Fields(d.wg.Show("allowed-ips"))
	if len(out) < 1 {
		d.f.t.Fatalf("wg show allowed-ips: %q", out)
	}
	peer, allowed := out[0], out[1:]
	allowed = append(allowed, prefixes...)
	d.wg.Set("peer", peer, "allowed-ips", strings.Join(allowed, ","))
	for _, p := range prefixes {
		d.f.env.AddRoute(d.ns, p, "dev", d.wg.Name)
	}
}

// Two routers with the same LAN, 192.168.1.0/24, each with a host at
// 192.168.1.10 serving its own answer, are both reached through their
// mapped prefixes by a site peer (a standard WireGuard peer with a cloud
// network behind it): HTTP, ping, a hop's time-exceeded, 10 MB. A LAN
// host reaches the cloud server, which sees the mapped source. A device of
// a group without access is refused and the drop counted; a spoofed LAN
// source is refused; an advertised prefix is routed only once approved.
func TestLANsBehindSIMs(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	sites := f.group("sites", fleet.GroupSettings{DeviceToDevice: fleet.D2DPolicy{Mode: fleet.D2DGroup}, DevicesMayAdvertiseRoutes: true})
	others := f.group("others", fleet.GroupSettings{DeviceToDevice: fleet.D2DPolicy{Mode: fleet.D2DGroup}})

	// The site peer (a SIM of kind site: no IMSI) and the cloud network
	// behind it, 172.31.0.0/24.
	site := f.newPeer(sites.ID, fleet.KindSite)
	if site.sim.IMSI != "" {
		t.Fatalf("a site with an IMSI: %+v", site.sim)
	}
	f.behind(site, "cloud", netip.MustParsePrefix("172.31.0.1/24"), netip.MustParsePrefix("172.31.0.5/24"),
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			host, _, _ := net.SplitHostPort(r.RemoteAddr)
			fmt.Fprintln(w, host) // the source the cloud server sees
		}))
	if _, err := f.svc.AddSIMRoute(ctx, f.admin, site.sim.ID, controlplane.RouteSpec{Prefix: netip.MustParsePrefix("172.31.0.0/24")}); err != nil {
		t.Fatal(err)
	}

	// Two routers, same LAN; their sessions name the cloud network.
	lan := netip.MustParsePrefix("192.168.1.0/24")
	routerA, routerB := f.newDevice(sites.ID), f.newDevice(sites.ID)
	siteA := f.behind(routerA, "lana", netip.MustParsePrefix("192.168.1.1/24"), netip.MustParsePrefix("192.168.1.10/24"), siteHandler("site A"))
	f.behind(routerB, "lanb", netip.MustParsePrefix("192.168.1.1/24"), netip.MustParsePrefix("192.168.1.10/24"), siteHandler("site B"))
	ra, err := f.svc.AddSIMRoute(ctx, f.admin, routerA.sim.ID, controlplane.RouteSpec{Prefix: lan, Map: true,
		Hosts: map[string]netip.Addr{"web": netip.MustParseAddr("192.168.1.10")}})
	if err != nil {
		t.Fatal(err)
	}
	rb, err := f.svc.AddSIMRoute(ctx, f.admin, routerB.sim.ID, controlplane.RouteSpec{Prefix: lan, Map: true})
	if err != nil {
		t.Fatal(err)
	}
	hostA := netip.AddrFrom4([4]byte{ra.Mapped.Addr().As4()[0], ra.Mapped.Addr().As4()[1], ra.Mapped.Addr().As4()[2], 10})
	hostB := netip.AddrFrom4([4]byte{rb.Mapped.Addr().As4()[0], rb.Mapped.Addr().As4()[1], rb.Mapped.Addr().As4()[2], 10})
	if hostA == hostB {
		t.Fatalf("one mapping for two LANs: %s", hostA)
	}
	for _, d := range []*device{site, routerA, routerB} {
		if err := d.pingUntil(MetadataAddr.String(), 10*time.Second); err != nil {
			t.Fatalf("device %s: %v\n%s", d.sim.ID, err, f.dump())
		}
	}

	// Each site's own answer, by its mapped address.
	for host, want := range map[netip.Addr]string{hostA: "site A", hostB: "site B"} {
		var got string
		waitFor(t, "HTTP to "+host.String(), func() bool {
			got, err = getIn(site.ns, "http://"+host.String()+"/")
			return err == nil
		})
		if got != want {
			t.Fatalf("http://%s/ from the site peer: %q, want %q", host, got, want)
		}
	}
	// The platform DNS names LAN host A by its mapped address.
	name := "web." + routerA.sim.ID + ".lan." + DefaultZone + "."
	for _, name := range []string{name, "web." + routerA.sim.Name + ".lan." + DefaultZone + "."} {
		if got, rcode, err := site.resolve(DNSAddrs[0].String(), name); err != nil || got != hostA {
			t.Fatalf("%s: %v %v %v, want %s", name, got, rcode, err, hostA)
		}
	}
	if err := site.ping(hostA.String(), 3, 2*time.Second); err != nil {
		t.Fatalf("ping %s: %v", hostA, err)
	}
	// A hop: the probe's TTL runs out at router A, whose time-exceeded
	// quotes the LAN host's real address; translated back, ping knows it.
	out, _ := site.ns.Exec("ping", "-c", "1", "-t", "1", "-W", "3", "-n", hostA.String())
	if !strings.Contains(out, "Time to live exceeded") || !strings.Contains(out, routerA.addr()) {
		t.Fatalf("TTL 1 to %s: want a time-exceeded from router A (%s):\n%s", hostA, routerA.addr(), out)
	}
	// traceroute (UDP probes): hop 1 is router A's tunnel address, hop 2
	// the LAN host by its mapped address — its port-unreachable leaves
	// translated, quote and all, or traceroute would not match it.
	out, err = site.ns.Exec("traceroute", "-n", "-q", "1", "-w", "3", "-m", "4", hostA.String())
	if err != nil || !strings.Contains(out, " 1  "+routerA.addr()) || !strings.Contains(out, " 2  "+hostA.String()) {
		t.Fatalf("traceroute %s: %v\n%s", hostA, err, out)
	}
	// 10 MB, whole.
	resp, err := httpIn(site.ns).Get("http://" + hostB.String() + "/big")
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	n, err := io.Copy(h, resp.Body)
	resp.Body.Close()
	if want := sha256.Sum256(bigBody); err != nil || n != int64(len(bigBody)) || !bytes.Equal(h.Sum(nil), want[:]) {
		t.Fatalf("10 MB from site B: %d bytes, %v, digest match %v", n, err, bytes.Equal(h.Sum(nil), want[:]))
	}

	// A LAN host reaches the cloud server, which sees the mapped source.
	got, err := getIn(siteA.lan, "http://172.31.0.5/")
	if err != nil || got != hostA.String() {
		t.Fatalf("LAN host A → cloud server: %q %v, want the source %s\n%s", got, err, hostA, f.dump())
	}

	// A device of a group without access: refused, counted.
	outsider := f.newDevice(others.ID)
	if err := outsider.pingUntil(MetadataAddr.String(), 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if _, err := getIn(outsider.ns, "http://"+hostA.String()+"/"); err == nil {
		t.Fatalf("a device of another group reached LAN A")
	}
	if r := f.gw.lans.lookup(hostA); r == nil || r.drops.get(dropPolicy) == 0 {
		t.Fatalf("the refused packets are not counted on the route: %+v", r)
	}

	// A spoofed LAN source (not behind router B) is refused by the gateway.
	before := f.gw.Engine().Counters().Dropped["source-not-allowed"]
	routerB.wg.AddAddr(netip.MustParsePrefix("192.168.77.5/32"))
	routerB.ns.Exec("ping", "-c", "2", "-i", "0.2", "-W", "1", "-I", "192.168.77.5", site.addr())
	waitFor(t, "the spoofed packets to be dropped", func() bool {
		return f.gw.Engine().Counters().Dropped["source-not-allowed"] > before
	})

	// An advertised prefix is routed only once approved.
	routerC := f.newDevice(sites.ID)
	f.behind(routerC, "lanc", netip.MustParsePrefix("172.30.0.1/24"), netip.MustParsePrefix("172.30.0.10/24"), siteHandler("site C"))
	out, err = routerC.curl("-X", "PUT", "-d", `{"prefixes":["172.30.0.0/24"]}`, "http://"+MetadataAddr.String()+"/v1/subscriber/routes")
	if err != nil || !strings.HasSuffix(out, "\n200") || !strings.Contains(out, `"advertised"`) {
		t.Fatalf("advertise: %v %s", err, out)
	}
	site.allowMore("172.30.0.0/24")
	noRoute := f.gw.router.drops.get(dropNoRoute)
	if _, err := getIn(site.ns, "http://172.30.0.10/"); err == nil {
		t.Fatal("an advertised prefix was routed before approval")
	}
	if f.gw.router.drops.get(dropNoRoute) == noRoute {
		t.Fatal("the packets to the unapproved prefix were not counted as no-route")
	}
	if _, err := f.svc.ApproveSIMRoute(ctx, f.admin, routerC.sim.ID, controlplane.RouteSpec{Prefix: netip.MustParsePrefix("172.30.0.0/24")}); err != nil {
		t.Fatal(err)
	}
	// Router C's live session takes its LAN as a source without a new handshake.
	waitFor(t, "the approved LAN to answer", func() bool {
		got, err = getIn(site.ns, "http://172.30.0.10/")
		return err == nil && got == "site C"
	})
}
