// SPDX-License-Identifier: Apache-2.0

package storetest

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/wirefleet/wirefleet/controlplane/store"
	"github.com/wirefleet/wirefleet/fleet"
)

// testSIMCards: cards round-trip, ICCID and IMSI are each taken once, the
// SQN moves only by compare-and-set (a stale writer is refused), updates
// leave keys and SQN alone, lists page by ICCID.
func testSIMCards(t *testing.T, s store.Store) {
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Microsecond)
	card := func(n int) fleet.SIMCard {
		return fleet.SIMCard{ICCID: fmt.Sprintf("89811000000000000%02d", n), IMSI: fmt.Sprintf("0010100000000%02d", n), KiSealed: fmt.Sprintf("sealed-ki-%d", n),
			OPcSealed: fmt.Sprintf("sealed-opc-%d", n), SQN: 32, Status: fleet.CardActive, GroupID: "grp_a", Created: now, Updated: now}
	}
	mustUpdate(t, s, func(tx store.Tx) error {
		for n := 1; n <= 3; n++ {
			if err := tx.InsertSIMCard(ctx, card(n)); err != nil {
				return err
			}
		}
		return nil
	})
	got, err := s.SIMCardByIMSI(ctx, card(2).IMSI)
	if err != nil || got != card(2) {
		t.Fatalf("by IMSI: %+v %v, want %+v", got, err, card(2))
	}
	for _, dup := range []struct {
		c     fleet.SIMCard
		field string
	}{{func() fleet.SIMCard { c := card(9); c.ICCID = card(1).ICCID; return c }(), "iccid"}, {func() fleet.SIMCard { c := card(9); c.IMSI = card(1).IMSI; return c }(), "imsi"}} {
		err := s.Update(ctx, func(tx store.Tx) error { return tx.InsertSIMCard(ctx, dup.c) })
		var ce *store.ConflictError
		if !errors.As(err, &ce) || ce.Field != dup.field {
			t.Fatalf("duplicate %s: %v", dup.field, err)
		}
	}
	mustUpdate(t, s, func(tx store.Tx) error { return tx.AdvanceCardSQN(ctx, card(1).ICCID, 32, 64) })
	err = s.Update(ctx, func(tx store.Tx) error { return tx.AdvanceCardSQN(ctx, card(1).ICCID, 32, 96) })
	if !errors.Is(err, store.ErrStale) {
		t.Fatalf("a stale SQN write: %v", err)
	}
	err = s.Update(ctx, func(tx store.Tx) error { return tx.AdvanceCardSQN(ctx, "8900000000000000000", 0, 1) })
	if !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("an unknown card's SQN: %v", err)
	}
	up := card(1)
	up.Status, up.SIMID, up.KiSealed, up.SQN, up.Updated = fleet.CardSuspended, "sim_x", "other", 0, now.Add(time.Second)
	mustUpdate(t, s, func(tx store.Tx) error { return tx.UpdateSIMCard(ctx, up) })
	got, _ = s.SIMCard(ctx, card(1).ICCID)
	if got.Status != fleet.CardSuspended || got.SIMID != "sim_x" || got.KiSealed != card(1).KiSealed || got.SQN != 64 || !got.Updated.Equal(up.Updated) {
		t.Fatalf("after update: %+v", got)
	}
	p, err := s.ListSIMCards(ctx, store.PageRequest{Limit: 2})
	if err != nil || len(p.Items) != 2 || p.Next == "" || p.Items[0].ICCID != card(1).ICCID {
		t.Fatalf("first page: %+v %v", p, err)
	}
	p, err = s.ListSIMCards(ctx, store.PageRequest{Limit: 2, Cursor: p.Next})
	if err != nil || len(p.Items) != 1 || p.Items[0].ICCID != card(3).ICCID {
		t.Fatalf("second page: %+v %v", p, err)
	}
	// AKA keys: round-trip, verify, a signature accepted once, expiry.
	k := fleet.CardKey{ID: "ck_1", ICCID: card(2).ICCID, XRESHash: "ab", CKSealed: "sealed-ck", Expires: now.Add(time.Minute), Created: now}
	mustUpdate(t, s, func(tx store.Tx) error { return tx.InsertCardKey(ctx, k) })
	k.Verified, k.Expires = true, now.Add(time.Hour)
	mustUpdate(t, s, func(tx store.Tx) error { return tx.UpdateCardKey(ctx, k) })
	if got, err := s.CardKey(ctx, "ck_1"); err != nil || got != k {
		t.Fatalf("card key: %+v %v, want %+v", got, err, k)
	}
	mustUpdate(t, s, func(tx store.Tx) error { return tx.UseCardSignature(ctx, "ck_1", 1700000000000, now.Add(time.Minute)) })
	err = s.Update(ctx, func(tx store.Tx) error { return tx.UseCardSignature(ctx, "ck_1", 1700000000000, now.Add(time.Minute)) })
	var ce *store.ConflictError
	if !errors.As(err, &ce) {
		t.Fatalf("a signature accepted twice: %v", err)
	}
	var n int64
	mustUpdate(t, s, func(tx store.Tx) (err error) {
		n, err = tx.DeleteExpiredCardKeys(ctx, now.Add(2*time.Hour))
		return err
	})
	if _, err := s.CardKey(ctx, "ck_1"); !errors.Is(err, store.ErrNotFound) || n != 2 {
		t.Fatalf("after expiry: %v, %d removed", err, n)
	}
	mustUpdate(t, s, func(tx store.Tx) error { return tx.DeleteSIMCard(ctx, card(3).ICCID) })
	if _, err := s.SIMCard(ctx, card(3).ICCID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("deleted card: %v", err)
	}
}
