// SPDX-License-Identifier: Apache-2.0

package arcapi

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
)

// TokenSecretFile is the name, in the data directory, of the file holding
// the token secret.
const TokenSecretFile = "arc-token.key"

// LoadOrCreateTokenSecret returns the token secret stored in the file at
// path (conventionally <data dir>/arc-token.key), creating the file with
// 32 random bytes, mode 0600, if it does not exist. A file that exists but
// is shorter than MinTokenSecret, or readable by group or others, is an
// error rather than silently replaced or trusted.
//
// The secret is kept in a file and not in the database on purpose: a
// database dump must not be enough to forge session tokens. Several
// wirefleetd sharing one PostgreSQL must be given the same file.
func LoadOrCreateTokenSecret(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		secret := make([]byte, MinTokenSecret)
		if _, err := rand.Read(secret); err != nil {
			return nil, err
		}
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if errors.Is(err, fs.ErrExist) {
			// Another process created it first: use theirs.
			return LoadOrCreateTokenSecret(path)
		} else if err != nil {
			return nil, fmt.Errorf("arc token secret: %w", err)
		}
		if _, err := f.Write(secret); err != nil {
			f.Close()
			os.Remove(path)
			return nil, fmt.Errorf("arc token secret: %w", err)
		}
		if err := f.Sync(); err != nil {
			f.Close()
			return nil, fmt.Errorf("arc token secret: %w", err)
		}
		if err := f.Close(); err != nil {
			return nil, fmt.Errorf("arc token secret: %w", err)
		}
		return secret, nil
	} else if err != nil {
		return nil, fmt.Errorf("arc token secret: %w", err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("arc token secret: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("arc token secret %s: mode %v, want 0600", path, fi.Mode().Perm())
	}
	if len(b) < MinTokenSecret {
		return nil, fmt.Errorf("arc token secret %s: %d bytes, want at least %d", path, len(b), MinTokenSecret)
	}
	return b, nil
}
