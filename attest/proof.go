// SPDX-License-Identifier: Apache-2.0

package attest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"math/big"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// NonceSize is the size of a server challenge.
const NonceSize = 32

// Domain starts every signed message: a signature made for this protocol
// can never be mistaken for one made for another use of the same key
// (the NUL ends it, so no longer domain string shares the prefix).
const Domain = "wirefleet attestation bootstrap v1"

// Message is what the device signs: the domain, the server's nonce, the
// identity key (as its DER SubjectPublicKeyInfo, which names the algorithm)
// and the WireGuard public key the SIM is to be registered with. Every
// field has a fixed size or a length prefix, so two different inputs never
// give the same message.
//
//	"wirefleet attestation bootstrap v1" 0x00
//	nonce (32 bytes)
//	uint16 big-endian length of the SPKI, SPKI
//	WireGuard public key (32 bytes)
func Message(nonce []byte, id PublicKey, wgKey [32]byte) ([]byte, error) {
	if len(nonce) != NonceSize {
		return nil, fmt.Errorf("attest: nonce of %d bytes, want %d", len(nonce), NonceSize)
	}
	if id.IsZero() {
		return nil, errors.New("attest: no identity key")
	}
	spki := id.SPKI()
	m := make([]byte, 0, len(Domain)+1+NonceSize+2+len(spki)+32)
	m = append(m, Domain...)
	m = append(m, 0)
	m = append(m, nonce...)
	m = binary.BigEndian.AppendUint16(m, uint16(len(spki)))
	m = append(m, spki...)
	m = append(m, wgKey[:]...)
	return m, nil
}

// Sign signs msg with an identity key's signer the way Verify expects:
// pure Ed25519 over msg, or ECDSA over SHA-256(msg) (an ASN.1 DER
// signature, as crypto.Signer returns).
func Sign(s crypto.Signer, msg []byte) ([]byte, error) {
	switch pub := s.Public().(type) {
	case ed25519.PublicKey:
		return s.Sign(rand.Reader, msg, crypto.Hash(0))
	case *ecdsa.PublicKey:
		if _, err := FromCrypto(pub); err != nil {
			return nil, err
		}
		d := sha256.Sum256(msg)
		return s.Sign(rand.Reader, d[:], crypto.SHA256)
	}
	return nil, fmt.Errorf("attest: cannot sign with a %T key", s.Public())
}

// Verify reports whether sig is k's signature of msg. For P-256 it accepts
// the ASN.1 DER form (crypto.Signer, OpenSSL) and the raw 64-byte r‖s form
// (PKCS#11 CKM_ECDSA, most secure element SDKs). A rare DER signature is
// 64 bytes long too: such a signature is tried both ways, and accepting
// either still needs the private key.
func Verify(k PublicKey, msg, sig []byte) bool {
	switch k.alg {
	case Ed25519:
		return len(sig) == ed25519.SignatureSize && ed25519.Verify(ed25519.PublicKey([]byte(k.raw)), msg, sig)
	case P256:
		pub := k.Crypto().(*ecdsa.PublicKey)
		d := sha256.Sum256(msg)
		if len(sig) == 64 {
			r, s := new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])
			if ecdsa.Verify(pub, d[:], r, s) {
				return true
			}
		}
		return ecdsa.VerifyASN1(pub, d[:], sig)
	}
	return false
}

// RawToASN1 converts a raw r‖s ECDSA signature (each half the curve's
// size) to ASN.1 DER, the crypto.Signer form.
func RawToASN1(raw []byte) ([]byte, error) {
	if len(raw) == 0 || len(raw)%2 != 0 {
		return nil, fmt.Errorf("attest: raw ECDSA signature of %d bytes", len(raw))
	}
	r, s := new(big.Int).SetBytes(raw[:len(raw)/2]), new(big.Int).SetBytes(raw[len(raw)/2:])
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1BigInt(r)
		b.AddASN1BigInt(s)
	})
	return b.Bytes()
}
