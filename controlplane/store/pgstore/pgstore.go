// SPDX-License-Identifier: Apache-2.0

// Package pgstore opens the fleet store in PostgreSQL (through pgx), for
// several wirefleetd processes sharing one database. Changes are published
// with NOTIFY inside the writing transaction and received with LISTEN, so
// every process — the writer included — hears every committed change.
package pgstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" database/sql driver

	"github.com/wirefleet/wirefleet/controlplane/store/sqlstore"
	"github.com/wirefleet/wirefleet/fleet"
)

// Channel is the NOTIFY channel of fleet changes.
const Channel = "wirefleet_changes"

// migrationLock serialises wirefleetd processes migrating one database.
const migrationLock = `SELECT pg_advisory_xact_lock(8317645021)`

var migrations = sqlstore.Migrations(sqlstore.PostgresTypes)

// Store is the PostgreSQL fleet store.
type Store struct {
	*sqlstore.Store
	cancel context.CancelFunc
	done   chan struct{}
}

// Open connects to dsn, migrates the schema and starts listening for
// changes.
func Open(ctx context.Context, dsn string, log *slog.Logger) (*Store, error) {
	if log == nil {
		log = slog.Default()
	}
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(16)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("postgres: %w", err)
	}
	if err := sqlstore.Migrate(ctx, db, migrations, migrationLock, true); err != nil {
		db.Close()
		return nil, fmt.Errorf("postgres: %w", err)
	}
	s := &Store{done: make(chan struct{})}
	s.Store = sqlstore.New(db, db, &sqlstore.Dialect{Strpos: "strpos", Bytewise: sqlstore.PostgresTypes.Bytewise, LockSQL: `SELECT pg_advisory_xact_lock(hashtext(?))`, LockSharedSQL: `SELECT pg_advisory_xact_lock_shared(hashtext(?))`, NumberedPlaceholders: true, UniqueViolation: uniqueViolation, Notify: notify,
		// Data-store batches are acknowledged to devices as stored: commit
		// them synchronously even where the server's default is not.
		DurableBegin: "SET synchronous_commit = on", DurableEnd: "RESET synchronous_commit"})
	// The listener must be up before Open returns, or changes committed
	// right after could be missed.
	conn, err := listen(ctx, dsn)
	if err != nil {
		db.Close()
		return nil, err
	}
	lctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	go s.receive(lctx, conn, dsn, log)
	return s, nil
}

// Close stops listening and closes the database.
func (s *Store) Close() error {
	s.cancel()
	<-s.done
	return s.Store.Close()
}

func uniqueViolation(err error) (string, bool) {
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "23505" {
		return pe.ConstraintName + " " + pe.TableName, true
	}
	return "", false
}

func notify(ctx context.Context, tx *sql.Tx, changes []fleet.Change) error {
	for _, c := range changes {
		b, err := json.Marshal(c)
		if err != nil {
			return err
		}
		// Delivered at commit, and not at all on rollback.
		if _, err := tx.ExecContext(ctx, `SELECT pg_notify($1, $2)`, Channel, string(b)); err != nil {
			return err
		}
	}
	return nil
}

func listen(ctx context.Context, dsn string) (*pgx.Conn, error) {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return nil, fmt.Errorf("postgres listener: %w", err)
	}
	if _, err := conn.Exec(ctx, "LISTEN "+Channel); err != nil {
		conn.Close(ctx)
		return nil, fmt.Errorf("postgres listener: %w", err)
	}
	return conn, nil
}

// receive forwards notifications to subscribers. When the connection is
// lost, notifications may have been missed: every subscription is closed so
// subscribers re-read their state, and listening resumes.
func (s *Store) receive(ctx context.Context, conn *pgx.Conn, dsn string, log *slog.Logger) {
	defer close(s.done)
	var once sync.Once
	defer once.Do(func() { conn.Close(context.Background()) })
	for {
		n, err := conn.WaitForNotification(ctx)
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			var c fleet.Change
			if err := json.Unmarshal([]byte(n.Payload), &c); err != nil {
				log.Warn("bad change notification", "err", err)
				continue
			}
			s.Publish(c)
			continue
		}
		log.Warn("change listener lost its connection; subscribers must resynchronise", "err", err)
		conn.Close(context.Background())
		s.CloseAll()
		for backoff := 100 * time.Millisecond; ; backoff = min(2*backoff, 5*time.Second) {
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			if conn, err = listen(ctx, dsn); err == nil {
				break
			}
		}
		// Whoever subscribed while we were deaf may have missed changes
		// too: make them resynchronise as well.
		s.CloseAll()
		log.Info("change listener reconnected")
	}
}
