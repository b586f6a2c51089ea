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

// testConsoleSessions: a session is found by its hash, expired ones are
// swept, and deleting a token ends every session signed in with it.
func testConsoleSessions(t *testing.T, s store.Store) {
	ctx := context.Background()
	now := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	tok := fleet.Token{ID: "tok_console", Role: fleet.RoleViewer, Hash: "h-tok-console", Created: now}
	live := fleet.ConsoleSession{Hash: "h-live", TokenID: tok.ID, Created: now, Expires: now.Add(time.Hour)}
	old := fleet.ConsoleSession{Hash: "h-old", TokenID: "tok_other", Created: now.Add(-2 * time.Hour), Expires: now.Add(-time.Hour)}
	mustUpdate(t, s, func(tx store.Tx) error {
		if err := tx.InsertToken(ctx, tok); err != nil {
			return err
		}
		if err := tx.InsertConsoleSession(ctx, live); err != nil {
			return err
		}
		return tx.InsertConsoleSession(ctx, old)
	})
	got, err := s.ConsoleSession(ctx, live.Hash)
	if err != nil || got.TokenID != tok.ID || !got.Expires.Equal(live.Expires) || !got.Created.Equal(live.Created) {
		t.Fatalf("ConsoleSession = %+v, %v; want %+v", got, err, live)
	}
	if _, err := s.ConsoleSession(ctx, "h-none"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown session: %v, want ErrNotFound", err)
	}
	var swept int64
	mustUpdate(t, s, func(tx store.Tx) (err error) {
		swept, err = tx.DeleteExpiredConsoleSessions(ctx, now)
		return err
	})
	if swept != 1 {
		t.Fatalf("swept %d sessions, want the one expired", swept)
	}
	if _, err := s.ConsoleSession(ctx, old.Hash); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("expired session still there: %v", err)
	}
	mustUpdate(t, s, func(tx store.Tx) error { return tx.DeleteToken(ctx, tok.ID) })
	if _, err := s.ConsoleSession(ctx, live.Hash); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("session of a deleted token still there: %v", err)
	}
	err = s.Update(ctx, func(tx store.Tx) error { return tx.DeleteConsoleSession(ctx, live.Hash) })
	if !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("deleting a gone session: %v, want ErrNotFound", err)
	}
}
