// Package wgkey holds WireGuard's Curve25519 keys: their types, generation and
// the text encodings (standard base64, as `wg` prints them, and hex, as the
// UAPI speaks them).
package wgkey

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"

	"golang.org/x/crypto/curve25519"
)

// Size is the length in bytes of every WireGuard key.
const Size = 32

// Public is a Curve25519 public key (a peer's static key, or an ephemeral one).
type Public [Size]byte

// Private is a clamped Curve25519 private key. Only a key store should hold
// one: the engine never needs the bytes.
type Private [Size]byte

// PresharedKey is the optional symmetric key mixed into a handshake.
type PresharedKey [Size]byte

// ErrBadKey is returned for text that is not a 32-byte key.
var ErrBadKey = errors.New("wgkey: not a 32-byte key")

// NewPrivate returns a fresh random, clamped private key.
func NewPrivate() (Private, error) {
	var k Private
	if _, err := rand.Read(k[:]); err != nil {
		return Private{}, fmt.Errorf("wgkey: reading randomness: %w", err)
	}
	k.clamp()
	return k, nil
}

// NewPresharedKey returns a fresh random preshared key.
func NewPresharedKey() (PresharedKey, error) {
	var k PresharedKey
	if _, err := rand.Read(k[:]); err != nil {
		return PresharedKey{}, fmt.Errorf("wgkey: reading randomness: %w", err)
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

// String returns the key in standard base64, the form `wg genkey` prints.
func (k Private) String() string { return base64.StdEncoding.EncodeToString(k[:]) }

// IsZero reports whether k is all zero (no key).
func (k Public) IsZero() bool { return isZero(k[:]) }

// String returns the key in standard base64, the form `wg pubkey` prints.
func (k Public) String() string { return base64.StdEncoding.EncodeToString(k[:]) }

// Hex returns the key in lower-case hex, the form the WireGuard UAPI uses.
func (k Public) Hex() string { return hex.EncodeToString(k[:]) }

// Short returns the first characters of the base64 form, for logs.
func (k Public) Short() string { return k.String()[:8] }

// Equal compares in constant time.
func (k Public) Equal(o Public) bool { return subtle.ConstantTimeCompare(k[:], o[:]) == 1 }

// MarshalText implements encoding.TextMarshaler (base64).
func (k Public) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler (base64).
func (k *Public) UnmarshalText(b []byte) error {
	p, err := ParsePublic(string(b))
	if err != nil {
		return err
	}
	*k = p
	return nil
}

// IsZero reports whether k is all zero (no preshared key).
func (k PresharedKey) IsZero() bool { return isZero(k[:]) }

// String returns the key in standard base64.
func (k PresharedKey) String() string { return base64.StdEncoding.EncodeToString(k[:]) }

// ParsePublic parses a base64 public key.
func ParsePublic(s string) (Public, error) {
	var k Public
	return k, decodeBase64(k[:], s)
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

// ParsePresharedKey parses a base64 preshared key.
func ParsePresharedKey(s string) (PresharedKey, error) {
	var k PresharedKey
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
