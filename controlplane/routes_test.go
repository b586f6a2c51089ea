// SPDX-License-Identifier: Apache-2.0

package controlplane_test

import (
	"context"
	"errors"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/wirefleet/wirefleet/controlplane"
	"github.com/wirefleet/wirefleet/controlplane/store"
	"github.com/wirefleet/wirefleet/controlplane/store/sqlitestore"
	"github.com/wirefleet/wirefleet/fleet"
)

func routeService(t *testing.T, lanPool string) (*controlplane.Service, store.Store) {
	t.Helper()
	st, err := sqlitestore.Open(context.Background(), filepath.Join(t.TempDir(), "fleet.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	cfg := controlplane.Config{Logger: discard()}
	if lanPool != "" {
		cfg.LANPool = netip.MustParsePrefix(lanPool)
	}
	return controlplane.New(st, cfg), st
}

func pfx(s string) netip.Prefix { return netip.MustParsePrefix(s) }

func code(err error) string {
	var fe *fleet.Error
	if errors.As(err, &fe) {
		return fe.Code
	}
	if err == nil {
		return ""
	}
	return "not a fleet error: " + err.Error()
}

// Two SIMs with the same LAN are both routable once mapped; the platform
// allocates mapped prefixes in order and skips the taken ones.
func TestOverlappingLANsMapped(t *testing.T) {
	ctx := context.Background()
	svc, _ := routeService(t, "")
	admin := controlplane.System
	a, _, _ := svc.CreateSIM(ctx, admin, controlplane.SIMSpec{GenerateKey: true})
	b, _, _ := svc.CreateSIM(ctx, admin, controlplane.SIMSpec{GenerateKey: true})
	c, _, _ := svc.CreateSIM(ctx, admin, controlplane.SIMSpec{GenerateKey: true})
	lan := pfx("192.168.1.0/24")
	ra, err := svc.AddSIMRoute(ctx, admin, a.ID, controlplane.RouteSpec{Prefix: lan, Map: true})
	if err != nil || ra.Mapped != pfx("10.64.0.0/24") || ra.Status != fleet.RouteApproved {
		t.Fatalf("A: %+v %v", ra, err)
	}
	// The operator picks B's mapping; C's allocation skips it.
	rb, err := svc.AddSIMRoute(ctx, admin, b.ID, controlplane.RouteSpec{Prefix: lan, Mapped: pfx("10.64.1.0/24")})
	if err != nil || rb.Mapped != pfx("10.64.1.0/24") {
		t.Fatalf("B: %+v %v", rb, err)
	}
	rc, err := svc.AddSIMRoute(ctx, admin, c.ID, controlplane.RouteSpec{Prefix: lan, Map: true})
	if err != nil || rc.Mapped != pfx("10.64.2.0/24") {
		t.Fatalf("C: %+v %v", rc, err)
	}
	// A wider LAN is aligned to its size.
	rw, err := svc.AddSIMRoute(ctx, admin, c.ID, controlplane.RouteSpec{Prefix: pfx("172.16.0.0/22"), Map: true})
	if err != nil || rw.Mapped != pfx("10.64.4.0/22") {
		t.Fatalf("C's /22: %+v %v", rw, err)
	}
	// The audit trail names each change.
	p, err := svc.ListEvents(ctx, admin, store.EventFilter{Action: "sim.route.add"})
	if err != nil || len(p.Items) != 4 {
		t.Fatalf("route events: %d %v", len(p.Items), err)
	}
	rs, err := svc.SIMRoutes(ctx, admin, c.ID)
	if err != nil || len(rs) != 2 {
		t.Fatalf("C's routes: %+v %v", rs, err)
	}
}

// Bad routes are refused with a 4xx naming the field, and nothing is
// written.
func TestRouteRefusals(t *testing.T) {
	ctx := context.Background()
	svc, st := routeService(t, "")
	admin := controlplane.System
	a, _, _ := svc.CreateSIM(ctx, admin, controlplane.SIMSpec{GenerateKey: true})
	b, _, _ := svc.CreateSIM(ctx, admin, controlplane.SIMSpec{GenerateKey: true})
	if _, err := svc.AddSIMRoute(ctx, admin, a.ID, controlplane.RouteSpec{Prefix: pfx("192.168.1.0/24")}); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.AddSIMRoute(ctx, admin, a.ID, controlplane.RouteSpec{Prefix: pfx("172.16.0.0/24"), Mapped: pfx("10.64.9.0/24")}); err != nil {
		t.Fatal(err)
	}
	// An IPv6 LAN is routed as it is (no mapping); another SIM's may not
	// overlap it.
	if _, err := svc.AddSIMRoute(ctx, admin, a.ID, controlplane.RouteSpec{Prefix: pfx("2001:db8:1::/64")}); err != nil {
		t.Fatalf("an IPv6 LAN: %v", err)
	}
	o6, err := svc.Overlay6(ctx)
	if err != nil {
		t.Fatal(err)
	}
	before, _ := st.ListRoutes(ctx, store.RouteFilter{})
	for _, tc := range []struct {
		name string
		sim  string
		spec controlplane.RouteSpec
		want string
	}{
		{"no prefix", b.ID, controlplane.RouteSpec{}, fleet.CodeRequired},
		{"host bits", b.ID, controlplane.RouteSpec{Prefix: pfx("192.168.7.1/24")}, fleet.CodeInvalid},
		{"IPv6 host bits", b.ID, controlplane.RouteSpec{Prefix: pfx("2001:db8::1/64")}, fleet.CodeInvalid},
		{"IPv6 too wide", b.ID, controlplane.RouteSpec{Prefix: pfx("2001:db8::/31")}, fleet.CodeInvalid},
		{"IPv6 link-local", b.ID, controlplane.RouteSpec{Prefix: pfx("fe80::/64")}, fleet.CodeInvalid},
		{"IPv6 multicast", b.ID, controlplane.RouteSpec{Prefix: pfx("ff05::/64")}, fleet.CodeInvalid},
		{"IPv6 inside the fleet's ULA", b.ID, controlplane.RouteSpec{Prefix: netip.PrefixFrom(o6.Prefix().Addr(), 64)}, fleet.CodeInvalid},
		{"IPv6 mapped", b.ID, controlplane.RouteSpec{Prefix: pfx("2001:db8:7::/64"), Map: true}, fleet.CodeInvalid},
		{"IPv6, another SIM's", b.ID, controlplane.RouteSpec{Prefix: pfx("2001:db8:1:0:8000::/65")}, fleet.CodeConflict},
		{"overlay pool", b.ID, controlplane.RouteSpec{Prefix: pfx("10.128.5.0/24")}, fleet.CodeInvalid},
		{"platform range", b.ID, controlplane.RouteSpec{Prefix: pfx("100.127.1.0/24")}, fleet.CodeInvalid},
		{"too wide", b.ID, controlplane.RouteSpec{Prefix: pfx("0.0.0.0/0")}, fleet.CodeInvalid},
		{"another SIM's unmapped LAN", b.ID, controlplane.RouteSpec{Prefix: pfx("192.168.1.128/25")}, fleet.CodeConflict},
		{"unmapped inside the LAN pool (another SIM's mapped prefix)", b.ID, controlplane.RouteSpec{Prefix: pfx("10.64.9.0/24")}, fleet.CodeInvalid},
		{"unmapped LAN pool itself", b.ID, controlplane.RouteSpec{Prefix: pfx("10.64.0.0/10")}, fleet.CodeInvalid},
		{"another SIM's mapped prefix, as mapping", b.ID, controlplane.RouteSpec{Prefix: pfx("172.16.0.0/24"), Mapped: pfx("10.64.9.0/24")}, fleet.CodeConflict},
		{"mapping the size of another", b.ID, controlplane.RouteSpec{Prefix: pfx("172.16.0.0/24"), Mapped: pfx("10.64.10.0/23")}, fleet.CodeInvalid},
		{"mapping outside the pool", b.ID, controlplane.RouteSpec{Prefix: pfx("172.16.0.0/24"), Mapped: pfx("10.200.0.0/24")}, fleet.CodeInvalid},
		{"mapping with host bits", b.ID, controlplane.RouteSpec{Prefix: pfx("172.16.0.0/24"), Mapped: pfx("10.64.10.5/24")}, fleet.CodeInvalid},
		{"map and mapping", b.ID, controlplane.RouteSpec{Prefix: pfx("172.16.0.0/24"), Mapped: pfx("10.64.10.0/24"), Map: true}, fleet.CodeInvalid},
		{"overlapping the same SIM's LAN", a.ID, controlplane.RouteSpec{Prefix: pfx("192.168.0.0/16"), Map: true}, fleet.CodeConflict},
		{"unknown SIM", "sim_nope", controlplane.RouteSpec{Prefix: pfx("172.17.0.0/24")}, fleet.CodeNotFound},
	} {
		if _, err := svc.AddSIMRoute(ctx, admin, tc.sim, tc.spec); code(err) != tc.want {
			t.Errorf("%s: %v, want %s", tc.name, err, tc.want)
		}
	}
	viewer := controlplane.Actor{Kind: "token", ID: "tok_v", Role: fleet.RoleViewer}
	if _, err := svc.AddSIMRoute(ctx, viewer, b.ID, controlplane.RouteSpec{Prefix: pfx("172.18.0.0/24")}); code(err) != fleet.CodeForbidden {
		t.Errorf("a viewer added a route: %v", err)
	}
	if err := svc.DeleteSIMRoute(ctx, viewer, a.ID, pfx("192.168.1.0/24")); code(err) != fleet.CodeForbidden {
		t.Errorf("a viewer deleted a route: %v", err)
	}
	// A bulk write with one bad entry writes nothing.
	if _, err := svc.SetRoutes(ctx, admin, map[string]controlplane.RouteSpec{
		b.ID: {Prefix: pfx("172.20.0.0/24")}, a.ID: {Prefix: pfx("10.128.0.0/24")},
	}); code(err) != fleet.CodeInvalid {
		t.Errorf("bulk with a bad entry: %v", err)
	}
	after, _ := st.ListRoutes(ctx, store.RouteFilter{})
	if len(after.Items) != len(before.Items) {
		t.Fatalf("refusals changed the routes: %d before, %d after", len(before.Items), len(after.Items))
	}
	// The limit.
	for i := 0; i < fleet.MaxRoutesPerSIM; i++ {
		_, err := svc.AddSIMRoute(ctx, admin, b.ID, controlplane.RouteSpec{Prefix: netip.PrefixFrom(netip.AddrFrom4([4]byte{172, 30, byte(i), 0}), 24)})
		if err != nil {
			t.Fatalf("route %d: %v", i, err)
		}
	}
	if _, err := svc.AddSIMRoute(ctx, admin, b.ID, controlplane.RouteSpec{Prefix: pfx("172.31.0.0/24")}); code(err) != fleet.CodeInvalid {
		t.Errorf("route beyond the limit: %v", err)
	}
	if err := svc.DeleteSIMRoute(ctx, admin, a.ID, pfx("192.168.2.0/24")); code(err) != fleet.CodeNotFound {
		t.Errorf("deleting a route that is not there: %v", err)
	}
}

// A LAN pool that runs out says so.
func TestLANPoolExhausted(t *testing.T) {
	ctx := context.Background()
	svc, _ := routeService(t, "10.64.0.0/23")
	admin := controlplane.System
	for i, want := range []string{"10.64.0.0/24", "10.64.1.0/24", ""} {
		sim, _, _ := svc.CreateSIM(ctx, admin, controlplane.SIMSpec{GenerateKey: true})
		r, err := svc.AddSIMRoute(ctx, admin, sim.ID, controlplane.RouteSpec{Prefix: pfx("192.168.1.0/24"), Map: true})
		if want == "" {
			if code(err) != fleet.CodeExhausted {
				t.Fatalf("third mapping: %+v %v, want exhausted", r, err)
			}
			continue
		}
		if err != nil || r.Mapped != pfx(want) {
			t.Fatalf("mapping %d: %+v %v, want %s", i, r, err, want)
		}
	}
}

// A device's advertised prefixes wait for an operator; only a group that
// allows it may advertise, and only for the SIM itself.
func TestAdvertisedRoutesWaitForApproval(t *testing.T) {
	ctx := context.Background()
	svc, _ := routeService(t, "")
	admin := controlplane.System
	open, _ := svc.CreateGroup(ctx, admin, "routers", fleet.GroupSettings{DevicesMayAdvertiseRoutes: true})
	closed, _ := svc.CreateGroup(ctx, admin, "sensors", fleet.GroupSettings{})
	r1, _, _ := svc.CreateSIM(ctx, admin, controlplane.SIMSpec{GenerateKey: true, GroupID: open.ID})
	s1, _, _ := svc.CreateSIM(ctx, admin, controlplane.SIMSpec{GenerateKey: true, GroupID: closed.ID})
	self := func(id string) controlplane.Actor {
		return controlplane.Actor{Kind: "sim", ID: id, Role: fleet.RoleOperator}
	}
	lan := pfx("192.168.1.0/24")

	if _, err := svc.AdvertiseRoutes(ctx, self(s1.ID), s1.ID, []netip.Prefix{lan}); code(err) != fleet.CodeForbidden {
		t.Errorf("a group without permission advertised: %v", err)
	}
	if _, err := svc.AdvertiseRoutes(ctx, self(s1.ID), r1.ID, []netip.Prefix{lan}); code(err) != fleet.CodeForbidden {
		t.Errorf("a device advertised for another SIM: %v", err)
	}
	if _, err := svc.AdvertiseRoutes(ctx, admin, r1.ID, []netip.Prefix{lan}); code(err) != fleet.CodeForbidden {
		t.Errorf("an operator advertised in a device's name: %v", err)
	}
	rs, err := svc.AdvertiseRoutes(ctx, self(r1.ID), r1.ID, []netip.Prefix{lan, pfx("192.168.50.0/24")})
	if err != nil || len(rs) != 2 || rs[0].Status != fleet.RouteAdvertised || rs[0].Source != fleet.RouteByDevice {
		t.Fatalf("advertise: %+v %v", rs, err)
	}
	if _, err := svc.ApproveSIMRoute(ctx, admin, r1.ID, controlplane.RouteSpec{Prefix: pfx("10.9.0.0/24")}); code(err) != fleet.CodeNotFound {
		t.Errorf("approving a prefix never advertised: %v", err)
	}
	ok, err := svc.ApproveSIMRoute(ctx, admin, r1.ID, controlplane.RouteSpec{Prefix: lan, Map: true})
	if err != nil || ok.Status != fleet.RouteApproved || !ok.Mapped.IsValid() {
		t.Fatalf("approve: %+v %v", ok, err)
	}
	if _, err := svc.ApproveSIMRoute(ctx, admin, r1.ID, controlplane.RouteSpec{Prefix: lan}); code(err) != fleet.CodeBadState {
		t.Errorf("approving twice: %v", err)
	}
	// Repeating the same advertisement writes nothing: no event.
	before, _ := svc.ListEvents(ctx, admin, store.EventFilter{Action: "sim.route.advertise"})
	if _, err := svc.AdvertiseRoutes(ctx, self(r1.ID), r1.ID, []netip.Prefix{lan, pfx("192.168.50.0/24")}); err != nil {
		t.Fatal(err)
	}
	after, _ := svc.ListEvents(ctx, admin, store.EventFilter{Action: "sim.route.advertise"})
	if len(after.Items) != len(before.Items) {
		t.Errorf("a repeated advertisement was audited again: %d → %d events", len(before.Items), len(after.Items))
	}
	// Advertising again without .50 drops the waiting one, keeps the
	// approved one approved.
	rs, err = svc.AdvertiseRoutes(ctx, self(r1.ID), r1.ID, []netip.Prefix{lan})
	if err != nil || len(rs) != 1 || rs[0].Status != fleet.RouteApproved {
		t.Fatalf("re-advertise: %+v %v", rs, err)
	}
	all, _ := svc.SIMRoutes(ctx, admin, r1.ID)
	if len(all) != 1 {
		t.Fatalf("routes after re-advertising: %+v", all)
	}
	p, _ := svc.ListEvents(ctx, admin, store.EventFilter{Action: "sim.route.approve"})
	if len(p.Items) != 1 {
		t.Errorf("approve events: %d", len(p.Items))
	}
}

// A session names the LAN pool and the unmapped LANs that device-to-device
// policy lets the SIM reach — not its own, not another group's.
func TestSessionCarriesReachableLANs(t *testing.T) {
	ctx := context.Background()
	svc, _ := routeService(t, "")
	admin := controlplane.System
	sites, _ := svc.CreateGroup(ctx, admin, "sites", fleet.GroupSettings{DeviceToDevice: fleet.D2DPolicy{Mode: fleet.D2DGroup}})
	others, _ := svc.CreateGroup(ctx, admin, "others", fleet.GroupSettings{DeviceToDevice: fleet.D2DPolicy{Mode: fleet.D2DGroup}})
	cloud, _, _ := svc.CreateSIM(ctx, admin, controlplane.SIMSpec{GenerateKey: true, GroupID: sites.ID})
	router, _, _ := svc.CreateSIM(ctx, admin, controlplane.SIMSpec{GenerateKey: true, GroupID: sites.ID})
	stranger, _, _ := svc.CreateSIM(ctx, admin, controlplane.SIMSpec{GenerateKey: true, GroupID: others.ID})
	for sim, p := range map[string]string{cloud.ID: "172.20.0.0/24", router.ID: "172.16.0.0/24", stranger.ID: "172.17.0.0/24"} {
		if _, err := svc.AddSIMRoute(ctx, admin, sim, controlplane.RouteSpec{Prefix: pfx(p)}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := svc.AddSIMRoute(ctx, admin, router.ID, controlplane.RouteSpec{Prefix: pfx("192.168.1.0/24"), Map: true}); err != nil {
		t.Fatal(err)
	}
	_, sess, err := svc.SessionFor(ctx, admin, cloud.ID)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, a := range sess.AllowedIPs {
		got[a] = true
	}
	if !got["10.64.0.0/10"] || !got["172.16.0.0/24"] || got["172.20.0.0/24"] || got["172.17.0.0/24"] || got["192.168.1.0/24"] {
		t.Fatalf("cloud's allowed IPs %v: want the LAN pool and the router's unmapped LAN only", sess.AllowedIPs)
	}
	// Another site with an unmapped 192.168.1.0/24: the cloud reaches it,
	// the router (whose own mapped LAN is 192.168.1.0/24) is not given it.
	office, _, _ := svc.CreateSIM(ctx, admin, controlplane.SIMSpec{GenerateKey: true, GroupID: sites.ID})
	if _, err := svc.AddSIMRoute(ctx, admin, office.ID, controlplane.RouteSpec{Prefix: pfx("192.168.1.0/24")}); err != nil {
		t.Fatal(err)
	}
	_, rsess, _ := svc.SessionFor(ctx, admin, router.ID)
	for _, a := range rsess.AllowedIPs {
		if a == "192.168.1.0/24" {
			t.Fatalf("router's allowed IPs %v hold its own LAN's prefix", rsess.AllowedIPs)
		}
	}
	_, csess, _ := svc.SessionFor(ctx, admin, cloud.ID)
	if !slices.Contains(csess.AllowedIPs, "192.168.1.0/24") {
		t.Fatalf("cloud's allowed IPs %v: want the office's LAN", csess.AllowedIPs)
	}
}

// Gate peers: an inner address from the SIM pool that no SIM gets, and
// clear refusals.
func TestGatePeers(t *testing.T) {
	ctx := context.Background()
	svc, _ := routeService(t, "")
	admin := controlplane.System
	g, err := svc.CreateGatePeer(ctx, admin, controlplane.GatePeerSpec{Name: "vpc", OuterAddress: mustAddr("192.0.2.10"), VNI: 10})
	if err != nil || !controlplane.DefaultPool.Contains(g.InnerAddress) {
		t.Fatalf("create: %+v %v", g, err)
	}
	sim, _, err := svc.CreateSIM(ctx, admin, controlplane.SIMSpec{GenerateKey: true})
	if err != nil || sim.Address == g.InnerAddress {
		t.Fatalf("SIM after a Gate peer: %+v %v", sim, err)
	}
	if _, _, err := svc.CreateSIM(ctx, admin, controlplane.SIMSpec{GenerateKey: true, Address: g.InnerAddress}); code(err) != fleet.CodeConflict {
		t.Errorf("a SIM pinned on the Gate peer's address: %v", err)
	}
	for _, tc := range []struct {
		name string
		spec controlplane.GatePeerSpec
		want string
	}{
		{"no outer address", controlplane.GatePeerSpec{VNI: 1}, fleet.CodeRequired},
		{"IPv6 outer", controlplane.GatePeerSpec{OuterAddress: mustAddr("2001:db8::1"), VNI: 1}, fleet.CodeInvalid},
		{"outer in the SIM pool", controlplane.GatePeerSpec{OuterAddress: mustAddr("10.128.0.5"), VNI: 1}, fleet.CodeInvalid},
		{"VNI 0", controlplane.GatePeerSpec{OuterAddress: mustAddr("192.0.2.11")}, fleet.CodeInvalid},
		{"VNI beyond 24 bits", controlplane.GatePeerSpec{OuterAddress: mustAddr("192.0.2.11"), VNI: 1 << 24}, fleet.CodeInvalid},
		{"same outer and VNI", controlplane.GatePeerSpec{OuterAddress: mustAddr("192.0.2.10"), VNI: 10}, fleet.CodeConflict},
		{"unknown group", controlplane.GatePeerSpec{OuterAddress: mustAddr("192.0.2.12"), VNI: 1, GroupID: "grp_nope"}, fleet.CodeNotFound},
	} {
		if _, err := svc.CreateGatePeer(ctx, admin, tc.spec); code(err) != tc.want {
			t.Errorf("%s: %v, want %s", tc.name, err, tc.want)
		}
	}
	viewer := controlplane.Actor{Kind: "token", ID: "tok_v", Role: fleet.RoleViewer}
	if _, err := svc.CreateGatePeer(ctx, viewer, controlplane.GatePeerSpec{OuterAddress: mustAddr("192.0.2.13"), VNI: 1}); code(err) != fleet.CodeForbidden {
		t.Errorf("a viewer created a Gate peer: %v", err)
	}
	if err := svc.DeleteGatePeer(ctx, viewer, g.ID); code(err) != fleet.CodeForbidden {
		t.Errorf("a viewer deleted a Gate peer: %v", err)
	}
	// An inner address the operator chooses (as SORACOM lets customers):
	// inside the pool, never a SIM's, and the allocator skips it after.
	pinned, err := svc.CreateGatePeer(ctx, admin, controlplane.GatePeerSpec{OuterAddress: mustAddr("192.0.2.20"), VNI: 20, InnerAddress: mustAddr("10.128.0.50")})
	if err != nil || pinned.InnerAddress != mustAddr("10.128.0.50") {
		t.Fatalf("pinned inner address: %+v %v", pinned, err)
	}
	for name, inner := range map[string]string{"outside the pool": "10.127.0.5", "the pool's gateway address": "10.128.0.1", "a SIM's": sim.Address.String(), "another peer's": "10.128.0.50"} {
		_, err := svc.CreateGatePeer(ctx, admin, controlplane.GatePeerSpec{OuterAddress: mustAddr("192.0.2.21"), VNI: 21, InnerAddress: mustAddr(inner)})
		if c := code(err); c != fleet.CodeInvalid && c != fleet.CodeConflict {
			t.Errorf("inner address %s: %v", name, err)
		}
	}
	if _, _, err := svc.CreateSIM(ctx, admin, controlplane.SIMSpec{GenerateKey: true, Address: mustAddr("10.128.0.50")}); code(err) != fleet.CodeConflict {
		t.Errorf("a SIM pinned on a Gate peer's chosen address: %v", err)
	}
	for i := 0; i < 60; i++ { // past .50: the allocator skips the peer's address
		s, _, err := svc.CreateSIM(ctx, admin, controlplane.SIMSpec{GenerateKey: true})
		if err != nil || s.Address == mustAddr("10.128.0.50") {
			t.Fatalf("SIM %d: %+v %v", i, s.Address, err)
		}
	}
	if err := svc.DeleteGatePeer(ctx, admin, g.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.GetGatePeer(ctx, admin, g.ID); code(err) != fleet.CodeNotFound {
		t.Errorf("after delete: %v", err)
	}
}

// A site is a SIM without an IMSI: any number of them, none found by an
// IMSI lookup, its wg-quick file names it a site.
func TestSites(t *testing.T) {
	ctx := context.Background()
	svc, st := routeService(t, "")
	admin := controlplane.System
	var sites []fleet.SIM
	for i := 0; i < 2; i++ {
		s, _, err := svc.CreateSIM(ctx, admin, controlplane.SIMSpec{Name: "office", Kind: fleet.KindSite, GenerateKey: true})
		if err != nil || s.IMSI != "" || s.Kind != fleet.KindSite {
			t.Fatalf("site %d: %+v %v", i, s, err)
		}
		sites = append(sites, s)
	}
	got, err := st.SIM(ctx, sites[1].ID)
	if err != nil || got.IMSI != "" || got.Kind != fleet.KindSite {
		t.Fatalf("stored site: %+v %v", got, err)
	}
	if _, err := st.SIMByIMSI(ctx, "site:"+sites[0].ID); err == nil {
		t.Error("a site was found by an IMSI lookup")
	}
	dev, _, _ := svc.CreateSIM(ctx, admin, controlplane.SIMSpec{GenerateKey: true})
	if dev.IMSI == "" || dev.Kind != fleet.KindDevice {
		t.Errorf("a device after sites: %+v", dev)
	}
	if _, _, err := svc.CreateSIM(ctx, admin, controlplane.SIMSpec{GenerateKey: true, Kind: "router"}); code(err) != fleet.CodeInvalid {
		t.Errorf("an unknown kind: %v", err)
	}
	sim, sess, _ := svc.SessionFor(ctx, admin, sites[0].ID)
	if conf := controlplane.WireGuardConfig(sim, sess); !strings.Contains(conf, "# wirefleet site "+sim.ID) {
		t.Errorf("site wg-quick file:\n%s", conf)
	}
}

// Named LAN hosts: DNS labels on the LAN only; replaced whole.
func TestRouteHosts(t *testing.T) {
	ctx := context.Background()
	svc, _ := routeService(t, "")
	admin := controlplane.System
	sim, _, _ := svc.CreateSIM(ctx, admin, controlplane.SIMSpec{GenerateKey: true})
	lan := pfx("192.168.1.0/24")
	r, err := svc.AddSIMRoute(ctx, admin, sim.ID, controlplane.RouteSpec{Prefix: lan, Map: true, Hosts: map[string]netip.Addr{"plc1": mustAddr("192.168.1.10")}})
	if err != nil || r.Hosts["plc1"] != mustAddr("192.168.1.10") {
		t.Fatalf("add with hosts: %+v %v", r, err)
	}
	for name, tc := range map[string]map[string]netip.Addr{
		"off the LAN":    {"cam": mustAddr("192.168.2.1")},
		"not a label":    {"Cam_1": mustAddr("192.168.1.11")},
		"leading hyphen": {"-cam": mustAddr("192.168.1.11")},
	} {
		if _, err := svc.SetRouteHosts(ctx, admin, sim.ID, lan, tc); code(err) != fleet.CodeInvalid {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := svc.SetRouteHosts(ctx, admin, sim.ID, pfx("10.9.0.0/24"), nil); code(err) != fleet.CodeNotFound {
		t.Errorf("hosts of a missing route: %v", err)
	}
	viewer := controlplane.Actor{Kind: "token", ID: "tok_v", Role: fleet.RoleViewer}
	if _, err := svc.SetRouteHosts(ctx, viewer, sim.ID, lan, nil); code(err) != fleet.CodeForbidden {
		t.Errorf("a viewer named hosts: %v", err)
	}
	r, err = svc.SetRouteHosts(ctx, admin, sim.ID, lan, map[string]netip.Addr{"meter": mustAddr("192.168.1.20")})
	if err != nil || len(r.Hosts) != 1 || r.Hosts["meter"] != mustAddr("192.168.1.20") {
		t.Fatalf("replace: %+v %v", r, err)
	}
	rs, _ := svc.SIMRoutes(ctx, admin, sim.ID)
	if len(rs) != 1 || len(rs[0].Hosts) != 1 || !rs[0].Mapped.IsValid() {
		t.Fatalf("stored: %+v", rs)
	}
}

// A device's advertisement reserves nothing: an operator may put the
// same prefix behind another SIM, and approving the advertised one then
// conflicts. A terminated SIM frees its LANs.
func TestAdvertisedRoutesReserveNothing(t *testing.T) {
	ctx := context.Background()
	svc, _ := routeService(t, "")
	admin := controlplane.System
	routers, _ := svc.CreateGroup(ctx, admin, "routers", fleet.GroupSettings{DevicesMayAdvertiseRoutes: true})
	dev, _, _ := svc.CreateSIM(ctx, admin, controlplane.SIMSpec{GenerateKey: true, GroupID: routers.ID})
	other, _, _ := svc.CreateSIM(ctx, admin, controlplane.SIMSpec{GenerateKey: true})
	self := controlplane.Actor{Kind: "sim", ID: dev.ID, Role: fleet.RoleOperator}
	if _, err := svc.AdvertiseRoutes(ctx, self, dev.ID, []netip.Prefix{pfx("192.168.0.0/16")}); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.AdvertiseRoutes(ctx, self, dev.ID, []netip.Prefix{pfx("10.64.0.0/10")}); code(err) != fleet.CodeInvalid {
		t.Errorf("advertising the LAN pool: %v", err)
	}
	if _, err := svc.AddSIMRoute(ctx, admin, other.ID, controlplane.RouteSpec{Prefix: pfx("192.168.1.0/24")}); err != nil {
		t.Fatalf("a prefix inside a waiting advertisement: %v", err)
	}
	if _, err := svc.ApproveSIMRoute(ctx, admin, dev.ID, controlplane.RouteSpec{Prefix: pfx("192.168.0.0/16")}); code(err) != fleet.CodeConflict {
		t.Errorf("approving an advertisement over an approved route: %v", err)
	}
	if _, err := svc.SetSIMStatus(ctx, admin, other.ID, fleet.StatusTerminated); err != nil {
		t.Fatal(err)
	}
	if rs, _ := svc.SIMRoutes(ctx, admin, other.ID); len(rs) != 0 {
		t.Errorf("a terminated SIM kept its routes: %+v", rs)
	}
	if _, err := svc.ApproveSIMRoute(ctx, admin, dev.ID, controlplane.RouteSpec{Prefix: pfx("192.168.0.0/16")}); err != nil {
		t.Errorf("approving once the prefix is free: %v", err)
	}
}
