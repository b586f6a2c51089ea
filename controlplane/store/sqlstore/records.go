// SPDX-License-Identifier: Apache-2.0

package sqlstore

import (
	"context"
	"database/sql/driver"
	"fmt"
	"strings"
	"time"

	"github.com/wirefleet/wirefleet/controlplane/store"
	"github.com/wirefleet/wirefleet/fleet"
)

const recordCols = `id, sim_id, group_id, time, received, category, content_type, payload`

// recordsPerInsert bounds the rows of one INSERT statement (8 parameters
// each, far below either database's parameter limit).
const recordsPerInsert = 100

func scanRecord(s scanner) (fleet.Record, error) {
	var (
		r        fleet.Record
		t, recvd int64
	)
	if err := s.Scan(&r.ID, &r.SIMID, &r.GroupID, &t, &recvd, &r.Category, &r.ContentType, &r.Payload); err != nil {
		return r, err
	}
	r.Time, r.Received = time.Unix(0, t).UTC(), time.Unix(0, recvd).UTC()
	if r.Payload == nil {
		r.Payload = []byte{}
	}
	return r, nil
}

func (r reader) ListRecords(ctx context.Context, f store.RecordFilter) (store.Page[fleet.Record], error) {
	var q string
	var args []any
	switch {
	case f.SIMID != "" && f.GroupID == "":
		q, args = `SELECT `+recordCols+` FROM data_records WHERE sim_id = ?`, []any{f.SIMID}
	case f.GroupID != "" && f.SIMID == "":
		q, args = `SELECT `+recordCols+` FROM data_records WHERE group_id = ?`, []any{f.GroupID}
	default:
		return store.Page[fleet.Record]{}, fmt.Errorf("records: give a SIM or a group")
	}
	if f.Cursor != "" {
		t, id, err := store.ParseRecordCursor(f.Cursor)
		if err != nil {
			return store.Page[fleet.Record]{}, err
		}
		q += ` AND (time < ? OR (time = ? AND id < ?))`
		args = append(args, t, t, id)
	}
	if !f.From.IsZero() {
		q += ` AND time >= ?`
		args = append(args, f.From.UnixNano())
	}
	if !f.To.IsZero() {
		q += ` AND time < ?`
		args = append(args, f.To.UnixNano())
	}
	if f.Category != "" {
		q += ` AND category = ?`
		args = append(args, f.Category)
	}
	return list(ctx, r, q+` ORDER BY time DESC, id DESC LIMIT ?`, args, limit(f.PageRequest), scanRecord, store.RecordCursor)
}

// AppendRecords implements store.RecordWriter: one transaction on one
// writer connection, bracketed by the dialect's durable-commit statements
// (SQLite: synchronous=FULL, so the commit syncs the WAL).
func (s *Store) AppendRecords(ctx context.Context, recs []fleet.Record) (err error) {
	if len(recs) == 0 {
		return nil
	}
	conn, err := s.write.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	if s.d.DurableBegin != "" {
		if _, err := conn.ExecContext(ctx, s.d.DurableBegin); err != nil {
			return err
		}
		defer func() {
			// The connection serves control-plane writes next: restore
			// their setting even if ctx is done; if that fails, drop the
			// connection rather than leave it changed.
			if _, rerr := conn.ExecContext(context.Background(), s.d.DurableEnd); rerr != nil {
				conn.Raw(func(any) error { return driver.ErrBadConn })
				if err == nil {
					err = rerr
				}
			}
		}()
	}
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	t := reader{q: tx, d: s.d}
	for len(recs) > 0 {
		n := min(len(recs), recordsPerInsert)
		var b strings.Builder
		b.WriteString(`INSERT INTO data_records (sim_id, group_id, time, received, category, content_type, payload) VALUES `)
		args := make([]any, 0, n*7)
		for i, rec := range recs[:n] {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(`(?, ?, ?, ?, ?, ?, ?)`)
			payload := rec.Payload
			if payload == nil {
				payload = []byte{}
			}
			args = append(args, rec.SIMID, rec.GroupID, rec.Time.UnixNano(), rec.Received.UnixNano(), rec.Category, rec.ContentType, payload)
		}
		if _, err := t.exec(ctx, b.String(), args...); err != nil {
			tx.Rollback()
			return err
		}
		recs = recs[n:]
	}
	return tx.Commit()
}

// DeleteRecordsBefore implements store.RecordWriter, in a short
// transaction of its own so retention never holds the writer long.
func (s *Store) DeleteRecordsBefore(ctx context.Context, groupID string, before time.Time, max int) (int64, error) {
	var n int64
	err := s.Update(ctx, func(stx store.Tx) error {
		t := stx.(*tx)
		res, err := t.exec(ctx, `DELETE FROM data_records WHERE id IN (SELECT id FROM data_records WHERE group_id = ? AND time < ? ORDER BY time LIMIT ?)`, groupID, before.UnixNano(), max)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	return n, err
}
