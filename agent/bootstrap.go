// SPDX-License-Identifier: Apache-2.0

package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/wirefleet/wirefleet/controlplane/api/apiv1"
	"github.com/wirefleet/wirefleet/controlplane/arcapi/arcwire"
	"github.com/wirefleet/wirefleet/keyproof"
	"github.com/wirefleet/wirefleet/keystore"
	"github.com/wirefleet/wirefleet/wgkey"
)

// BootstrapOptions are the inputs of Bootstrap.
type BootstrapOptions struct {
	Server     string // base URL of wirefleetd's API, e.g. https://fleet.example.com
	AuthKey    string
	ConfigPath string
	// KeyRef names the key store; default "file:<config dir>/agent.key".
	KeyRef string
	Name   string // optional SIM name
	Client *http.Client
}

// Bootstrap obtains (or refreshes) the device's SIM: the key pair is made
// on the device, in its key store, and only the public key is sent, with
// a proof (a DH with the platform's challenge key, made in the key store)
// that the device holds it. Running it again with the same key keeps the
// SIM.
func Bootstrap(ctx context.Context, o BootstrapOptions) (*Config, error) {
	if o.Server == "" || o.AuthKey == "" {
		return nil, fmt.Errorf("agent: bootstrap needs a server and an auth key")
	}
	o = o.withDefaults()
	ks, proof, err := provenKey(ctx, o)
	if err != nil {
		return nil, err
	}
	defer CloseKeyStore(ks)
	body, _ := json.Marshal(apiv1.BootstrapRequest{AuthKey: o.AuthKey, PublicKey: ks.PublicKey().String(), Name: o.Name, KeyProof: proof})
	var raw json.RawMessage
	if err := post(ctx, o, "/api/v1/bootstrap", body, nil, http.StatusOK, &raw); err != nil {
		return nil, err
	}
	return o.saveAnswer(raw)
}

// provenKey opens (or creates) the key store o.KeyRef names and answers
// the platform's key-proof challenge with it; the caller closes the
// store. Every bootstrap proves the device holds its key: the platform
// needs it to return a SIM already registered for the key (a retry, or a
// config rebuilt after loss), and checks it for a new one too.
func provenKey(ctx context.Context, o BootstrapOptions) (keystore.Store, *keyproof.Reply, error) {
	ks, err := CreateKeyStore(o.KeyRef)
	if err != nil {
		return nil, nil, err
	}
	var ch keyproof.Challenge
	if err := postJSON(ctx, o, "/api/v1/key-proof/challenge", struct{}{}, http.StatusCreated, &ch); err != nil {
		CloseKeyStore(ks)
		return nil, nil, err
	}
	proof, err := keyproof.Answer(ctx, ks, keyproof.Statement{Purpose: keyproof.Bootstrap, Nonce: ch.Nonce, ServerKey: ch.ServerKey})
	if err != nil {
		CloseKeyStore(ks)
		return nil, nil, fmt.Errorf("agent: answering the key-proof challenge with %s: %w", o.KeyRef, err)
	}
	return ks, &keyproof.Reply{Nonce: ch.Nonce, Proof: proof}, nil
}

// withDefaults fills the key reference and HTTP client.
func (o BootstrapOptions) withDefaults() BootstrapOptions {
	if o.KeyRef == "" {
		o.KeyRef = "file:" + filepath.Join(filepath.Dir(o.ConfigPath), "agent.key")
	}
	if o.Client == nil {
		o.Client = defaultClient
	}
	return o
}

// saveAnswer turns a bootstrap answer (auth key or attestation) into the
// config and saves it.
func (o BootstrapOptions) saveAnswer(raw []byte) (*Config, error) {
	var ans apiv1.BootstrapResponse
	if err := json.Unmarshal(raw, &ans); err != nil {
		return nil, fmt.Errorf("agent: bootstrap answer: %w", err)
	}
	c := &Config{
		Server: o.Server, SIMID: ans.SIM.ID, IMSI: ans.SIM.IMSI,
		GatewayEndpoint: ans.Session.Endpoint, GatewayPublicKey: ans.Session.GatewayPublicKey,
		KeyRef: o.KeyRef,
	}
	var err error
	if c.Address, err = netip.ParsePrefix(ans.Session.Address); err != nil {
		return nil, fmt.Errorf("agent: bootstrap answer: address %q: %w", ans.Session.Address, err)
	}
	if ans.Session.Address6 != "" {
		if c.Address6, err = netip.ParsePrefix(ans.Session.Address6); err != nil {
			return nil, fmt.Errorf("agent: bootstrap answer: address6 %q: %w", ans.Session.Address6, err)
		}
	}
	for _, s := range ans.Session.AllowedIPs {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return nil, fmt.Errorf("agent: bootstrap answer: allowed IP %q: %w", s, err)
		}
		c.AllowedIPs = append(c.AllowedIPs, p)
	}
	if err := c.validate(); err != nil {
		return nil, fmt.Errorf("agent: bootstrap answer: %w", err)
	}
	if err := c.Save(o.ConfigPath); err != nil {
		return nil, err
	}
	return c, nil
}

// BootstrapNetwork obtains the SIM through the network-attested route: the
// device's source address (in an operator-declared trusted network, such as
// a private APN) is its credential, so no auth key is needed. The platform
// generates the key in that flow; it is written to the key file (0600) and
// never stored by the platform. o.AuthKey is ignored.
func BootstrapNetwork(ctx context.Context, o BootstrapOptions) (*Config, error) {
	if o.Server == "" {
		return nil, fmt.Errorf("agent: bootstrap needs a server")
	}
	if o.KeyRef == "" {
		o.KeyRef = "file:" + filepath.Join(filepath.Dir(o.ConfigPath), "agent.key")
	}
	keyPath, ok := strings.CutPrefix(o.KeyRef, "file:")
	if !ok {
		return nil, fmt.Errorf("agent: network bootstrap delivers the key itself: it needs a file key store, not %q", o.KeyRef)
	}
	if o.Client == nil {
		o.Client = &http.Client{Timeout: 30 * time.Second}
	}
	var raw json.RawMessage
	if err := post(ctx, o, "/v1/provisioning/soracom/arc/bootstrap", []byte("{}"), nil, http.StatusOK, &raw); err != nil {
		return nil, err
	}
	var s arcwire.Session // the network-attested route answers in the Arc shape
	if err := json.Unmarshal(raw, &s); err != nil {
		return nil, fmt.Errorf("agent: network bootstrap answer: %w", err)
	}
	priv, err := wgkey.ParsePrivate(s.ClientPrivateKey)
	if err != nil {
		return nil, fmt.Errorf("agent: network bootstrap answer: private key: %w", err)
	}
	c := &Config{Server: o.Server, GatewayEndpoint: s.ServerEndpoint, KeyRef: o.KeyRef}
	if c.GatewayPublicKey, err = wgkey.ParsePublic(s.ServerPublicKey); err != nil {
		return nil, fmt.Errorf("agent: network bootstrap answer: server key: %w", err)
	}
	addr, err := netip.ParseAddr(s.ClientIPAddress)
	if err != nil {
		return nil, fmt.Errorf("agent: network bootstrap answer: address: %w", err)
	}
	c.Address = netip.PrefixFrom(addr, addr.BitLen())
	for _, a := range s.AllowedIPs {
		p, err := netip.ParsePrefix(a)
		if err != nil {
			return nil, fmt.Errorf("agent: network bootstrap answer: allowed IP %q: %w", a, err)
		}
		c.AllowedIPs = append(c.AllowedIPs, p)
	}
	if err := c.validate(); err != nil {
		return nil, fmt.Errorf("agent: network bootstrap answer: %w", err)
	}
	// Each call brings a new key (the old one is retired by the platform):
	// replace the key file atomically.
	if err := writeKeyFile(keyPath, priv); err != nil {
		return nil, err
	}
	if err := c.Save(o.ConfigPath); err != nil {
		return nil, err
	}
	return c, nil
}

func writeKeyFile(path string, k wgkey.Private) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	tmp := path + ".new"
	if err := os.WriteFile(tmp, []byte(k.Base64()+"\n"), 0o600); err != nil {
		return fmt.Errorf("agent: writing key: %w", err)
	}
	return os.Rename(tmp, path)
}
