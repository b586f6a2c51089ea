// SPDX-License-Identifier: Apache-2.0

package storetest

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/wirefleet/wirefleet/controlplane/store"
	"github.com/wirefleet/wirefleet/fleet"
)

// testNamePrefix: a name prefix selects by bytes (case-sensitive, the same
// on both databases whatever their locale), lists by name then id, pages
// by its own cursor, and combines with the other filters.
func testNamePrefix(t *testing.T, s store.Store) {
	ctx := context.Background()
	names := []string{"pump-2", "pump-10", "Pump-3", "pumpkin", "pum", "pumq", "pump-1", "pump-1", "pumpé", "pump\U0010FFFF", "é-1", "éa"}
	ids := map[string][]string{}
	for i, n := range names {
		sim := insertSIM(t, s)
		sim.Name = n
		if i == 0 {
			sim.Status = fleet.StatusSuspended
		}
		mustUpdate(t, s, func(tx store.Tx) error { return tx.UpdateSIM(ctx, sim) })
		ids[n] = append(ids[n], sim.ID)
	}
	list := func(f store.SIMFilter) (got []string) {
		t.Helper()
		f.Limit = 2
		for pages := 0; ; pages++ {
			p, err := s.ListSIMs(ctx, f)
			if err != nil {
				t.Fatal(err)
			}
			for _, sim := range p.Items {
				got = append(got, sim.Name)
			}
			if p.Next == "" || pages > 20 {
				return got
			}
			f.Cursor = p.Next
		}
	}
	want := []string{"pump-1", "pump-1", "pump-10", "pump-2", "pumpkin", "pumpé", "pump\U0010FFFF"}
	if got := list(store.SIMFilter{NamePrefix: "pump"}); !slices.Equal(got, want) {
		t.Fatalf("prefix pump: %q, want %q", got, want)
	}
	if got := list(store.SIMFilter{NamePrefix: "é"}); !slices.Equal(got, []string{"é-1", "éa"}) {
		t.Fatalf("prefix é: %q", got)
	}
	if got := list(store.SIMFilter{NamePrefix: "pump\U0010FFFF"}); !slices.Equal(got, []string{"pump\U0010FFFF"}) {
		t.Fatalf("prefix ending in the last character: %q", got)
	}
	if got := list(store.SIMFilter{NamePrefix: "pump", Status: fleet.StatusActive}); !slices.Equal(got, slices.DeleteFunc(slices.Clone(want), func(n string) bool { return n == "pump-2" })) {
		t.Fatalf("prefix pump, active: %q", got)
	}
	// The two SIMs of one name are told apart by id across pages.
	p, err := s.ListSIMs(ctx, store.SIMFilter{PageRequest: store.PageRequest{Limit: 1}, NamePrefix: "pump-1"})
	if err != nil || len(p.Items) != 1 || p.Next == "" {
		t.Fatalf("first pump-1: %+v %v", p, err)
	}
	p2, err := s.ListSIMs(ctx, store.SIMFilter{PageRequest: store.PageRequest{Limit: 1, Cursor: p.Next}, NamePrefix: "pump-1"})
	if err != nil || len(p2.Items) != 1 || p2.Items[0].ID == p.Items[0].ID || p2.Items[0].Name != "pump-1" {
		t.Fatalf("second pump-1: %+v %v", p2, err)
	}
	if _, err := s.ListSIMs(ctx, store.SIMFilter{PageRequest: store.PageRequest{Cursor: "not-a-cursor"}, NamePrefix: "pump"}); err == nil || !strings.Contains(err.Error(), "cursor") {
		t.Fatalf("a bad cursor: %v", err)
	}
}

// testSIMAgent: the agent a device reported is kept by its own statement;
// an UpdateSIM from a copy read before does not write it back.
func testSIMAgent(t *testing.T, s store.Store) {
	ctx := context.Background()
	sim := insertSIM(t, s)
	if got, _ := s.SIM(ctx, sim.ID); got.Agent != "" || !got.AgentSeen.IsZero() {
		t.Fatalf("a new SIM has agent %q seen %v", got.Agent, got.AgentSeen)
	}
	seen := sim.Created.Add(time.Minute)
	mustUpdate(t, s, func(tx store.Tx) error { return tx.SetSIMAgent(ctx, sim.ID, "wirefleet-agent/v1.2.3", seen) })
	sim.Name = "renamed" // a copy read before the report
	mustUpdate(t, s, func(tx store.Tx) error { return tx.UpdateSIM(ctx, sim) })
	got, err := s.SIM(ctx, sim.ID)
	if err != nil || got.Agent != "wirefleet-agent/v1.2.3" || !got.AgentSeen.Equal(seen) || got.Name != "renamed" {
		t.Fatalf("after the report and an update: %+v %v", got, err)
	}
	p, _ := s.ListSIMs(ctx, store.SIMFilter{NamePrefix: "renamed"})
	if len(p.Items) != 1 || p.Items[0].Agent != "wirefleet-agent/v1.2.3" {
		t.Fatalf("a list lacks the agent: %+v", p.Items)
	}
	err = s.Update(ctx, func(tx store.Tx) error { return tx.SetSIMAgent(ctx, "sim_nope", "x", seen) })
	if !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("an unknown SIM: %v", err)
	}
}
