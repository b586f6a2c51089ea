// SPDX-License-Identifier: Apache-2.0

// Package store defines how the control plane persists the fleet: a Store
// interface with read methods and one transactional write entry point,
// implemented for SQLite (sqlitestore) and PostgreSQL (pgstore) over the
// shared SQL code in sqlstore. The conformance suite in storetest runs
// against every implementation.
package store

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/wirefleet/wirefleet/fleet"
	"github.com/wirefleet/wirefleet/wgkey"
)

// ErrNotFound is returned when the named object does not exist.
var ErrNotFound = errors.New("not found")

// ErrUnavailable wraps a failure to reach the database at all (it is down,
// restarting, unreachable, or closed): the caller should retry later.
// Callers answer it as 503 with Retry-After, never as "not found".
var ErrUnavailable = errors.New("store unavailable")

// ErrExhausted is returned when an address pool has no free address left.
var ErrExhausted = errors.New("address pool exhausted")

// ErrStale is returned by a compare-and-set write whose expected value
// is no longer there (another writer came first).
var ErrStale = errors.New("changed meanwhile")

// ConflictError is returned when a write would break a uniqueness rule.
type ConflictError struct {
	Field string // the fleet field whose value is taken: "imsi", "address", "publicKey", "name"
}

// Error implements error.
func (e *ConflictError) Error() string { return e.Field + " already in use" }

// Reader is what can be read, inside or outside a transaction.
type Reader interface {
	SIM(ctx context.Context, id string) (fleet.SIM, error)
	// SIMByPublicKey finds the SIM whose current or next key is key. It is
	// indexed: the gateway calls it on every handshake from an unknown peer.
	SIMByPublicKey(ctx context.Context, key wgkey.Public) (fleet.SIM, error)
	SIMByIMSI(ctx context.Context, imsi string) (fleet.SIM, error)
	SIMByAddress(ctx context.Context, addr netip.Addr) (fleet.SIM, error)
	ListSIMs(ctx context.Context, f SIMFilter) (Page[fleet.SIM], error)
	// CountSIMs counts SIMs by status (for metrics; it scans the status index).
	CountSIMs(ctx context.Context) (map[fleet.Status]int64, error)

	Group(ctx context.Context, id string) (fleet.Group, error)
	GroupByName(ctx context.Context, name string) (fleet.Group, error)
	ListGroups(ctx context.Context, p PageRequest) (Page[fleet.Group], error)

	AuthKey(ctx context.Context, id string) (fleet.AuthKey, error)
	AuthKeyByHash(ctx context.Context, hash string) (fleet.AuthKey, error)
	ListAuthKeys(ctx context.Context, p PageRequest) (Page[fleet.AuthKey], error)

	Token(ctx context.Context, id string) (fleet.Token, error)
	TokenByHash(ctx context.Context, hash string) (fleet.Token, error)
	ListTokens(ctx context.Context, p PageRequest) (Page[fleet.Token], error)

	ListEvents(ctx context.Context, f EventFilter) (Page[fleet.Event], error)

	// SIMBinding returns the id of the SIM bound to a source (for
	// network-attested bootstrap: the device's address in a trusted network).
	SIMBinding(ctx context.Context, source string) (string, error)
	// Installation returns a value fixed once for the installation
	// (InitInstallation); ErrNotFound when it was never set.
	Installation(ctx context.Context, name string) (string, error)

	IdentityReader
	PresenceReader
	MappingReader
	RouteReader
	GatePeerReader
	CaptureReader        // packet capture sessions (captures.go)
	RecordReader         // the data store's records (records.go)
	SIMCardReader        // physical SIM cards (simcards.go)
	ConsoleSessionReader // web console sign-ins (consolesessions.go)
	NodeReader           // the node registry (nodes.go)
}

// Tx is one transaction. Every write of one API call goes through a single
// Tx, so a failure leaves nothing half-written.
type Tx interface {
	Reader
	IdentityTx
	MappingWriter
	RouteWriter
	GatePeerWriter
	CaptureWriter
	SIMCardWriter
	ConsoleSessionWriter
	NodeWriter

	// NextIMSI returns a never-before-returned IMSI.
	NextIMSI(ctx context.Context) (string, error)
	// AllocateAddress returns an address of pool no SIM holds, skipping
	// the pool's first two addresses (network and gateway). Addresses of
	// terminated SIMs stay taken.
	AllocateAddress(ctx context.Context, pool netip.Prefix) (netip.Addr, error)

	InsertSIM(ctx context.Context, s fleet.SIM) error
	UpdateSIM(ctx context.Context, s fleet.SIM) error
	// SetSIMAgent records the software the device reported (SIM.Agent);
	// UpdateSIM leaves it as it is.
	SetSIMAgent(ctx context.Context, id, agent string, seen time.Time) error

	InsertGroup(ctx context.Context, g fleet.Group) error
	UpdateGroup(ctx context.Context, g fleet.Group) error
	DeleteGroup(ctx context.Context, id string) error

	InsertAuthKey(ctx context.Context, k fleet.AuthKey) error
	// UseAuthKey counts one use of the key, failing with ErrExhausted when
	// its use limit is already reached; atomic against concurrent uses.
	UseAuthKey(ctx context.Context, id string) error
	RevokeAuthKey(ctx context.Context, id string) error

	InsertToken(ctx context.Context, t fleet.Token) error
	// DeleteToken removes a token and every console session signed in
	// with it.
	DeleteToken(ctx context.Context, id string) error

	// InitInstallation sets an installation value unless it is already
	// set, and returns the value it holds: the first writer wins, on every
	// node of a shared database.
	InitInstallation(ctx context.Context, name, value string) (string, error)

	// BindSIM binds source to a SIM; a source is bound at most once.
	BindSIM(ctx context.Context, source, simID string) error

	PresenceWriter

	AppendEvent(ctx context.Context, e fleet.Event) error
	// Lock serialises this transaction with every other one taking the
	// same named lock, until commit or rollback: for check-then-write rules
	// no unique index can express ("keep one admin token").
	Lock(ctx context.Context, name string) error
	// LockShared takes the named lock in shared mode: shared holders do
	// not wait for each other, only for (and block) an exclusive Lock.
	LockShared(ctx context.Context, name string) error

	// Publish queues a change, delivered to subscribers only if the
	// transaction commits.
	Publish(c fleet.Change)
}

// View is a Store without its writes: the reads and the change feed. The
// control plane hands out a View, so that every write goes through its
// checks.
type View interface {
	Reader
	// Subscribe is Store.Subscribe.
	Subscribe() (changes <-chan fleet.Change, cancel func())
}

// Store is a fleet database.
type Store interface {
	Reader
	RecordWriter // the data store's records (records.go)
	// Update runs fn in one transaction, committing if fn returns nil.
	Update(ctx context.Context, fn func(Tx) error) error
	// Subscribe returns a channel of committed changes — including those
	// made by other processes sharing the database, where the backend can
	// tell. If the subscriber falls behind, the channel is closed: it must
	// subscribe again and re-read what it caches. cancel ends the
	// subscription.
	Subscribe() (changes <-chan fleet.Change, cancel func())
	// Ping reports whether the database answers (ErrUnavailable if not).
	Ping(ctx context.Context) error
	Close() error
}

// PageRequest asks for one page of a list.
type PageRequest struct {
	Limit  int    // 0: DefaultLimit; capped at MaxLimit
	Cursor string // Page.Next of the previous page; "" for the first
}

// Page limits.
const (
	DefaultLimit = 100
	MaxLimit     = 1000
)

// Page is one page of a list; Next is "" on the last page.
type Page[T any] struct {
	Items []T    `json:"items"`
	Next  string `json:"next,omitempty"`
}

// SIMFilter selects SIMs.
type SIMFilter struct {
	PageRequest
	Status  fleet.Status
	GroupID string
	// Tags selects SIMs having all these tags with these values.
	Tags map[string]string
	// NamePrefix, when set, selects SIMs whose name starts with it (byte
	// for byte, so case-sensitive), listed by name and then id; the page's
	// cursor is then a SIMNameCursor.
	NamePrefix string
}

// SIMNameCursor is the cursor after s in a list by name:
// "<base64url name>.<id>".
func SIMNameCursor(s fleet.SIM) string {
	return base64.RawURLEncoding.EncodeToString([]byte(s.Name)) + "." + s.ID
}

// ParseSIMNameCursor parses a cursor SIMNameCursor made.
func ParseSIMNameCursor(c string) (name, id string, err error) {
	n, id, ok := strings.Cut(c, ".")
	b, derr := base64.RawURLEncoding.DecodeString(n)
	if !ok || derr != nil || id == "" || !utf8.Valid(b) {
		return "", "", fmt.Errorf("bad SIM name cursor %q", c)
	}
	return string(b), id, nil
}

// PrefixEnd is the least string greater than every string starting with
// prefix, in byte order ("" when there is none): prefix with its last
// character replaced by the next one, so still valid UTF-8. A range
// name >= prefix AND name < PrefixEnd(prefix) uses an index, unlike LIKE.
func PrefixEnd(prefix string) string {
	rs := []rune(prefix)
	for i := len(rs) - 1; i >= 0; i-- {
		switch r := rs[i]; {
		case r == utf8.MaxRune:
			continue // no next character: carry to the one before
		case r == 0xd7ff:
			rs[i] = 0xe000 // over the surrogates, which UTF-8 cannot hold
		default:
			rs[i] = r + 1
		}
		return string(rs[:i+1])
	}
	return ""
}

// EventFilter selects events, newest first.
type EventFilter struct {
	PageRequest
	ObjectID string
	Actor    string
	Action   string
	Since    time.Time
}
