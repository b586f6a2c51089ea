// SPDX-License-Identifier: Apache-2.0

//go:build cgo

package pkcs11store

import (
	"bytes"
	"context"
	"crypto"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/miekg/pkcs11"
	"github.com/wirefleet/wirefleet/attest"
)

// Identity keys: the signing keys of the attestation bootstrap. They live
// on the token like the WireGuard key, under their own label, and only
// sign.

const ckmEdDSA = 0x1057 // CKM_EDDSA (PKCS#11 3.0)

// DER OIDs of the identity curves (CKA_EC_PARAMS).
var (
	oidEd25519   = []byte{derObjectIdentifierTag, 3, 0x2b, 0x65, 0x70}                               // 1.3.101.112
	oidP256      = []byte{derObjectIdentifierTag, 8, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07} // 1.2.840.10045.3.1.7
	edwards25519 = append([]byte{derPrintableStringTag, byte(len("edwards25519"))}, "edwards25519"...)
)

// GenerateSigner makes an identity key pair of alg (attest.Ed25519 with
// CKK_EC_EDWARDS, or attest.P256 with CKK_EC) on the token under label:
// private, sensitive, non-extractable, able to sign and nothing else. It
// fails with ErrExists if the label is taken.
func (t *Token) GenerateSigner(label string, alg attest.Algorithm) (*Signer, error) {
	if label == "" {
		return nil, errors.New("pkcs11store: empty key label")
	}
	var (
		genMech, signMech, keyType uint
		params                     []byte
	)
	switch alg {
	case attest.Ed25519:
		genMech, signMech, keyType, params = ckmECEdwardsKeyPairGen, ckmEdDSA, ckkECEdwards, oidEd25519
	case attest.P256:
		genMech, signMech, keyType, params = pkcs11.CKM_EC_KEY_PAIR_GEN, pkcs11.CKM_ECDSA, pkcs11.CKK_EC, oidP256
	default:
		return nil, fmt.Errorf("pkcs11store: unknown identity algorithm %q", alg)
	}
	if !t.mechs[genMech] || !t.mechs[signMech] {
		return nil, fmt.Errorf("pkcs11store: token %q cannot make and sign with %s keys: %w", t.label, alg, ErrUnsupported)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	var s *Signer
	err := t.withSession(context.Background(), func(sh pkcs11.SessionHandle) error {
		if err := t.labelFree(sh, label); err != nil {
			return err
		}
		pubH, privH, err := t.newKeyPair(sh, label, genMech, keyType, params, pkcs11.CKA_SIGN)
		if err != nil {
			return fmt.Errorf("pkcs11store: generating %s key %q on token %q: %w", alg, label, t.label, err)
		}
		s, err = t.signer(sh, label, privH, pubH)
		return t.keepNewPair(sh, privH, pubH, err)
	})
	return s, err
}

// OpenSigner finds the identity key pair labelled label.
func (t *Token) OpenSigner(label string) (*Signer, error) {
	var s *Signer
	err := t.withSession(context.Background(), func(sh pkcs11.SessionHandle) error {
		priv, err := t.find(sh, labelled(pkcs11.CKO_PRIVATE_KEY, label))
		if err != nil {
			return err
		}
		pub, err := t.find(sh, labelled(pkcs11.CKO_PUBLIC_KEY, label))
		if err != nil {
			return err
		}
		switch {
		case len(priv) == 0:
			return fmt.Errorf("pkcs11store: private key %q on token %q: %w", label, t.label, ErrNotFound)
		case len(pub) == 0:
			return fmt.Errorf("pkcs11store: public key %q on token %q: %w", label, t.label, ErrNotFound)
		case len(priv) > 1 || len(pub) > 1:
			return fmt.Errorf("pkcs11store: label %q on token %q names several keys; refusing to guess", label, t.label)
		}
		s, err = t.signer(sh, label, priv[0], pub[0])
		return err
	})
	return s, err
}

// signer reads and checks what Signer needs from the two halves.
func (t *Token) signer(sh pkcs11.SessionHandle, label string, priv, pub pkcs11.ObjectHandle) (*Signer, error) {
	h, err := t.readHalves(sh, label, priv, pub)
	if err != nil {
		return nil, err
	}
	keyType, id, params, point := h.keyType, h.id, h.params, h.point
	var raw []byte
	switch {
	case keyType == ckkECEdwards && (bytes.Equal(params, oidEd25519) || bytes.Equal(params, edwards25519)):
		raw = unwrapOctets(point, 32)
	case keyType == pkcs11.CKK_EC && bytes.Equal(params, oidP256):
		raw = unwrapOctets(point, 65)
	default:
		return nil, fmt.Errorf("pkcs11store: %q is not an Ed25519 or P-256 signing key (key type %#x, CKA_EC_PARAMS %x)", label, keyType, params)
	}
	if raw == nil {
		return nil, fmt.Errorf("pkcs11store: %q: CKA_EC_POINT of %d bytes does not hold the public key", label, len(point))
	}
	key, err := attest.FromBytes(raw)
	if err != nil {
		return nil, fmt.Errorf("pkcs11store: %q: %w", label, err)
	}
	return &Signer{tok: t, label: label, id: id, priv: priv, pub: key}, nil
}

// unwrapOctets accepts a point of n bytes, raw or in a DER OCTET STRING.
func unwrapOctets(b []byte, n int) []byte {
	switch {
	case len(b) == n:
		return b
	case len(b) == n+2 && b[0] == derOctetStringTag && int(b[1]) == n:
		return b[2:]
	}
	return nil
}

// Signer is an identity key on a token: a crypto.Signer whose private key
// never leaves the token. Safe for concurrent use.
type Signer struct {
	tok   *Token
	label string
	id    []byte
	pub   attest.PublicKey

	mu   sync.Mutex
	priv pkcs11.ObjectHandle
}

var _ crypto.Signer = (*Signer)(nil)

// Public implements crypto.Signer: an ed25519.PublicKey or *ecdsa.PublicKey.
func (s *Signer) Public() crypto.PublicKey { return s.pub.Crypto() }

// PublicKey is the identity public key, for manufacturing.
func (s *Signer) PublicKey() attest.PublicKey { return s.pub }

// Label is the key's CKA_LABEL.
func (s *Signer) Label() string { return s.label }

// NonExtractable asks the token whether the private key can never leave it.
func (s *Signer) NonExtractable() (bool, error) {
	var ne bool
	err := s.withKey(context.Background(), func(sh pkcs11.SessionHandle, priv pkcs11.ObjectHandle) (err error) {
		ne, err = s.tok.nonExtractable(sh, priv)
		return err
	})
	return ne, err
}

// Sign implements crypto.Signer. Ed25519 signs the message itself
// (opts.HashFunc() must be 0) with CKM_EDDSA; P-256 signs a SHA-256 digest
// with CKM_ECDSA and returns ASN.1 DER, as crypto.Signer does.
func (s *Signer) Sign(_ io.Reader, msg []byte, opts crypto.SignerOpts) ([]byte, error) {
	var mech uint
	switch s.pub.Algorithm() {
	case attest.Ed25519:
		if opts.HashFunc() != crypto.Hash(0) {
			return nil, errors.New("pkcs11store: Ed25519 signs the message, not a digest (pre-hashed Ed25519ph is not supported)")
		}
		mech = ckmEdDSA
	case attest.P256:
		if opts.HashFunc() != crypto.SHA256 || len(msg) != 32 {
			return nil, errors.New("pkcs11store: P-256 identity keys sign SHA-256 digests")
		}
		mech = pkcs11.CKM_ECDSA
	}
	var sig []byte
	err := s.withKey(context.Background(), func(sh pkcs11.SessionHandle, priv pkcs11.ObjectHandle) error {
		c := s.tok.mod.ctx
		if err := c.SignInit(sh, []*pkcs11.Mechanism{pkcs11.NewMechanism(mech, nil)}, priv); err != nil {
			return fmt.Errorf("pkcs11store: C_SignInit with %q: %w", s.label, err)
		}
		var err error
		if sig, err = c.Sign(sh, msg); err != nil {
			return fmt.Errorf("pkcs11store: C_Sign with %q: %w", s.label, err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if s.pub.Algorithm() == attest.P256 {
		return attest.RawToASN1(sig)
	}
	return sig, nil
}

func (s *Signer) handle() pkcs11.ObjectHandle {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.priv
}

// withKey runs fn with a session and the private key's handle, finding the
// key again (by label and CKA_ID) once if the token renumbered it.
func (s *Signer) withKey(ctx context.Context, fn func(pkcs11.SessionHandle, pkcs11.ObjectHandle) error) error {
	return s.tok.withSession(ctx, func(sh pkcs11.SessionHandle) error {
		err := fn(sh, s.handle())
		if !staleHandle(err) {
			return err
		}
		h, ferr := s.tok.refindPrivate(sh, s.label, s.id)
		if ferr != nil {
			return ferr
		}
		s.mu.Lock()
		s.priv = h
		s.mu.Unlock()
		return fn(sh, h)
	})
}
