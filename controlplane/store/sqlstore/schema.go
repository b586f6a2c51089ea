// SPDX-License-Identifier: Apache-2.0

package sqlstore

import "strings"

// SchemaTypes are the column types that differ between the dialects; the
// rest of the schema is the SQL both databases speak.
type SchemaTypes struct {
	Int64  string // a 64-bit integer (times are Unix nanoseconds)
	Serial string // an auto-incrementing 64-bit primary key
	Bytes  string // a byte string
	// Bytewise is the collation that orders text byte by byte (UTF-8
	// code point order), whatever the database's locale.
	Bytewise string
}

// SQLiteTypes and PostgresTypes are the two dialects' column types.
var (
	SQLiteTypes   = SchemaTypes{Int64: "INTEGER", Serial: "INTEGER PRIMARY KEY AUTOINCREMENT", Bytes: "BLOB", Bytewise: "BINARY"}
	PostgresTypes = SchemaTypes{Int64: "BIGINT", Serial: "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY", Bytes: "BYTEA", Bytewise: `"C"`}
)

// Migrations returns the schema versions, oldest first, in the dialect of
// types. There is one list for both databases, so that they cannot drift.
func Migrations(types SchemaTypes) []string {
	r := strings.NewReplacer("{int64}", types.Int64, "{serial}", types.Serial, "{bytes}", types.Bytes, "{bytewise}", types.Bytewise)
	out := make([]string, len(schema))
	for i, m := range schema {
		out[i] = r.Replace(m)
	}
	return out
}

// schema is the list of migrations with {int64}, {serial} and {bytes} for
// the dialect's types; append only: a released migration never changes.
var schema = []string{`
CREATE TABLE counters (name TEXT PRIMARY KEY, value {int64} NOT NULL);
CREATE TABLE fleet_groups (
	id TEXT PRIMARY KEY,
	name TEXT NOT NULL UNIQUE,
	settings TEXT NOT NULL,
	created {int64} NOT NULL,
	updated {int64} NOT NULL
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
	created {int64} NOT NULL,
	updated {int64} NOT NULL
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
	expires {int64} NOT NULL,
	max_uses INTEGER NOT NULL,
	uses INTEGER NOT NULL,
	revoked INTEGER NOT NULL,
	created {int64} NOT NULL
);
CREATE TABLE tokens (
	id TEXT PRIMARY KEY,
	description TEXT NOT NULL,
	role TEXT NOT NULL,
	hash TEXT NOT NULL UNIQUE,
	created {int64} NOT NULL
);
CREATE TABLE events (
	id {serial},
	time {int64} NOT NULL,
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
ALTER TABLE sims ADD COLUMN key_set {int64} NOT NULL DEFAULT 0;
ALTER TABLE sims ADD COLUMN rotate_by {int64} NOT NULL DEFAULT 0;
UPDATE sims SET key_set = created;
`, `
-- Live sessions per gateway, so gateways sharing the database notice one
-- key live on two of them at once.
CREATE TABLE sim_presence (
	sim_id TEXT NOT NULL,
	gateway TEXT NOT NULL,
	endpoint TEXT NOT NULL,
	since {int64} NOT NULL,
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
	created {int64} NOT NULL,
	expires {int64} NOT NULL,
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
	created {int64} NOT NULL
);
CREATE TABLE identities (
	id TEXT PRIMARY KEY,
	public_key TEXT NOT NULL,
	batch_id TEXT NOT NULL,
	status TEXT NOT NULL,
	sim_id TEXT NOT NULL,
	created {int64} NOT NULL,
	updated {int64} NOT NULL
);
CREATE INDEX identities_batch ON identities (batch_id, id);
CREATE TABLE attest_challenges (hash TEXT PRIMARY KEY, expires {int64} NOT NULL);
CREATE INDEX attest_challenges_expires ON attest_challenges (expires);
`, `
-- The data store: device records, listed per SIM or group newest first,
-- and expired per group by time.
CREATE TABLE data_records (
	id {serial},
	sim_id TEXT NOT NULL,
	group_id TEXT NOT NULL,
	time {int64} NOT NULL,
	received {int64} NOT NULL,
	category TEXT NOT NULL,
	content_type TEXT NOT NULL,
	payload {bytes} NOT NULL
);
CREATE INDEX data_records_sim ON data_records (sim_id, time, id);
CREATE INDEX data_records_group ON data_records (group_id, time, id);
`, `
-- LAN routes behind SIMs (IPv4). reach_lo and reach_hi are the first and
-- last address of the prefix the fleet sends to (the mapped one, or the
-- LAN's own) as numbers, for the indexed overlap check.
CREATE TABLE sim_routes (
	sim_id TEXT NOT NULL,
	prefix TEXT NOT NULL,
	mapped TEXT NOT NULL,
	reach_lo {int64} NOT NULL,
	reach_hi {int64} NOT NULL,
	status TEXT NOT NULL,
	source TEXT NOT NULL,
	created {int64} NOT NULL,
	updated {int64} NOT NULL,
	PRIMARY KEY (sim_id, prefix)
);
CREATE INDEX sim_routes_reach ON sim_routes (reach_lo);
CREATE INDEX sim_routes_status ON sim_routes (status, sim_id, prefix);
`, `
-- VXLAN Gate peers: hosts joined to the device subnet. The inner address
-- comes from the SIM pool's allocator, so no SIM is ever given it.
CREATE TABLE gate_peers (
	id TEXT PRIMARY KEY,
	name TEXT NOT NULL,
	group_id TEXT NOT NULL,
	outer_address TEXT NOT NULL,
	inner_address TEXT NOT NULL UNIQUE,
	vni {int64} NOT NULL,
	created {int64} NOT NULL,
	UNIQUE (outer_address, vni)
);
`, `
-- A SIM's kind: '' a device, 'site' a network joined as a WireGuard peer.
-- A site has no IMSI; its imsi column holds 'site:' and its id, unique.
ALTER TABLE sims ADD COLUMN kind TEXT NOT NULL DEFAULT '';
`, `
-- Named hosts on a LAN behind a SIM (for the platform DNS), as JSON.
ALTER TABLE sim_routes ADD COLUMN hosts TEXT NOT NULL DEFAULT '{}';
`, `
-- A port mapping may reach a host on a LAN behind its SIM.
ALTER TABLE port_mappings ADD COLUMN target TEXT NOT NULL DEFAULT '';
`, `
-- Operator tokens may expire (0: never).
ALTER TABLE tokens ADD COLUMN expires {int64} NOT NULL DEFAULT 0;
`, `
-- Values fixed once per installation (the fleet's IPv6 ULA prefix).
CREATE TABLE installation (name TEXT PRIMARY KEY, value TEXT NOT NULL);
`, `
-- Packet capture sessions (fleet.Capture as JSON: read by id, few).
CREATE TABLE captures (id TEXT PRIMARY KEY, doc TEXT NOT NULL);
`, `
-- Physical SIM cards: their keys sealed with the settings key, the
-- network's SQN for each (compare-and-set: never reused).
CREATE TABLE sim_cards (
	iccid TEXT PRIMARY KEY,
	imsi TEXT NOT NULL UNIQUE,
	ki_sealed TEXT NOT NULL,
	opc_sealed TEXT NOT NULL,
	sqn {int64} NOT NULL,
	status TEXT NOT NULL,
	group_id TEXT NOT NULL,
	sim_id TEXT NOT NULL,
	created {int64} NOT NULL,
	updated {int64} NOT NULL
);
-- Keys of SIM cards' AKA exchanges (Krypton's keyId): XRES only hashed,
-- CK sealed; and the signatures accepted with them, each once.
CREATE TABLE card_keys (
	id TEXT PRIMARY KEY,
	iccid TEXT NOT NULL,
	xres_hash TEXT NOT NULL,
	ck_sealed TEXT NOT NULL,
	verified INTEGER NOT NULL,
	expires {int64} NOT NULL,
	created {int64} NOT NULL
);
CREATE INDEX card_keys_expires ON card_keys (expires);
CREATE TABLE card_signatures (
	key_id TEXT NOT NULL,
	ts {int64} NOT NULL,
	expires {int64} NOT NULL,
	PRIMARY KEY (key_id, ts)
);
CREATE INDEX card_signatures_expires ON card_signatures (expires);
`, `
-- Web console sign-ins: only the hash of the session secret (the cookie),
-- the operator token it acts as, and when it ends.
CREATE TABLE console_sessions (
	hash TEXT PRIMARY KEY,
	token_id TEXT NOT NULL,
	created {int64} NOT NULL,
	expires {int64} NOT NULL
);
CREATE INDEX console_sessions_expires ON console_sessions (expires);
CREATE INDEX console_sessions_token ON console_sessions (token_id);
`, `
-- Events by action (monitor alerts, failed sign-ins) without a scan.
CREATE INDEX events_action ON events (action, id);
`, `
-- SIMs by name prefix (the console's search), in byte order on both databases.
CREATE INDEX sims_name_id ON sims (name COLLATE {bytewise}, id);
`, `
-- The software a device last reported itself as (its metadata requests'
-- User-Agent), and since when.
ALTER TABLE sims ADD COLUMN agent TEXT NOT NULL DEFAULT '';
ALTER TABLE sims ADD COLUMN agent_seen {int64} NOT NULL DEFAULT 0;
`, `
-- The wirefleetd nodes sharing this store, each refreshing its own row.
CREATE TABLE nodes (
	name TEXT PRIMARY KEY,
	endpoint TEXT NOT NULL,
	api TEXT NOT NULL,
	version TEXT NOT NULL,
	sessions {int64} NOT NULL,
	started {int64} NOT NULL,
	seen {int64} NOT NULL,
	degraded TEXT NOT NULL
);
`, `
-- Leases of the cluster-wide jobs (retention, the configuration audit):
-- the holder runs the job; another node takes it once it lapses.
CREATE TABLE leases (
	job TEXT PRIMARY KEY,
	holder TEXT NOT NULL,
	until {int64} NOT NULL
);
`, `
-- Presences by the device's endpoint: a node receiving packets it cannot
-- place (the device's session was on a node that died) finds the SIM.
CREATE INDEX sim_presence_endpoint ON sim_presence (endpoint);
`, `
-- How the other nodes reach a node over the inter-node mesh.
ALTER TABLE nodes ADD COLUMN mesh_key TEXT NOT NULL DEFAULT '';
ALTER TABLE nodes ADD COLUMN mesh_endpoint TEXT NOT NULL DEFAULT '';
`}
