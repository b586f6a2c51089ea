// SPDX-License-Identifier: Apache-2.0

package sqlstore

import (
	"context"
	"time"

	"github.com/wirefleet/wirefleet/controlplane/store"
	"github.com/wirefleet/wirefleet/fleet"
)

// ---- physical SIM cards ----

const cardCols = `iccid, imsi, ki_sealed, opc_sealed, sqn, status, group_id, sim_id, created, updated`

func scanCard(s scanner) (fleet.SIMCard, error) {
	var (
		c                fleet.SIMCard
		sqn              int64
		status           string
		created, updated int64
	)
	if err := s.Scan(&c.ICCID, &c.IMSI, &c.KiSealed, &c.OPcSealed, &sqn, &status, &c.GroupID, &c.SIMID, &created, &updated); err != nil {
		return c, err
	}
	c.SQN, c.Status = uint64(sqn), fleet.CardStatus(status)
	c.Created, c.Updated = fromNanos(created), fromNanos(updated)
	return c, nil
}

func (r reader) SIMCard(ctx context.Context, iccid string) (fleet.SIMCard, error) {
	c, err := scanCard(r.q.QueryRowContext(ctx, r.rebind(`SELECT `+cardCols+` FROM sim_cards WHERE iccid = ?`), iccid))
	return c, r.mapErr(err)
}

func (r reader) SIMCardByIMSI(ctx context.Context, imsi string) (fleet.SIMCard, error) {
	c, err := scanCard(r.q.QueryRowContext(ctx, r.rebind(`SELECT `+cardCols+` FROM sim_cards WHERE imsi = ?`), imsi))
	return c, r.mapErr(err)
}

func (r reader) ListSIMCards(ctx context.Context, p store.PageRequest) (store.Page[fleet.SIMCard], error) {
	return list(ctx, r, `SELECT `+cardCols+` FROM sim_cards WHERE iccid > ? ORDER BY iccid LIMIT ?`, []any{p.Cursor}, limit(p), scanCard, func(c fleet.SIMCard) string { return c.ICCID })
}

func (t *tx) InsertSIMCard(ctx context.Context, c fleet.SIMCard) error {
	if _, err := t.SIMCard(ctx, c.ICCID); err == nil {
		return &store.ConflictError{Field: "iccid"}
	}
	_, err := t.exec(ctx, `INSERT INTO sim_cards (`+cardCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		c.ICCID, c.IMSI, c.KiSealed, c.OPcSealed, int64(c.SQN), string(c.Status), c.GroupID, c.SIMID, nanos(c.Created), nanos(c.Updated))
	if ce, ok := err.(*store.ConflictError); ok {
		ce.Field = "imsi"
	}
	return err
}

func (t *tx) UpdateSIMCard(ctx context.Context, c fleet.SIMCard) error {
	return affected(t.exec(ctx, `UPDATE sim_cards SET status = ?, group_id = ?, sim_id = ?, updated = ? WHERE iccid = ?`, string(c.Status), c.GroupID, c.SIMID, nanos(c.Updated), c.ICCID))
}

func (t *tx) AdvanceCardSQN(ctx context.Context, iccid string, prev, next uint64) error {
	err := affected(t.exec(ctx, `UPDATE sim_cards SET sqn = ? WHERE iccid = ? AND sqn = ?`, int64(next), iccid, int64(prev)))
	if err == store.ErrNotFound {
		if _, gerr := t.SIMCard(ctx, iccid); gerr == nil {
			return store.ErrStale
		}
	}
	return err
}

func (t *tx) DeleteSIMCard(ctx context.Context, iccid string) error {
	return affected(t.exec(ctx, `DELETE FROM sim_cards WHERE iccid = ?`, iccid))
}

func (r reader) CardKey(ctx context.Context, id string) (fleet.CardKey, error) {
	var (
		k                fleet.CardKey
		verified         int
		expires, created int64
	)
	err := r.q.QueryRowContext(ctx, r.rebind(`SELECT id, iccid, xres_hash, ck_sealed, verified, expires, created FROM card_keys WHERE id = ?`), id).
		Scan(&k.ID, &k.ICCID, &k.XRESHash, &k.CKSealed, &verified, &expires, &created)
	k.Verified, k.Expires, k.Created = verified != 0, fromNanos(expires), fromNanos(created)
	return k, r.mapErr(err)
}

func (t *tx) InsertCardKey(ctx context.Context, k fleet.CardKey) error {
	_, err := t.exec(ctx, `INSERT INTO card_keys (id, iccid, xres_hash, ck_sealed, verified, expires, created) VALUES (?, ?, ?, ?, ?, ?, ?)`,
		k.ID, k.ICCID, k.XRESHash, k.CKSealed, boolInt(k.Verified), nanos(k.Expires), nanos(k.Created))
	return err
}

func (t *tx) UpdateCardKey(ctx context.Context, k fleet.CardKey) error {
	return affected(t.exec(ctx, `UPDATE card_keys SET verified = ?, expires = ? WHERE id = ?`, boolInt(k.Verified), nanos(k.Expires), k.ID))
}

func (t *tx) DeleteCardKey(ctx context.Context, id string) error {
	return affected(t.exec(ctx, `DELETE FROM card_keys WHERE id = ?`, id))
}

func (t *tx) UseCardSignature(ctx context.Context, keyID string, ts int64, expires time.Time) error {
	_, err := t.exec(ctx, `INSERT INTO card_signatures (key_id, ts, expires) VALUES (?, ?, ?)`, keyID, ts, nanos(expires))
	if ce, ok := err.(*store.ConflictError); ok {
		ce.Field = "signature"
	}
	return err
}

func (t *tx) DeleteExpiredCardKeys(ctx context.Context, now time.Time) (int64, error) {
	var n int64
	for _, q := range []string{`DELETE FROM card_keys WHERE expires <= ?`, `DELETE FROM card_signatures WHERE expires <= ?`} {
		res, err := t.exec(ctx, q, nanos(now))
		if err != nil {
			return n, err
		}
		m, _ := res.RowsAffected()
		n += m
	}
	return n, nil
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
