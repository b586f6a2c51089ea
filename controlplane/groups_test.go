// SPDX-License-Identifier: Apache-2.0

package controlplane_test

import (
	"context"
	"testing"

	"github.com/wirefleet/wirefleet/controlplane"
	"github.com/wirefleet/wirefleet/fleet"
)

// TestUpdateGroupIfUnchanged: a write made from a stale read is refused
// and leaves the group as the other writer left it.
func TestUpdateGroupIfUnchanged(t *testing.T) {
	svc, _ := newService(t)
	ctx := context.Background()
	g, err := svc.CreateGroup(ctx, admin, "line", fleet.GroupSettings{})
	if err != nil {
		t.Fatal(err)
	}
	read := controlplane.GroupVersion(g)
	first := fleet.GroupSettings{UserData: "first"}
	g2, err := svc.UpdateGroupIfUnchanged(ctx, admin, g.ID, nil, &first, read)
	if err != nil {
		t.Fatalf("a write from a fresh read: %v", err)
	}
	stale := fleet.GroupSettings{UserData: "stale"}
	_, err = svc.UpdateGroupIfUnchanged(ctx, admin, g.ID, nil, &stale, read)
	wantCode(t, err, fleet.CodeConflict, "version")
	got, err := svc.GetGroup(ctx, admin, g.ID)
	if err != nil || got.Settings.UserData != "first" || !got.Updated.Equal(g2.Updated) {
		t.Fatalf("after a refused stale write: %q at %v (%v), want the first write's", got.Settings.UserData, got.Updated, err)
	}
	// The same content saved twice within one clock tick still moves the version.
	if controlplane.GroupVersion(got) == read {
		t.Fatal("the version did not change with the settings")
	}
	viewer := admin
	viewer.Role = fleet.RoleViewer
	_, err = svc.UpdateGroupIfUnchanged(ctx, viewer, g.ID, nil, &stale, controlplane.GroupVersion(got))
	wantCode(t, err, fleet.CodeForbidden, "")
}
