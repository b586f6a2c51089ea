package agent

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
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
		u, err := pkcs11store.ParseURI(ref)
		if err != nil {
			return nil, err
		}
		cfg, err := u.Config(DefaultPKCS11Module)
		if err != nil {
			return nil, err
		}
		tok, err := pkcs11store.OpenToken(cfg)
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
		return keystore.InitiatorOnly{Store: k}, nil
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
		return keystore.InitiatorOnly{Store: c}, nil
	}
	return nil, fmt.Errorf("agent: unsupported key reference %q (want file:, pkcs11: or agent:)", ref)
}

// NonExtractable reports whether the key a store holds cannot be read out
// (true for a PKCS#11 key the token marks so), for status.
func NonExtractable(ks keystore.Store) (bool, error) {
	if io, ok := ks.(keystore.InitiatorOnly); ok {
		ks = io.Store
	}
	if k, ok := ks.(interface{ NonExtractable() (bool, error) }); ok {
		return k.NonExtractable()
	}
	return false, nil
}
