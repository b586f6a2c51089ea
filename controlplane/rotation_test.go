// SPDX-License-Identifier: Apache-2.0

package controlplane_test

import (
	"context"
	"testing"
	"time"

	"github.com/wirefleet/wirefleet/controlplane"
	"github.com/wirefleet/wirefleet/fleet"
)

// A required rotation: a deadline within bounds, an earlier one kept, a
// next key announced before dropped (whoever announced it must not decide),
// a viewer refused, and a new key clearing the requirement.
func TestRequireKeyRotation(t *testing.T) {
	svc, _ := newService(t)
	ctx := context.Background()
	sim, _, err := svc.CreateSIM(ctx, admin, controlplane.SIMSpec{GenerateKey: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.RequireKeyRotation(ctx, admin, sim.ID, 5*time.Minute); err == nil {
		t.Fatal("a 5-minute window is shorter than the agent's checks allow")
	}
	viewer := controlplane.Actor{Kind: "token", ID: "tok_v", Role: fleet.RoleViewer}
	wantCode(t, func() error { _, err := svc.RequireKeyRotation(ctx, viewer, sim.ID, time.Hour); return err }(), fleet.CodeForbidden, "")
	next, _, err := svc.SetSIMKey(ctx, admin, sim.ID, controlplane.KeySpec{PublicKey: pub(t), Next: true})
	if err != nil || next.NextPublicKey.IsZero() {
		t.Fatalf("announcing a next key: %v", err)
	}
	got, err := svc.RequireKeyRotation(ctx, admin, sim.ID, 2*time.Hour)
	if err != nil || got.RotateBy.IsZero() || !got.NextPublicKey.IsZero() {
		t.Fatalf("required: %+v, %v; want a deadline and no next key", got, err)
	}
	first := got.RotateBy
	if got, _ = svc.RequireKeyRotation(ctx, admin, sim.ID, 24*time.Hour); !got.RotateBy.Equal(first) {
		t.Fatalf("a later deadline replaced the earlier one: %v, want %v", got.RotateBy, first)
	}
	stored, _ := svc.View().SIM(ctx, sim.ID)
	if !stored.RotateBy.Equal(first) || !stored.NextPublicKey.IsZero() {
		t.Fatalf("stored %+v", stored)
	}
	got, _, err = svc.SetSIMKey(ctx, admin, sim.ID, controlplane.KeySpec{GenerateKey: true})
	if err != nil || !got.RotateBy.IsZero() {
		t.Fatalf("a new key must clear the requirement: %+v, %v", got, err)
	}
}
