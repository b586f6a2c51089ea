// SPDX-License-Identifier: Apache-2.0

package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/wirefleet/wirefleet/fleet"
)

// ParsePrefixes reads a comma-separated list of CIDR prefixes (the
// --advertise-routes flag).
func ParsePrefixes(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		p, err := netip.ParsePrefix(f)
		if err != nil {
			return nil, fmt.Errorf("agent: %q is not a CIDR prefix", f)
		}
		if p != p.Masked() {
			return nil, fmt.Errorf("agent: %s has host bits set (want %s)", p, p.Masked())
		}
		out = append(out, p)
	}
	return out, nil
}

// AdvertiseRoutes tells the platform, through the tunnel, which LAN
// prefixes are behind this device. They take effect once an operator
// approves them; the answer says which are approved and which wait.
func (t *Tunnel) AdvertiseRoutes(ctx context.Context, prefixes []netip.Prefix) ([]fleet.Route, error) {
	body, _ := json.Marshal(map[string][]netip.Prefix{"prefixes": prefixes})
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, MetadataURL+"/v1/subscriber/routes", bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := t.tunnelHTTP().Do(req)
	if err != nil {
		return nil, fmt.Errorf("agent: advertising routes: %w", err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("agent: the platform refused the advertised routes: %d %s", resp.StatusCode, strings.TrimSpace(string(raw)))
	}
	var out struct {
		Routes []fleet.Route `json:"routes"`
	}
	if err := json.Unmarshal(raw, &out); err != nil {
		return nil, fmt.Errorf("agent: advertising routes: answer: %w", err)
	}
	return out.Routes, nil
}

// KeepAdvertising advertises prefixes until the platform has taken them
// (the tunnel may need a moment to come up), then logs which wait for an
// operator. It returns when done or when ctx ends.
func (t *Tunnel) KeepAdvertising(ctx context.Context, prefixes []netip.Prefix) {
	for wait := time.Second; ; wait = min(2*wait, time.Minute) {
		rs, err := t.AdvertiseRoutes(ctx, prefixes)
		if err == nil {
			for _, r := range rs {
				t.log.Info("route advertised", "prefix", r.Prefix, "status", r.Status, "mapped", r.Mapped)
			}
			return
		}
		t.log.Warn("advertising routes", "err", err, "retry_in", wait)
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

// RefreshAllowedIPs asks the platform, through the tunnel, what this
// device's session routes into the tunnel now (a LAN approved behind
// another SIM since the tunnel came up, a removed one) and applies a
// change without a reconnect: the engine's allowed IPs, the TUN's routes
// in kernel mode, and the saved config. It reports whether anything
// changed.
func (t *Tunnel) RefreshAllowedIPs(ctx context.Context) (bool, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, MetadataURL+"/v1/subscriber/session", nil)
	if err != nil {
		return false, err
	}
	resp, err := t.tunnelHTTP().Do(req)
	if err != nil {
		return false, fmt.Errorf("agent: reading the session: %w", err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		return false, fmt.Errorf("agent: reading the session: %d %s", resp.StatusCode, strings.TrimSpace(string(raw)))
	}
	var s struct {
		AllowedIPs []string `json:"allowedIPs"`
	}
	if err := json.Unmarshal(raw, &s); err != nil {
		return false, fmt.Errorf("agent: reading the session: %w", err)
	}
	next := make([]netip.Prefix, 0, len(s.AllowedIPs))
	for _, a := range s.AllowedIPs {
		p, err := netip.ParsePrefix(a)
		if err != nil {
			return false, fmt.Errorf("agent: the session names %q, not a prefix", a)
		}
		next = append(next, p.Masked())
	}
	t.cfgMu.Lock()
	defer t.cfgMu.Unlock()
	old := t.cfg.AllowedIPs
	if samePrefixes(old, next) {
		return false, nil
	}
	if !t.opts.Userspace {
		if err := replaceRoutes(t.opts.TUNName, t.cfg.Addresses(), old, next); err != nil {
			return false, err
		}
	}
	t.eng.SetAllowedIPs(t.gateway, next)
	t.cfg.AllowedIPs = next
	if t.opts.ConfigPath != "" {
		if err := t.cfg.Save(t.opts.ConfigPath); err != nil {
			return true, fmt.Errorf("agent: the new routes are in use but the config could not be saved: %w", err)
		}
	}
	t.log.Info("session routes changed", "allowed_ips", next)
	return true, nil
}

// samePrefixes reports whether a and b hold the same prefixes, in any order.
func samePrefixes(a, b []netip.Prefix) bool {
	if len(a) != len(b) {
		return false
	}
	seen := make(map[netip.Prefix]int, len(a))
	for _, p := range a {
		seen[p.Masked()]++
	}
	for _, p := range b {
		if seen[p.Masked()]--; seen[p.Masked()] < 0 {
			return false
		}
	}
	return true
}
