// SPDX-License-Identifier: Apache-2.0

//go:build cgo

package pkcs11store_test

import (
	"bytes"
	"crypto"
	"crypto/sha256"
	"errors"
	"io/fs"
	"testing"

	"github.com/wirefleet/wirefleet/attest"
	"github.com/wirefleet/wirefleet/keystore/pkcs11store"
	"github.com/wirefleet/wirefleet/keystore/pkcs11store/softhsmtest"
)

// Identity keys of both algorithms are made on the token, non-extractable,
// and sign attestation messages that verify in software; they survive
// reopening the token; they are not mistaken for WireGuard keys, nor
// WireGuard keys for them.
func TestIdentitySigner(t *testing.T) {
	cfg := openTokenConfig(t, "identity")
	tok, err := pkcs11store.OpenToken(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer tok.Close()
	var wg [32]byte
	wg[3] = 9
	nonce := bytes.Repeat([]byte{5}, attest.NonceSize)
	pubs := map[attest.Algorithm]attest.PublicKey{}
	for _, alg := range []attest.Algorithm{attest.Ed25519, attest.P256} {
		label := "id-" + string(alg)
		s, err := tok.GenerateSigner(label, alg)
		if err != nil {
			t.Fatalf("%s: %v", alg, err)
		}
		if s.PublicKey().Algorithm() != alg {
			t.Fatalf("%s key reads back as %s", alg, s.PublicKey().Algorithm())
		}
		if ne, err := s.NonExtractable(); err != nil || !ne {
			t.Fatalf("%s: non-extractable = %v, %v", alg, ne, err)
		}
		msg, _ := attest.Message(nonce, s.PublicKey(), wg)
		sig, err := attest.Sign(s, msg)
		if err != nil {
			t.Fatalf("%s: sign: %v", alg, err)
		}
		if !attest.Verify(s.PublicKey(), msg, sig) {
			t.Fatalf("%s: the token's signature does not verify", alg)
		}
		other, _ := attest.Message(nonce, s.PublicKey(), [32]byte{})
		if attest.Verify(s.PublicKey(), other, sig) {
			t.Fatalf("%s: signature verifies for another message", alg)
		}
		if _, err := tok.GenerateSigner(label, alg); !errors.Is(err, fs.ErrExist) {
			t.Fatalf("%s: label reused: %v", alg, err)
		}
		pubs[alg] = s.PublicKey()
	}
	// Wrong uses are refused, not silently done.
	ed, _ := tok.OpenSigner("id-ed25519")
	if _, err := ed.Sign(nil, make([]byte, 32), crypto.SHA256); err == nil {
		t.Fatal("Ed25519 signed a digest (Ed25519ph is not what the protocol verifies)")
	}
	p, _ := tok.OpenSigner("id-p256")
	if _, err := p.Sign(nil, []byte("not a digest"), crypto.Hash(0)); err == nil {
		t.Fatal("P-256 signed an unhashed message")
	}
	d := sha256.Sum256([]byte("x"))
	if _, err := p.Sign(nil, d[:], crypto.SHA256); err != nil {
		t.Fatal(err)
	}
	// An X25519 WireGuard key is no identity key, and the other way round.
	if _, err := tok.Generate("wg"); err != nil {
		t.Fatal(err)
	}
	if _, err := tok.OpenSigner("wg"); err == nil {
		t.Fatal("an X25519 key opened as a signer")
	}
	if _, err := tok.Open("id-ed25519"); err == nil {
		t.Fatal("an Ed25519 identity key opened as a WireGuard key")
	}
	if _, err := tok.OpenSigner("missing"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("missing signer: %v", err)
	}
	if _, err := tok.GenerateSigner("x", "rsa"); err == nil {
		t.Fatal("unknown algorithm accepted")
	}
	tok.Close()

	// Reopened (a new process, in effect): the same keys.
	tok2, err := pkcs11store.OpenToken(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer tok2.Close()
	for alg, want := range pubs {
		s, err := tok2.OpenSigner("id-" + string(alg))
		if err != nil || s.PublicKey() != want {
			t.Fatalf("%s after reopening: %v", alg, err)
		}
	}
}

// A signer keeps working after the token drops its sessions and logs the
// process out (a reset): the next signature renews both.
func TestIdentitySignerRecovers(t *testing.T) {
	for name, reset := range map[string]func(*pkcs11store.Token) error{"sessions closed": pkcs11store.CloseAllSessions, "logged out": pkcs11store.Logout} {
		t.Run(name, func(t *testing.T) { signAfterReset(t, reset) })
	}
}

// signAfterReset signs on a fresh token after reset hit it. (Its own
// subtest: SoftHSM sees tokens made after C_Initialize only once every
// token of the process is closed.)
func signAfterReset(t *testing.T, reset func(*pkcs11store.Token) error) {
	tok := openToken(t, "idreset", nil)
	s, err := tok.GenerateSigner("id", attest.Ed25519)
	if err != nil {
		t.Fatal(err)
	}
	msg := []byte("hello")
	if err := reset(tok); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ { // every session of the pool meets the reset
		sig, err := s.Sign(nil, msg, crypto.Hash(0))
		if err != nil {
			t.Fatalf("sign %d: %v", i, err)
		}
		if !attest.Verify(s.PublicKey(), msg, sig) {
			t.Fatal("bad signature")
		}
	}
}

// openTokenConfig makes a fresh token and returns its Config, for tests
// that open it more than once.
func openTokenConfig(t *testing.T, label string) pkcs11store.Config {
	t.Helper()
	return softhsmtest.NewToken(t, label)
}

// BenchmarkIdentitySign is one attestation signature by an identity key on
// SoftHSM.
//
//	go test -run XXX -bench IdentitySign -benchtime 500x ./keystore/pkcs11store
func BenchmarkIdentitySign(b *testing.B) {
	for _, alg := range []attest.Algorithm{attest.Ed25519, attest.P256} {
		b.Run(string(alg), func(b *testing.B) {
			tok := openToken(b, "bench-sign", nil)
			s, err := tok.GenerateSigner("id", alg)
			if err != nil {
				b.Fatal(err)
			}
			msg, _ := attest.Message(make([]byte, attest.NonceSize), s.PublicKey(), [32]byte{1})
			b.ResetTimer()
			for range b.N {
				if _, err := attest.Sign(s, msg); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
