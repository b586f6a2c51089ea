package fleet

import (
	"crypto/rand"
	"encoding/base64"
	"errors"

	"golang.org/x/crypto/curve25519"
)

// Key is a WireGuard (Curve25519) key: 32 bytes, written in standard
// base64 as wg(8) does. The zero Key means "no key".
type Key [32]byte

// ParseKey decodes a standard-base64 WireGuard key. The all-zero key is
// refused: it is no usable key, and the zero Key means "none" here.
func ParseKey(s string) (Key, error) {
	var k Key
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil || len(b) != len(k) {
		return k, errors.New("not a base64 32-byte WireGuard key")
	}
	copy(k[:], b)
	if k.IsZero() {
		return k, errors.New("the all-zero key is not a key")
	}
	return k, nil
}

// IsZero reports whether k is unset.
func (k Key) IsZero() bool { return k == Key{} }

// String returns the standard base64 form, or "" for the zero key so that
// an absent key is stored and shown as absent rather than as "AAAA…=".
func (k Key) String() string {
	if k.IsZero() {
		return ""
	}
	return base64.StdEncoding.EncodeToString(k[:])
}

// MarshalText implements encoding.TextMarshaler.
func (k Key) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler; "" is the zero key.
func (k *Key) UnmarshalText(b []byte) error {
	if len(b) == 0 {
		*k = Key{}
		return nil
	}
	p, err := ParseKey(string(b))
	if err != nil {
		return err
	}
	*k = p
	return nil
}

// GeneratePrivateKey returns a new random private key, clamped the way
// wg genkey clamps it so that every implementation derives the same public key.
func GeneratePrivateKey() (Key, error) {
	var k Key
	if _, err := rand.Read(k[:]); err != nil {
		return k, err
	}
	k[0] &= 248
	k[31] = (k[31] & 127) | 64
	return k, nil
}

// PublicKey derives the public key of a private key.
func (k Key) PublicKey() Key {
	var pub Key
	p, err := curve25519.X25519(k[:], curve25519.Basepoint)
	if err != nil {
		// Only a low-order result fails, which the basepoint cannot give.
		panic(err)
	}
	copy(pub[:], p)
	return pub
}

// lowOrderProbe is a fixed clamped scalar: X25519 with any clamped scalar
// is zero exactly for the points of small order, so one multiplication by
// it tells them.
var lowOrderProbe = [32]byte{0: 8, 31: 64}

// ValidatePublicKey refuses what no honest WireGuard peer sends as its
// public key: the all-zero key, a non-canonical encoding (the top bit set,
// or a coordinate ≥ 2^255−19: another spelling of some other key, which
// would let one key register twice), and the points of small order, whose
// DH with any key is zero (WireGuard refuses such a handshake, so a SIM
// with one could never connect; an audit finding is too late). field names
// the input in the error.
func ValidatePublicKey(field string, k Key) error {
	if k.IsZero() {
		return Errorf(CodeInvalid, field, "the all-zero key is not a key")
	}
	if k[31]&0x80 != 0 || nonCanonical(k) {
		return Errorf(CodeInvalid, field, "not a canonical Curve25519 public key")
	}
	if _, err := curve25519.X25519(lowOrderProbe[:], k[:]); err != nil {
		return Errorf(CodeInvalid, field, "a low-order Curve25519 point: no key")
	}
	return nil
}

// nonCanonical reports whether the little-endian coordinate k (top bit
// clear) is at least p = 2^255−19: bytes 1..30 all 0xff, byte 31 0x7f and
// byte 0 at least 0xed.
func nonCanonical(k Key) bool {
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
