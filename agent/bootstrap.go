package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"path/filepath"
	"strings"
	"time"

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

// bootstrapAnswer is the part of POST /api/v1/bootstrap's answer the agent
// uses.
type bootstrapAnswer struct {
	SIM struct {
		ID   string `json:"id"`
		IMSI string `json:"imsi"`
	} `json:"sim"`
	Session struct {
		Endpoint         string       `json:"endpoint"`
		GatewayPublicKey wgkey.Public `json:"gatewayPublicKey"`
		Address          string       `json:"address"`
		AllowedIPs       []string     `json:"allowedIPs"`
	} `json:"session"`
}

// apiError is the API's error body.
type apiError struct {
	Code    string `json:"code"`
	Field   string `json:"field"`
	Message string `json:"message"`
}

// Bootstrap obtains (or refreshes) the device's SIM: the key pair is made
// on the device, in its key store, and only the public key is sent. Running
// it again with the same key keeps the SIM.
func Bootstrap(ctx context.Context, o BootstrapOptions) (*Config, error) {
	if o.Server == "" || o.AuthKey == "" {
		return nil, fmt.Errorf("agent: bootstrap needs a server and an auth key")
	}
	if o.KeyRef == "" {
		o.KeyRef = "file:" + filepath.Join(filepath.Dir(o.ConfigPath), "agent.key")
	}
	if o.Client == nil {
		o.Client = &http.Client{Timeout: 30 * time.Second}
	}
	ks, err := CreateKeyStore(o.KeyRef)
	if err != nil {
		return nil, err
	}
	body, _ := json.Marshal(map[string]any{"authKey": o.AuthKey, "publicKey": ks.PublicKey().String(), "name": o.Name})
	url := strings.TrimRight(o.Server, "/") + "/api/v1/bootstrap"
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := o.Client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("agent: bootstrap: %w", err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("agent: bootstrap: reading answer: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		var ae apiError
		if json.Unmarshal(raw, &ae) == nil && ae.Code != "" {
			return nil, fmt.Errorf("agent: bootstrap refused (%d %s, field %q): %s", resp.StatusCode, ae.Code, ae.Field, ae.Message)
		}
		return nil, fmt.Errorf("agent: bootstrap refused: HTTP %d", resp.StatusCode)
	}
	var ans bootstrapAnswer
	if err := json.Unmarshal(raw, &ans); err != nil {
		return nil, fmt.Errorf("agent: bootstrap answer: %w", err)
	}
	c := &Config{
		Server: o.Server, SIMID: ans.SIM.ID, IMSI: ans.SIM.IMSI,
		GatewayEndpoint: ans.Session.Endpoint, GatewayPublicKey: ans.Session.GatewayPublicKey,
		KeyRef: o.KeyRef,
	}
	if c.Address, err = netip.ParsePrefix(ans.Session.Address); err != nil {
		return nil, fmt.Errorf("agent: bootstrap answer: address %q: %w", ans.Session.Address, err)
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
