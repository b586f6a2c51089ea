// SPDX-License-Identifier: Apache-2.0

package storetest

import (
	"context"
	"errors"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/wirefleet/wirefleet/controlplane/store"
	"github.com/wirefleet/wirefleet/fleet"
)

// testRoutes: routes round-trip (mapped or not), are listed per SIM and
// page by page, replace on the same (SIM, prefix), are found by the
// prefix they are reached by, and deletion is reported.
func testRoutes(t *testing.T, s store.Store) {
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Microsecond)
	lan := netip.MustParsePrefix("192.168.1.0/24")
	a := fleet.Route{SIMID: "sim_1", Prefix: lan, Mapped: netip.MustParsePrefix("10.64.1.0/24"), Status: fleet.RouteApproved, Source: fleet.RouteByOperator, Created: now, Updated: now,
		Hosts: map[string]netip.Addr{"plc1": netip.MustParseAddr("192.168.1.10")}}
	b := fleet.Route{SIMID: "sim_2", Prefix: lan, Mapped: netip.MustParsePrefix("10.64.2.0/24"), Status: fleet.RouteApproved, Source: fleet.RouteByOperator, Created: now, Updated: now}
	c := fleet.Route{SIMID: "sim_2", Prefix: netip.MustParsePrefix("172.20.0.0/16"), Status: fleet.RouteAdvertised, Source: fleet.RouteByDevice, Created: now, Updated: now}
	mustUpdate(t, s, func(tx store.Tx) error {
		for _, r := range []fleet.Route{a, b, c} {
			if err := tx.PutRoute(ctx, r); err != nil {
				return err
			}
		}
		return nil
	})
	got, err := s.SIMRoutes(ctx, "sim_2")
	if err != nil || !reflect.DeepEqual(got, []fleet.Route{c, b}) {
		t.Fatalf("SIM routes:\n got %+v %v\nwant %+v", got, err, []fleet.Route{c, b})
	}
	if got, err := s.SIMRoutes(ctx, "sim_9"); err != nil || len(got) != 0 {
		t.Fatalf("routes of a SIM without any: %+v %v", got, err)
	}
	// Found by what they are reached by: a's mapped prefix, c's own.
	for _, tc := range []struct {
		p    string
		want []fleet.Route
	}{
		{"10.64.1.128/25", []fleet.Route{a}},
		{"10.64.0.0/16", nil}, // both mapped ones (checked by count below)
		{"172.20.5.0/24", []fleet.Route{c}},
		{"192.168.0.0/16", []fleet.Route{}}, // the LANs' own prefix is not how a mapped route is reached
	} {
		got, err := s.RoutesReaching(ctx, netip.MustParsePrefix(tc.p))
		if err != nil {
			t.Fatal(err)
		}
		if tc.want == nil {
			if len(got) != 2 {
				t.Errorf("reaching %s: %+v, want a and b", tc.p, got)
			}
			continue
		}
		if len(got) != len(tc.want) || (len(got) > 0 && !reflect.DeepEqual(got, tc.want)) {
			t.Errorf("reaching %s: %+v, want %+v", tc.p, got, tc.want)
		}
	}
	// Pages, and the approved filter.
	page, err := s.ListRoutes(ctx, store.RouteFilter{PageRequest: store.PageRequest{Limit: 2}})
	if err != nil || len(page.Items) != 2 || page.Next == "" || !reflect.DeepEqual(page.Items[0], a) {
		t.Fatalf("first page: %+v %v", page, err)
	}
	page, err = s.ListRoutes(ctx, store.RouteFilter{PageRequest: store.PageRequest{Limit: 2, Cursor: page.Next}})
	if err != nil || len(page.Items) != 1 || !reflect.DeepEqual(page.Items[0], b) || page.Next != "" {
		t.Fatalf("second page: %+v %v", page, err)
	}
	page, err = s.ListRoutes(ctx, store.RouteFilter{Status: fleet.RouteApproved})
	if err != nil || len(page.Items) != 2 {
		t.Fatalf("approved routes: %+v %v", page, err)
	}
	page, err = s.ListRoutes(ctx, store.RouteFilter{Unmapped: true})
	if err != nil || len(page.Items) != 1 || !reflect.DeepEqual(page.Items[0], c) {
		t.Fatalf("unmapped routes: %+v %v, want c only", page, err)
	}
	// Approving replaces the row.
	c.Status, c.Mapped = fleet.RouteApproved, netip.MustParsePrefix("10.65.0.0/16")
	mustUpdate(t, s, func(tx store.Tx) error { return tx.PutRoute(ctx, c) })
	if got, err := s.RoutesReaching(ctx, netip.MustParsePrefix("172.20.0.0/16")); err != nil || len(got) != 0 {
		t.Fatalf("old reach still found after the route was mapped: %+v %v", got, err)
	}
	if got, err := s.RoutesReaching(ctx, netip.MustParsePrefix("10.65.1.1/32")); err != nil || len(got) != 1 || !reflect.DeepEqual(got[0], c) {
		t.Fatalf("new reach: %+v %v", got, err)
	}
	mustUpdate(t, s, func(tx store.Tx) error { return tx.DeleteRoute(ctx, "sim_1", lan) })
	err = s.Update(ctx, func(tx store.Tx) error { return tx.DeleteRoute(ctx, "sim_1", lan) })
	if !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("deleting a missing route: %v", err)
	}
	if err := s.Update(ctx, func(tx store.Tx) error {
		return tx.PutRoute(ctx, fleet.Route{SIMID: "sim_1", Prefix: netip.MustParsePrefix("::ffff:10.0.0.0/104"), Status: fleet.RouteApproved})
	}); err == nil {
		t.Fatal("an IPv4-mapped IPv6 prefix was stored as a route")
	}
}

// testGatePeers: Gate peers round-trip, are found by inner address, the
// (outer address, VNI) pair and the inner address are unique, deletion is
// reported.
func testGatePeers(t *testing.T, s store.Store) {
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Microsecond)
	g := fleet.GatePeer{ID: "gp_1", Name: "vpc", GroupID: "grp_1", OuterAddress: netip.MustParseAddr("192.0.2.10"), InnerAddress: netip.MustParseAddr("10.128.0.9"), VNI: 10, Created: now}
	mustUpdate(t, s, func(tx store.Tx) error { return tx.InsertGatePeer(ctx, g) })
	if got, err := s.GatePeer(ctx, "gp_1"); err != nil || got != g {
		t.Fatalf("round trip: %+v %v", got, err)
	}
	if got, err := s.GatePeerByInner(ctx, g.InnerAddress); err != nil || got.ID != g.ID {
		t.Fatalf("by inner address: %+v %v", got, err)
	}
	for _, tc := range []struct {
		field string
		peer  fleet.GatePeer
	}{
		{"vni", fleet.GatePeer{ID: "gp_2", OuterAddress: g.OuterAddress, InnerAddress: netip.MustParseAddr("10.128.0.10"), VNI: 10, Created: now}},
		{"innerAddress", fleet.GatePeer{ID: "gp_3", OuterAddress: g.OuterAddress, InnerAddress: g.InnerAddress, VNI: 11, Created: now}},
	} {
		err := s.Update(ctx, func(tx store.Tx) error { return tx.InsertGatePeer(ctx, tc.peer) })
		var ce *store.ConflictError
		if !errors.As(err, &ce) || ce.Field != tc.field {
			t.Errorf("duplicate %s: %v", tc.field, err)
		}
	}
	p, err := s.ListGatePeers(ctx, store.PageRequest{})
	if err != nil || len(p.Items) != 1 {
		t.Fatalf("list: %+v %v", p, err)
	}
	mustUpdate(t, s, func(tx store.Tx) error { return tx.DeleteGatePeer(ctx, "gp_1") })
	if err := s.Update(ctx, func(tx store.Tx) error { return tx.DeleteGatePeer(ctx, "gp_1") }); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("deleting twice: %v", err)
	}
}

// testRoutes6: IPv6 routes are stored and found by what overlaps them,
// exactly: a neighbour in the same /63 is not an overlap, an address
// inside is, and IPv4 and IPv6 never find each other.
func testRoutes6(t *testing.T, s store.Store) {
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Microsecond)
	a := fleet.Route{SIMID: "sim_1", Prefix: netip.MustParsePrefix("2001:db8:1::/64"), Status: fleet.RouteApproved, Source: fleet.RouteByOperator, Created: now, Updated: now}
	b := fleet.Route{SIMID: "sim_2", Prefix: netip.MustParsePrefix("2001:db8:2::/48"), Status: fleet.RouteApproved, Source: fleet.RouteByOperator, Created: now, Updated: now}
	v4 := fleet.Route{SIMID: "sim_3", Prefix: netip.MustParsePrefix("0.0.0.0/8"), Status: fleet.RouteApproved, Source: fleet.RouteByOperator, Created: now, Updated: now}
	mustUpdate(t, s, func(tx store.Tx) error {
		for _, r := range []fleet.Route{a, b, v4} {
			if err := tx.PutRoute(ctx, r); err != nil {
				return err
			}
		}
		return nil
	})
	for p, want := range map[string][]fleet.Route{
		"2001:db8:1::/64":        {a},
		"2001:db8:1::5/128":      {a},
		"2001:db8:1:1::/64":      {}, // the same /63, not overlapping
		"2001:db8:2:ffff::/64":   {b},
		"2001:db8::/32":          {a, b},
		"::/0":                   {a, b},
		"2001:db8:3::/48":        {},
		"0.0.0.0/0":              {v4},
		"ffff:ffff::/32":         {},
		"2001:db8:1:0:8000::/65": {a},
	} {
		got, err := s.RoutesReaching(ctx, netip.MustParsePrefix(p))
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		slices.SortFunc(got, func(x, y fleet.Route) int { return strings.Compare(x.SIMID, y.SIMID) })
		if len(got) != len(want) || len(got) > 0 && !reflect.DeepEqual(got, want) {
			t.Errorf("reaching %s: %+v, want %+v", p, got, want)
		}
	}
}
