// SPDX-License-Identifier: Apache-2.0

package sqlstore

import (
	"context"
	"database/sql"
	"path/filepath"
	"sync"
	"testing"

	_ "modernc.org/sqlite"
)

// The statement cache: many readers preparing one query at once, on a
// pool of one connection, share one statement and all get their answer;
// after close, queries still run, unprepared, and nothing is cached.
func TestStmtCache(t *testing.T) {
	ctx := context.Background()
	db, err := sql.Open("sqlite", filepath.Join(t.TempDir(), "c.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	if _, err := db.Exec(`CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT); INSERT INTO t VALUES (1, 'one'), (2, 'two')`); err != nil {
		t.Fatal(err)
	}
	c := newStmtCache(db)
	const q = `SELECT v FROM t WHERE k = ?`
	var wg sync.WaitGroup
	errs := make(chan error, 32)
	for i := range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var v string
			if err := c.QueryRowContext(ctx, q, 1+i%2).Scan(&v); err != nil || v != map[int]string{0: "one", 1: "two"}[i%2] {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("a concurrent read: %v", err)
	}
	if len(c.stmts) != 1 {
		t.Fatalf("%d statements for one query", len(c.stmts))
	}

	c.close()
	var v string
	if err := c.QueryRowContext(ctx, q, 2).Scan(&v); err != nil || v != "two" {
		t.Fatalf("after close: %q %v", v, err)
	}
	if len(c.stmts) != 0 {
		t.Fatal("a statement cached after close")
	}
}
