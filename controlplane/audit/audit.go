// SPDX-License-Identifier: Apache-2.0

// Package audit checks the fleet's configuration against the store and
// reports findings with a severity: what an attacker would look for before
// any packet is sent (shared or weak keys, standing credentials, wide-open
// groups, refused devices that keep trying).
package audit

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/wirefleet/wirefleet/controlplane/store"
	"github.com/wirefleet/wirefleet/fleet"
	"github.com/wirefleet/wirefleet/internal/clock"
	"github.com/wirefleet/wirefleet/wgkey"
)

// Severities of findings.
const (
	High   = "high"
	Medium = "medium"
	Low    = "low"
)

// Finding is one audit result.
type Finding struct {
	Check    string `json:"check"`
	Severity string `json:"severity"`
	Object   string `json:"object"` // the SIM, auth key or group concerned
	Detail   string `json:"detail"`
}

// Options tune the checks.
type Options struct {
	// Clock is the audit's time; default clock.Real.
	Clock clock.Clock
	// LongLivedKey: a reusable auth key valid longer than this is a standing
	// credential. Default 90 days.
	LongLivedKey time.Duration
	// RetryWindow: a suspended or terminated SIM with refused handshakes in
	// this window is still trying. Default 24 hours.
	RetryWindow time.Duration
	// MaxMappingDuration is the remote-access policy's longest mapping
	// (DefaultMaxMappingDuration when zero).
	MaxMappingDuration time.Duration
}

// Run reads the whole fleet page by page and returns the findings.
func Run(ctx context.Context, st store.Reader, o Options) ([]Finding, error) {
	if o.Clock == nil {
		o.Clock = clock.Real{}
	}
	if o.LongLivedKey == 0 {
		o.LongLivedKey = 90 * 24 * time.Hour
	}
	if o.RetryWindow == 0 {
		o.RetryWindow = 24 * time.Hour
	}
	now := o.Clock.Now()
	var out []Finding
	add := func(check, sev, obj, format string, args ...any) {
		out = append(out, Finding{Check: check, Severity: sev, Object: obj, Detail: fmt.Sprintf(format, args...)})
	}

	// SIMs: keys shared between SIMs, low-order keys, refused SIMs trying,
	// keys older than their group's rotation policy, overdue rotations.
	owners := map[wgkey.Public]string{}
	groups := map[string]*fleet.Group{}
	groupOf := func(id string) (*fleet.Group, error) {
		if g, ok := groups[id]; ok || id == "" {
			return g, nil
		}
		g, err := st.Group(ctx, id)
		if errors.Is(err, store.ErrNotFound) {
			groups[id] = nil
			return nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("audit: group %s: %w", id, err)
		}
		groups[id] = &g
		return &g, nil
	}
	var cursor string
	for {
		page, err := st.ListSIMs(ctx, store.SIMFilter{PageRequest: store.PageRequest{Limit: store.MaxLimit, Cursor: cursor}})
		if err != nil {
			return nil, fmt.Errorf("audit: listing SIMs: %w", err)
		}
		for _, s := range page.Items {
			for _, k := range []wgkey.Public{s.PublicKey, s.NextPublicKey} {
				if k.IsZero() {
					continue
				}
				// The store refuses a key already in use (current or next), so
				// this finds only data that bypassed it (an import, a restore).
				if other, ok := owners[k]; ok && other != s.ID {
					add("shared-key", High, s.ID, "the WireGuard key of this SIM is also SIM %s's: one of them is a copy", other)
				}
				owners[k] = s.ID
				switch {
				case k.LowOrder():
					add("low-order-key", High, s.ID, "the WireGuard public key is a low-order point: no handshake with it is secure")
				case k.Validate() != nil:
					add("non-canonical-key", High, s.ID, "the WireGuard public key is not in canonical form: another spelling of some other key, which lets one key be registered twice")
				}
			}
			if s.Status == fleet.StatusActive && !s.PublicKey.IsZero() {
				if !s.RotateBy.IsZero() && !now.Before(s.RotateBy) {
					add("rotation-overdue", High, s.ID, "a key rotation was required by %s and the key was not replaced: the gateway refuses it", s.RotateBy.Format(time.RFC3339))
				}
				g, err := groupOf(s.GroupID)
				if err != nil {
					return nil, err
				}
				if g != nil && g.Settings.Security.KeyMaxAgeDays > 0 && !s.KeySet.IsZero() {
					if age := now.Sub(s.KeySet); age > time.Duration(g.Settings.Security.KeyMaxAgeDays)*24*time.Hour {
						add("key-age", Medium, s.ID, "the key is %d days old; group %q rotates keys every %d days", int(age.Hours()/24), g.Name, g.Settings.Security.KeyMaxAgeDays)
					}
				}
			}
			if s.Status != fleet.StatusActive {
				ev, err := st.ListEvents(ctx, store.EventFilter{ObjectID: s.ID, Action: "device.handshake_rejected", Since: now.Add(-o.RetryWindow), PageRequest: store.PageRequest{Limit: 1}})
				if err != nil {
					return nil, fmt.Errorf("audit: events: %w", err)
				}
				if len(ev.Items) > 0 {
					add("refused-sim-trying", Medium, s.ID, "the SIM is %s but its key tried to connect within %v (last %s)", s.Status, o.RetryWindow, ev.Items[0].Time.Format(time.RFC3339))
				}
			}
		}
		if page.Next == "" {
			break
		}
		cursor = page.Next
	}

	// Auth keys: reusable standing credentials.
	cursor = ""
	for {
		page, err := st.ListAuthKeys(ctx, store.PageRequest{Limit: store.MaxLimit, Cursor: cursor})
		if err != nil {
			return nil, fmt.Errorf("audit: listing auth keys: %w", err)
		}
		for _, k := range page.Items {
			if k.Revoked || !k.Expires.After(now) {
				continue
			}
			if k.MaxUses == 0 && k.Expires.Sub(now) > o.LongLivedKey {
				add("long-lived-reusable-authkey", Medium, k.ID, "reusable without a use limit and valid until %s: a standing bootstrap credential", k.Expires.Format(time.RFC3339))
			}
		}
		if page.Next == "" {
			break
		}
		cursor = page.Next
	}

	// Groups: device-to-device wide open, allow-lists that allow everything,
	// Arc re-keys on the shared auth key alone.
	cursor = ""
	for {
		page, err := st.ListGroups(ctx, store.PageRequest{Limit: store.MaxLimit, Cursor: cursor})
		if err != nil {
			return nil, fmt.Errorf("audit: listing groups: %w", err)
		}
		for _, g := range page.Items {
			if g.Settings.ArcRekeyWithAuthKey {
				add("arc-rekey-with-authkey", High, g.ID, "group %q lets any holder of an auth key re-key the SIMs it bootstrapped without proving it holds their keys: one stolen device can take over the others", g.Name)
			}
			d := g.Settings.DeviceToDevice
			if d.Mode != fleet.D2DOff && d.Mode != "" && len(d.Ports) == 0 {
				add("d2d-all-ports", Low, g.ID, "group %q lets its devices reach each other on every port", g.Name)
			}
			for _, a := range g.Settings.Security.AllowList {
				if p, err := netip.ParsePrefix(a); err == nil && p.Bits() == 0 {
					add("allow-list-open", Medium, g.ID, "group %q's allow-list contains %s: it allows everything", g.Name, a)
				}
			}
		}
		if page.Next == "" {
			break
		}
		cursor = page.Next
	}

	if err := checkMappings(ctx, st, o, now, add); err != nil {
		return nil, err
	}
	return out, nil
}
