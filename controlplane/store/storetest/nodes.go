// SPDX-License-Identifier: Apache-2.0

package storetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/wirefleet/wirefleet/controlplane/store"
	"github.com/wirefleet/wirefleet/fleet"
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
	a := fleet.Node{Name: "node-a", Endpoint: "192.0.2.1:51820", API: ":8080", Version: "v1", Started: now, Seen: now, Degraded: "mesh peer node-b down"}
	mustUpdate(t, s, func(tx store.Tx) error { return tx.PutNode(ctx, b) })
	mustUpdate(t, s, func(tx store.Tx) error { return tx.PutNode(ctx, a) })
	b.Sessions, b.Seen = 7, now.Add(10*time.Second)
	mustUpdate(t, s, func(tx store.Tx) error { return tx.PutNode(ctx, b) })
	ns, err := s.ListNodes(ctx)
	if err != nil || len(ns) != 2 || ns[0].Name != "node-a" || ns[0].Degraded != a.Degraded || ns[1].Sessions != 7 || !ns[1].Seen.Equal(b.Seen) || !ns[1].Started.Equal(now) {
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
