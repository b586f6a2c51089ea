// SPDX-License-Identifier: Apache-2.0

package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/wirefleet/wirefleet/controlplane/store"
)

// testKeyAge: the store keeps when the current key became current (the
// creation, at first), keeps it across updates that leave the key alone,
// and renews it — clearing a required rotation — when the key changes.
func testKeyAge(t *testing.T, s store.Store) {
	ctx := context.Background()
	sim := insertSIM(t, s)
	got, err := s.SIM(ctx, sim.ID)
	if err != nil || !got.KeySet.Equal(sim.Created) || !got.RotateBy.IsZero() {
		t.Fatalf("after insert: keySet %v rotateBy %v (%v), want the creation time and none", got.KeySet, got.RotateBy, err)
	}
	deadline := sim.Created.Add(24 * time.Hour)
	later := sim.Created.Add(time.Hour)
	mustUpdate(t, s, func(tx store.Tx) error {
		got.Name, got.RotateBy, got.Updated = "renamed", deadline, later
		got.KeySet = later // callers cannot move the key's age
		return tx.UpdateSIM(ctx, got)
	})
	got, _ = s.SIM(ctx, sim.ID)
	if !got.KeySet.Equal(sim.Created) || !got.RotateBy.Equal(deadline) {
		t.Fatalf("after a rename: keySet %v rotateBy %v, want %v and %v", got.KeySet, got.RotateBy, sim.Created, deadline)
	}
	rotated := later.Add(time.Hour)
	mustUpdate(t, s, func(tx store.Tx) error {
		got.PublicKey, got.Updated = key(t), rotated
		return tx.UpdateSIM(ctx, got)
	})
	got, _ = s.SIM(ctx, sim.ID)
	if !got.KeySet.Equal(rotated) || !got.RotateBy.IsZero() {
		t.Fatalf("after a new key: keySet %v rotateBy %v, want %v and none", got.KeySet, got.RotateBy, rotated)
	}
}
