// SPDX-License-Identifier: Apache-2.0

package sqlstore

import (
	"context"
	"database/sql"
	"sync"
)

// maxCachedStmts bounds the statement cache: the store's queries are
// fixed strings but for a few filters built per call, so this is never
// reached in practice; past it, queries go unprepared.
const maxCachedStmts = 512

// stmtCache is the read pool as a querier that prepares each distinct
// query once. Reads outside transactions — above all the gateway's key
// lookup at every handshake — then skip parsing and planning; database/sql
// prepares a statement again on each connection it lands on by itself.
type stmtCache struct {
	db     *sql.DB
	mu     sync.RWMutex
	stmts  map[string]*sql.Stmt
	closed bool
}

func newStmtCache(db *sql.DB) *stmtCache {
	return &stmtCache{db: db, stmts: map[string]*sql.Stmt{}}
}

// stmt returns the prepared form of q, or nil to run it unprepared (the
// cache is full, or preparing failed: the unprepared call then reports
// why).
func (c *stmtCache) stmt(ctx context.Context, q string) *sql.Stmt {
	c.mu.RLock()
	st, ok := c.stmts[q]
	n := len(c.stmts)
	c.mu.RUnlock()
	if ok || n >= maxCachedStmts {
		return st
	}
	// Prepared outside the lock, with the caller's context (database/sql
	// uses it for the preparing only): a read waiting for a connection
	// holds up no other read.
	st, err := c.db.PrepareContext(ctx, q)
	if err != nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		st.Close()
		return nil
	}
	if won, ok := c.stmts[q]; ok {
		st.Close() // another caller prepared it meanwhile
		return won
	}
	c.stmts[q] = st
	return st
}

func (c *stmtCache) ExecContext(ctx context.Context, q string, args ...any) (sql.Result, error) {
	if st := c.stmt(ctx, q); st != nil {
		return st.ExecContext(ctx, args...)
	}
	return c.db.ExecContext(ctx, q, args...)
}

func (c *stmtCache) QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	if st := c.stmt(ctx, q); st != nil {
		return st.QueryContext(ctx, args...)
	}
	return c.db.QueryContext(ctx, q, args...)
}

func (c *stmtCache) QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row {
	if st := c.stmt(ctx, q); st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	return c.db.QueryRowContext(ctx, q, args...)
}

// close closes every prepared statement.
func (c *stmtCache) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	for q, st := range c.stmts {
		st.Close()
		delete(c.stmts, q)
	}
}
