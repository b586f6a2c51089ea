// SPDX-License-Identifier: Apache-2.0

// Package controlplane is the fleet's service layer: every operation on
// SIMs, groups, auth keys, tokens and events, with validation, role checks,
// allocation, the audit trail and change notifications, each in one store
// transaction. The REST API (package api), the SORACOM Arc adapter (arcapi)
// and the gateway all go through it.
package controlplane

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"

	"log/slog"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/wirefleet/wirefleet/controlplane/store"
	"github.com/wirefleet/wirefleet/fleet"
	"github.com/wirefleet/wirefleet/internal/clock"
	"github.com/wirefleet/wirefleet/keyproof"
	"github.com/wirefleet/wirefleet/wgkey"
)

// Default address plan.
var (
	DefaultPool          = netip.MustParsePrefix("10.128.0.0/9")
	DefaultPlatformRange = netip.MustParsePrefix("100.127.0.0/16")
	// DefaultLANPool is where mapped prefixes of routes behind SIMs come
	// from: beside the overlay pool, in neither it nor the platform range.
	DefaultLANPool = netip.MustParsePrefix("10.64.0.0/10")
)

// Config configures a Service.
type Config struct {
	Pool          netip.Prefix // SIM overlay addresses; DefaultPool if unset
	PlatformRange netip.Prefix // always in a device's AllowedIPs; DefaultPlatformRange if unset
	// LANPool is where the mapped prefixes of routes behind SIMs are
	// allocated from (DefaultLANPool if unset).
	LANPool netip.Prefix
	// ULA is the fleet's IPv6 prefix, for a new installation; zero: drawn
	// at random (see Service.Overlay6).
	ULA fleet.Overlay6
	// Endpoint is the gateway's host:port devices connect to.
	Endpoint string
	// GatewayPublicKey returns the gateway's current public key; the
	// gateway sets it, so it is read at each use.
	GatewayPublicKey func() wgkey.Public
	Logger           *slog.Logger
	// Clock tells the time of records and expiries; default clock.Real.
	Clock  clock.Clock
	Remote RemotePolicy // remote access (port mappings); zero: off
	// Secrets seals group settings' secrets (forwarder credentials) before
	// they are stored; without it, settings holding secrets are refused.
	Secrets fleet.SecretSealer
	// KeyProofSecret keys the key-proof challenges (package keyproof): at
	// least 32 bytes, outside the database, the same on every node of one
	// fleet (wirefleetd derives it from the settings key). When empty, New
	// draws one for this process: challenges then work only on the
	// process that issued them.
	KeyProofSecret []byte
}

// Service is the fleet service.
type Service struct {
	st  store.Store
	cfg Config
	log *slog.Logger

	attestObserver func(outcome string)       // ObserveAttest
	cardObserver   func(step, outcome string) // ObserveCard
	proofs         *keyproof.Issuer
	captureURLKey  []byte      // signs capture download URLs (captures.go)
	signInAudit    signInAudit // bounds the audit writes of failed console sign-ins
	ula            struct {
		mu sync.Mutex
		v  fleet.Overlay6
	}
}

// New returns a Service over st. It panics when cfg.KeyProofSecret is
// set but shorter than 32 bytes.
func New(st store.Store, cfg Config) *Service {
	if !cfg.Pool.IsValid() {
		cfg.Pool = DefaultPool
	}
	if !cfg.PlatformRange.IsValid() {
		cfg.PlatformRange = DefaultPlatformRange
	}
	if !cfg.LANPool.IsValid() {
		cfg.LANPool = DefaultLANPool
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.Real{}
	}
	if cfg.GatewayPublicKey == nil {
		cfg.GatewayPublicKey = func() wgkey.Public { return wgkey.Public{} }
	}
	secret := cfg.KeyProofSecret
	if len(secret) == 0 {
		secret = make([]byte, 32)
		if _, err := rand.Read(secret); err != nil {
			panic(err)
		}
	}
	proofs, err := keyproof.NewIssuer(secret)
	if err != nil {
		panic("controlplane: " + err.Error())
	}
	urlKey := hmac.New(sha256.New, secret)
	urlKey.Write([]byte("wirefleet capture download URLs"))
	return &Service{st: st, cfg: cfg, log: cfg.Logger, proofs: proofs, captureURLKey: urlKey.Sum(nil)}
}

// View returns the store's reads and change feed, for the platform's own
// readers (the gateway's key lookups and caches, the audit). It has no
// writes: those go through the service's methods.
func (s *Service) View() store.View { return readOnly{s.st} }

// readOnly hides the store's writes: a type assertion on a View cannot
// find Update again.
type readOnly struct{ store.View }

// Config returns the effective configuration.
func (s *Service) Config() Config { return s.cfg }

// Ping reports whether the fleet database answers (store.ErrUnavailable
// if not): for readiness checks.
func (s *Service) Ping(ctx context.Context) error { return s.st.Ping(ctx) }

func (s *Service) now() time.Time { return s.cfg.Clock.Now().UTC().Truncate(time.Microsecond) }

// Actor is who performs an operation.
type Actor struct {
	Kind string     // "token", "authkey", "system"
	ID   string     // token or auth key id
	Role fleet.Role // for tokens
}

// System is the actor of operations the platform does by itself.
var System = Actor{Kind: "system", Role: fleet.RoleAdmin}

// String is how the actor appears in events: "token:<id>", "authkey:<id>", "system".
func (a Actor) String() string {
	if a.ID == "" {
		return a.Kind
	}
	return a.Kind + ":" + a.ID
}

// permission levels, ordered.
var rank = map[fleet.Role]int{fleet.RoleViewer: 1, fleet.RoleOperator: 2, fleet.RoleAdmin: 3}

// Require fails with a forbidden error unless a has at least role r.
func Require(a Actor, r fleet.Role) error { return require(a, r) }

func require(a Actor, r fleet.Role) error {
	if rank[a.Role] >= rank[r] {
		return nil
	}
	return fleet.Errorf(fleet.CodeForbidden, "", "role %q may not do this (needs %q)", a.Role, r)
}

// ---- secrets and ids ----

// Secret prefixes make a leaked secret recognisable (and greppable by
// secret scanners) and let us reject the wrong kind early.
const (
	TokenPrefix   = "wft_"
	AuthKeyPrefix = "wfak_"
)

func newSecret(prefix string) string {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	return prefix + base64.RawURLEncoding.EncodeToString(b[:])
}

// HashSecret is how secrets are stored: they are 256-bit random, so a
// plain SHA-256 cannot be brute-forced and allows an indexed lookup.
func HashSecret(secret string) string {
	h := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(h[:])
}

// newID returns prefix_ + 48-bit milliseconds + 32 random bits, in hex:
// ids sort by creation, which makes id-cursor pagination chronological.
func newID(prefix string, now time.Time) string {
	var b [10]byte
	binary.BigEndian.PutUint64(b[:8], uint64(now.UnixMilli())<<16)
	if _, err := rand.Read(b[6:]); err != nil {
		panic(err)
	}
	return prefix + "_" + hex.EncodeToString(b[:])
}

// ---- errors ----

// storeErr turns store errors into API errors naming field.
func storeErr(err error, field string) error {
	var ce *store.ConflictError
	var fe *fleet.Error
	switch {
	case err == nil:
		return nil
	case errors.As(err, &fe):
		return err
	case errors.Is(err, store.ErrNotFound):
		return fleet.Errorf(fleet.CodeNotFound, field, "not found")
	case errors.As(err, &ce):
		return fleet.Errorf(fleet.CodeConflict, ce.Field, "already in use")
	case errors.Is(err, store.ErrExhausted):
		return fleet.Errorf(fleet.CodeExhausted, field, "exhausted")
	}
	return err
}

func (s *Service) event(ctx context.Context, tx store.Tx, a Actor, action, typ, id string, details map[string]any) error {
	return tx.AppendEvent(ctx, fleet.Event{Time: s.now(), Actor: a.String(), Action: action, ObjectType: typ, ObjectID: id, Details: details})
}

// ---- authentication ----

// Authenticate resolves a bearer token to its actor.
func (s *Service) Authenticate(ctx context.Context, secret string) (Actor, error) {
	if !strings.HasPrefix(secret, TokenPrefix) {
		return Actor{}, fleet.Errorf(fleet.CodeUnauthorized, "", "missing or malformed token")
	}
	t, err := s.st.TokenByHash(ctx, HashSecret(secret))
	if errors.Is(err, store.ErrNotFound) {
		return Actor{}, fleet.Errorf(fleet.CodeUnauthorized, "", "unknown token")
	}
	if err != nil {
		return Actor{}, err
	}
	if !t.Expires.IsZero() && !s.now().Before(t.Expires) {
		return Actor{}, fleet.Errorf(fleet.CodeUnauthorized, "", "token expired")
	}
	return Actor{Kind: "token", ID: t.ID, Role: t.Role}, nil
}

// ---- tokens ----

// MaxTokenTTL is the longest lifetime an expiring token may be given.
const MaxTokenTTL = 10 * 365 * 24 * time.Hour

// CreateToken makes an operator token that never expires; the secret is
// returned once.
func (s *Service) CreateToken(ctx context.Context, a Actor, role fleet.Role, description string) (fleet.Token, string, error) {
	return s.CreateExpiringToken(ctx, a, role, description, 0)
}

// CreateExpiringToken makes an operator token that stops working after
// ttl (0: never); the secret is returned once.
func (s *Service) CreateExpiringToken(ctx context.Context, a Actor, role fleet.Role, description string, ttl time.Duration) (fleet.Token, string, error) {
	if ttl < 0 || ttl > MaxTokenTTL {
		return fleet.Token{}, "", fleet.Errorf(fleet.CodeInvalid, "ttlSeconds", "between 1 and %d seconds, or 0 for never", int64(MaxTokenTTL/time.Second))
	}
	if err := require(a, fleet.RoleAdmin); err != nil {
		return fleet.Token{}, "", err
	}
	if !role.Valid() {
		return fleet.Token{}, "", fleet.Errorf(fleet.CodeInvalid, "role", "must be admin, operator or viewer")
	}
	if err := fleet.ValidateLabel("description", description, 256); err != nil {
		return fleet.Token{}, "", err
	}
	secret := newSecret(TokenPrefix)
	now := s.now()
	t := fleet.Token{ID: newID("tok", now), Role: role, Description: description, Hash: HashSecret(secret), Created: now}
	if ttl > 0 {
		t.Expires = now.Add(ttl)
	}
	err := s.st.Update(ctx, func(tx store.Tx) error {
		if err := tx.InsertToken(ctx, t); err != nil {
			return err
		}
		return s.event(ctx, tx, a, "token.create", "token", t.ID, map[string]any{"role": string(role)})
	})
	if err != nil {
		return fleet.Token{}, "", storeErr(err, "")
	}
	s.log.Info("token created", "token", t.ID, "role", role, "actor", a.String())
	return t, secret, nil
}

// EnsureAdminToken creates an admin token if no token exists yet, for a
// platform's first start. created is false (and secret "") otherwise.
func (s *Service) EnsureAdminToken(ctx context.Context) (secret string, created bool, err error) {
	secret = newSecret(TokenPrefix)
	now := s.now()
	t := fleet.Token{ID: newID("tok", now), Role: fleet.RoleAdmin, Description: "initial admin token", Hash: HashSecret(secret), Created: now}
	err = s.st.Update(ctx, func(tx store.Tx) error {
		// Two wirefleetd starting at once on one database: one creates it.
		if err := tx.Lock(ctx, "tokens"); err != nil {
			return err
		}
		p, err := tx.ListTokens(ctx, store.PageRequest{Limit: 1})
		if err != nil {
			return err
		}
		if len(p.Items) > 0 {
			return nil
		}
		created = true
		if err := tx.InsertToken(ctx, t); err != nil {
			return err
		}
		return s.event(ctx, tx, System, "token.create", "token", t.ID, map[string]any{"role": "admin", "initial": true})
	})
	if err != nil || !created {
		return "", false, err
	}
	s.log.Info("initial admin token created", "token", t.ID)
	return secret, true, nil
}

// ListTokens lists tokens (admin only: token ids and roles are a map of
// who can do what).
func (s *Service) ListTokens(ctx context.Context, a Actor, p store.PageRequest) (store.Page[fleet.Token], error) {
	if err := require(a, fleet.RoleAdmin); err != nil {
		return store.Page[fleet.Token]{}, err
	}
	return s.st.ListTokens(ctx, p)
}

// DeleteToken revokes a token. The last admin token cannot be deleted:
// that would lock every operator out of token management for good.
func (s *Service) DeleteToken(ctx context.Context, a Actor, id string) error {
	if err := require(a, fleet.RoleAdmin); err != nil {
		return err
	}
	err := s.st.Update(ctx, func(tx store.Tx) error {
		// Two admins deleting each other's token at once must not both pass
		// the "another admin remains" check.
		if err := tx.Lock(ctx, "tokens"); err != nil {
			return err
		}
		t, err := tx.Token(ctx, id)
		if err != nil {
			return storeErr(err, "id")
		}
		if t.Role == fleet.RoleAdmin {
			admins := 0
			for p := (store.PageRequest{Limit: store.MaxLimit}); ; {
				page, err := tx.ListTokens(ctx, p)
				if err != nil {
					return err
				}
				for _, t := range page.Items {
					if t.Role == fleet.RoleAdmin {
						admins++
					}
				}
				if page.Next == "" || admins > 1 {
					break
				}
				p.Cursor = page.Next
			}
			if admins <= 1 {
				return fleet.Errorf(fleet.CodeBadState, "id", "this is the last admin token; create another admin token first")
			}
		}
		if err := tx.DeleteToken(ctx, id); err != nil {
			return err
		}
		return s.event(ctx, tx, a, "token.delete", "token", id, nil)
	})
	return storeErr(err, "id")
}

// ---- events ----

// ListEvents lists the audit trail, newest first.
// A cursor that is not one of its pages' answers is invalid input, not an
// internal error.
func (s *Service) ListEvents(ctx context.Context, a Actor, f store.EventFilter) (store.Page[fleet.Event], error) {
	if err := require(a, fleet.RoleViewer); err != nil {
		return store.Page[fleet.Event]{}, err
	}
	if err := checkEventCursor(f.Cursor); err != nil {
		return store.Page[fleet.Event]{}, err
	}
	return s.st.ListEvents(ctx, f)
}

// checkEventCursor accepts "" or an event id (the store's event cursors).
func checkEventCursor(c string) error {
	if _, err := strconv.ParseInt(c, 10, 64); c != "" && err != nil {
		return fleet.Errorf(fleet.CodeInvalid, "cursor", "not a cursor this API returned")
	}
	return nil
}
