// SPDX-License-Identifier: Apache-2.0

package keyproof

import (
	"bytes"
	"context"
	"crypto/rand"
	"testing"

	"github.com/wirefleet/wirefleet/keystore"
	"github.com/wirefleet/wirefleet/wgkey"
)

func newIssuer(t *testing.T) *Issuer {
	t.Helper()
	secret := make([]byte, 32)
	rand.Read(secret)
	i, err := NewIssuer(secret)
	if err != nil {
		t.Fatal(err)
	}
	return i
}

func challenge(t *testing.T, i *Issuer) ([]byte, wgkey.Public) {
	t.Helper()
	nonce := make([]byte, NonceSize)
	rand.Read(nonce)
	return nonce, i.ServerKey(nonce)
}

func device(t *testing.T) *keystore.Memory {
	t.Helper()
	ks, err := keystore.GenerateMemory()
	if err != nil {
		t.Fatal(err)
	}
	return ks
}

// The device's answer, made through its key store, verifies; and every
// field of the statement is bound: changing any one fails.
func TestProofBindsStatement(t *testing.T) {
	i := newIssuer(t)
	dev, other := device(t), device(t)
	nonce, server := challenge(t, i)
	newKey := other.PublicKey()
	s := Statement{Purpose: Rekey, Nonce: nonce, ServerKey: server, SIMID: "sim_1", NewKey: newKey}
	proof, err := Answer(context.Background(), dev, s)
	if err != nil {
		t.Fatal(err)
	}
	s.Key = dev.PublicKey()
	if !i.Verify(s, proof) {
		t.Fatal("a genuine proof is refused")
	}
	nonce2, _ := challenge(t, i)
	for name, mod := range map[string]func(*Statement){
		"purpose": func(s *Statement) { s.Purpose = Bootstrap },
		"nonce":   func(s *Statement) { s.Nonce = nonce2 },
		"key":     func(s *Statement) { s.Key = other.PublicKey() },
		"sim":     func(s *Statement) { s.SIMID = "sim_2" },
		"newKey":  func(s *Statement) { s.NewKey = dev.PublicKey() },
		"noNew":   func(s *Statement) { s.NewKey = wgkey.Public{} },
	} {
		m := s
		mod(&m)
		if i.Verify(m, proof) {
			t.Errorf("%s changed: the proof still verifies", name)
		}
	}
	bad := bytes.Clone(proof)
	bad[0] ^= 1
	if i.Verify(s, bad) {
		t.Error("a flipped bit verifies")
	}
	if i.Verify(s, proof[:Size-1]) {
		t.Error("a short proof verifies")
	}
}

// The attack the proof exists for: someone who knows the victim's public
// key (and the challenge) but not its private key cannot answer. Their
// best try is a proof made with their own key, or with the DH they can
// compute themselves.
func TestProofNeedsThePrivateKey(t *testing.T) {
	i := newIssuer(t)
	victim, attacker := device(t), device(t)
	nonce, server := challenge(t, i)
	s := Statement{Purpose: Bootstrap, Nonce: nonce, ServerKey: server, Key: victim.PublicKey()}
	// The attacker's own DH with the challenge key.
	own, _ := attacker.DH(context.Background(), keystore.DHRequest{Purpose: keystore.KeyProof, Peer: server})
	p, err := Prove(s, own)
	if err != nil {
		t.Fatal(err)
	}
	if i.Verify(s, p) {
		t.Fatal("a proof made without the victim's private key verifies")
	}
	// A challenge key of the attacker's own choosing (whose DH with the
	// victim's public key it can compute) is not the issuer's.
	s.ServerKey = attacker.PublicKey()
	shared, _ := attacker.DH(context.Background(), keystore.DHRequest{Peer: victim.PublicKey()})
	p, _ = Prove(s, shared)
	if i.Verify(s, p) {
		t.Fatal("a proof against a server key the attacker chose verifies")
	}
	// Another issuer (another installation) derives other challenge keys.
	ans, _ := Answer(context.Background(), victim, Statement{Purpose: Bootstrap, Nonce: nonce, ServerKey: server})
	if newIssuer(t).Verify(Statement{Purpose: Bootstrap, Nonce: nonce, Key: victim.PublicKey()}, ans) {
		t.Fatal("a proof verifies under another issuer's secret")
	}
}

// Low-order public keys make an all-zero DH: never a proof.
func TestLowOrderKeys(t *testing.T) {
	i := newIssuer(t)
	nonce, server := challenge(t, i)
	var one wgkey.Public
	one[0] = 1 // the point of order 1 in Montgomery form (u = 1 has order 4; both are low order)
	for _, k := range []wgkey.Public{one, {}} {
		s := Statement{Purpose: Bootstrap, Nonce: nonce, ServerKey: server, Key: k}
		if _, err := Prove(s, [32]byte{}); err == nil {
			t.Errorf("key %x: a proof from an all-zero DH", k[:4])
		}
		if i.Verify(s, make([]byte, Size)) {
			t.Errorf("key %x: verified", k[:4])
		}
	}
}

func TestIssuerSecretAndStatement(t *testing.T) {
	if _, err := NewIssuer(make([]byte, 31)); err == nil {
		t.Error("a 31-byte secret is accepted")
	}
	i := newIssuer(t)
	nonce, server := challenge(t, i)
	if i.ServerKey(nonce) != server {
		t.Error("the challenge key is not stable for its nonce")
	}
	for _, s := range []Statement{
		{Purpose: "other", Nonce: nonce, ServerKey: server},
		{Purpose: Bootstrap, Nonce: nonce[:16], ServerKey: server},
		{Purpose: Bootstrap, Nonce: nonce},
	} {
		if _, err := Answer(context.Background(), device(t), s); err == nil {
			t.Errorf("statement %+v: answered", s)
		}
	}
}
