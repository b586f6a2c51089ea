// SPDX-License-Identifier: Apache-2.0

//go:build !cgo

package pkcs11store

import (
	"crypto"
	"io"

	"github.com/wirefleet/wirefleet/attest"
)

// GenerateSigner fails with ErrNoCgo.
func (*Token) GenerateSigner(string, attest.Algorithm) (*Signer, error) { return nil, ErrNoCgo }

// OpenSigner fails with ErrNoCgo.
func (*Token) OpenSigner(string) (*Signer, error) { return nil, ErrNoCgo }

// Signer is an identity key on a token; without cgo there is never one.
type Signer struct{}

// Public is nil.
func (*Signer) Public() crypto.PublicKey { return nil }

// PublicKey is zero.
func (*Signer) PublicKey() attest.PublicKey { return attest.PublicKey{} }

// Label is empty.
func (*Signer) Label() string { return "" }

// NonExtractable fails with ErrNoCgo.
func (*Signer) NonExtractable() (bool, error) { return false, ErrNoCgo }

// Sign fails with ErrNoCgo.
func (*Signer) Sign(io.Reader, []byte, crypto.SignerOpts) ([]byte, error) { return nil, ErrNoCgo }
