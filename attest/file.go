// SPDX-License-Identifier: Apache-2.0

package attest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
)

// File keys are for development and tests: a device meant to be attested
// keeps its identity key in a secure element (a pkcs11: reference), where
// it cannot be copied. A file key can.

// GenerateFile makes an identity key of alg and writes it to path as a
// PKCS#8 "PRIVATE KEY" PEM file with mode 0600. It refuses to overwrite
// (fs.ErrExist): an identity key registered with manufacturing is not
// replaced by accident.
func GenerateFile(path string, alg Algorithm) (crypto.Signer, error) {
	var (
		key crypto.Signer
		err error
	)
	switch alg {
	case Ed25519:
		_, key, err = ed25519.GenerateKey(rand.Reader)
	case P256:
		key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	default:
		return nil, fmt.Errorf("attest: unknown algorithm %q (want ed25519 or p256)", alg)
	}
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("attest: %w", err)
	}
	if err := pem.Encode(f, &pem.Block{Type: "PRIVATE KEY", Bytes: der}); err != nil {
		f.Close()
		os.Remove(path)
		return nil, err
	}
	if err := f.Close(); err != nil {
		os.Remove(path)
		return nil, err
	}
	return key, nil
}

// LoadFile reads an identity key written by GenerateFile (or openssl
// genpkey: a PKCS#8 Ed25519 or P-256 key, or a SEC 1 "EC PRIVATE KEY").
// A file readable by others than its owner is refused.
func LoadFile(path string) (crypto.Signer, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("attest: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("attest: %s is readable by others (mode %v); chmod 600 it", path, fi.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("attest: %w", err)
	}
	block, _ := pem.Decode(b)
	if block == nil {
		return nil, fmt.Errorf("attest: %s: no PEM block", path)
	}
	var key any
	switch block.Type {
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(block.Bytes)
	default:
		return nil, fmt.Errorf("attest: %s: a %q block, want PRIVATE KEY", path, block.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("attest: %s: %w", path, err)
	}
	s, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("attest: %s: %T keys cannot sign", path, key)
	}
	if _, err := FromCrypto(s.Public()); err != nil {
		return nil, fmt.Errorf("attest: %s: %w", path, err)
	}
	return s, nil
}
