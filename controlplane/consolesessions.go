// SPDX-License-Identifier: Apache-2.0

package controlplane

import (
	"context"
	"errors"
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
// actor it acts as, and when it ends. A failed sign-in is written to the
// audit trail with the source, and answers unauthorized.
func (s *Service) SignIn(ctx context.Context, tokenSecret, source string) (secret string, a Actor, expires time.Time, err error) {
	a, err = s.Authenticate(ctx, tokenSecret)
	if err != nil {
		var fe *fleet.Error
		if errors.As(err, &fe) && fe.Code == fleet.CodeUnauthorized {
			s.log.Warn("console sign-in refused", "source", source, "reason", fe.Message)
			if aerr := s.st.Update(ctx, func(tx store.Tx) error {
				return s.event(ctx, tx, Actor{Kind: "anonymous"}, "console.signin_failed", "console", "", map[string]any{"source": source, "reason": fe.Message})
			}); aerr != nil {
				s.log.Error("auditing a failed console sign-in", "err", aerr)
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
	if len(secret) < len(ConsoleSessionPrefix) || secret[:len(ConsoleSessionPrefix)] != ConsoleSessionPrefix {
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
