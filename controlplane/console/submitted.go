// SPDX-License-Identifier: Apache-2.0

package console

import (
	"crypto/rand"
	"encoding/base64"
	"net/http"
	"sync"
	"time"
)

// submitted remembers the create forms that answer with a secret shown
// once (auth keys, tokens), by a nonce each form carries, so that a
// browser sending one again (a reload of the answer, a double click)
// creates nothing more: it is told what the first sending made, and the
// secret is not shown again. Held in memory: a form sent again to another
// node of a cluster is not caught, which costs one spare key, revocable.
type submitted struct {
	mu   sync.Mutex
	made map[string]submission
}

type submission struct {
	id string // what the first sending made; "" while it is under way
	at time.Time
}

const (
	// submittedFor is how long a form's nonce is remembered.
	submittedFor = time.Hour
	// maxSubmitted bounds the nonces held.
	maxSubmitted = 10_000
)

// newNonce is a fresh form nonce.
func newNonce() string {
	b := make([]byte, 16)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// take claims the form key: ("", true) the first time, after which the
// caller creates and calls done or forget; (id, false) when it was sent
// before, id being what that sending made ("" if it is still under way).
func (s *submitted) take(key string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	if s.made == nil {
		s.made = map[string]submission{}
	}
	if len(s.made) >= maxSubmitted {
		s.prune(now)
	}
	if m, ok := s.made[key]; ok && now.Sub(m.at) < submittedFor {
		return m.id, false
	}
	s.made[key] = submission{at: now}
	return "", true
}

// prune drops the expired nonces and, if that is not enough, others
// until half the bound is held (a flood of forms from a signed-in
// operator must not grow memory without end).
func (s *submitted) prune(now time.Time) {
	for k, m := range s.made {
		if now.Sub(m.at) >= submittedFor {
			delete(s.made, k)
		}
	}
	for k := range s.made {
		if len(s.made) <= maxSubmitted/2 {
			break
		}
		delete(s.made, k)
	}
}

// done records what the form made.
func (s *submitted) done(key, id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if m, ok := s.made[key]; ok {
		m.id = id
		s.made[key] = m
	}
}

// forget lets the form be sent again: the create was refused.
func (s *submitted) forget(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.made, key)
}

// sentBefore claims the request's form (by its nonce, for this session
// and path): key is what to call done or forget with ("" when the form
// has no nonce: a script, which gets no such protection); first is false
// when the form was sent before, and prev is then what it made.
func (h *Handler) sentBefore(r *http.Request) (key, prev string, first bool) {
	n := r.PostFormValue("nonce")
	if n == "" {
		return "", "", true
	}
	key = sessionOf(r).csrf + " " + r.URL.Path + " " + n
	prev, first = h.sent.take(key)
	return key, prev, first
}

// sentAgain is what a form sent again is told.
func sentAgain(what, id string) string {
	if id == "" {
		return "This form is being handled already; reload the page in a moment."
	}
	return "This form was sent already: " + what + " " + id + " was made then, and its secret was shown once, in that answer. Revoke it if it was not kept."
}
