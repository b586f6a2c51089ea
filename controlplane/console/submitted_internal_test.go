// SPDX-License-Identifier: Apache-2.0

package console

import (
	"crypto/sha256"
	"fmt"
	"testing"
)

// TestSubmittedBounds: one session sending forms in a loop pushes out
// only its own oldest, never another session's; the forms held over all
// sessions stay within the bound.
func TestSubmittedBounds(t *testing.T) {
	var s submitted
	key := func(session string, i int) formKey {
		return formKey{session: sha256.Sum256([]byte(session)), form: sha256.Sum256([]byte(fmt.Sprint(i))), held: true}
	}
	other := key("other", 0)
	if _, first := s.take(other); !first {
		t.Fatal("a new form taken as sent before")
	}
	s.done(other, "ak-1")
	for i := range 10 * maxSubmittedPerSession {
		s.take(key("flood", i))
	}
	if id, first := s.take(other); first || id != "ak-1" {
		t.Fatalf("another session's form was pushed out by a flood: first=%v id=%q", first, id)
	}
	if n := len(s.bySession[sha256.Sum256([]byte("flood"))]); n != maxSubmittedPerSession {
		t.Fatalf("the flooding session holds %d forms, want %d", n, maxSubmittedPerSession)
	}
	if _, first := s.take(key("flood", 10*maxSubmittedPerSession-1)); first {
		t.Fatal("the flooding session's newest form was forgotten")
	}
	if _, first := s.take(key("flood", 0)); !first {
		t.Fatal("the flooding session's oldest form is still held")
	}
	for i := range 2 * maxSubmitted {
		s.take(key(fmt.Sprint("session-", i), 0))
	}
	if s.n > maxSubmitted {
		t.Fatalf("%d forms held, over the bound %d", s.n, maxSubmitted)
	}
	held := 0
	for _, forms := range s.bySession {
		held += len(forms)
	}
	if held != s.n {
		t.Fatalf("the count says %d forms, the maps hold %d", s.n, held)
	}
}

// TestValidNonce: only what newNonce makes is a nonce.
func TestValidNonce(t *testing.T) {
	for range 100 {
		if n := newNonce(); !validNonce(n) {
			t.Fatalf("newNonce made %q, refused by validNonce", n)
		}
	}
	for _, n := range []string{"", "short", "AAAAAAAAAAAAAAAAAAAAA+", "AAAAAAAAAAAAAAAAAAAAAAA", "AAAAAAAAAAAAAAAAAAAAA/", "AAAAAAAAAAAAAAAAAAAAA="} {
		if validNonce(n) {
			t.Errorf("validNonce(%q) = true", n)
		}
	}
}
