// SPDX-License-Identifier: Apache-2.0

package controlplane

import (
	"context"
	"errors"
	"strings"
	"sync"
	"time"

	"github.com/wirefleet/wirefleet/controlplane/store"
	"github.com/wirefleet/wirefleet/fleet"
)

// ConsoleSessionPrefix starts every console session secret (the cookie).
const ConsoleSessionPrefix = "wfs_"

// ConsoleSessionTTL is how long a console sign-in lasts, whatever is done
// with it; signing out ends it sooner, and so does deleting its token.
const ConsoleSessionTTL = 12 * time.Hour

// SignIn exchanges an operator token for a console session: the session's
// secret (for the cookie, returned once; only its hash is stored), the
// actor it acts as, and when it ends. A failed sign-in answers
// unauthorized and is written to the audit trail with the source. previous
// is the browser's current session secret, if any: it ends with the new
// sign-in, so signing in again leaves no old session alive.
func (s *Service) SignIn(ctx context.Context, tokenSecret, source, previous string) (secret string, a Actor, expires time.Time, err error) {
	a, err = s.Authenticate(ctx, tokenSecret)
	if err != nil {
		var fe *fleet.Error
		if errors.As(err, &fe) && fe.Code == fleet.CodeUnauthorized {
			// Anyone can fail: the writes (and log lines) are bounded for
			// all sources together, and the ones left out are counted in
			// the next one written.
			if ok, suppressed := s.signInAudit.allow(s.now()); ok {
				s.log.Warn("console sign-in refused", "source", source, "reason", fe.Message, "suppressed_before", suppressed)
				details := map[string]any{"source": source, "reason": fe.Message}
				if suppressed > 0 {
					details["suppressed"] = suppressed
				}
				if aerr := s.st.Update(ctx, func(tx store.Tx) error {
					return s.event(ctx, tx, Actor{Kind: "anonymous"}, "console.signin_failed", "console", "", details)
				}); aerr != nil {
					s.log.Error("auditing a failed console sign-in", "err", aerr)
				}
			}
		}
		return "", Actor{}, time.Time{}, err
	}
	now := s.now()
	secret = newSecret(ConsoleSessionPrefix)
	cs := fleet.ConsoleSession{Hash: HashSecret(secret), TokenID: a.ID, Created: now, Expires: now.Add(ConsoleSessionTTL)}
	err = s.st.Update(ctx, func(tx store.Tx) error {
		// Sweep as we go: sign-ins are rare, and the index makes it cheap.
		if _, err := tx.DeleteExpiredConsoleSessions(ctx, now); err != nil {
			return err
		}
		if strings.HasPrefix(previous, ConsoleSessionPrefix) {
			if err := tx.DeleteConsoleSession(ctx, HashSecret(previous)); err != nil && !errors.Is(err, store.ErrNotFound) {
				return err
			}
		}
		if err := tx.InsertConsoleSession(ctx, cs); err != nil {
			return err
		}
		return s.event(ctx, tx, a, "console.signin", "console", "", map[string]any{"source": source})
	})
	if err != nil {
		return "", Actor{}, time.Time{}, storeErr(err, "")
	}
	return secret, a, cs.Expires, nil
}

// ConsoleActor resolves a console session secret to the actor it acts
// as. The token's role is read afresh, so a session ends with its token
// (deleted or expired) and never outlives ConsoleSessionTTL.
func (s *Service) ConsoleActor(ctx context.Context, secret string) (Actor, error) {
	const msg = "not signed in, or the session has ended"
	if !strings.HasPrefix(secret, ConsoleSessionPrefix) {
		return Actor{}, fleet.Errorf(fleet.CodeUnauthorized, "", msg)
	}
	cs, err := s.st.ConsoleSession(ctx, HashSecret(secret))
	if errors.Is(err, store.ErrNotFound) {
		return Actor{}, fleet.Errorf(fleet.CodeUnauthorized, "", msg)
	}
	if err != nil {
		return Actor{}, err
	}
	now := s.now()
	if !now.Before(cs.Expires) {
		return Actor{}, fleet.Errorf(fleet.CodeUnauthorized, "", msg)
	}
	t, err := s.st.Token(ctx, cs.TokenID)
	if errors.Is(err, store.ErrNotFound) {
		return Actor{}, fleet.Errorf(fleet.CodeUnauthorized, "", msg)
	}
	if err != nil {
		return Actor{}, err
	}
	if !t.Expires.IsZero() && !now.Before(t.Expires) {
		return Actor{}, fleet.Errorf(fleet.CodeUnauthorized, "", msg)
	}
	return Actor{Kind: "token", ID: t.ID, Role: t.Role}, nil
}

// SignOut ends a console session; ending one already gone is not an
// error (a second click, or a session that expired meanwhile).
func (s *Service) SignOut(ctx context.Context, a Actor, secret string) error {
	err := s.st.Update(ctx, func(tx store.Tx) error {
		if err := tx.DeleteConsoleSession(ctx, HashSecret(secret)); err != nil {
			return err
		}
		return s.event(ctx, tx, a, "console.signout", "console", "", nil)
	})
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	return storeErr(err, "")
}

// Failed sign-ins audited: a burst of signInAuditBurst, then one each
// signInAuditEvery, for every source together.
const (
	signInAuditBurst = 20
	signInAuditEvery = time.Second
)

// signInAudit is a token bucket over all failed sign-ins, counting the
// ones it leaves out.
type signInAudit struct {
	mu         sync.Mutex
	tokens     float64
	last       time.Time
	suppressed int
}

// allow takes a token at now; when there is one it also returns how many
// failures went unwritten since the last one written.
func (b *signInAudit) allow(now time.Time) (bool, int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.last.IsZero() {
		b.tokens = signInAuditBurst
	} else {
		b.tokens = min(signInAuditBurst, b.tokens+float64(now.Sub(b.last))/float64(signInAuditEvery))
	}
	b.last = now
	if b.tokens < 1 {
		b.suppressed++
		return false, 0
	}
	b.tokens--
	n := b.suppressed
	b.suppressed = 0
	return true, n
}
