package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/wirefleet/wirefleet/fleet"
)

// loadOrCreateGatewayKey reads the gateway's private key (base64, as wg
// genkey writes it) or creates it with mode 0600. It stands in until the
// gateway owns its key (possibly in a key store) and sets the public key.
func loadOrCreateGatewayKey(path string) (fleet.Key, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		k, err := fleet.ParseKey(strings.TrimSpace(string(b)))
		if err != nil {
			return k, fmt.Errorf("%s: %w", path, err)
		}
		return k, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return fleet.Key{}, err
	}
	k, err := fleet.GeneratePrivateKey()
	if err != nil {
		return k, err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return k, err
	}
	if _, err := f.WriteString(k.String() + "\n"); err != nil {
		f.Close()
		return k, err
	}
	return k, f.Close()
}
