// SPDX-License-Identifier: Apache-2.0

package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/wirefleet/wirefleet/controlplane/store"
	"github.com/wirefleet/wirefleet/fleet"
)

// testIdentities: batches and identities round-trip, counts follow status,
// a key is registered once, lists filter and page, a batch revocation
// reaches every identity of the batch and no other.
func testIdentities(t *testing.T, s store.Store) {
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Microsecond)
	b1 := fleet.IdentityBatch{ID: "ib_1", Name: "lot 1", GroupID: "grp_x", Tags: map[string]string{"lot": "1"}, Created: now}
	b2 := fleet.IdentityBatch{ID: "ib_2", Name: "lot 2", Created: now}
	ident := func(n int, batch string) fleet.Identity {
		return fleet.Identity{ID: fmt.Sprintf("%064x", n), PublicKey: fmt.Sprintf("ed25519:key%d", n), BatchID: batch, Status: fleet.IdentityActive, Created: now, Updated: now}
	}
	mustUpdate(t, s, func(tx store.Tx) error {
		for _, b := range []fleet.IdentityBatch{b1, b2} {
			if err := tx.InsertIdentityBatch(ctx, b); err != nil {
				return err
			}
		}
		for n := 1; n <= 5; n++ {
			if err := tx.InsertIdentity(ctx, ident(n, b1.ID)); err != nil {
				return err
			}
		}
		return tx.InsertIdentity(ctx, ident(6, b2.ID))
	})
	got, err := s.IdentityBatch(ctx, b1.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Name != b1.Name || got.GroupID != b1.GroupID || got.Tags["lot"] != "1" || !got.Created.Equal(now) || got.Count != 5 || got.Used != 0 || got.Revoked {
		t.Fatalf("batch read back as %+v", got)
	}
	if _, err := s.IdentityBatch(ctx, "ib_none"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("missing batch: %v", err)
	}
	// The same key again, in any batch: a conflict on publicKey, and the
	// transaction's other writes roll back with it.
	err = s.Update(ctx, func(tx store.Tx) error {
		if err := tx.InsertIdentity(ctx, ident(7, b2.ID)); err != nil {
			return err
		}
		return tx.InsertIdentity(ctx, ident(3, b2.ID))
	})
	wantConflict(t, err, "publicKey")
	if _, err := s.Identity(ctx, ident(7, "").ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("identity of a rolled-back import: %v", err)
	}

	// Use one, revoke another.
	used := ident(2, b1.ID)
	used.Status, used.SIMID, used.Updated = fleet.IdentityUsed, "sim_1", now.Add(time.Second)
	mustUpdate(t, s, func(tx store.Tx) error { return tx.UpdateIdentity(ctx, used) })
	revoked := ident(4, b1.ID)
	revoked.Status = fleet.IdentityRevoked
	mustUpdate(t, s, func(tx store.Tx) error { return tx.UpdateIdentity(ctx, revoked) })
	if err := s.Update(ctx, func(tx store.Tx) error { return tx.UpdateIdentity(ctx, ident(99, b1.ID)) }); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("update of a missing identity: %v", err)
	}
	i, err := s.Identity(ctx, used.ID)
	if err != nil || i.Status != fleet.IdentityUsed || i.SIMID != "sim_1" || !i.Updated.Equal(used.Updated) || i.PublicKey != used.PublicKey || i.BatchID != b1.ID {
		t.Fatalf("used identity read back as %+v, %v", i, err)
	}
	if got, _ := s.IdentityBatch(ctx, b1.ID); got.Used != 1 || got.Count != 5 {
		t.Fatalf("counts after use: %+v", got)
	}

	// Filters and pages.
	page, err := s.ListIdentities(ctx, store.IdentityFilter{BatchID: b1.ID, PageRequest: store.PageRequest{Limit: 2}})
	if err != nil || len(page.Items) != 2 || page.Next == "" {
		t.Fatalf("first page: %+v %v", page, err)
	}
	seen := len(page.Items)
	for page.Next != "" {
		if page, err = s.ListIdentities(ctx, store.IdentityFilter{BatchID: b1.ID, PageRequest: store.PageRequest{Limit: 2, Cursor: page.Next}}); err != nil {
			t.Fatal(err)
		}
		seen += len(page.Items)
	}
	if seen != 5 {
		t.Fatalf("paged through %d identities of the batch, want 5", seen)
	}
	for st, want := range map[fleet.IdentityStatus]int{fleet.IdentityActive: 4, fleet.IdentityUsed: 1, fleet.IdentityRevoked: 1} {
		p, err := s.ListIdentities(ctx, store.IdentityFilter{Status: st})
		if err != nil || len(p.Items) != want {
			t.Fatalf("status %s: %d identities, want %d (%v)", st, len(p.Items), want, err)
		}
	}
	bp, err := s.ListIdentityBatches(ctx, store.PageRequest{})
	if err != nil || len(bp.Items) != 2 || bp.Items[0].ID != b1.ID || bp.Items[1].Count != 1 {
		t.Fatalf("batches: %+v %v", bp, err)
	}

	// Revoking batch 1 revokes all of it (the used one too), not batch 2.
	later := now.Add(time.Minute)
	mustUpdate(t, s, func(tx store.Tx) error { return tx.RevokeIdentityBatch(ctx, b1.ID, later) })
	if got, _ := s.IdentityBatch(ctx, b1.ID); !got.Revoked {
		t.Fatal("batch not revoked")
	}
	p, _ := s.ListIdentities(ctx, store.IdentityFilter{BatchID: b1.ID})
	for _, i := range p.Items {
		if i.Status != fleet.IdentityRevoked {
			t.Fatalf("identity %s of a revoked batch is %s", i.ID, i.Status)
		}
	}
	if i, _ := s.Identity(ctx, used.ID); i.SIMID != "sim_1" || !i.Updated.Equal(later) {
		t.Fatalf("revoking lost the SIM or the time: %+v", i)
	}
	if i, _ := s.Identity(ctx, ident(6, "").ID); i.Status != fleet.IdentityActive {
		t.Fatalf("identity of another batch is %s", i.Status)
	}
	if err := s.Update(ctx, func(tx store.Tx) error { return tx.RevokeIdentityBatch(ctx, "ib_none", later) }); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("revoking a missing batch: %v", err)
	}
}

// testChallenges: a challenge is consumed once, even by concurrent
// callers; an expired or unknown one never; expired ones are pruned.
func testChallenges(t *testing.T, s store.Store) {
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Microsecond)
	mustUpdate(t, s, func(tx store.Tx) error {
		if err := tx.InsertChallenge(ctx, "h-live", now.Add(time.Minute)); err != nil {
			return err
		}
		if err := tx.InsertChallenge(ctx, "h-race", now.Add(time.Minute)); err != nil {
			return err
		}
		return tx.InsertChallenge(ctx, "h-old", now.Add(-time.Second))
	})
	consume := func(h string) error {
		return s.Update(ctx, func(tx store.Tx) error { return tx.ConsumeChallenge(ctx, h, now) })
	}
	if err := consume("h-live"); err != nil {
		t.Fatalf("first use: %v", err)
	}
	if err := consume("h-live"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("second use: %v", err)
	}
	if err := consume("h-old"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("expired challenge: %v", err)
	}
	if err := consume("h-unknown"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown challenge: %v", err)
	}
	// Exactly at the expiry instant it is expired.
	mustUpdate(t, s, func(tx store.Tx) error { return tx.InsertChallenge(ctx, "h-edge", now) })
	if err := consume("h-edge"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("challenge at its expiry: %v", err)
	}
	const n = 8
	var wg sync.WaitGroup
	var mu sync.Mutex
	wins := 0
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if consume("h-race") == nil {
				mu.Lock()
				wins++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if wins != 1 {
		t.Fatalf("%d concurrent consumers succeeded, want 1", wins)
	}
	var pruned int64
	mustUpdate(t, s, func(tx store.Tx) error {
		if err := tx.InsertChallenge(ctx, "h-keep", now.Add(time.Minute)); err != nil {
			return err
		}
		var err error
		pruned, err = tx.DeleteExpiredChallenges(ctx, now)
		return err
	})
	if pruned != 2 { // h-old and h-edge
		t.Fatalf("pruned %d, want 2", pruned)
	}
	if err := consume("h-keep"); err != nil {
		t.Fatalf("a live challenge was pruned: %v", err)
	}
}
