// SPDX-License-Identifier: Apache-2.0

package console

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
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
	mu sync.Mutex
	// bySession holds each session's forms, by a hash of the session's
	// CSRF token; a form by a hash of its path and nonce, so nothing a
	// client sends is kept as sent.
	bySession map[[32]byte]map[[32]byte]submission
	n         int // forms held over all sessions
}

type submission struct {
	id string // what the first sending made; "" while it is under way
	at time.Time
}

const (
	// submittedFor is how long a form's nonce is remembered.
	submittedFor = time.Hour
	// maxSubmitted bounds the forms held over all sessions, and
	// maxSubmittedPerSession those of one session: one operator sending
	// forms in a loop pushes out only their own oldest.
	maxSubmitted           = 10_000
	maxSubmittedPerSession = 64
	// nonceBytes is a nonce's size; its text is base64url without padding.
	nonceBytes = 16
)

// newNonce is a fresh form nonce.
func newNonce() string {
	b := make([]byte, nonceBytes)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// validNonce says whether n has the form newNonce gives.
func validNonce(n string) bool {
	if len(n) != base64.RawURLEncoding.EncodedLen(nonceBytes) {
		return false
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(n)
	return err == nil && len(b) == nonceBytes
}

// formKey names a form of a session; held is false for a request without
// a nonce, for which done and forget do nothing.
type formKey struct {
	session, form [32]byte
	held          bool
}

// take claims the form: ("", true) the first time, after which the caller
// creates and calls done or forget; (id, false) when it was sent before,
// id being what that sending made ("" if it is still under way).
func (s *submitted) take(k formKey) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	if s.bySession == nil {
		s.bySession = map[[32]byte]map[[32]byte]submission{}
	}
	if m, ok := s.bySession[k.session][k.form]; ok && now.Sub(m.at) < submittedFor {
		return m.id, false
	}
	if s.n >= maxSubmitted {
		s.prune(now) // first: it may drop this session's forms whole
	}
	forms := s.bySession[k.session]
	if forms == nil {
		forms = map[[32]byte]submission{}
		s.bySession[k.session] = forms
	}
	if _, ok := forms[k.form]; ok { // held but expired
		delete(forms, k.form)
		s.n--
	}
	if len(forms) >= maxSubmittedPerSession {
		s.dropOldest(forms)
	}
	s.n++
	forms[k.form] = submission{at: now}
	return "", true
}

// dropOldest drops a session's oldest form.
func (s *submitted) dropOldest(forms map[[32]byte]submission) {
	var oldest [32]byte
	var at time.Time
	for f, m := range forms {
		if at.IsZero() || m.at.Before(at) {
			oldest, at = f, m.at
		}
	}
	delete(forms, oldest)
	s.n--
}

// prune drops the expired forms and, if that is not enough, whole
// sessions' until half the bound is held (a flood of sessions each
// sending forms must not grow memory without end).
func (s *submitted) prune(now time.Time) {
	for sess, forms := range s.bySession {
		for f, m := range forms {
			if now.Sub(m.at) >= submittedFor {
				delete(forms, f)
				s.n--
			}
		}
		if len(forms) == 0 {
			delete(s.bySession, sess)
		}
	}
	for sess, forms := range s.bySession {
		if s.n <= maxSubmitted/2 {
			break
		}
		s.n -= len(forms)
		delete(s.bySession, sess)
	}
}

// done records what the form made.
func (s *submitted) done(k formKey, id string) {
	if !k.held {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if m, ok := s.bySession[k.session][k.form]; ok {
		m.id = id
		s.bySession[k.session][k.form] = m
	}
}

// forget lets the form be sent again: the create was refused.
func (s *submitted) forget(k formKey) {
	if !k.held {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	forms := s.bySession[k.session]
	if _, ok := forms[k.form]; ok {
		delete(forms, k.form)
		s.n--
		if len(forms) == 0 {
			delete(s.bySession, k.session)
		}
	}
}

// sentBefore claims the request's form (by its nonce, for this session
// and path). A form without a nonce (a script) gets no such protection;
// one with a nonce the console cannot have made is refused. first is false
// when the form was sent before, and prev is then what it made.
func (h *Handler) sentBefore(r *http.Request) (k formKey, prev string, first bool, err error) {
	n := r.PostFormValue("nonce")
	if n == "" {
		return formKey{}, "", true, nil
	}
	if !validNonce(n) {
		return formKey{}, "", false, errors.New("this form was not made by this console (its nonce); reload the page and try again")
	}
	k = formKey{
		session: sha256.Sum256([]byte(sessionOf(r).csrf)),
		form:    sha256.Sum256([]byte(r.URL.Path + " " + n)),
		held:    true,
	}
	prev, first = h.sent.take(k)
	return k, prev, first, nil
}

// sentAgain is what a form sent again is told.
func sentAgain(what, id string) string {
	if id == "" {
		return "This form is being handled already; reload the page in a moment."
	}
	return "This form was sent already: " + what + " " + id + " was made then, and its secret was shown once, in that answer. Revoke it if it was not kept."
}
