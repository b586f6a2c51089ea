// SPDX-License-Identifier: Apache-2.0

package fairshare

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"math"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/wirefleet/wirefleet/fleet"
)

type ctxKey struct{}

// ConnContext is an http.Server's ConnContext: it puts the connection's
// account in the context of every request on it, for Handler.
func ConnContext(ctx context.Context, c net.Conn) context.Context {
	if a := ConnAccount(c); a != nil {
		return context.WithValue(ctx, ctxKey{}, a)
	}
	return ctx
}

// FromContext returns the account ConnContext put in ctx, or nil.
func FromContext(ctx context.Context) *Account {
	a, _ := ctx.Value(ctxKey{}).(*Account)
	return a
}

// ErrInFlight is what a request body's Read returns when the SIM's bytes
// in flight would exceed its budget.
var ErrInFlight = errors.New("too many bytes in flight from this SIM")

// Handler takes a request token for every request and holds its body's
// bytes in the SIM's budget until next returns. Over the rate, or over
// the budget with a declared length, the request gets 429 with
// Retry-After and a JSON error with code "rate_limited"; a body of
// unknown length that runs over fails its Read with ErrInFlight. A
// request without an account (see ConnContext) passes untouched.
func Handler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a := FromContext(r.Context())
		if a == nil {
			next.ServeHTTP(w, r)
			return
		}
		if ok, wait := a.Request(); !ok {
			tooMany(w, wait, "too many requests from this SIM")
			return
		}
		switch {
		case r.ContentLength > 0:
			release, ok := a.Hold(r.ContentLength)
			if !ok {
				tooMany(w, time.Second, ErrInFlight.Error())
				return
			}
			defer release()
		case r.ContentLength < 0 && a.s.lim.InFlight >= 0:
			b := &heldBody{ReadCloser: r.Body, a: a}
			r.Body = b
			defer b.release()
		}
		next.ServeHTTP(w, r)
	})
}

// heldBody holds what it has read of a body of unknown length.
type heldBody struct {
	io.ReadCloser
	a    *Account
	held int64
	over bool
}

func (b *heldBody) Read(p []byte) (int, error) {
	if b.over {
		return 0, ErrInFlight
	}
	n, err := b.ReadCloser.Read(p)
	if n > 0 {
		if !b.a.grab(int64(n)) {
			b.over = true
			return 0, ErrInFlight
		}
		b.held += int64(n)
	}
	return n, err
}

func (b *heldBody) release() {
	if b.held > 0 {
		b.a.give(b.held)
		b.held = 0
	}
}

// tooMany writes the 429 answer.
func tooMany(w http.ResponseWriter, wait time.Duration, msg string) {
	secs := max(1, int(math.Ceil(wait.Seconds())))
	w.Header().Set("Retry-After", strconv.Itoa(secs))
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusTooManyRequests)
	json.NewEncoder(w).Encode(fleet.Errorf(fleet.CodeRateLimited, "", "%s; retry in %d s", msg, secs))
}
