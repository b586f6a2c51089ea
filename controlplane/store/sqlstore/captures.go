// SPDX-License-Identifier: Apache-2.0

package sqlstore

import (
	"context"
	"encoding/json"
	"time"

	"github.com/wirefleet/wirefleet/controlplane/store"
	"github.com/wirefleet/wirefleet/fleet"
)

// ---- packet capture sessions ----

// captureDoc is a capture as stored: the record, with its duration.
type captureDoc struct {
	fleet.Capture
	DurationNS int64 `json:"durationNs"`
}

func scanCapture(s scanner) (fleet.Capture, error) {
	var doc string
	if err := s.Scan(&doc); err != nil {
		return fleet.Capture{}, err
	}
	var d captureDoc
	if err := json.Unmarshal([]byte(doc), &d); err != nil {
		return fleet.Capture{}, err
	}
	d.Capture.Duration = time.Duration(d.DurationNS)
	return d.Capture, nil
}

func (r reader) Capture(ctx context.Context, id string) (fleet.Capture, error) {
	c, err := scanCapture(r.q.QueryRowContext(ctx, r.rebind(`SELECT doc FROM captures WHERE id = ?`), id))
	return c, r.mapErr(err)
}

func (r reader) ListCaptures(ctx context.Context, p store.PageRequest) (store.Page[fleet.Capture], error) {
	q := `SELECT doc FROM captures WHERE id > ?`
	return list(ctx, r, q+` ORDER BY id LIMIT ?`, []any{p.Cursor}, limit(p), scanCapture, func(c fleet.Capture) string { return c.ID })
}

func (t *tx) PutCapture(ctx context.Context, c fleet.Capture) error {
	doc, err := json.Marshal(captureDoc{Capture: c, DurationNS: int64(c.Duration)})
	if err != nil {
		return err
	}
	if _, err := t.exec(ctx, `DELETE FROM captures WHERE id = ?`, c.ID); err != nil {
		return err
	}
	_, err = t.exec(ctx, `INSERT INTO captures (id, doc) VALUES (?, ?)`, c.ID, string(doc))
	return err
}

func (t *tx) DeleteCapture(ctx context.Context, id string) error {
	return affected(t.exec(ctx, `DELETE FROM captures WHERE id = ?`, id))
}
