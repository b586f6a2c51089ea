// SPDX-License-Identifier: Apache-2.0

// Package seal encrypts small secrets at rest (credentials and signing
// secrets in group settings) with XChaCha20-Poly1305 under a key kept in a
// file of the data directory, outside the database: a database dump alone
// does not reveal the secrets.
package seal

import (
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"golang.org/x/crypto/chacha20poly1305"
)

// KeyFile is the name, in the data directory, of the file holding the key.
const KeyFile = "settings-secrets.key"

// prefix marks a sealed value and its format version.
const prefix = "sealed:v1:"

// label is bound into every ciphertext as additional data, so a value
// sealed by this package for another purpose would not open here.
var label = []byte("wirefleet settings secret v1")

// Key seals and opens secrets. The zero Key is not usable; get one from
// NewKey or LoadOrCreateKey.
type Key struct {
	k [chacha20poly1305.KeySize]byte
}

// NewKey returns a Key from 32 bytes of key material.
func NewKey(b []byte) (*Key, error) {
	if len(b) != chacha20poly1305.KeySize {
		return nil, fmt.Errorf("seal: key is %d bytes, want %d", len(b), chacha20poly1305.KeySize)
	}
	k := &Key{}
	copy(k.k[:], b)
	return k, nil
}

// GenerateKey returns a new random Key.
func GenerateKey() (*Key, error) {
	b := make([]byte, chacha20poly1305.KeySize)
	if _, err := rand.Read(b); err != nil {
		return nil, err
	}
	return NewKey(b)
}

// LoadOrCreateKey returns the key stored in the file at path
// (conventionally <data dir>/settings-secrets.key), creating it with 32
// random bytes, mode 0600, if it does not exist. A file of the wrong size
// or readable by group or others is an error, never replaced or trusted.
// Several wirefleetd sharing one PostgreSQL must be given the same file.
func LoadOrCreateKey(path string) (*Key, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		k, err := GenerateKey()
		if err != nil {
			return nil, err
		}
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if errors.Is(err, fs.ErrExist) {
			return LoadOrCreateKey(path) // another process was first: use theirs
		} else if err != nil {
			return nil, fmt.Errorf("seal key: %w", err)
		}
		_, err = f.Write(k.k[:])
		if err == nil {
			err = f.Sync()
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			os.Remove(path)
			return nil, fmt.Errorf("seal key: %w", err)
		}
		return k, nil
	} else if err != nil {
		return nil, fmt.Errorf("seal key: %w", err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("seal key: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("seal key %s: mode %v, want 0600", path, fi.Mode().Perm())
	}
	k, err := NewKey(b)
	if err != nil {
		return nil, fmt.Errorf("seal key %s: %w", path, err)
	}
	return k, nil
}

// Seal encrypts plaintext under a fresh random nonce and returns it as
// text ("sealed:v1:" then base64).
func (k *Key) Seal(plaintext string) (string, error) {
	aead, err := chacha20poly1305.NewX(k.k[:])
	if err != nil {
		return "", err
	}
	nonce := make([]byte, aead.NonceSize(), aead.NonceSize()+len(plaintext)+aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return "", err
	}
	out := aead.Seal(nonce, nonce, []byte(plaintext), label)
	return prefix + base64.RawURLEncoding.EncodeToString(out), nil
}

// ErrNotSealed is returned by Open for a value not made by Seal.
var ErrNotSealed = errors.New("seal: not a sealed value")

// Open decrypts a value made by Seal with the same key. A value sealed
// under another key, or altered, is an error.
func (k *Key) Open(sealed string) (string, error) {
	rest, ok := strings.CutPrefix(sealed, prefix)
	if !ok {
		return "", ErrNotSealed
	}
	b, err := base64.RawURLEncoding.DecodeString(rest)
	if err != nil {
		return "", ErrNotSealed
	}
	aead, err := chacha20poly1305.NewX(k.k[:])
	if err != nil {
		return "", err
	}
	if len(b) < aead.NonceSize()+aead.Overhead() {
		return "", ErrNotSealed
	}
	pt, err := aead.Open(nil, b[:aead.NonceSize()], b[aead.NonceSize():], label)
	if err != nil {
		return "", errors.New("seal: cannot open: wrong key or altered value")
	}
	return string(pt), nil
}

// IsSealed reports whether s looks like a value made by Seal.
func IsSealed(s string) bool { return strings.HasPrefix(s, prefix) }

// Derive returns 32 bytes derived from the key for one purpose named by
// label (HKDF-SHA256), for secrets that must be as private as the key and
// shared by the same nodes (such as keyproof's issuer secret), without a
// second file to distribute. Different labels give unrelated values.
func (k *Key) Derive(label string) []byte {
	b, err := hkdf.Key(sha256.New, k.k[:], nil, "wirefleet seal derive: "+label, 32)
	if err != nil {
		panic("seal: " + err.Error()) // only for lengths HKDF cannot give
	}
	return b
}
