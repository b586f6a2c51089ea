// SPDX-License-Identifier: Apache-2.0

package store

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/wirefleet/wirefleet/fleet"
)

// RecordReader reads the data store's records.
type RecordReader interface {
	// ListRecords lists records newest first (by record time, then id).
	ListRecords(ctx context.Context, f RecordFilter) (Page[fleet.Record], error)
}

// RecordWriter writes the data store's records. These writes are not part
// of control-plane transactions: a batch of device records commits on its
// own, durably, so the backend may commit it differently (SQLite syncs the
// WAL to disk for it).
type RecordWriter interface {
	// AppendRecords stores recs (ids are assigned) in one transaction and
	// returns once it is committed to stable storage.
	AppendRecords(ctx context.Context, recs []fleet.Record) error
	// DeleteRecordsBefore deletes at most max records of group whose time
	// is before t, and returns how many it deleted.
	DeleteRecordsBefore(ctx context.Context, groupID string, t time.Time, max int) (int64, error)
}

// RecordFilter selects records: one SIM's or one group's (exactly one of
// SIMID and GroupID is set), within [From, To) when set.
type RecordFilter struct {
	PageRequest
	SIMID    string
	GroupID  string
	From, To time.Time
	Category string
}

// RecordCursor is the cursor after r: "<time ns>.<id>", its position in
// the (time, id) order the next page continues below.
func RecordCursor(r fleet.Record) string {
	return strconv.FormatInt(r.Time.UnixNano(), 10) + "." + strconv.FormatInt(r.ID, 10)
}

// ParseRecordCursor parses a cursor RecordCursor made.
func ParseRecordCursor(c string) (t, id int64, err error) {
	ts, ids, ok := strings.Cut(c, ".")
	if ok {
		if t, err = strconv.ParseInt(ts, 10, 64); err == nil {
			id, err = strconv.ParseInt(ids, 10, 64)
		}
	}
	if !ok || err != nil {
		return 0, 0, fmt.Errorf("bad record cursor %q", c)
	}
	return t, id, nil
}
