// SPDX-License-Identifier: Apache-2.0

package sqlstore

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/wirefleet/wirefleet/controlplane/store"
	"github.com/wirefleet/wirefleet/fleet"
)

// ---- identity batches and identities (attestation bootstrap) ----

// batchCols computes count and used: a batch is read rarely (operators),
// and a stored counter would be one more thing to keep right.
const batchCols = `b.id, b.name, b.group_id, b.tags, b.revoked, b.created,
	(SELECT COUNT(*) FROM identities i WHERE i.batch_id = b.id),
	(SELECT COUNT(*) FROM identities i WHERE i.batch_id = b.id AND i.status = 'used')`

func scanBatch(s scanner) (fleet.IdentityBatch, error) {
	var (
		b       fleet.IdentityBatch
		tags    string
		revoked int
		created int64
	)
	if err := s.Scan(&b.ID, &b.Name, &b.GroupID, &tags, &revoked, &created, &b.Count, &b.Used); err != nil {
		return b, err
	}
	if err := json.Unmarshal([]byte(tags), &b.Tags); err != nil {
		return b, fmt.Errorf("identity batch %s: tags: %w", b.ID, err)
	}
	b.Revoked = revoked != 0
	b.Created = fromNanos(created)
	return b, nil
}

func (r reader) IdentityBatch(ctx context.Context, id string) (fleet.IdentityBatch, error) {
	b, err := scanBatch(r.q.QueryRowContext(ctx, r.rebind(`SELECT `+batchCols+` FROM identity_batches b WHERE b.id = ?`), id))
	return b, r.mapErr(err)
}

func (r reader) ListIdentityBatches(ctx context.Context, p store.PageRequest) (store.Page[fleet.IdentityBatch], error) {
	return list(ctx, r, `SELECT `+batchCols+` FROM identity_batches b WHERE b.id > ? ORDER BY b.id LIMIT ?`, []any{p.Cursor}, limit(p), scanBatch, func(b fleet.IdentityBatch) string { return b.ID })
}

const identityCols = `id, public_key, batch_id, status, sim_id, created, updated`

func scanIdentity(s scanner) (fleet.Identity, error) {
	var (
		i                fleet.Identity
		status           string
		created, updated int64
	)
	if err := s.Scan(&i.ID, &i.PublicKey, &i.BatchID, &status, &i.SIMID, &created, &updated); err != nil {
		return i, err
	}
	i.Status = fleet.IdentityStatus(status)
	i.Created, i.Updated = fromNanos(created), fromNanos(updated)
	return i, nil
}

func (r reader) Identity(ctx context.Context, id string) (fleet.Identity, error) {
	i, err := scanIdentity(r.q.QueryRowContext(ctx, r.rebind(`SELECT `+identityCols+` FROM identities WHERE id = ?`), id))
	return i, r.mapErr(err)
}

func (r reader) ListIdentities(ctx context.Context, f store.IdentityFilter) (store.Page[fleet.Identity], error) {
	q := `SELECT ` + identityCols + ` FROM identities WHERE id > ?`
	args := []any{f.Cursor}
	if f.BatchID != "" {
		q += ` AND batch_id = ?`
		args = append(args, f.BatchID)
	}
	if f.Status != "" {
		q += ` AND status = ?`
		args = append(args, string(f.Status))
	}
	return list(ctx, r, q+` ORDER BY id LIMIT ?`, args, limit(f.PageRequest), scanIdentity, func(i fleet.Identity) string { return i.ID })
}

func (t *tx) InsertIdentityBatch(ctx context.Context, b fleet.IdentityBatch) error {
	tags := b.Tags
	if tags == nil {
		tags = map[string]string{}
	}
	revoked := 0
	if b.Revoked {
		revoked = 1
	}
	_, err := t.exec(ctx, `INSERT INTO identity_batches (id, name, group_id, tags, revoked, created) VALUES (?, ?, ?, ?, ?, ?)`,
		b.ID, b.Name, b.GroupID, marshal(tags), revoked, nanos(b.Created))
	return err
}

func (t *tx) InsertIdentity(ctx context.Context, i fleet.Identity) error {
	_, err := t.exec(ctx, `INSERT INTO identities (id, public_key, batch_id, status, sim_id, created, updated) VALUES (?, ?, ?, ?, ?, ?, ?)`,
		i.ID, i.PublicKey, i.BatchID, string(i.Status), i.SIMID, nanos(i.Created), nanos(i.Updated))
	if ce, ok := err.(*store.ConflictError); ok {
		ce.Field = "publicKey"
	}
	return err
}

func (t *tx) UpdateIdentity(ctx context.Context, i fleet.Identity) error {
	return affected(t.exec(ctx, `UPDATE identities SET status = ?, sim_id = ?, updated = ? WHERE id = ?`, string(i.Status), i.SIMID, nanos(i.Updated), i.ID))
}

func (t *tx) RevokeIdentityBatch(ctx context.Context, id string, now time.Time) error {
	if err := affected(t.exec(ctx, `UPDATE identity_batches SET revoked = 1 WHERE id = ?`, id)); err != nil {
		return err
	}
	_, err := t.exec(ctx, `UPDATE identities SET status = 'revoked', updated = ? WHERE batch_id = ? AND status <> 'revoked'`, nanos(now), id)
	return err
}

func (t *tx) InsertChallenge(ctx context.Context, hash string, expires time.Time) error {
	_, err := t.exec(ctx, `INSERT INTO attest_challenges (hash, expires) VALUES (?, ?)`, hash, nanos(expires))
	return err
}

func (t *tx) ConsumeChallenge(ctx context.Context, hash string, now time.Time) error {
	// One DELETE decides: of two concurrent consumers, one deletes the row
	// and the other finds none.
	res, err := t.exec(ctx, `DELETE FROM attest_challenges WHERE hash = ? AND expires > ?`, hash, nanos(now))
	if err := affected(res, err); err != nil {
		return err
	}
	return nil
}

func (t *tx) DeleteExpiredChallenges(ctx context.Context, now time.Time) (int64, error) {
	res, err := t.exec(ctx, `DELETE FROM attest_challenges WHERE expires <= ?`, nanos(now))
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}
