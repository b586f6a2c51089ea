// SPDX-License-Identifier: Apache-2.0

package controlplane_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/wirefleet/wirefleet/controlplane"
	"github.com/wirefleet/wirefleet/controlplane/store/sqlitestore"
	"github.com/wirefleet/wirefleet/fleet"
	"github.com/wirefleet/wirefleet/internal/clock"
	"github.com/wirefleet/wirefleet/wgkey"
)

// TestCheckNodeIdentity: the first node's WireGuard key and settings-key
// check value become the installation's; a node with either different is
// refused with an error that says which, and changes nothing.
func TestCheckNodeIdentity(t *testing.T) {
	ctx := context.Background()
	st, err := sqlitestore.Open(ctx, filepath.Join(t.TempDir(), "fleet.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	svc := controlplane.New(st, controlplane.Config{})
	k1, k2 := wgkey.Public{1}, wgkey.Public{2}
	if err := svc.CheckNodeIdentity(ctx, k1, "aaaa"); err != nil {
		t.Fatalf("the first node: %v", err)
	}
	if err := svc.CheckNodeIdentity(ctx, k1, "aaaa"); err != nil {
		t.Fatalf("the same identity again: %v", err)
	}
	var me *controlplane.IdentityMismatchError
	if err := svc.CheckNodeIdentity(ctx, k2, "aaaa"); !errors.As(err, &me) || me.Installation != k1.String() {
		t.Fatalf("another WireGuard key: %v", err)
	}
	if err := svc.CheckNodeIdentity(ctx, k1, "bbbb"); !errors.As(err, &me) || me.Installation != "aaaa" {
		t.Fatalf("another settings key: %v", err)
	}
	if err := svc.CheckNodeIdentity(ctx, k1, "aaaa"); err != nil {
		t.Fatalf("a refused node changed the installation: %v", err)
	}
}

// TestNodeRegistry: heartbeats register and refresh nodes; a node down
// can be forgotten by an admin only, a node up by no one.
func TestNodeRegistry(t *testing.T) {
	ctx := context.Background()
	st, err := sqlitestore.Open(ctx, filepath.Join(t.TempDir(), "fleet.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	clk := clock.NewFake(time.Now())
	svc := controlplane.New(st, controlplane.Config{Clock: clk})
	now := clk.Now().UTC()
	for _, n := range []string{"node-b", "node-a"} {
		if err := svc.Heartbeat(ctx, fleet.Node{Name: n, Version: "v1", Started: now, Seen: now}); err != nil {
			t.Fatal(err)
		}
	}
	for _, bad := range []string{"", "a/b", "node a", "<b>"} {
		if err := svc.Heartbeat(ctx, fleet.Node{Name: bad}); err == nil {
			t.Fatalf("a node named %q registered", bad)
		}
	}
	viewer := controlplane.Actor{Kind: "token", ID: "tok_v", Role: fleet.RoleViewer}
	operator := controlplane.Actor{Kind: "token", ID: "tok_o", Role: fleet.RoleOperator}
	admin := controlplane.Actor{Kind: "token", ID: "tok_a", Role: fleet.RoleAdmin}
	ns, err := svc.ListNodes(ctx, viewer)
	if err != nil || len(ns) != 2 || ns[0].Name != "node-a" || !ns[0].Up(now) {
		t.Fatalf("nodes: %+v %v", ns, err)
	}
	if _, err := svc.ListNodes(ctx, controlplane.Actor{Kind: "authkey", ID: "ak"}); err == nil {
		t.Fatal("an auth key lists nodes")
	}
	if err := svc.ForgetNode(ctx, admin, "node-a"); err == nil {
		t.Fatal("a node that is up was forgotten")
	}
	clk.Advance(fleet.NodeStaleAfter + time.Second)
	for _, a := range []controlplane.Actor{viewer, operator} {
		if err := svc.ForgetNode(ctx, a, "node-a"); err == nil {
			t.Fatalf("%s forgot a node", a.Role)
		}
	}
	if err := svc.ForgetNode(ctx, admin, "node-a"); err != nil {
		t.Fatalf("an admin forgetting a node down: %v", err)
	}
	if ns, _ := svc.ListNodes(ctx, viewer); len(ns) != 1 || ns[0].Name != "node-b" {
		t.Fatalf("after forgetting: %+v", ns)
	}
}
