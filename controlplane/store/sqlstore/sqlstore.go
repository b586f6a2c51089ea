// SPDX-License-Identifier: Apache-2.0

// Package sqlstore implements store.Store over database/sql. The SQL is
// written once, in the subset SQLite and PostgreSQL share; a Dialect carries
// the few differences (placeholders, error codes, notification). The
// sqlitestore and pgstore packages open the databases and own the schema.
package sqlstore

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/wirefleet/wirefleet/controlplane/store"
	"github.com/wirefleet/wirefleet/fleet"
	"github.com/wirefleet/wirefleet/wgkey"
)

// Dialect describes one database's differences from the shared SQL.
type Dialect struct {
	// Numbered placeholders ($1, $2, …) instead of "?".
	NumberedPlaceholders bool
	// UniqueViolation reports whether err is a unique-constraint failure,
	// returning the constraint or message that names the columns.
	UniqueViolation func(err error) (string, bool)
	// Strpos is the name of the function giving the 1-based position of a
	// substring, 0 if absent (SQLite instr, PostgreSQL strpos), both
	// case-sensitive, unlike SQLite's LIKE.
	Strpos string
	// Bytewise is the collation ordering text byte by byte (SchemaTypes).
	Bytewise string
	// LockSQL takes a transaction-scoped lock named by its one argument;
	// empty when transactions are serialised anyway (SQLite).
	LockSQL string
	// LockSharedSQL is LockSQL's shared mode.
	LockSharedSQL string
	// Notify, when set, is called inside a transaction about to commit with
	// the changes it made; the backend then delivers them (to this process
	// too), so Store does not publish them itself.
	Notify func(ctx context.Context, tx *sql.Tx, changes []fleet.Change) error
	// DurableBegin and DurableEnd, when set, run on the writer connection
	// before and after a data-store batch, to make its commit reach stable
	// storage where the connection's default does not (records.go).
	DurableBegin, DurableEnd string
}

// Store is a store.Store over database/sql.
type Store struct {
	store.Hub
	// reader, on the read pool, serves every store.Reader method.
	reader
	write *sql.DB    // used for Update; SQLite gives it one connection
	read  *sql.DB    // used for reads outside transactions
	stmts *stmtCache // the read pool's prepared statements
	d     *Dialect
}

// New returns a Store writing through write and reading through read
// (which may be the same pool). The schema must already be migrated.
func New(write, read *sql.DB, d *Dialect) *Store {
	stmts := newStmtCache(read)
	return &Store{reader: reader{q: stmts, d: d}, write: write, read: read, stmts: stmts, d: d}
}

var _ store.Store = (*Store)(nil)

type querier interface {
	ExecContext(ctx context.Context, q string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row
}

type reader struct {
	q querier
	d *Dialect
}

func (r reader) rebind(q string) string {
	if !r.d.NumberedPlaceholders {
		return q
	}
	var b strings.Builder
	n := 0
	for _, c := range q {
		if c == '?' {
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteRune(c)
	}
	return b.String()
}

func (r reader) exec(ctx context.Context, q string, args ...any) (sql.Result, error) {
	res, err := r.q.ExecContext(ctx, r.rebind(q), args...)
	return res, r.mapErr(err)
}

func (r reader) mapErr(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, sql.ErrNoRows) {
		return store.ErrNotFound
	}
	if unavailable(err) {
		return fmt.Errorf("%w: %v", store.ErrUnavailable, err)
	}
	if msg, ok := r.d.UniqueViolation(err); ok {
		return &store.ConflictError{Field: conflictField(msg)}
	}
	return err
}

// conflictField names the fleet field behind a unique constraint, from the
// constraint name (PostgreSQL) or the message listing columns (SQLite).
func conflictField(msg string) string {
	switch {
	case strings.Contains(msg, "vni"):
		return "vni" // a Gate peer's (outer address, VNI)
	case strings.Contains(msg, "inner_address"):
		return "innerAddress"
	case strings.Contains(msg, "imsi"):
		return "imsi"
	case strings.Contains(msg, "address"):
		return "address"
	case strings.Contains(msg, "sim_bindings"):
		return "source"
	case strings.Contains(msg, "sim_keys"):
		return "publicKey"
	case strings.Contains(msg, "hash"):
		return "hash"
	case strings.Contains(msg, "name"):
		return "name"
	}
	return "id"
}

func nanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func fromNanos(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

func marshal(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // only plain data types are marshalled here
	}
	return string(b)
}

func limit(p store.PageRequest) int {
	switch {
	case p.Limit <= 0:
		return store.DefaultLimit
	case p.Limit > store.MaxLimit:
		return store.MaxLimit
	}
	return p.Limit
}

// ---- SIMs ----

const simCols = `id, imsi, name, tags, group_id, status, address, public_key, next_public_key, created, updated, auth_key_id, key_set, rotate_by, kind, agent, agent_seen`

type scanner interface{ Scan(dst ...any) error }

func scanSIM(s scanner) (fleet.SIM, error) {
	var (
		sim                 fleet.SIM
		tags, addr, pk, npk string
		status              string
		created, updated    int64
		keySet, rotateBy    int64
		kind                string
		agentSeen           int64
	)
	if err := s.Scan(&sim.ID, &sim.IMSI, &sim.Name, &tags, &sim.GroupID, &status, &addr, &pk, &npk, &created, &updated, &sim.AuthKeyID, &keySet, &rotateBy, &kind, &sim.Agent, &agentSeen); err != nil {
		return sim, err
	}
	if sim.Kind = fleet.SIMKind(kind); sim.Kind == fleet.KindSite {
		sim.IMSI = ""
	}
	sim.Status = fleet.Status(status)
	if err := json.Unmarshal([]byte(tags), &sim.Tags); err != nil {
		return sim, fmt.Errorf("sim %s: tags: %w", sim.ID, err)
	}
	var err error
	if sim.Address, err = netip.ParseAddr(addr); err != nil {
		return sim, fmt.Errorf("sim %s: address: %w", sim.ID, err)
	}
	if err := sim.PublicKey.UnmarshalText([]byte(pk)); err != nil {
		return sim, fmt.Errorf("sim %s: public key: %w", sim.ID, err)
	}
	if err := sim.NextPublicKey.UnmarshalText([]byte(npk)); err != nil {
		return sim, fmt.Errorf("sim %s: next public key: %w", sim.ID, err)
	}
	sim.Created, sim.Updated = fromNanos(created), fromNanos(updated)
	if keySet != 0 {
		sim.KeySet = fromNanos(keySet)
	}
	if rotateBy != 0 {
		sim.RotateBy = fromNanos(rotateBy)
	}
	if agentSeen != 0 {
		sim.AgentSeen = fromNanos(agentSeen)
	}
	return sim, nil
}

func (r reader) simWhere(ctx context.Context, where string, args ...any) (fleet.SIM, error) {
	s, err := scanSIM(r.q.QueryRowContext(ctx, r.rebind(`SELECT `+simCols+` FROM sims WHERE `+where), args...))
	return s, r.mapErr(err)
}

func (r reader) SIM(ctx context.Context, id string) (fleet.SIM, error) {
	return r.simWhere(ctx, `id = ?`, id)
}

func (r reader) SIMByIMSI(ctx context.Context, imsi string) (fleet.SIM, error) {
	return r.simWhere(ctx, `imsi = ? AND kind = ''`, imsi)
}

func (r reader) SIMByAddress(ctx context.Context, addr netip.Addr) (fleet.SIM, error) {
	return r.simWhere(ctx, `address = ?`, addr.String())
}

func (r reader) SIMByPublicKey(ctx context.Context, key wgkey.Public) (fleet.SIM, error) {
	if key.IsZero() {
		return fleet.SIM{}, store.ErrNotFound
	}
	return r.simWhere(ctx, `id = (SELECT sim_id FROM sim_keys WHERE public_key = ?)`, key.String())
}

func (r reader) ListSIMs(ctx context.Context, f store.SIMFilter) (store.Page[fleet.SIM], error) {
	q := `SELECT ` + simCols + ` FROM sims WHERE id > ?`
	args := []any{f.Cursor}
	order, cursor := ` ORDER BY id LIMIT ?`, func(s fleet.SIM) string { return s.ID }
	if f.NamePrefix != "" {
		// A range on the sims_name_id index, in its collation, starting at
		// the cursor: one lower bound (given two, SQLite ranges on one).
		name := `name COLLATE ` + r.d.Bytewise
		from, after, afterID := f.NamePrefix, "", ""
		if f.Cursor != "" {
			var err error
			if after, afterID, err = store.ParseSIMNameCursor(f.Cursor); err != nil {
				return store.Page[fleet.SIM]{}, err
			}
			from = max(from, after)
		}
		q, args = `SELECT `+simCols+` FROM sims WHERE `+name+` >= ?`, []any{from}
		if end := store.PrefixEnd(f.NamePrefix); end != "" {
			q += ` AND ` + name + ` < ?`
			args = append(args, end)
		}
		if f.Cursor != "" {
			q += ` AND (` + name + ` > ? OR id > ?)`
			args = append(args, after, afterID)
		}
		order, cursor = ` ORDER BY `+name+`, id LIMIT ?`, store.SIMNameCursor
	}
	if f.Status != "" {
		q += ` AND status = ?`
		args = append(args, string(f.Status))
	}
	if f.GroupID != "" {
		q += ` AND group_id = ?`
		args = append(args, f.GroupID)
	}
	for k, v := range f.Tags {
		// Tags are stored as encoding/json writes a map: "key":"value"
		// pairs with quotes inside strings escaped, so this exact pair can
		// only appear as a whole key and value.
		q += ` AND ` + r.d.Strpos + `(tags, ?) > 0`
		args = append(args, strings.TrimSuffix(strings.TrimPrefix(marshal(map[string]string{k: v}), "{"), "}"))
	}
	return list(ctx, r, q+order, args, limit(f.PageRequest), scanSIM, cursor)
}

func (r reader) CountSIMs(ctx context.Context) (map[fleet.Status]int64, error) {
	rows, err := r.q.QueryContext(ctx, `SELECT status, COUNT(*) FROM sims GROUP BY status`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	counts := map[fleet.Status]int64{}
	for rows.Next() {
		var st string
		var n int64
		if err := rows.Scan(&st, &n); err != nil {
			return nil, err
		}
		counts[fleet.Status(st)] = n
	}
	return counts, rows.Err()
}

// list runs a page query (which must end in LIMIT ?) asking one row more
// than n, to know whether there is a next page without a COUNT.
func list[T any](ctx context.Context, r reader, q string, args []any, n int, scan func(scanner) (T, error), cursor func(T) string) (store.Page[T], error) {
	page := store.Page[T]{Items: []T{}}
	rows, err := r.q.QueryContext(ctx, r.rebind(q), append(args, n+1)...)
	if err != nil {
		return page, r.mapErr(err)
	}
	defer rows.Close()
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return page, err
		}
		page.Items = append(page.Items, v)
	}
	if err := rows.Err(); err != nil {
		return page, err
	}
	if len(page.Items) > n {
		page.Items = page.Items[:n]
		page.Next = cursor(page.Items[n-1])
	}
	return page, nil
}

// ---- groups ----

const groupCols = `id, name, settings, created, updated`

func scanGroup(s scanner) (fleet.Group, error) {
	var (
		g                fleet.Group
		settings         string
		created, updated int64
	)
	if err := s.Scan(&g.ID, &g.Name, &settings, &created, &updated); err != nil {
		return g, err
	}
	if err := json.Unmarshal([]byte(settings), &g.Settings); err != nil {
		return g, fmt.Errorf("group %s: settings: %w", g.ID, err)
	}
	g.Created, g.Updated = fromNanos(created), fromNanos(updated)
	return g, nil
}

func (r reader) Group(ctx context.Context, id string) (fleet.Group, error) {
	g, err := scanGroup(r.q.QueryRowContext(ctx, r.rebind(`SELECT `+groupCols+` FROM fleet_groups WHERE id = ?`), id))
	return g, r.mapErr(err)
}

func (r reader) GroupByName(ctx context.Context, name string) (fleet.Group, error) {
	g, err := scanGroup(r.q.QueryRowContext(ctx, r.rebind(`SELECT `+groupCols+` FROM fleet_groups WHERE name = ?`), name))
	return g, r.mapErr(err)
}

func (r reader) ListGroups(ctx context.Context, p store.PageRequest) (store.Page[fleet.Group], error) {
	return list(ctx, r, `SELECT `+groupCols+` FROM fleet_groups WHERE id > ? ORDER BY id LIMIT ?`, []any{p.Cursor}, limit(p), scanGroup, func(g fleet.Group) string { return g.ID })
}

// ---- auth keys ----

const authKeyCols = `id, description, group_id, tags, hash, expires, max_uses, uses, revoked, created`

func scanAuthKey(s scanner) (fleet.AuthKey, error) {
	var (
		k                fleet.AuthKey
		tags             string
		expires, created int64
		revoked          int
	)
	if err := s.Scan(&k.ID, &k.Description, &k.GroupID, &tags, &k.Hash, &expires, &k.MaxUses, &k.Uses, &revoked, &created); err != nil {
		return k, err
	}
	if err := json.Unmarshal([]byte(tags), &k.Tags); err != nil {
		return k, fmt.Errorf("auth key %s: tags: %w", k.ID, err)
	}
	k.Revoked = revoked != 0
	k.Expires, k.Created = fromNanos(expires), fromNanos(created)
	return k, nil
}

func (r reader) AuthKey(ctx context.Context, id string) (fleet.AuthKey, error) {
	k, err := scanAuthKey(r.q.QueryRowContext(ctx, r.rebind(`SELECT `+authKeyCols+` FROM auth_keys WHERE id = ?`), id))
	return k, r.mapErr(err)
}

func (r reader) AuthKeyByHash(ctx context.Context, hash string) (fleet.AuthKey, error) {
	k, err := scanAuthKey(r.q.QueryRowContext(ctx, r.rebind(`SELECT `+authKeyCols+` FROM auth_keys WHERE hash = ?`), hash))
	return k, r.mapErr(err)
}

func (r reader) ListAuthKeys(ctx context.Context, p store.PageRequest) (store.Page[fleet.AuthKey], error) {
	return list(ctx, r, `SELECT `+authKeyCols+` FROM auth_keys WHERE id > ? ORDER BY id LIMIT ?`, []any{p.Cursor}, limit(p), scanAuthKey, func(k fleet.AuthKey) string { return k.ID })
}

// ---- tokens ----

const tokenCols = `id, description, role, hash, created, expires`

func scanToken(s scanner) (fleet.Token, error) {
	var (
		t                fleet.Token
		role             string
		created, expires int64
	)
	if err := s.Scan(&t.ID, &t.Description, &role, &t.Hash, &created, &expires); err != nil {
		return t, err
	}
	t.Role, t.Created = fleet.Role(role), fromNanos(created)
	if expires != 0 {
		t.Expires = fromNanos(expires)
	}
	return t, nil
}

func (r reader) Token(ctx context.Context, id string) (fleet.Token, error) {
	t, err := scanToken(r.q.QueryRowContext(ctx, r.rebind(`SELECT `+tokenCols+` FROM tokens WHERE id = ?`), id))
	return t, r.mapErr(err)
}

func (r reader) TokenByHash(ctx context.Context, hash string) (fleet.Token, error) {
	t, err := scanToken(r.q.QueryRowContext(ctx, r.rebind(`SELECT `+tokenCols+` FROM tokens WHERE hash = ?`), hash))
	return t, r.mapErr(err)
}

func (r reader) ListTokens(ctx context.Context, p store.PageRequest) (store.Page[fleet.Token], error) {
	return list(ctx, r, `SELECT `+tokenCols+` FROM tokens WHERE id > ? ORDER BY id LIMIT ?`, []any{p.Cursor}, limit(p), scanToken, func(t fleet.Token) string { return t.ID })
}

// ---- events ----

const eventCols = `id, time, actor, action, object_type, object_id, details`

func scanEvent(s scanner) (fleet.Event, error) {
	var (
		e       fleet.Event
		t       int64
		details string
	)
	if err := s.Scan(&e.ID, &t, &e.Actor, &e.Action, &e.ObjectType, &e.ObjectID, &details); err != nil {
		return e, err
	}
	e.Time = fromNanos(t)
	if details != "" && details != "null" {
		if err := json.Unmarshal([]byte(details), &e.Details); err != nil {
			return e, fmt.Errorf("event %d: details: %w", e.ID, err)
		}
	}
	return e, nil
}

func (r reader) ListEvents(ctx context.Context, f store.EventFilter) (store.Page[fleet.Event], error) {
	before := int64(1<<63 - 1)
	if f.Cursor != "" {
		n, err := strconv.ParseInt(f.Cursor, 10, 64)
		if err != nil {
			return store.Page[fleet.Event]{}, fmt.Errorf("bad event cursor %q", f.Cursor)
		}
		before = n
	}
	q := `SELECT ` + eventCols + ` FROM events WHERE id < ?`
	args := []any{before}
	if f.ObjectID != "" {
		q += ` AND object_id = ?`
		args = append(args, f.ObjectID)
	}
	if f.Actor != "" {
		q += ` AND actor = ?`
		args = append(args, f.Actor)
	}
	if f.Action != "" {
		q += ` AND action = ?`
		args = append(args, f.Action)
	}
	if !f.Since.IsZero() {
		q += ` AND time >= ?`
		args = append(args, f.Since.UnixNano())
	}
	return list(ctx, r, q+` ORDER BY id DESC LIMIT ?`, args, limit(f.PageRequest), scanEvent, func(e fleet.Event) string { return strconv.FormatInt(e.ID, 10) })
}

func (r reader) SIMBinding(ctx context.Context, source string) (string, error) {
	var id string
	err := r.q.QueryRowContext(ctx, r.rebind(`SELECT sim_id FROM sim_bindings WHERE source = ?`), source).Scan(&id)
	return id, r.mapErr(err)
}

func (r reader) Installation(ctx context.Context, name string) (string, error) {
	var v string
	err := r.q.QueryRowContext(ctx, r.rebind(`SELECT value FROM installation WHERE name = ?`), name).Scan(&v)
	return v, r.mapErr(err)
}

// unavailable reports whether err means the database could not be
// reached at all, rather than that a statement failed: a closed pool, a
// dropped or refused connection (PostgreSQL down, restarting, or behind a
// failed network).
func unavailable(err error) bool {
	var oe *net.OpError
	switch {
	case errors.Is(err, sql.ErrConnDone), errors.Is(err, driver.ErrBadConn), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET), errors.As(err, &oe):
		return true
	}
	msg := err.Error()
	return strings.Contains(msg, "sql: database is closed") || strings.Contains(msg, "conn closed") ||
		strings.Contains(msg, "the database system is shutting down") || strings.Contains(msg, "the database system is starting up")
}

// Ping implements store.Store: both pools answer.
func (s *Store) Ping(ctx context.Context) error {
	for _, db := range []*sql.DB{s.write, s.read} {
		if err := db.PingContext(ctx); err != nil {
			return fmt.Errorf("%w: %v", store.ErrUnavailable, err)
		}
	}
	return nil
}

// ---- transactions ----

type tx struct {
	reader
	changes []fleet.Change
}

// Update implements store.Store.
func (s *Store) Update(ctx context.Context, fn func(store.Tx) error) error {
	sqlTx, err := s.write.BeginTx(ctx, nil)
	if err != nil {
		return s.mapErr(err)
	}
	t := &tx{reader: reader{q: sqlTx, d: s.d}}
	if err := fn(t); err != nil {
		sqlTx.Rollback()
		return err
	}
	if s.d.Notify != nil && len(t.changes) > 0 {
		if err := s.d.Notify(ctx, sqlTx, t.changes); err != nil {
			sqlTx.Rollback()
			return err
		}
	}
	if err := sqlTx.Commit(); err != nil {
		return t.mapErr(err)
	}
	if s.d.Notify == nil {
		s.Publish(t.changes...)
	}
	return nil
}

// Close implements store.Store.
func (s *Store) Close() error {
	s.CloseAll()
	s.stmts.close()
	err := s.write.Close()
	if s.read != s.write {
		if err2 := s.read.Close(); err == nil {
			err = err2
		}
	}
	return err
}

func (t *tx) Publish(c fleet.Change) { t.changes = append(t.changes, c) }

func (t *tx) Lock(ctx context.Context, name string) error {
	if t.d.LockSQL == "" {
		return nil
	}
	_, err := t.exec(ctx, t.d.LockSQL, name)
	return err
}

func (t *tx) LockShared(ctx context.Context, name string) error {
	if t.d.LockSharedSQL == "" {
		return nil
	}
	_, err := t.exec(ctx, t.d.LockSharedSQL, name)
	return err
}

// next advances a named counter and returns its new value. The UPDATE takes
// the row lock (PostgreSQL) or runs under the single writer (SQLite), so two
// transactions never get the same value.
func (t *tx) next(ctx context.Context, name string, seed int64) (int64, error) {
	if _, err := t.exec(ctx, `INSERT INTO counters (name, value) VALUES (?, ?) ON CONFLICT (name) DO NOTHING`, name, seed); err != nil {
		return 0, err
	}
	var v int64
	err := t.q.QueryRowContext(ctx, t.rebind(`UPDATE counters SET value = value + 1 WHERE name = ? RETURNING value`), name).Scan(&v)
	return v, t.mapErr(err)
}

func (t *tx) NextIMSI(ctx context.Context) (string, error) {
	n, err := t.next(ctx, "imsi", 0)
	if err != nil {
		return "", err
	}
	if n >= 1e10 {
		return "", store.ErrExhausted
	}
	return fleet.FormatIMSI(n), nil
}

func (t *tx) AllocateAddress(ctx context.Context, pool netip.Prefix) (netip.Addr, error) {
	pool = pool.Masked()
	if !pool.Addr().Is4() {
		return netip.Addr{}, fmt.Errorf("pool %s: only IPv4 pools are supported", pool)
	}
	size := uint64(1) << (32 - pool.Bits())
	b4 := pool.Addr().As4()
	base := binary.BigEndian.Uint32(b4[:])
	for {
		// Offsets 0 and 1 are the network and the gateway: the counter
		// starts at 1 so the first allocation is offset 2.
		n, err := t.next(ctx, "address:"+pool.String(), 1)
		if err != nil {
			return netip.Addr{}, err
		}
		if uint64(n) >= size {
			return netip.Addr{}, store.ErrExhausted
		}
		var a [4]byte
		binary.BigEndian.PutUint32(a[:], base+uint32(n))
		addr := netip.AddrFrom4(a)
		// A pinned SIM or a Gate peer given its address may already hold
		// it: skip, never share.
		if _, err := t.SIMByAddress(ctx, addr); errors.Is(err, store.ErrNotFound) {
			if _, err := t.GatePeerByInner(ctx, addr); errors.Is(err, store.ErrNotFound) {
				return addr, nil
			} else if err != nil {
				return netip.Addr{}, err
			}
		} else if err != nil {
			return netip.Addr{}, err
		}
	}
}

func (t *tx) putKeys(ctx context.Context, s fleet.SIM) error {
	if _, err := t.exec(ctx, `DELETE FROM sim_keys WHERE sim_id = ?`, s.ID); err != nil {
		return err
	}
	for _, k := range []wgkey.Public{s.PublicKey, s.NextPublicKey} {
		if k.IsZero() {
			continue
		}
		if _, err := t.exec(ctx, `INSERT INTO sim_keys (public_key, sim_id) VALUES (?, ?)`, k.String(), s.ID); err != nil {
			return err
		}
	}
	return nil
}

func simArgs(s fleet.SIM) []any {
	tags := s.Tags
	if tags == nil {
		tags = map[string]string{}
	}
	imsi := s.IMSI
	if s.Kind == fleet.KindSite {
		imsi = "site:" + s.ID // unique, and no IMSI lookup finds it
	}
	return []any{imsi, s.Name, marshal(tags), s.GroupID, string(s.Status), s.Address.String(), s.PublicKey.String(), s.NextPublicKey.String(), nanos(s.Created), nanos(s.Updated), s.AuthKeyID, s.ID}
}

// simUpdateArgs leaves out auth_key_id: it is fixed at creation. The
// statement keeps key_set unless the key changes, and then clears
// rotate_by: the store, not every caller, keeps the key's age.
func simUpdateArgs(s fleet.SIM) []any {
	a := simArgs(s)
	pk := s.PublicKey.String()
	return append(a[:len(a)-2:len(a)-2], pk, nanos(s.Updated), pk, optNanos(s.RotateBy), s.ID)
}

// optNanos is nanos with the zero time as 0.
func optNanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return nanos(t)
}

func (t *tx) InsertSIM(ctx context.Context, s fleet.SIM) error {
	keySet := s.KeySet
	if keySet.IsZero() {
		keySet = s.Created
	}
	if _, err := t.exec(ctx, `INSERT INTO sims (imsi, name, tags, group_id, status, address, public_key, next_public_key, created, updated, auth_key_id, id, key_set, rotate_by, kind) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, append(simArgs(s), nanos(keySet), optNanos(s.RotateBy), string(s.Kind))...); err != nil {
		return err
	}
	return t.putKeys(ctx, s)
}

func (t *tx) UpdateSIM(ctx context.Context, s fleet.SIM) error {
	res, err := t.exec(ctx, `UPDATE sims SET imsi = ?, name = ?, tags = ?, group_id = ?, status = ?, address = ?, public_key = ?, next_public_key = ?, created = ?, updated = ?, key_set = CASE WHEN public_key = ? THEN key_set ELSE CAST(? AS BIGINT) END, rotate_by = CASE WHEN public_key = ? THEN CAST(? AS BIGINT) ELSE 0 END WHERE id = ?`, simUpdateArgs(s)...)
	if err := affected(res, err); err != nil {
		return err
	}
	return t.putKeys(ctx, s)
}

// SetSIMAgent is a statement of its own: UpdateSIM, whose callers read
// the SIM before, never writes the agent back over a newer report.
func (t *tx) SetSIMAgent(ctx context.Context, id, agent string, seen time.Time) error {
	res, err := t.exec(ctx, `UPDATE sims SET agent = ?, agent_seen = ? WHERE id = ?`, agent, nanos(seen), id)
	return affected(res, err)
}

func affected(res sql.Result, err error) error {
	if err != nil {
		return err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 {
		return store.ErrNotFound
	}
	return nil
}

func (t *tx) InsertGroup(ctx context.Context, g fleet.Group) error {
	_, err := t.exec(ctx, `INSERT INTO fleet_groups (id, name, settings, created, updated) VALUES (?, ?, ?, ?, ?)`, g.ID, g.Name, marshal(g.Settings), nanos(g.Created), nanos(g.Updated))
	return err
}

func (t *tx) UpdateGroup(ctx context.Context, g fleet.Group) error {
	return affected(t.exec(ctx, `UPDATE fleet_groups SET name = ?, settings = ?, updated = ? WHERE id = ?`, g.Name, marshal(g.Settings), nanos(g.Updated), g.ID))
}

func (t *tx) DeleteGroup(ctx context.Context, id string) error {
	return affected(t.exec(ctx, `DELETE FROM fleet_groups WHERE id = ?`, id))
}

func (t *tx) InsertAuthKey(ctx context.Context, k fleet.AuthKey) error {
	tags := k.Tags
	if tags == nil {
		tags = map[string]string{}
	}
	revoked := 0
	if k.Revoked {
		revoked = 1
	}
	_, err := t.exec(ctx, `INSERT INTO auth_keys (id, description, group_id, tags, hash, expires, max_uses, uses, revoked, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		k.ID, k.Description, k.GroupID, marshal(tags), k.Hash, nanos(k.Expires), k.MaxUses, k.Uses, revoked, nanos(k.Created))
	return err
}

func (t *tx) UseAuthKey(ctx context.Context, id string) error {
	// The limit is checked in the UPDATE itself so that concurrent uses
	// cannot both pass a check made before.
	err := affected(t.exec(ctx, `UPDATE auth_keys SET uses = uses + 1 WHERE id = ? AND (max_uses = 0 OR uses < max_uses)`, id))
	if errors.Is(err, store.ErrNotFound) {
		if _, err2 := t.AuthKey(ctx, id); err2 == nil {
			return store.ErrExhausted
		}
	}
	return err
}

func (t *tx) RevokeAuthKey(ctx context.Context, id string) error {
	return affected(t.exec(ctx, `UPDATE auth_keys SET revoked = 1 WHERE id = ?`, id))
}

func (t *tx) InsertToken(ctx context.Context, tk fleet.Token) error {
	_, err := t.exec(ctx, `INSERT INTO tokens (id, description, role, hash, created, expires) VALUES (?, ?, ?, ?, ?, ?)`, tk.ID, tk.Description, string(tk.Role), tk.Hash, nanos(tk.Created), optNanos(tk.Expires))
	return err
}

func (t *tx) DeleteToken(ctx context.Context, id string) error {
	if err := affected(t.exec(ctx, `DELETE FROM tokens WHERE id = ?`, id)); err != nil {
		return err
	}
	_, err := t.exec(ctx, `DELETE FROM console_sessions WHERE token_id = ?`, id)
	return err
}

func (t *tx) BindSIM(ctx context.Context, source, simID string) error {
	_, err := t.exec(ctx, `INSERT INTO sim_bindings (source, sim_id) VALUES (?, ?)`, source, simID)
	return err
}

func (t *tx) InitInstallation(ctx context.Context, name, value string) (string, error) {
	if _, err := t.exec(ctx, `INSERT INTO installation (name, value) VALUES (?, ?) ON CONFLICT (name) DO NOTHING`, name, value); err != nil {
		return "", err
	}
	return t.Installation(ctx, name)
}

func (t *tx) AppendEvent(ctx context.Context, e fleet.Event) error {
	details := ""
	if len(e.Details) > 0 {
		details = marshal(e.Details)
	}
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	_, err := t.exec(ctx, `INSERT INTO events (time, actor, action, object_type, object_id, details) VALUES (?, ?, ?, ?, ?, ?)`, nanos(e.Time), e.Actor, e.Action, e.ObjectType, e.ObjectID, details)
	return err
}
