// SPDX-License-Identifier: Apache-2.0

package storetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/wirefleet/wirefleet/controlplane/store"
	"github.com/wirefleet/wirefleet/fleet"
	"github.com/wirefleet/wirefleet/wgkey"
)

// testNodes: a node registers and refreshes its one row; the list is by
// name; a node forgotten is gone.
func testNodes(t *testing.T, s store.Store) {
	ctx := context.Background()
	if ns, err := s.ListNodes(ctx); err != nil || len(ns) != 0 {
		t.Fatalf("no nodes yet: %v %v", ns, err)
	}
	now := time.Now().UTC().Truncate(time.Microsecond)
	b := fleet.Node{Name: "node-b", Endpoint: "192.0.2.2:51820", API: ":8080", Version: "v1", Sessions: 3, Started: now, Seen: now}
	a := fleet.Node{Name: "node-a", Endpoint: "192.0.2.1:51820", API: ":8080", Version: "v1", Started: now, Seen: now, Degraded: "mesh peer node-b down",
		MeshKey: wgkey.Public{7, 7, 7}, MeshEndpoint: "10.0.0.1:51821"}
	mustUpdate(t, s, func(tx store.Tx) error { return tx.PutNode(ctx, b) })
	mustUpdate(t, s, func(tx store.Tx) error { return tx.PutNode(ctx, a) })
	b.Sessions, b.Seen = 7, now.Add(10*time.Second)
	mustUpdate(t, s, func(tx store.Tx) error { return tx.PutNode(ctx, b) })
	ns, err := s.ListNodes(ctx)
	if err != nil || len(ns) != 2 || ns[0].Name != "node-a" || ns[0].Degraded != a.Degraded || ns[0].MeshKey != a.MeshKey || ns[0].MeshEndpoint != a.MeshEndpoint || !ns[1].MeshKey.IsZero() || ns[1].Sessions != 7 || !ns[1].Seen.Equal(b.Seen) || !ns[1].Started.Equal(now) {
		t.Fatalf("nodes: %+v %v", ns, err)
	}
	mustUpdate(t, s, func(tx store.Tx) error { return tx.DeleteNode(ctx, "node-a") })
	if ns, _ := s.ListNodes(ctx); len(ns) != 1 || ns[0].Name != "node-b" {
		t.Fatalf("after forgetting node-a: %+v", ns)
	}
	err = s.Update(ctx, func(tx store.Tx) error { return tx.DeleteNode(ctx, "node-x") })
	if !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("forgetting an unknown node: %v", err)
	}
}

// testLeases: a lease goes to the first taker; another cannot take it
// while it runs, the holder renews it, anyone takes it once it lapsed; a
// release lets the next taker in at once, and only the holder releases.
func testLeases(t *testing.T, s store.Store) {
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Microsecond)
	take := func(job, holder string, at time.Time) bool {
		t.Helper()
		var ok bool
		mustUpdate(t, s, func(tx store.Tx) (err error) {
			ok, err = tx.TakeLease(ctx, job, holder, at, at.Add(30*time.Second))
			return err
		})
		return ok
	}
	if !take("retention", "node-a", now) {
		t.Fatal("a free lease was not taken")
	}
	if take("retention", "node-b", now.Add(time.Second)) {
		t.Fatal("a held lease was taken by another node")
	}
	if !take("audit", "node-b", now) {
		t.Fatal("another job's lease was not free")
	}
	if !take("retention", "node-a", now.Add(20*time.Second)) {
		t.Fatal("the holder could not renew")
	}
	if take("retention", "node-b", now.Add(40*time.Second)) {
		t.Fatal("the renewed lease was taken before it lapsed")
	}
	if !take("retention", "node-b", now.Add(50*time.Second)) {
		t.Fatal("a lapsed lease was not taken")
	}
	ls, err := s.ListLeases(ctx)
	if err != nil || len(ls) != 2 || ls[0].Job != "audit" || ls[1].Holder != "node-b" || !ls[1].Until.Equal(now.Add(80*time.Second)) {
		t.Fatalf("leases: %+v %v", ls, err)
	}
	mustUpdate(t, s, func(tx store.Tx) error { return tx.ReleaseLease(ctx, "retention", "node-a") }) // not the holder: nothing
	if take("retention", "node-a", now.Add(51*time.Second)) {
		t.Fatal("a release by a node that does not hold the lease freed it")
	}
	mustUpdate(t, s, func(tx store.Tx) error { return tx.ReleaseLease(ctx, "retention", "node-b") })
	if !take("retention", "node-a", now.Add(52*time.Second)) {
		t.Fatal("a released lease was not free")
	}
}
