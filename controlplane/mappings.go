// SPDX-License-Identifier: Apache-2.0

package controlplane

import (
	"context"
	"errors"
	"math/rand/v2"
	"net/netip"
	"slices"
	"time"

	"github.com/wirefleet/wirefleet/controlplane/store"
	"github.com/wirefleet/wirefleet/fleet"
)

// RemotePolicy configures remote access (port mappings). The zero value
// means remote access is off: creating a mapping is refused.
type RemotePolicy struct {
	// Host is the public host name or address operators connect to.
	Host string
	// PortMin..PortMax is the public port range mappings get ports from.
	PortMin, PortMax int
	// DefaultDuration (1 h when zero) and MaxDuration (8 h when zero)
	// bound a mapping's lifetime.
	DefaultDuration, MaxDuration time.Duration
	// MaxConnections is the default and the most concurrent connections
	// per mapping (16 when zero).
	MaxConnections int
	// TLSFingerprint is the SHA-256 fingerprint of the certificate served
	// on TLS mappings, reported with them so clients can pin it.
	TLSFingerprint string
}

// Enabled reports whether mappings can be created.
func (p RemotePolicy) Enabled() bool { return p.PortMin > 0 && p.PortMax >= p.PortMin }

// Defaults of RemotePolicy.
const (
	DefaultMappingDuration       = time.Hour
	DefaultMaxMappingDuration    = 8 * time.Hour
	DefaultMappingMaxConnections = 16
	maxAllowedSources            = 64
)

// WithDefaults returns p with its zero durations and limits filled in.
func (p RemotePolicy) WithDefaults() RemotePolicy {
	if p.MaxDuration <= 0 {
		p.MaxDuration = DefaultMaxMappingDuration
	}
	if p.DefaultDuration <= 0 {
		p.DefaultDuration = min(DefaultMappingDuration, p.MaxDuration)
	}
	if p.MaxConnections <= 0 {
		p.MaxConnections = DefaultMappingMaxConnections
	}
	return p
}

// MappingSpec describes a port mapping to create.
type MappingSpec struct {
	SIMID string
	Port  int
	// Duration is the lifetime; zero is the policy's default.
	Duration time.Duration
	// AllowedSources must not be empty: the API cannot know the caller's
	// own address behind proxies, so the operator names it (0.0.0.0/0 to
	// accept anyone, which the audit reports).
	AllowedSources []netip.Prefix
	TLS            bool
	// MaxConnections: zero is the policy's maximum.
	MaxConnections int
	// Target, if set, is the SIM's own IPv6 address, or a host on one of
	// the SIM's approved LANs (either family), as the
	// fleet reaches it (mapped address on a mapped LAN).
	Target netip.Addr
}

func (s *Service) mappingView(m fleet.Mapping) fleet.MappingView {
	v := fleet.MappingView{Mapping: m}
	if m.TLS {
		v.TLSFingerprint = s.cfg.Remote.TLSFingerprint
	}
	return v
}

// CreateMapping opens remote access to a port of a SIM's device.
func (s *Service) CreateMapping(ctx context.Context, a Actor, sp MappingSpec) (fleet.MappingView, error) {
	if err := require(a, fleet.RoleOperator); err != nil {
		return fleet.MappingView{}, err
	}
	pol := s.cfg.Remote.WithDefaults()
	if !pol.Enabled() {
		return fleet.MappingView{}, fleet.Errorf(fleet.CodeBadState, "", "remote access is not enabled on this platform (wirefleetd --remote-ports)")
	}
	if sp.SIMID == "" {
		return fleet.MappingView{}, fleet.Errorf(fleet.CodeRequired, "simId", "required")
	}
	if sp.Port < 1 || sp.Port > 65535 {
		return fleet.MappingView{}, fleet.Errorf(fleet.CodeInvalid, "port", "must be a TCP port, 1 to 65535")
	}
	switch {
	case sp.Duration == 0:
		sp.Duration = pol.DefaultDuration
	case sp.Duration < time.Second || sp.Duration > pol.MaxDuration:
		return fleet.MappingView{}, fleet.Errorf(fleet.CodeInvalid, "durationSeconds", "must be between 1 and %d seconds", int64(pol.MaxDuration/time.Second))
	}
	if len(sp.AllowedSources) == 0 {
		return fleet.MappingView{}, fleet.Errorf(fleet.CodeRequired, "allowedSources", "name the source prefixes allowed to connect (0.0.0.0/0 for anyone)")
	}
	if len(sp.AllowedSources) > maxAllowedSources {
		return fleet.MappingView{}, fleet.Errorf(fleet.CodeInvalid, "allowedSources", "at most %d prefixes", maxAllowedSources)
	}
	sources := make([]netip.Prefix, len(sp.AllowedSources))
	for i, p := range sp.AllowedSources {
		if !p.IsValid() {
			return fleet.MappingView{}, fleet.Errorf(fleet.CodeInvalid, "allowedSources", "not a CIDR")
		}
		if p.Addr().Is4In6() && p.Bits() >= 96 {
			// ::ffff:a.b.c.d/n is the IPv4 prefix a.b.c.d/(n-96).
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		sources[i] = p.Masked()
	}
	switch {
	case sp.MaxConnections == 0:
		sp.MaxConnections = pol.MaxConnections
	case sp.MaxConnections < 0 || sp.MaxConnections > pol.MaxConnections:
		return fleet.MappingView{}, fleet.Errorf(fleet.CodeInvalid, "maxConnections", "must be between 1 and %d", pol.MaxConnections)
	}
	now := s.now()
	m := fleet.Mapping{ID: newID("map", now), SIMID: sp.SIMID, Port: sp.Port, Target: sp.Target, Host: pol.Host, AllowedSources: sources, TLS: sp.TLS,
		MaxConnections: sp.MaxConnections, Created: now, Expires: now.Add(sp.Duration), CreatedBy: a.String()}
	err := s.st.Update(ctx, func(tx store.Tx) error {
		sim, err := tx.SIM(ctx, sp.SIMID)
		if err != nil {
			return storeErr(err, "simId")
		}
		if sim.Status != fleet.StatusActive {
			return fleet.Errorf(fleet.CodeBadState, "simId", "the SIM is %s", sim.Status)
		}
		if sp.Target.IsValid() {
			rs, err := tx.SIMRoutes(ctx, sim.ID)
			if err != nil {
				return err
			}
			o6, err := s.overlay6In(ctx, tx)
			if err != nil {
				return err
			}
			own6 := sp.Target == o6.Addr(sim.Address) // the device itself, over IPv6
			if !own6 && !slices.ContainsFunc(rs, func(r fleet.Route) bool { return r.Status == fleet.RouteApproved && r.Reach().Contains(sp.Target) }) {
				return fleet.Errorf(fleet.CodeInvalid, "target", "%s is on no approved LAN of SIM %s (give the address the fleet reaches it by)", sp.Target, sim.ID)
			}
		}
		// Several wirefleetd may allocate at once (PostgreSQL).
		if err := tx.Lock(ctx, "mappings"); err != nil {
			return err
		}
		used, err := tx.UsedPublicPorts(ctx, now)
		if err != nil {
			return err
		}
		// A random start: a port is not handed out again at once, so an
		// operator with a stale mapping does not reach another device.
		n := pol.PortMax - pol.PortMin + 1
		start := rand.IntN(n)
		m.PublicPort = 0
		for i := 0; i < n; i++ {
			if p := pol.PortMin + (start+i)%n; !used[p] {
				m.PublicPort = p
				break
			}
		}
		if m.PublicPort == 0 {
			return fleet.Errorf(fleet.CodeExhausted, "publicPort", "every public port of %d-%d is in use", pol.PortMin, pol.PortMax)
		}
		gone, err := tx.DeleteExpiredMappingsOnPort(ctx, m.PublicPort, now)
		if err != nil {
			return err
		}
		for _, id := range gone {
			if err := s.event(ctx, tx, System, "mapping.expire", "mapping", id, map[string]any{"publicPort": m.PublicPort}); err != nil {
				return err
			}
		}
		if err := tx.InsertMapping(ctx, m); err != nil {
			return err
		}
		tx.Publish(fleet.Change{Kind: fleet.ChangeMapping, ID: m.ID})
		return s.event(ctx, tx, a, "mapping.create", "mapping", m.ID, map[string]any{
			"simId": m.SIMID, "port": m.Port, "target": m.Target.String(), "publicPort": m.PublicPort, "allowedSources": prefixStrings(m.AllowedSources),
			"tls": m.TLS, "expires": m.Expires.Format(time.RFC3339), "maxConnections": m.MaxConnections})
	})
	if err != nil {
		return fleet.MappingView{}, storeErr(err, "publicPort")
	}
	s.log.Info("mapping created", "mapping", m.ID, "sim", m.SIMID, "port", m.Port, "public_port", m.PublicPort, "expires", m.Expires, "actor", a.String())
	return s.mappingView(m), nil
}

func prefixStrings(ps []netip.Prefix) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.String()
	}
	return out
}

// GetMapping returns a mapping.
func (s *Service) GetMapping(ctx context.Context, a Actor, id string) (fleet.MappingView, error) {
	if err := require(a, fleet.RoleViewer); err != nil {
		return fleet.MappingView{}, err
	}
	m, err := s.st.Mapping(ctx, id)
	if err != nil {
		return fleet.MappingView{}, storeErr(err, "id")
	}
	return s.mappingView(m), nil
}

// ListMappings lists mappings, optionally of one SIM.
func (s *Service) ListMappings(ctx context.Context, a Actor, f store.MappingFilter) (store.Page[fleet.MappingView], error) {
	if err := require(a, fleet.RoleViewer); err != nil {
		return store.Page[fleet.MappingView]{}, err
	}
	p, err := s.st.ListMappings(ctx, f)
	if err != nil {
		return store.Page[fleet.MappingView]{}, err
	}
	out := store.Page[fleet.MappingView]{Items: make([]fleet.MappingView, len(p.Items)), Next: p.Next}
	for i, m := range p.Items {
		out.Items[i] = s.mappingView(m)
	}
	return out, nil
}

// DeleteMapping ends a mapping: every gateway closes its listener and its
// open connections.
func (s *Service) DeleteMapping(ctx context.Context, a Actor, id string) error {
	if err := require(a, fleet.RoleOperator); err != nil {
		return err
	}
	err := s.st.Update(ctx, func(tx store.Tx) error {
		m, err := tx.Mapping(ctx, id)
		if err != nil {
			return err
		}
		if err := tx.DeleteMapping(ctx, id); err != nil {
			return err
		}
		tx.Publish(fleet.Change{Kind: fleet.ChangeMapping, ID: id})
		return s.event(ctx, tx, a, "mapping.delete", "mapping", id, map[string]any{"simId": m.SIMID, "publicPort": m.PublicPort})
	})
	return storeErr(err, "id")
}

// ExpireMapping removes a mapping whose time is up and records it, once:
// with several gateways sharing the store, the first one to get here wins
// and the others find nothing (expired false).
func (s *Service) ExpireMapping(ctx context.Context, id string) (expired bool, err error) {
	now := s.now()
	err = s.st.Update(ctx, func(tx store.Tx) error {
		// Every wirefleetd gets here at expiry: one deletes and records.
		if err := tx.Lock(ctx, "mappings"); err != nil {
			return err
		}
		m, err := tx.Mapping(ctx, id)
		if errors.Is(err, store.ErrNotFound) {
			return nil
		} else if err != nil {
			return err
		}
		if m.Live(now) {
			return nil
		}
		if err := tx.DeleteMapping(ctx, id); err != nil {
			return err
		}
		expired = true
		tx.Publish(fleet.Change{Kind: fleet.ChangeMapping, ID: id})
		return s.event(ctx, tx, System, "mapping.expire", "mapping", id, map[string]any{"simId": m.SIMID, "publicPort": m.PublicPort})
	})
	return expired, err
}

// RecordMappingEvent adds what happened on a mapping's public port to the
// audit trail: "mapping.connect", "mapping.close", "mapping.deny". The
// actor is the remote source ("remote:<address>").
func (s *Service) RecordMappingEvent(ctx context.Context, mappingID, source, action string, details map[string]any) error {
	switch action {
	case "mapping.connect", "mapping.close", "mapping.deny":
	default:
		return fleet.Errorf(fleet.CodeInvalid, "action", "not a mapping event: %q", action)
	}
	return s.st.Update(ctx, func(tx store.Tx) error {
		return s.event(ctx, tx, Actor{Kind: "remote", ID: source}, action, "mapping", mappingID, details)
	})
}
