// SPDX-License-Identifier: Apache-2.0

package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// Migrate brings the schema up to date: migrations[i] is version i+1, each
// applied once in its own transaction and recorded in schema_migrations, so
// running it on every start is safe. lockSQL, if not empty, runs first in
// each transaction to serialise processes migrating one database at once.
func Migrate(ctx context.Context, db *sql.DB, migrations []string, lockSQL string, numbered bool) error {
	// Even "IF NOT EXISTS" races in PostgreSQL's catalog when two
	// processes start at once: create the table under the lock too.
	err := lockedTx(ctx, db, lockSQL, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied BIGINT NOT NULL)`)
		return err
	})
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	r := reader{d: &Dialect{NumberedPlaceholders: numbered}}
	// A database a newer wirefleetd migrated has tables and meanings this
	// one does not know: refuse rather than serve it half-understood.
	var newest sql.NullInt64
	if err := db.QueryRowContext(ctx, `SELECT MAX(version) FROM schema_migrations`).Scan(&newest); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	if newest.Valid && newest.Int64 > int64(len(migrations)) {
		return &NewerSchemaError{Database: int(newest.Int64), Known: len(migrations)}
	}
	for i, m := range migrations {
		v := i + 1
		err := lockedTx(ctx, db, lockSQL, func(tx *sql.Tx) error {
			var n int
			if err := tx.QueryRowContext(ctx, r.rebind(`SELECT COUNT(*) FROM schema_migrations WHERE version = ?`), v).Scan(&n); err != nil {
				return err
			}
			if n > 0 {
				return nil
			}
			if _, err := tx.ExecContext(ctx, m); err != nil {
				return err
			}
			_, err := tx.ExecContext(ctx, r.rebind(`INSERT INTO schema_migrations (version, applied) VALUES (?, ?)`), v, time.Now().UnixNano())
			return err
		})
		if err != nil {
			return fmt.Errorf("migration %d: %w", v, err)
		}
	}
	return nil
}

// lockedTx runs fn in a transaction that first takes lockSQL (none when
// empty), and commits when fn succeeds.
func lockedTx(ctx context.Context, db *sql.DB, lockSQL string, fn func(*sql.Tx) error) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if lockSQL != "" {
		if _, err := tx.ExecContext(ctx, lockSQL); err != nil {
			return err
		}
	}
	if err := fn(tx); err != nil {
		return err
	}
	return tx.Commit()
}

// NewerSchemaError is a database whose schema is newer than this binary's.
type NewerSchemaError struct{ Database, Known int }

func (e *NewerSchemaError) Error() string {
	return fmt.Sprintf("the database's schema is version %d, newer than this wirefleetd knows (%d): a newer wirefleetd migrated it; run that version on this node too", e.Database, e.Known)
}
