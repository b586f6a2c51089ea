// SPDX-License-Identifier: Apache-2.0

// Package keyproof proves possession of a WireGuard static private key to
// the platform without revealing it, and with nothing but the DH operation
// a key store offers (a secure element never releases the key).
//
// The platform issues a challenge: a random nonce and an ephemeral X25519
// public key Y whose private half only the platform can derive (from the
// nonce and a secret kept outside the database). The device computes
// DH(its static key, Y), the platform DH(y, the device's public key): the
// same value, known only to the two of them. The proof is an HMAC, under a
// key derived from that value, of a Statement naming what the device asks
// for (reveal its SIM at bootstrap, or install a new key), so a proof
// cannot be moved to another request, key or purpose. The raw DH value
// never leaves the device: a key-store caller learns only a MAC of it,
// so answering challenges is no DH oracle.
package keyproof

import (
	"context"
	"crypto/ecdh"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/wirefleet/wirefleet/keystore"
	"github.com/wirefleet/wirefleet/wgkey"
)

// NonceSize is the length of a challenge nonce.
const NonceSize = 32

// Size is the length of a proof.
const Size = sha256.Size

// Purposes a proof can be made for.
const (
	// Bootstrap: reveal the SIM already registered for the key (an
	// idempotent bootstrap after a lost answer).
	Bootstrap = "bootstrap"
	// Rekey: replace the SIM's key (the proof is made with the current one).
	Rekey = "rekey"
)

// label separates these proofs from every other use of the keys.
const label = "wirefleet key proof v1"

// Statement is what a proof vouches for. Every field is bound into it.
type Statement struct {
	Purpose   string       // Bootstrap or Rekey
	Nonce     []byte       // the challenge's nonce, NonceSize bytes
	ServerKey wgkey.Public // the challenge's ephemeral public key
	Key       wgkey.Public // the key whose private half makes the proof
	SIMID     string       // the SIM acted on; "" for Bootstrap (the device may not know it)
	NewKey    wgkey.Public // Rekey: the key to install; zero when the platform generates it
}

// ErrStatement is returned for a statement that cannot be proved.
var ErrStatement = errors.New("keyproof: statement needs a known purpose, a nonce of NonceSize bytes and non-zero keys")

func (s Statement) valid() bool {
	return (s.Purpose == Bootstrap || s.Purpose == Rekey) && len(s.Nonce) == NonceSize && !s.ServerKey.IsZero() && !s.Key.IsZero()
}

// message encodes the statement unambiguously: fixed-size fields, and
// every variable one prefixed with its length.
func (s Statement) message() []byte {
	b := make([]byte, 0, 64+len(s.Purpose)+len(s.SIMID)+NonceSize+3*wgkey.Size)
	b = appendField(b, []byte(label))
	b = appendField(b, []byte(s.Purpose))
	b = appendField(b, s.Nonce)
	b = append(b, s.ServerKey[:]...)
	b = append(b, s.Key[:]...)
	b = appendField(b, []byte(s.SIMID))
	return append(b, s.NewKey[:]...)
}

func appendField(b, f []byte) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(f)))
	return append(b, f...)
}

// macKey derives the proof's key from the shared DH value, salted by the
// nonce. An all-zero value (a low-order key) never makes a key.
func macKey(shared [32]byte, nonce []byte) ([]byte, error) {
	if shared == ([32]byte{}) {
		return nil, errors.New("keyproof: DH result is all zero (low-order key)")
	}
	return hkdf.Key(sha256.New, shared[:], nonce, label, sha256.Size)
}

// Prove returns the proof of s, given shared = DH(private half of s.Key,
// s.ServerKey) as the device's key store computes it.
func Prove(s Statement, shared [32]byte) ([]byte, error) {
	if !s.valid() {
		return nil, ErrStatement
	}
	k, err := macKey(shared, s.Nonce)
	if err != nil {
		return nil, err
	}
	m := hmac.New(sha256.New, k)
	m.Write(s.message())
	return m.Sum(nil), nil
}

// Issuer makes challenges' ephemeral keys and checks proofs. Its secret
// must be the same on every node serving one fleet, and kept outside the
// database: with it, anyone could answer a challenge for any key.
type Issuer struct {
	secret [32]byte
}

// NewIssuer returns an issuer keyed by secret (at least 32 bytes).
func NewIssuer(secret []byte) (*Issuer, error) {
	if len(secret) < 32 {
		return nil, errors.New("keyproof: the issuer secret must be at least 32 bytes")
	}
	i := &Issuer{}
	sum := hmac.New(sha256.New, secret)
	sum.Write([]byte(label + " issuer"))
	copy(i.secret[:], sum.Sum(nil))
	return i, nil
}

// ephemeral derives the private key of the challenge with nonce: nobody
// without the issuer's secret can, so seeing a challenge does not let
// anyone compute its DH with somebody else's key.
func (i *Issuer) ephemeral(nonce []byte) *ecdh.PrivateKey {
	m := hmac.New(sha256.New, i.secret[:])
	m.Write([]byte("ephemeral"))
	m.Write(nonce)
	k, err := ecdh.X25519().NewPrivateKey(m.Sum(nil))
	if err != nil {
		panic("keyproof: a 32-byte X25519 key was refused: " + err.Error()) // any 32 bytes are a key
	}
	return k
}

// ServerKey returns the ephemeral public key of the challenge with nonce.
func (i *Issuer) ServerKey(nonce []byte) wgkey.Public {
	return wgkey.Public(i.ephemeral(nonce).PublicKey().Bytes())
}

// Verify reports whether proof proves s. s.ServerKey is ignored: the
// issuer derives it from s.Nonce, so a proof made against any other key
// fails. It does not check that the nonce was issued, is unexpired or
// unspent: the caller keeps that state.
func (i *Issuer) Verify(s Statement, proof []byte) bool {
	if len(s.Nonce) != NonceSize || len(proof) != Size {
		return false
	}
	eph := i.ephemeral(s.Nonce)
	s.ServerKey = wgkey.Public(eph.PublicKey().Bytes())
	if !s.valid() {
		return false
	}
	peer, err := ecdh.X25519().NewPublicKey(s.Key[:])
	if err != nil {
		return false
	}
	raw, err := eph.ECDH(peer)
	if err != nil {
		return false // low-order key
	}
	want, err := Prove(s, [32]byte(raw))
	if err != nil {
		return false
	}
	return hmac.Equal(want, proof)
}

// Answer makes the proof of s with the key in ks (s.Key is set to its
// public key): the device side of a challenge.
func Answer(ctx context.Context, ks keystore.Store, s Statement) ([]byte, error) {
	s.Key = ks.PublicKey()
	if !s.valid() {
		return nil, ErrStatement
	}
	shared, err := ks.DH(ctx, keystore.DHRequest{Purpose: keystore.KeyProof, Peer: s.ServerKey})
	if err != nil {
		return nil, fmt.Errorf("keyproof: DH with the challenge key: %w", err)
	}
	defer clear(shared[:])
	return Prove(s, shared)
}

// Challenge is a single-use challenge for a key proof, as the platform
// issues it (base64 fields in JSON).
type Challenge struct {
	Nonce     []byte       `json:"nonce"`     // NonceSize bytes
	ServerKey wgkey.Public `json:"serverKey"` // the ephemeral key to DH with
	Expires   time.Time    `json:"expires"`
}

// Reply is a device's answer to a Challenge, as the API and the Arc
// adapter read it (base64 fields in JSON).
type Reply struct {
	Nonce []byte `json:"nonce"` // the challenge's nonce
	Proof []byte `json:"proof"` // Size bytes
}
