// SPDX-License-Identifier: Apache-2.0

package sqlstore

import (
	"context"
	"time"

	"github.com/wirefleet/wirefleet/fleet"
)

// ---- web console sessions ----

func (r reader) ConsoleSession(ctx context.Context, hash string) (fleet.ConsoleSession, error) {
	var s fleet.ConsoleSession
	var created, expires int64
	err := r.q.QueryRowContext(ctx, r.rebind(`SELECT hash, token_id, created, expires FROM console_sessions WHERE hash = ?`), hash).Scan(&s.Hash, &s.TokenID, &created, &expires)
	if err != nil {
		return fleet.ConsoleSession{}, r.mapErr(err)
	}
	s.Created, s.Expires = fromNanos(created), fromNanos(expires)
	return s, nil
}

func (t *tx) InsertConsoleSession(ctx context.Context, s fleet.ConsoleSession) error {
	_, err := t.exec(ctx, `INSERT INTO console_sessions (hash, token_id, created, expires) VALUES (?, ?, ?, ?)`, s.Hash, s.TokenID, nanos(s.Created), nanos(s.Expires))
	return err
}

func (t *tx) DeleteConsoleSession(ctx context.Context, hash string) error {
	return affected(t.exec(ctx, `DELETE FROM console_sessions WHERE hash = ?`, hash))
}

func (t *tx) DeleteExpiredConsoleSessions(ctx context.Context, now time.Time) (int64, error) {
	res, err := t.exec(ctx, `DELETE FROM console_sessions WHERE expires <= ?`, nanos(now))
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}
