// SPDX-License-Identifier: Apache-2.0

package sqlstore

import (
	"context"

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
