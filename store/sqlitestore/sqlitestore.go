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

	"github.com/wirefleet/wirefleet/store/sqlstore"
)

// migrations are the schema versions, oldest first; append only.
var migrations = []string{`
CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE fleet_groups (
	id TEXT PRIMARY KEY,
	name TEXT NOT NULL UNIQUE,
	settings TEXT NOT NULL,
	created INTEGER NOT NULL,
	updated INTEGER NOT NULL
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
	created INTEGER NOT NULL,
	updated INTEGER NOT NULL
);
CREATE INDEX sims_status_id ON sims (status, id);
CREATE INDEX sims_group_id ON sims (group_id, id);
-- One row per key a SIM answers to (current and next): the primary key
-- makes a key belong to at most one SIM, whichever slot it is in.
CREATE TABLE sim_keys (public_key TEXT PRIMARY KEY, sim_id TEXT NOT NULL);
CREATE INDEX sim_keys_sim ON sim_keys (sim_id);
CREATE TABLE auth_keys (
	id TEXT PRIMARY KEY,
	description TEXT NOT NULL,
	group_id TEXT NOT NULL,
	tags TEXT NOT NULL,
	hash TEXT NOT NULL UNIQUE,
	expires INTEGER NOT NULL,
	max_uses INTEGER NOT NULL,
	uses INTEGER NOT NULL,
	revoked INTEGER NOT NULL,
	created INTEGER NOT NULL
);
CREATE TABLE tokens (
	id TEXT PRIMARY KEY,
	description TEXT NOT NULL,
	role TEXT NOT NULL,
	hash TEXT NOT NULL UNIQUE,
	created INTEGER NOT NULL
);
CREATE TABLE events (
	id INTEGER PRIMARY KEY AUTOINCREMENT,
	time INTEGER NOT NULL,
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
	created INTEGER NOT NULL,
	expires INTEGER NOT NULL,
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
	created INTEGER NOT NULL
);
CREATE TABLE identities (
	id TEXT PRIMARY KEY,
	public_key TEXT NOT NULL,
	batch_id TEXT NOT NULL,
	status TEXT NOT NULL,
	sim_id TEXT NOT NULL,
	created INTEGER NOT NULL,
	updated INTEGER NOT NULL
);
CREATE INDEX identities_batch ON identities (batch_id, id);
CREATE TABLE attest_challenges (hash TEXT PRIMARY KEY, expires INTEGER NOT NULL);
CREATE INDEX attest_challenges_expires ON attest_challenges (expires);
`, `
-- The data store: device records, listed per SIM or group newest first,
-- and expired per group by time.
CREATE TABLE data_records (
	id INTEGER PRIMARY KEY AUTOINCREMENT,
	sim_id TEXT NOT NULL,
	group_id TEXT NOT NULL,
	time INTEGER NOT NULL,
	received INTEGER NOT NULL,
	category TEXT NOT NULL,
	content_type TEXT NOT NULL,
	payload BLOB NOT NULL
);
CREATE INDEX data_records_sim ON data_records (sim_id, time, id);
CREATE INDEX data_records_group ON data_records (group_id, time, id);
`}

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
	return sqlstore.New(write, read, &sqlstore.Dialect{Strpos: "instr", UniqueViolation: uniqueViolation,
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
