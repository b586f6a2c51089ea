// SPDX-License-Identifier: Apache-2.0

// Package wgkey is the one family of WireGuard (Curve25519) keys used across
// wirefleet: Public, Private and Preshared, their generation, validation and
// text encodings (standard base64, as `wg` prints them, and hex, as the UAPI
// speaks them).
//
// The zero value of each type means "no key": it encodes as "" and "" decodes
// to it, so that an absent key is stored and shown as absent.
//
// A Private or Preshared key is a secret: printing it (fmt, any verb) or
// logging it (log/slog) writes a placeholder. Only the deliberate encodings
// write the key: Base64, and MarshalText for the wire and key files.
package wgkey

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"

	"golang.org/x/crypto/curve25519"
)

// Size is the length in bytes of every WireGuard key.
const Size = 32

// Public is a Curve25519 public key (a peer's static key, or an ephemeral one).
type Public [Size]byte

// Private is a clamped Curve25519 private key. Only a key store should hold
// one for long: the engine never needs the bytes.
type Private [Size]byte

// Preshared is the optional symmetric key mixed into a handshake.
type Preshared [Size]byte

// ErrBadKey is returned for text that is not a 32-byte key.
var ErrBadKey = errors.New("not a base64 32-byte WireGuard key")

// ErrZeroKey is returned when the all-zero public key is parsed: it is no
// usable key, and the zero Public means "none".
var ErrZeroKey = errors.New("the all-zero key is not a key")

// redacted is what a secret key prints as.
const redacted = "(secret key)"

// NewPrivate returns a fresh random private key, clamped the way `wg genkey`
// clamps it so that every implementation derives the same public key.
func NewPrivate() (Private, error) {
	var k Private
	if _, err := rand.Read(k[:]); err != nil {
		return Private{}, fmt.Errorf("wgkey: reading randomness: %w", err)
	}
	k.clamp()
	return k, nil
}

// NewPreshared returns a fresh random preshared key.
func NewPreshared() (Preshared, error) {
	var k Preshared
	if _, err := rand.Read(k[:]); err != nil {
		return Preshared{}, fmt.Errorf("wgkey: reading randomness: %w", err)
	}
	return k, nil
}

func (k *Private) clamp() {
	k[0] &= 248
	k[31] = (k[31] & 127) | 64
}

// Public derives the public key of k.
func (k Private) Public() Public {
	var p Public
	curve25519.ScalarBaseMult((*[32]byte)(&p), (*[32]byte)(&k))
	return p
}

// IsZero reports whether k is all zero (no key).
func (k Private) IsZero() bool { return isZero(k[:]) }

// Base64 returns the secret in standard base64, the form `wg genkey` prints,
// or "" for the zero key. Call it only to hand the key to its owner.
func (k Private) Base64() string { return encode(k[:]) }

// String returns a placeholder, never the key.
func (k Private) String() string { return redacted }

// GoString returns a placeholder, never the key (the %#v verb).
func (k Private) GoString() string { return "wgkey.Private" + redacted }

// Format writes a placeholder for every fmt verb, so that %x or %d do not
// print the bytes either.
func (k Private) Format(f fmt.State, _ rune) { fmt.Fprint(f, redacted) }

// LogValue implements slog.LogValuer: a logged key is a placeholder.
func (k Private) LogValue() slog.Value { return slog.StringValue(redacted) }

// MarshalText implements encoding.TextMarshaler: the key in base64, for the
// wire and key files. "" for the zero key.
func (k Private) MarshalText() ([]byte, error) { return []byte(k.Base64()), nil }

// UnmarshalText implements encoding.TextUnmarshaler; "" is the zero key.
func (k *Private) UnmarshalText(b []byte) error {
	if len(b) == 0 {
		*k = Private{}
		return nil
	}
	p, err := ParsePrivate(string(b))
	if err != nil {
		return err
	}
	*k = p
	return nil
}

// IsZero reports whether k is all zero (no key).
func (k Public) IsZero() bool { return isZero(k[:]) }

// String returns the key in standard base64, the form `wg pubkey` prints,
// or "" for the zero key.
func (k Public) String() string { return encode(k[:]) }

// Hex returns the key in lower-case hex, the form the WireGuard UAPI uses.
func (k Public) Hex() string { return hex.EncodeToString(k[:]) }

// Short returns the first characters of the base64 form, for logs.
func (k Public) Short() string {
	if k.IsZero() {
		return "(none)"
	}
	return k.String()[:8]
}

// Equal compares in constant time.
func (k Public) Equal(o Public) bool { return subtle.ConstantTimeCompare(k[:], o[:]) == 1 }

// MarshalText implements encoding.TextMarshaler (base64; "" for the zero key).
func (k Public) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler (base64); "" is the zero key.
func (k *Public) UnmarshalText(b []byte) error {
	if len(b) == 0 {
		*k = Public{}
		return nil
	}
	p, err := ParsePublic(string(b))
	if err != nil {
		return err
	}
	*k = p
	return nil
}

// smallOrder are the canonical encodings of the Curve25519 (and twist)
// points of small order: u = 0 (order 2), u = 1 (order 4), the two
// points of order 8, and u = p−1 (order 4 on the twist). X25519 with any
// clamped scalar is zero exactly for these (TestSmallOrderTable checks it
// by multiplication), so a comparison tells them at no cost: the
// configuration audit checks every SIM's key, hundreds of thousands.
var smallOrder = [...]Public{
	{},
	{0: 1},
	{0xe0, 0xeb, 0x7a, 0x7c, 0x3b, 0x41, 0xb8, 0xae, 0x16, 0x56, 0xe3, 0xfa, 0xf1, 0x9f, 0xc4, 0x6a,
		0xda, 0x09, 0x8d, 0xeb, 0x9c, 0x32, 0xb1, 0xfd, 0x86, 0x62, 0x05, 0x16, 0x5f, 0x49, 0xb8, 0x00},
	{0x5f, 0x9c, 0x95, 0xbc, 0xa3, 0x50, 0x8c, 0x24, 0xb1, 0xd0, 0xb1, 0x55, 0x9c, 0x83, 0xef, 0x5b,
		0x04, 0x44, 0x5c, 0xc4, 0x58, 0x1c, 0x8e, 0x86, 0xd8, 0x22, 0x4e, 0xdd, 0xd0, 0x9f, 0x11, 0x57},
	{0: 0xec, 1: 0xff, 2: 0xff, 3: 0xff, 4: 0xff, 5: 0xff, 6: 0xff, 7: 0xff, 8: 0xff, 9: 0xff, 10: 0xff,
		11: 0xff, 12: 0xff, 13: 0xff, 14: 0xff, 15: 0xff, 16: 0xff, 17: 0xff, 18: 0xff, 19: 0xff, 20: 0xff,
		21: 0xff, 22: 0xff, 23: 0xff, 24: 0xff, 25: 0xff, 26: 0xff, 27: 0xff, 28: 0xff, 29: 0xff, 30: 0xff, 31: 0x7f},
}

// LowOrder reports whether k is a point of small order (every DH with it
// is zero, whatever the other key), read as X25519 reads it: the top bit
// ignored, a coordinate ≥ p reduced. Validate refuses these, and the
// non-canonical spellings of any key.
func (k Public) LowOrder() bool {
	k[31] &= 0x7f
	if k.nonCanonical() { // p ≤ u < 2^255: u − p < 19, in byte 0
		k = Public{0: k[0] - 0xed}
	}
	for _, s := range smallOrder {
		if k == s {
			return true
		}
	}
	return false
}

// Validate refuses what no honest WireGuard peer sends as its public key:
// the all-zero key, a non-canonical encoding (the top bit set, or a
// coordinate ≥ 2^255−19: another spelling of some other key, which would let
// one key register twice), and the points of small order, whose DH with any
// key is zero (WireGuard refuses such a handshake).
func (k Public) Validate() error {
	if k.IsZero() {
		return ErrZeroKey
	}
	if k[31]&0x80 != 0 || k.nonCanonical() {
		return errors.New("not a canonical Curve25519 public key")
	}
	if k.LowOrder() {
		return errors.New("a low-order Curve25519 point: no key")
	}
	return nil
}

// nonCanonical reports whether the little-endian coordinate k (top bit
// clear) is at least p = 2^255−19: bytes 1..30 all 0xff, byte 31 0x7f and
// byte 0 at least 0xed.
func (k Public) nonCanonical() bool {
	if k[31] != 0x7f || k[0] < 0xed {
		return false
	}
	for _, b := range k[1:31] {
		if b != 0xff {
			return false
		}
	}
	return true
}

// IsZero reports whether k is all zero (no preshared key).
func (k Preshared) IsZero() bool { return isZero(k[:]) }

// Base64 returns the secret in standard base64, or "" for the zero key.
func (k Preshared) Base64() string { return encode(k[:]) }

// String returns a placeholder, never the key.
func (k Preshared) String() string { return redacted }

// GoString returns a placeholder, never the key (the %#v verb).
func (k Preshared) GoString() string { return "wgkey.Preshared" + redacted }

// Format writes a placeholder for every fmt verb.
func (k Preshared) Format(f fmt.State, _ rune) { fmt.Fprint(f, redacted) }

// LogValue implements slog.LogValuer: a logged key is a placeholder.
func (k Preshared) LogValue() slog.Value { return slog.StringValue(redacted) }

// ParsePublic parses a base64 public key. The all-zero key is refused
// (ErrZeroKey).
func ParsePublic(s string) (Public, error) {
	var k Public
	if err := decodeBase64(k[:], s); err != nil {
		return Public{}, err
	}
	if k.IsZero() {
		return Public{}, ErrZeroKey
	}
	return k, nil
}

// ParsePrivate parses a base64 private key and clamps it, as wg does.
func ParsePrivate(s string) (Private, error) {
	var k Private
	if err := decodeBase64(k[:], s); err != nil {
		return Private{}, err
	}
	k.clamp()
	return k, nil
}

// ParsePreshared parses a base64 preshared key.
func ParsePreshared(s string) (Preshared, error) {
	var k Preshared
	return k, decodeBase64(k[:], s)
}

// ParsePublicHex parses a hex public key (UAPI form).
func ParsePublicHex(s string) (Public, error) {
	var k Public
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != Size {
		return Public{}, ErrBadKey
	}
	copy(k[:], b)
	return k, nil
}

func encode(b []byte) string {
	if isZero(b) {
		return ""
	}
	return base64.StdEncoding.EncodeToString(b)
}

func decodeBase64(dst []byte, s string) error {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil || len(b) != Size {
		return ErrBadKey
	}
	copy(dst, b)
	return nil
}

func isZero(b []byte) bool {
	var acc byte
	for _, c := range b {
		acc |= c
	}
	return acc == 0
}
