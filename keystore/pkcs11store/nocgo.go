// SPDX-License-Identifier: Apache-2.0

//go:build !cgo

package pkcs11store

import (
	"context"

	"github.com/wirefleet/wirefleet/keystore"
	"github.com/wirefleet/wirefleet/wgkey"
)

// Token is an open PKCS#11 token; without cgo there is never one.
type Token struct{}

// OpenToken fails with ErrNoCgo: loading a module needs cgo.
func OpenToken(Config) (*Token, error) { return nil, ErrNoCgo }

// Close does nothing.
func (*Token) Close() error { return nil }

// Label is empty.
func (*Token) Label() string { return "" }

// Generate fails with ErrNoCgo.
func (*Token) Generate(string) (*Key, error) { return nil, ErrNoCgo }

// Open fails with ErrNoCgo.
func (*Token) Open(string) (*Key, error) { return nil, ErrNoCgo }

// Delete fails with ErrNoCgo.
func (*Token) Delete(string) error { return ErrNoCgo }

// Key is a key on a token; without cgo there is never one.
type Key struct{}

var _ keystore.Store = (*Key)(nil)

// PublicKey is zero.
func (*Key) PublicKey() wgkey.Public { return wgkey.Public{} }

// Label is empty.
func (*Key) Label() string { return "" }

// URI is empty.
func (*Key) URI() URI { return URI{} }

// KeyType is empty.
func (*Key) KeyType() string { return "" }

// NonExtractable fails with ErrNoCgo.
func (*Key) NonExtractable() (bool, error) { return false, ErrNoCgo }

// DH fails with ErrNoCgo.
func (*Key) DH(context.Context, keystore.DHRequest) ([32]byte, error) {
	return [32]byte{}, ErrNoCgo
}
