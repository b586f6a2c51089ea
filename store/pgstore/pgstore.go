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

	"github.com/wirefleet/wirefleet/fleet"
	"github.com/wirefleet/wirefleet/store/sqlstore"
)

// Channel is the NOTIFY channel of fleet changes.
const Channel = "wirefleet_changes"

// migrationLock serialises wirefleetd processes migrating one database.
const migrationLock = `SELECT pg_advisory_xact_lock(8317645021)`

var migrations = []string{`
CREATE TABLE counters (name TEXT PRIMARY KEY, value BIGINT NOT NULL);
CREATE TABLE fleet_groups (
	id TEXT PRIMARY KEY,
	name TEXT NOT NULL UNIQUE,
	settings TEXT NOT NULL,
	created BIGINT NOT NULL,
	updated BIGINT NOT NULL
);
CREATE TABLE sims (
	id TEXT PRIMARY KEY,
	imsi TEXT NOT NULL UNIQUE,
	name TEXT NOT NULL,
	tags TEXT NOT NULL,
	group_id TEXT NOT NULL,
	status TEXT NOT NULL,
	address TEXT NOT NULL UNIQUE,
	public_key TEXT NOT NULL,
	next_public_key TEXT NOT NULL,
	created BIGINT NOT NULL,
	updated BIGINT NOT NULL
);
CREATE INDEX sims_status_id ON sims (status, id);
CREATE INDEX sims_group_id ON sims (group_id, id);
CREATE TABLE sim_keys (public_key TEXT PRIMARY KEY, sim_id TEXT NOT NULL);
CREATE INDEX sim_keys_sim ON sim_keys (sim_id);
CREATE TABLE auth_keys (
	id TEXT PRIMARY KEY,
	description TEXT NOT NULL,
	group_id TEXT NOT NULL,
	tags TEXT NOT NULL,
	hash TEXT NOT NULL UNIQUE,
	expires BIGINT NOT NULL,
	max_uses INTEGER NOT NULL,
	uses INTEGER NOT NULL,
	revoked INTEGER NOT NULL,
	created BIGINT NOT NULL
);
CREATE TABLE tokens (
	id TEXT PRIMARY KEY,
	description TEXT NOT NULL,
	role TEXT NOT NULL,
	hash TEXT NOT NULL UNIQUE,
	created BIGINT NOT NULL
);
CREATE TABLE events (
	id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	time BIGINT NOT NULL,
	actor TEXT NOT NULL,
	action TEXT NOT NULL,
	object_type TEXT NOT NULL,
	object_id TEXT NOT NULL,
	details TEXT NOT NULL
);
CREATE INDEX events_object ON events (object_id, id);
`, `
-- Network-attested bootstrap: which SIM a trusted source address owns.
CREATE TABLE sim_bindings (source TEXT PRIMARY KEY, sim_id TEXT NOT NULL);
`, `
-- The auth key a SIM was bootstrapped with ('' when an operator or a
-- trusted network created it): Arc sessions act only on their key's SIMs.
ALTER TABLE sims ADD COLUMN auth_key_id TEXT NOT NULL DEFAULT '';
`, `
-- Key age and required rotation: when the current key became current
-- (existing SIMs: their creation), and the deadline to replace it (0: none).
ALTER TABLE sims ADD COLUMN key_set BIGINT NOT NULL DEFAULT 0;
ALTER TABLE sims ADD COLUMN rotate_by BIGINT NOT NULL DEFAULT 0;
UPDATE sims SET key_set = created;
`, `
-- Live sessions per gateway, so gateways sharing the database notice one
-- key live on two of them at once.
CREATE TABLE sim_presence (
	sim_id TEXT NOT NULL,
	gateway TEXT NOT NULL,
	endpoint TEXT NOT NULL,
	since BIGINT NOT NULL,
	PRIMARY KEY (sim_id, gateway)
);
CREATE INDEX sim_presence_gateway ON sim_presence (gateway);
`, `
-- Remote-access port mappings: the unique public port is what several
-- wirefleetd sharing the database agree on.
CREATE TABLE port_mappings (
	id TEXT PRIMARY KEY,
	sim_id TEXT NOT NULL,
	port INTEGER NOT NULL,
	host TEXT NOT NULL,
	public_port INTEGER NOT NULL UNIQUE,
	allowed_sources TEXT NOT NULL,
	tls INTEGER NOT NULL,
	max_connections INTEGER NOT NULL,
	created BIGINT NOT NULL,
	expires BIGINT NOT NULL,
	created_by TEXT NOT NULL
);
CREATE INDEX port_mappings_sim ON port_mappings (sim_id, id);
`, `
-- Attestation bootstrap: device identity keys registered by manufacturing
-- in batches (identities.id is the key's SHA-256 fingerprint), and the
-- outstanding challenges (SHA-256 of the nonce; single use, expiring).
CREATE TABLE identity_batches (
	id TEXT PRIMARY KEY,
	name TEXT NOT NULL,
	group_id TEXT NOT NULL,
	tags TEXT NOT NULL,
	revoked INTEGER NOT NULL,
	created BIGINT NOT NULL
);
CREATE TABLE identities (
	id TEXT PRIMARY KEY,
	public_key TEXT NOT NULL,
	batch_id TEXT NOT NULL,
	status TEXT NOT NULL,
	sim_id TEXT NOT NULL,
	created BIGINT NOT NULL,
	updated BIGINT NOT NULL
);
CREATE INDEX identities_batch ON identities (batch_id, id);
CREATE TABLE attest_challenges (hash TEXT PRIMARY KEY, expires BIGINT NOT NULL);
CREATE INDEX attest_challenges_expires ON attest_challenges (expires);
`, `
-- The data store: device records, listed per SIM or group newest first,
-- and expired per group by time.
CREATE TABLE data_records (
	id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	sim_id TEXT NOT NULL,
	group_id TEXT NOT NULL,
	time BIGINT NOT NULL,
	received BIGINT NOT NULL,
	category TEXT NOT NULL,
	content_type TEXT NOT NULL,
	payload BYTEA NOT NULL
);
CREATE INDEX data_records_sim ON data_records (sim_id, time, id);
CREATE INDEX data_records_group ON data_records (group_id, time, id);
`}

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
	s.Store = sqlstore.New(db, db, &sqlstore.Dialect{Strpos: "strpos", LockSQL: `SELECT pg_advisory_xact_lock(hashtext(?))`, LockSharedSQL: `SELECT pg_advisory_xact_lock_shared(hashtext(?))`, NumberedPlaceholders: true, UniqueViolation: uniqueViolation, Notify: notify,
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
