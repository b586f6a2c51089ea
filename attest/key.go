// SPDX-License-Identifier: Apache-2.0

// Package attest holds what both sides of the attestation bootstrap share:
// device identity public keys (Ed25519 and ECDSA P-256, what secure
// elements, TPMs and smart cards sign with), their text forms and
// fingerprints, the parser of manufacturing key lists, and the signed
// message that binds a server challenge, the identity and the device's
// WireGuard key together.
//
// The protocol itself (challenge, bootstrap, what is refused) is described
// in docs/keystores.md; the control plane and the agent implement it.
package attest

import (
	"bytes"
	"crypto"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"

	"filippo.io/edwards25519"
)

// Algorithm is an identity key's signature algorithm.
type Algorithm string

// Algorithms.
const (
	// Ed25519 is pure Ed25519 (RFC 8032) over the message.
	Ed25519 Algorithm = "ed25519"
	// P256 is ECDSA on NIST P-256 over the SHA-256 of the message.
	P256 Algorithm = "p256"
)

// PublicKey is a device identity public key. The zero value is no key.
// PublicKeys are comparable: equal keys compare equal.
type PublicKey struct {
	alg Algorithm
	// raw is the key's canonical bytes: 32 for Ed25519, the 65-byte
	// uncompressed SEC 1 point for P-256.
	raw string
}

// ErrBadKey is wrapped by every parse error.
var ErrBadKey = errors.New("attest: not an Ed25519 or P-256 public key")

func badKey(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrBadKey, fmt.Sprintf(format, args...))
}

// IsZero reports whether k is no key.
func (k PublicKey) IsZero() bool { return k.alg == "" }

// Algorithm is the key's algorithm.
func (k PublicKey) Algorithm() Algorithm { return k.alg }

// Bytes returns the canonical bytes: 32 for Ed25519, 65 (uncompressed
// point) for P-256.
func (k PublicKey) Bytes() []byte { return []byte(k.raw) }

// String is the canonical text form, "ed25519:<base64>" or "p256:<base64>"
// (standard base64 with padding of Bytes).
func (k PublicKey) String() string {
	if k.IsZero() {
		return ""
	}
	return string(k.alg) + ":" + base64.StdEncoding.EncodeToString([]byte(k.raw))
}

// MarshalText implements encoding.TextMarshaler (the canonical form).
func (k PublicKey) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler with ParsePublicKey.
func (k *PublicKey) UnmarshalText(b []byte) error {
	p, err := ParsePublicKey(string(b))
	if err != nil {
		return err
	}
	*k = p
	return nil
}

// Crypto returns the key as ed25519.PublicKey or *ecdsa.PublicKey.
func (k PublicKey) Crypto() crypto.PublicKey {
	switch k.alg {
	case Ed25519:
		return ed25519.PublicKey([]byte(k.raw))
	case P256:
		pk, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), []byte(k.raw))
		if err != nil {
			panic("attest: a parsed P-256 key does not parse again: " + err.Error())
		}
		return pk
	}
	return nil
}

// SPKI returns the key as a DER SubjectPublicKeyInfo (the "PUBLIC KEY" PEM
// body): the form the signed message binds and the fingerprint hashes.
func (k PublicKey) SPKI() []byte {
	if k.IsZero() {
		return nil
	}
	der, err := x509.MarshalPKIXPublicKey(k.Crypto())
	if err != nil {
		panic("attest: marshalling a parsed key: " + err.Error())
	}
	return der
}

// PEM returns the key as a "PUBLIC KEY" PEM block.
func (k PublicKey) PEM() string {
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: k.SPKI()}))
}

// Fingerprint is the lowercase hex SHA-256 of the SPKI: the identity's id
// in the control plane, computable by manufacturing from the key alone
// (openssl pkey -pubin -outform DER | sha256sum).
func (k PublicKey) Fingerprint() string {
	h := sha256.Sum256(k.SPKI())
	return hex.EncodeToString(h[:])
}

// FromCrypto converts an ed25519.PublicKey or *ecdsa.PublicKey on P-256.
func FromCrypto(pub crypto.PublicKey) (PublicKey, error) {
	switch p := pub.(type) {
	case ed25519.PublicKey:
		return fromEd25519([]byte(p))
	case *ecdsa.PublicKey:
		if p.Curve != elliptic.P256() {
			return PublicKey{}, badKey("ECDSA key on %s; only P-256 is supported", p.Curve.Params().Name)
		}
		b, err := p.Bytes()
		if err != nil {
			return PublicKey{}, badKey("%v", err)
		}
		return fromP256(b)
	}
	return PublicKey{}, badKey("%T keys are not supported", pub)
}

// fromEd25519 accepts 32 bytes that decode to a point which is not of small
// order: a small-order key lets anyone forge signatures that verify.
func fromEd25519(b []byte) (PublicKey, error) {
	if len(b) != ed25519.PublicKeySize {
		return PublicKey{}, badKey("Ed25519 key of %d bytes", len(b))
	}
	p, err := new(edwards25519.Point).SetBytes(b)
	if err != nil {
		return PublicKey{}, badKey("Ed25519 key is not a curve point")
	}
	if new(edwards25519.Point).MultByCofactor(p).Equal(edwards25519.NewIdentityPoint()) == 1 {
		return PublicKey{}, badKey("Ed25519 key of small order (anyone could sign for it)")
	}
	// SetBytes accepts a few non-canonical encodings; one key, one form.
	if !bytes.Equal(p.Bytes(), b) {
		return PublicKey{}, badKey("Ed25519 key is not canonically encoded")
	}
	return PublicKey{alg: Ed25519, raw: string(b)}, nil
}

// fromP256 accepts an uncompressed (65 bytes) or compressed (33 bytes)
// SEC 1 point on P-256 and keeps it uncompressed.
func fromP256(b []byte) (PublicKey, error) {
	switch {
	case len(b) == 33 && (b[0] == 2 || b[0] == 3):
		x, y := elliptic.UnmarshalCompressed(elliptic.P256(), b)
		if x == nil {
			return PublicKey{}, badKey("compressed P-256 point is not on the curve")
		}
		b = elliptic.Marshal(elliptic.P256(), x, y) //nolint:staticcheck // only to re-encode a checked point
	case len(b) != 65 || b[0] != 4:
		return PublicKey{}, badKey("P-256 point of %d bytes", len(b))
	}
	// crypto/ecdh checks the point is on the curve and not the identity.
	if _, err := ecdh.P256().NewPublicKey(b); err != nil {
		return PublicKey{}, badKey("P-256 point is not on the curve")
	}
	return PublicKey{alg: P256, raw: string(b)}, nil
}

// FromBytes reads raw key bytes: 32 for Ed25519, 33 or 65 for a P-256
// point (as a token's CKA_EC_POINT holds them), or a DER
// SubjectPublicKeyInfo of either.
func FromBytes(b []byte) (PublicKey, error) { return fromBytes(b) }

func fromBytes(b []byte) (PublicKey, error) {
	switch {
	case len(b) == 32:
		return fromEd25519(b)
	case (len(b) == 33 && (b[0] == 2 || b[0] == 3)) || (len(b) == 65 && b[0] == 4):
		return fromP256(b)
	case len(b) > 0 && b[0] == 0x30:
		pub, err := x509.ParsePKIXPublicKey(b)
		if err != nil {
			return PublicKey{}, badKey("DER public key: %v", err)
		}
		return FromCrypto(pub)
	}
	return PublicKey{}, badKey("%d bytes are neither an Ed25519 key (32), a P-256 point (33 or 65) nor a DER SubjectPublicKeyInfo", len(b))
}

// MaxKeyText bounds the text of one key (a PEM P-256 SPKI is about 180
// bytes; comments and blanks aside).
const MaxKeyText = 1024

// ParsePublicKey reads one identity public key written as:
//
//   - the canonical form: "ed25519:<base64>" or "p256:<base64>";
//   - a PEM "PUBLIC KEY" block (SubjectPublicKeyInfo), as openssl writes;
//   - hex (a string of hex digits only is always read as hex) or base64
//     (standard or URL alphabet, padded or not) of: 32 bytes (Ed25519),
//     a 65-byte uncompressed or 33-byte compressed P-256 point, or a DER
//     SubjectPublicKeyInfo.
//
// Ed25519 keys of small order and points off the curve are refused.
func ParsePublicKey(s string) (PublicKey, error) {
	s = strings.TrimSpace(s)
	if len(s) > MaxKeyText {
		return PublicKey{}, badKey("longer than %d bytes", MaxKeyText)
	}
	if s == "" {
		return PublicKey{}, badKey("empty")
	}
	if strings.HasPrefix(s, "-----BEGIN") {
		block, rest := pem.Decode([]byte(s))
		if block == nil {
			return PublicKey{}, badKey("malformed PEM")
		}
		if len(bytes.TrimSpace(rest)) > 0 {
			return PublicKey{}, badKey("more than one PEM block")
		}
		if block.Type != "PUBLIC KEY" {
			return PublicKey{}, badKey("PEM block %q, want PUBLIC KEY", block.Type)
		}
		if len(block.Headers) > 0 {
			return PublicKey{}, badKey("PEM headers are not expected on a public key")
		}
		return fromBytes(block.Bytes)
	}
	if alg, b64, ok := strings.Cut(s, ":"); ok {
		raw, err := base64.StdEncoding.Strict().DecodeString(b64)
		if err != nil {
			return PublicKey{}, badKey("%s: bad base64", alg)
		}
		switch Algorithm(alg) {
		case Ed25519:
			return fromEd25519(raw)
		case P256:
			if len(raw) != 65 {
				return PublicKey{}, badKey("p256: want the 65-byte uncompressed point")
			}
			return fromP256(raw)
		}
		return PublicKey{}, badKey("unknown algorithm %q (want ed25519 or p256)", alg)
	}
	if isHex(s) {
		raw, err := hex.DecodeString(s)
		if err != nil {
			return PublicKey{}, badKey("odd number of hex digits")
		}
		return fromBytes(raw)
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if raw, err := enc.Strict().DecodeString(s); err == nil {
			return fromBytes(raw)
		}
	}
	return PublicKey{}, badKey("neither PEM, hex, base64 nor alg:base64")
}

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}
