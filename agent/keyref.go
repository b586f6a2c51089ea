// SPDX-License-Identifier: Apache-2.0

package agent

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/wirefleet/wirefleet/keystore"
	"github.com/wirefleet/wirefleet/keystore/agentstore"
	"github.com/wirefleet/wirefleet/keystore/pkcs11store"
)

// DefaultPKCS11Module is the module a pkcs11: reference without
// module-path loads (Debian's SoftHSM2; a device names its secure element's).
const DefaultPKCS11Module = "/usr/lib/softhsm/libsofthsm2.so"

// Key references (the config's keyRef) name where the static key lives:
//
//	file:/etc/wirefleet/agent.key                       a 0600 key file
//	pkcs11:token=se;object=wg?pin-source=/etc/wirefleet/pin   a PKCS#11 token (secure element, HSM, SoftHSM)
//	agent:/run/wirefleet/keyd.sock?slot=wg              a key-agent process
//
// Keys in hardware or behind an agent are used initiator-only: the device
// never answers initiations, so nobody can drive its key store.

// OpenKeyStore opens the key store a KeyRef names.
func OpenKeyStore(ref string) (keystore.Store, error) { return openKeyStore(ref, false) }

// CreateKeyStore opens the key store a KeyRef names, making the key first
// if it does not exist yet.
func CreateKeyStore(ref string) (keystore.Store, error) { return openKeyStore(ref, true) }

func openKeyStore(ref string, create bool) (keystore.Store, error) {
	switch {
	case strings.HasPrefix(ref, "file:"):
		path := strings.TrimPrefix(ref, "file:")
		if !create {
			return keystore.LoadFile(path)
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, fmt.Errorf("agent: %w", err)
		}
		return keystore.LoadOrCreateFile(path)
	case strings.HasPrefix(ref, "pkcs11:"):
		u, tok, err := openToken(ref)
		if err != nil {
			return nil, err
		}
		k, err := tok.Open(u.Object)
		if create && errors.Is(err, fs.ErrNotExist) {
			k, err = tok.Generate(u.Object)
		}
		if err != nil {
			tok.Close()
			return nil, err
		}
		return tokenKey{InitiatorOnly: keystore.InitiatorOnly{Store: k}, tok: tok}, nil
	case strings.HasPrefix(ref, "agent:"):
		r, err := agentstore.ParseRef(ref)
		if err != nil {
			return nil, err
		}
		c, err := agentstore.Dial(r.Socket, r.Slot)
		if create && errors.Is(err, fs.ErrNotExist) {
			c, err = agentstore.Generate(r.Socket, r.Slot)
		}
		if err != nil {
			return nil, err
		}
		return closingStore{InitiatorOnly: keystore.InitiatorOnly{Store: c}, c: c}, nil
	}
	return nil, fmt.Errorf("agent: unsupported key reference %q (want file:, pkcs11: or agent:)", ref)
}

// openToken opens the token a pkcs11: reference names.
func openToken(ref string) (pkcs11store.URI, *pkcs11store.Token, error) {
	u, err := pkcs11store.ParseURI(ref)
	if err != nil {
		return u, nil, err
	}
	cfg, err := u.Config(DefaultPKCS11Module)
	if err != nil {
		return u, nil, err
	}
	tok, err := pkcs11store.OpenToken(cfg)
	return u, tok, err
}

// tokenKey is a PKCS#11 key with the token session it needs; Close
// releases the token.
type tokenKey struct {
	keystore.InitiatorOnly
	tok *pkcs11store.Token
}

func (k tokenKey) Close() error { return k.tok.Close() }

// closingStore is an initiator-only store with a connection to close.
type closingStore struct {
	keystore.InitiatorOnly
	c interface{ Close() error }
}

func (s closingStore) Close() error { return s.c.Close() }

// CloseKeyStore releases what a store from OpenKeyStore holds (a token
// session, an agent connection); file stores hold nothing.
func CloseKeyStore(ks keystore.Store) error {
	if c, ok := ks.(interface{ Close() error }); ok {
		return c.Close()
	}
	return nil
}

// NonExtractable reports whether the key a store holds cannot be read out
// (true for a PKCS#11 key the token marks so), for status.
func NonExtractable(ks keystore.Store) (bool, error) {
	switch w := ks.(type) {
	case tokenKey:
		ks = w.Store
	case closingStore:
		ks = w.Store
	case keystore.InitiatorOnly:
		ks = w.Store
	}
	if k, ok := ks.(interface{ NonExtractable() (bool, error) }); ok {
		return k.NonExtractable()
	}
	return false, nil
}

// rotation is a key made to replace the current one: Commit retires the
// old key and returns the reference of the new one; Abort forgets the new.
type rotation struct {
	next   keystore.Store
	ref    string
	commit func() error
	abort  func()
}

// prepareRotation makes the next key where the current one lives: a new
// file beside a file key, a new object (slot) on the same token for a
// PKCS#11 key.
func prepareRotation(ref string) (*rotation, error) {
	switch {
	case strings.HasPrefix(ref, "file:"):
		path := strings.TrimPrefix(ref, "file:")
		next := path + ".next"
		os.Remove(next) // a rotation that died half-way
		ks, err := keystore.CreateFile(next)
		if err != nil {
			return nil, err
		}
		return &rotation{next: ks, ref: ref,
			commit: func() error { return os.Rename(next, path) }, // the old key is gone with it
			abort:  func() { os.Remove(next) },
		}, nil
	case strings.HasPrefix(ref, "pkcs11:"):
		u, tok, err := openToken(ref)
		if err != nil {
			return nil, err
		}
		oldLabel, newLabel := u.Object, nextSlot(u.Object)
		tok.Delete(newLabel) // a rotation that died half-way
		k, err := tok.Generate(newLabel)
		if err != nil {
			tok.Close()
			return nil, err
		}
		nu := u
		nu.Object = newLabel
		return &rotation{next: tokenKey{InitiatorOnly: keystore.InitiatorOnly{Store: k}, tok: tok}, ref: nu.String(),
			commit: func() error { return tok.Delete(oldLabel) },
			abort:  func() { tok.Delete(newLabel); tok.Close() },
		}, nil
	}
	return nil, fmt.Errorf("agent: rotate: key store %q does not rotate here (file: and pkcs11: do)", ref)
}

// nextSlot names the object after label: wg → wg.1 → wg.2 …
func nextSlot(label string) string {
	if i := strings.LastIndexByte(label, '.'); i >= 0 {
		if n, err := strconv.Atoi(label[i+1:]); err == nil && n >= 0 {
			return label[:i] + "." + strconv.Itoa(n+1)
		}
	}
	return label + ".1"
}
