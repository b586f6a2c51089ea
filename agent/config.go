// SPDX-License-Identifier: Apache-2.0

// Package agent is the device side of wirefleet: it obtains a SIM
// (bootstrap), keeps the session in a config file, and brings the tunnel
// up with our engine on a kernel TUN or, without privileges, on a userspace
// network stack.
package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"

	"github.com/wirefleet/wirefleet/wgkey"
)

// DefaultConfigPath is where the agent keeps its config unless told
// otherwise.
const DefaultConfigPath = "/etc/wirefleet/agent.json"

// Config is what the agent knows about its SIM and session. It holds no
// private key: KeyRef names the key store.
type Config struct {
	Server  string       `json:"server"`
	SIMID   string       `json:"simId"`
	IMSI    string       `json:"imsi"`
	Address netip.Prefix `json:"address"` // overlay address, /32
	// Address6 is the IPv6 overlay address, a /128 (absent when the
	// fleet has no IPv6, or the session came from the Arc API).
	Address6         netip.Prefix   `json:"address6,omitzero"`
	GatewayEndpoint  string         `json:"gatewayEndpoint"`  // host:port, re-resolved on failure
	GatewayPublicKey wgkey.Public   `json:"gatewayPublicKey"` // base64
	AllowedIPs       []netip.Prefix `json:"allowedIPs"`
	// KeyRef names the key store: "file:<path>" for a 0600 key file.
	KeyRef string `json:"keyRef"`
}

// LoadConfig reads a config file.
func LoadConfig(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("agent: reading config: %w", err)
	}
	var c Config
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("agent: config %s: %w", path, err)
	}
	if err := c.validate(); err != nil {
		return nil, fmt.Errorf("agent: config %s: %w", path, err)
	}
	return &c, nil
}

func (c *Config) validate() error {
	switch {
	case c.GatewayEndpoint == "":
		return errors.New("no gatewayEndpoint")
	case c.GatewayPublicKey.IsZero():
		return errors.New("no gatewayPublicKey")
	case !c.Address.IsValid():
		return errors.New("no address")
	case c.Address6.IsValid() && (!c.Address6.Addr().Is6() || c.Address6.Addr().Is4In6()):
		return fmt.Errorf("address6 %s is not an IPv6 address", c.Address6)
	case c.KeyRef == "":
		return errors.New("no keyRef")
	}
	return nil
}

// Addresses returns the tunnel's own addresses: IPv4, then IPv6 if any.
func (c *Config) Addresses() []netip.Prefix {
	if c.Address6.IsValid() {
		return []netip.Prefix{c.Address, c.Address6}
	}
	return []netip.Prefix{c.Address}
}

// Save writes the config with mode 0600, atomically (write and rename), so a
// crash never leaves half a config.
func (c *Config) Save(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".agent-*.json")
	if err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("agent: %w", err)
	}
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("agent: writing config: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	return os.Rename(tmp.Name(), path)
}
