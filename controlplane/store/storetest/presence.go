// SPDX-License-Identifier: Apache-2.0

package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/wirefleet/wirefleet/controlplane/store"
)

// testPresence: gateways record, replace and clear a SIM's sessions; a
// gateway clears all of its own at start.
func testPresence(t *testing.T, s store.Store) {
	ctx := context.Background()
	t0 := time.Now().UTC().Truncate(time.Microsecond)
	mustUpdate(t, s, func(tx store.Tx) error {
		for _, p := range []store.Presence{
			{SIMID: "sim_a", Gateway: "gw1", Endpoint: "198.51.100.1:1000", Since: t0},
			{SIMID: "sim_a", Gateway: "gw2", Endpoint: "203.0.113.2:2000", Since: t0.Add(time.Second)},
			{SIMID: "sim_b", Gateway: "gw1", Endpoint: "198.51.100.3:3000", Since: t0},
			{SIMID: "sim_a", Gateway: "gw1", Endpoint: "198.51.100.9:9000", Since: t0.Add(2 * time.Second)}, // replaces
		} {
			if err := tx.SetPresence(ctx, p); err != nil {
				return err
			}
		}
		return nil
	})
	got, err := s.Presences(ctx, "sim_a")
	if err != nil || len(got) != 2 || got[0].Gateway != "gw2" || got[1].Gateway != "gw1" || got[1].Endpoint != "198.51.100.9:9000" || !got[1].Since.Equal(t0.Add(2*time.Second)) {
		t.Fatalf("presences of sim_a: %+v, %v", got, err)
	}
	if at, err := s.PresencesAt(ctx, "203.0.113.2:2000"); err != nil || len(at) != 1 || at[0].SIMID != "sim_a" || at[0].Gateway != "gw2" {
		t.Fatalf("presences at 203.0.113.2:2000: %+v, %v", at, err)
	}
	if at, err := s.PresencesAt(ctx, "198.51.100.1:1000"); err != nil || len(at) != 0 {
		t.Fatalf("presences at a replaced endpoint: %+v, %v", at, err)
	}
	mustUpdate(t, s, func(tx store.Tx) error {
		return tx.SetPresence(ctx, store.Presence{SIMID: "sim_c", Gateway: "gw3", Endpoint: "198.51.100.3:3000", Since: t0.Add(time.Minute)})
	})
	if at, _ := s.PresencesAt(ctx, "198.51.100.3:3000"); len(at) != 2 || at[0].SIMID != "sim_c" || at[1].SIMID != "sim_b" {
		t.Fatalf("presences at a shared endpoint, newest first: %+v", at)
	}
	mustUpdate(t, s, func(tx store.Tx) error { return tx.ClearPresence(ctx, "sim_c", "gw3") })
	mustUpdate(t, s, func(tx store.Tx) error { return tx.ClearPresence(ctx, "sim_a", "gw2") })
	if got, _ := s.Presences(ctx, "sim_a"); len(got) != 1 || got[0].Gateway != "gw1" {
		t.Fatalf("after clearing gw2: %+v", got)
	}
	mustUpdate(t, s, func(tx store.Tx) error { return tx.ClearPresence(ctx, "", "gw1") })
	for _, id := range []string{"sim_a", "sim_b"} {
		if got, err := s.Presences(ctx, id); err != nil || len(got) != 0 {
			t.Fatalf("after clearing all of gw1, %s: %+v, %v", id, got, err)
		}
	}
}
