// SPDX-License-Identifier: Apache-2.0

// Package sqlitestore opens the fleet store in an SQLite file (pure Go
// driver modernc.org/sqlite, WAL journal): the default, zero-setup backend.
package sqlitestore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"strings"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/wirefleet/wirefleet/controlplane/store/sqlstore"
)

var migrations = sqlstore.Migrations(sqlstore.SQLiteTypes)

// Open opens (creating if needed) the database file at path and migrates it.
func Open(ctx context.Context, path string) (*sqlstore.Store, error) {
	q := url.Values{}
	for _, p := range []string{"journal_mode(WAL)", "busy_timeout(10000)", "synchronous(NORMAL)", "foreign_keys(1)"} {
		q.Add("_pragma", p)
	}
	// Writers take the write lock at BEGIN: a deferred transaction that
	// reads then writes can fail with SQLITE_BUSY without waiting.
	q.Set("_txlock", "immediate")
	dsn := "file:" + path + "?" + q.Encode()
	// The file holds token and auth key hashes: owner only, from its
	// creation on (SQLite would create it 0644 less the umask). SQLite
	// gives the -wal and -shm files the database file's mode.
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	f.Close()
	write, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, err
	}
	// SQLite has one writer at a time; one connection queues writers in Go
	// instead of in busy-wait loops.
	write.SetMaxOpenConns(1)
	if err := sqlstore.Migrate(ctx, write, migrations, "", false); err != nil {
		write.Close()
		return nil, fmt.Errorf("sqlite %s: %w", path, err)
	}
	// Files of an earlier version may have been created wider.
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		if err := os.Chmod(p, 0o600); err != nil && !errors.Is(err, fs.ErrNotExist) {
			write.Close()
			return nil, err
		}
	}
	read, err := sql.Open("sqlite", dsn)
	if err != nil {
		write.Close()
		return nil, err
	}
	read.SetMaxOpenConns(4)
	return sqlstore.New(write, read, &sqlstore.Dialect{Strpos: "instr", Bytewise: sqlstore.SQLiteTypes.Bytewise, UniqueViolation: uniqueViolation,
		// Control-plane commits use synchronous=NORMAL (durable across a
		// crash of the process, not of the machine); data-store batches,
		// acknowledged to devices as stored, sync the WAL (FULL).
		DurableBegin: "PRAGMA synchronous=FULL", DurableEnd: "PRAGMA synchronous=NORMAL"}), nil
}

func uniqueViolation(err error) (string, bool) {
	var e *sqlite.Error
	if errors.As(err, &e) && (e.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE || e.Code() == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY) {
		return e.Error(), true
	}
	// Some paths report the constraint only in the message.
	if err != nil && strings.Contains(err.Error(), "UNIQUE constraint failed") {
		return err.Error(), true
	}
	return "", false
}
