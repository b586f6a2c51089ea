// SPDX-License-Identifier: Apache-2.0

package controlplane

import (
	"context"
	"encoding/binary"
	"errors"
	"net/netip"
	"slices"
	"sort"

	"github.com/wirefleet/wirefleet/controlplane/store"
	"github.com/wirefleet/wirefleet/fleet"
)

// RouteSpec is a LAN prefix to put behind a SIM.
type RouteSpec struct {
	Prefix netip.Prefix
	// Mapped is the prefix the fleet reaches the LAN by, chosen by the
	// operator (same size, inside the LAN pool). Map asks the platform to
	// allocate one instead. Neither: the route is unmapped.
	Mapped netip.Prefix
	Map    bool
	// Hosts names LAN hosts for the platform DNS (nil: keep a replaced
	// route's names).
	Hosts map[string]netip.Addr
}

// routesLock serialises route writes: the overlap check and the mapped
// prefix allocation read before they write.
const routesLock = "sim_routes"

// AddSIMRoute puts an approved route behind a SIM (an operator's act). A
// prefix the device advertised becomes approved with the spec's mapping.
func (s *Service) AddSIMRoute(ctx context.Context, a Actor, simID string, spec RouteSpec) (fleet.Route, error) {
	if err := require(a, fleet.RoleOperator); err != nil {
		return fleet.Route{}, err
	}
	var out fleet.Route
	err := s.st.Update(ctx, func(tx store.Tx) error {
		r, err := s.putRoute(ctx, tx, simID, spec, fleet.RouteByOperator, fleet.RouteApproved, false)
		if err != nil {
			return err
		}
		out = r
		return s.event(ctx, tx, a, "sim.route.add", "sim", simID, routeDetails(r))
	})
	return out, storeErr(err, "")
}

// SetRoutes adds one route per SIM in one transaction (the SORACOM bulk
// shape {"<simId>": "192.0.2.0/24"}): all or nothing.
func (s *Service) SetRoutes(ctx context.Context, a Actor, bySIM map[string]RouteSpec) ([]fleet.Route, error) {
	if err := require(a, fleet.RoleOperator); err != nil {
		return nil, err
	}
	if len(bySIM) > store.MaxLimit {
		return nil, fleet.Errorf(fleet.CodeInvalid, "", "at most %d SIMs at once", store.MaxLimit)
	}
	ids := make([]string, 0, len(bySIM))
	for id := range bySIM {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	var out []fleet.Route
	err := s.st.Update(ctx, func(tx store.Tx) error {
		for _, id := range ids {
			r, err := s.putRoute(ctx, tx, id, bySIM[id], fleet.RouteByOperator, fleet.RouteApproved, false)
			if err != nil {
				return err
			}
			if err := s.event(ctx, tx, a, "sim.route.add", "sim", id, routeDetails(r)); err != nil {
				return err
			}
			out = append(out, r)
		}
		return nil
	})
	return out, storeErr(err, "")
}

// ApproveSIMRoute approves a prefix the SIM's device advertised, with the
// spec's mapping (its Prefix is the advertised one).
func (s *Service) ApproveSIMRoute(ctx context.Context, a Actor, simID string, spec RouteSpec) (fleet.Route, error) {
	if err := require(a, fleet.RoleOperator); err != nil {
		return fleet.Route{}, err
	}
	var out fleet.Route
	err := s.st.Update(ctx, func(tx store.Tx) error {
		r, err := s.putRoute(ctx, tx, simID, spec, fleet.RouteByDevice, fleet.RouteApproved, true)
		if err != nil {
			return err
		}
		out = r
		return s.event(ctx, tx, a, "sim.route.approve", "sim", simID, routeDetails(r))
	})
	return out, storeErr(err, "")
}

// DeleteSIMRoute removes a route (approved or advertised).
func (s *Service) DeleteSIMRoute(ctx context.Context, a Actor, simID string, prefix netip.Prefix) error {
	if err := require(a, fleet.RoleOperator); err != nil {
		return err
	}
	err := s.st.Update(ctx, func(tx store.Tx) error {
		if err := tx.Lock(ctx, routesLock); err != nil {
			return err
		}
		if err := tx.DeleteRoute(ctx, simID, prefix.Masked()); err != nil {
			return storeErr(err, "prefix")
		}
		tx.Publish(fleet.Change{Kind: fleet.ChangeSIM, ID: simID})
		return s.event(ctx, tx, a, "sim.route.delete", "sim", simID, map[string]any{"prefix": prefix.String()})
	})
	return storeErr(err, "")
}

// SIMRoutes lists a SIM's routes.
func (s *Service) SIMRoutes(ctx context.Context, a Actor, simID string) ([]fleet.Route, error) {
	if err := require(a, fleet.RoleViewer); err != nil {
		return nil, err
	}
	if _, err := s.st.SIM(ctx, simID); err != nil {
		return nil, storeErr(err, "id")
	}
	rs, err := s.st.SIMRoutes(ctx, simID)
	if rs == nil {
		rs = []fleet.Route{}
	}
	return rs, storeErr(err, "")
}

// ListRoutes lists every SIM's routes.
func (s *Service) ListRoutes(ctx context.Context, a Actor, f store.RouteFilter) (store.Page[fleet.Route], error) {
	if err := require(a, fleet.RoleViewer); err != nil {
		return store.Page[fleet.Route]{}, err
	}
	p, err := s.st.ListRoutes(ctx, f)
	return p, storeErr(err, "")
}

// AdvertiseRoutes records the prefixes a SIM's device says are behind it
// (the agent's --advertise-routes, over the metadata service). They wait
// for an operator's approval; approved routes stay; advertised ones the
// device no longer lists go. The SIM's group must allow it.
func (s *Service) AdvertiseRoutes(ctx context.Context, a Actor, simID string, prefixes []netip.Prefix) ([]fleet.Route, error) {
	if a.Kind != "sim" || a.ID != simID {
		return nil, fleet.Errorf(fleet.CodeForbidden, "", "only the SIM's own device advertises its routes")
	}
	if len(prefixes) > fleet.MaxRoutesPerSIM {
		return nil, fleet.Errorf(fleet.CodeInvalid, "prefixes", "at most %d prefixes", fleet.MaxRoutesPerSIM)
	}
	var out []fleet.Route
	err := s.st.Update(ctx, func(tx store.Tx) error {
		sim, err := tx.SIM(ctx, simID)
		if err != nil {
			return storeErr(err, "id")
		}
		if err := tx.Lock(ctx, routesLock); err != nil {
			return err
		}
		allowed := false
		if sim.GroupID != "" {
			g, err := tx.Group(ctx, sim.GroupID)
			if err != nil && !errors.Is(err, store.ErrNotFound) {
				return err
			}
			allowed = err == nil && g.Settings.DevicesMayAdvertiseRoutes
		}
		if !allowed {
			return fleet.Errorf(fleet.CodeForbidden, "", "this SIM's group does not let devices advertise routes")
		}
		have, err := tx.SIMRoutes(ctx, simID)
		if err != nil {
			return err
		}
		want := map[netip.Prefix]bool{}
		for _, p := range prefixes {
			want[p] = true
		}
		changed := false
		for _, r := range have {
			if r.Status == fleet.RouteAdvertised && !want[r.Prefix] {
				if err := tx.DeleteRoute(ctx, simID, r.Prefix); err != nil {
					return err
				}
				changed = true
			}
		}
		for _, p := range prefixes {
			if i := slices.IndexFunc(have, func(r fleet.Route) bool { return r.Prefix == p }); i >= 0 {
				out = append(out, have[i])
				continue // already known, approved or waiting
			}
			r, err := s.putRouteLocked(ctx, tx, sim, RouteSpec{Prefix: p}, fleet.RouteByDevice, fleet.RouteAdvertised, false)
			if err != nil {
				return err
			}
			out = append(out, r)
			changed = true
		}
		if !changed {
			return nil // a device repeating itself: no write, no event, no change on the feed
		}
		tx.Publish(fleet.Change{Kind: fleet.ChangeSIM, ID: simID})
		return s.event(ctx, tx, a, "sim.route.advertise", "sim", simID, map[string]any{"prefixes": prefixes})
	})
	if err != nil {
		return nil, storeErr(err, "")
	}
	return out, nil
}

func routeDetails(r fleet.Route) map[string]any {
	d := map[string]any{"prefix": r.Prefix.String()}
	if r.Mapped.IsValid() {
		d["mappedPrefix"] = r.Mapped.String()
	}
	return d
}

// putRoute checks spec for simID and writes the route as status. With
// mustBeAdvertised, the prefix must be one the device advertised.
func (s *Service) putRoute(ctx context.Context, tx store.Tx, simID string, spec RouteSpec, source string, status fleet.RouteStatus, mustBeAdvertised bool) (fleet.Route, error) {
	if err := tx.Lock(ctx, routesLock); err != nil {
		return fleet.Route{}, err
	}
	sim, err := tx.SIM(ctx, simID) // read under the lock: a termination deletes routes under it too
	if err != nil {
		return fleet.Route{}, storeErr(err, "simId")
	}
	return s.putRouteLocked(ctx, tx, sim, spec, source, status, mustBeAdvertised)
}

// putRouteLocked is putRoute with the routes lock held. Every rule is
// checked before anything is written; a refusal is a 4xx naming the field.
func (s *Service) putRouteLocked(ctx context.Context, tx store.Tx, sim fleet.SIM, spec RouteSpec, source string, status fleet.RouteStatus, mustBeAdvertised bool) (fleet.Route, error) {
	if sim.Status == fleet.StatusTerminated {
		return fleet.Route{}, fleet.Errorf(fleet.CodeBadState, "status", "SIM is terminated")
	}
	p := spec.Prefix
	if p.Addr().Is6() && !p.Addr().Is4In6() {
		if err := s.checkLAN6(ctx, tx, p); err != nil {
			return fleet.Route{}, err
		}
		if spec.Map || spec.Mapped.IsValid() {
			return fleet.Route{}, fleet.Errorf(fleet.CodeInvalid, "map", "%s: IPv6 LANs are routed as they are; overlapping IPv4 LANs reach IPv6 clients by their 4via6 view", p)
		}
	} else if err := s.checkLANPrefix("prefix", p); err != nil {
		return fleet.Route{}, err
	}
	if spec.Map && spec.Mapped.IsValid() {
		return fleet.Route{}, fleet.Errorf(fleet.CodeInvalid, "mappedPrefix", "give a mapped prefix or ask for one (map), not both")
	}
	if !spec.Map && !spec.Mapped.IsValid() && p.Overlaps(s.cfg.LANPool) {
		// Reached as itself, it would take the pool's space from mapped LANs.
		return fleet.Route{}, fleet.Errorf(fleet.CodeInvalid, "prefix", "%s overlaps the LAN pool %s: map it (map or mappedPrefix)", p, s.cfg.LANPool)
	}
	have, err := tx.SIMRoutes(ctx, sim.ID)
	if err != nil {
		return fleet.Route{}, err
	}
	now := s.now()
	r := fleet.Route{SIMID: sim.ID, Prefix: p, Status: status, Source: source, Created: now, Updated: now}
	i := slices.IndexFunc(have, func(x fleet.Route) bool { return x.Prefix == p })
	switch {
	case i >= 0:
		if mustBeAdvertised && have[i].Status != fleet.RouteAdvertised {
			return fleet.Route{}, fleet.Errorf(fleet.CodeBadState, "prefix", "%s is not waiting for approval", p)
		}
		r.Created, r.Source, r.Hosts = have[i].Created, have[i].Source, have[i].Hosts
		if status == fleet.RouteAdvertised {
			r.Status = have[i].Status // a device repeating itself approves nothing
		}
		have = slices.Delete(have, i, i+1)
	case mustBeAdvertised:
		return fleet.Route{}, fleet.Errorf(fleet.CodeNotFound, "prefix", "the device has not advertised %s", p)
	case len(have) >= fleet.MaxRoutesPerSIM:
		return fleet.Route{}, fleet.Errorf(fleet.CodeInvalid, "prefix", "a SIM has at most %d routes", fleet.MaxRoutesPerSIM)
	}
	// One LAN prefix of a SIM may not overlap another of the same SIM:
	// the source check and the translation out would be ambiguous.
	for _, x := range have {
		if x.Prefix.Overlaps(p) {
			return fleet.Route{}, fleet.Errorf(fleet.CodeConflict, "prefix", "%s overlaps this SIM's route %s", p, x.Prefix)
		}
	}
	switch {
	case spec.Mapped.IsValid():
		m := spec.Mapped
		if m != m.Masked() {
			return fleet.Route{}, fleet.Errorf(fleet.CodeInvalid, "mappedPrefix", "%s has host bits set (want %s)", m, m.Masked())
		}
		if !m.Addr().Is4() || m.Bits() != p.Bits() {
			return fleet.Route{}, fleet.Errorf(fleet.CodeInvalid, "mappedPrefix", "%s must be an IPv4 prefix of the LAN's size (/%d)", m, p.Bits())
		}
		if !prefixWithin(m, s.cfg.LANPool) {
			return fleet.Route{}, fleet.Errorf(fleet.CodeInvalid, "mappedPrefix", "%s is outside the LAN pool %s", m, s.cfg.LANPool)
		}
		r.Mapped = m
	case spec.Map:
		m, err := allocateMapped(ctx, tx, s.cfg.LANPool, p.Bits())
		if err != nil {
			return fleet.Route{}, err
		}
		r.Mapped = m
	}
	if spec.Hosts != nil {
		if err := checkHosts(p, spec.Hosts); err != nil {
			return fleet.Route{}, err
		}
		r.Hosts = spec.Hosts
	}
	if r.Mapped.IsValid() {
		if err := s.checkLANPrefix("mappedPrefix", r.Mapped); err != nil {
			return fleet.Route{}, err // a LAN pool configured over the SIM pool
		}
	}
	// What the fleet sends to must be one approved route's alone.
	// Advertised routes reserve nothing (a device could otherwise hold
	// space nobody approved): approving one checks again and may conflict.
	reach := r.Reach()
	others, err := tx.RoutesReaching(ctx, reach)
	if err != nil {
		return fleet.Route{}, err
	}
	for _, x := range others {
		if x.SIMID == sim.ID && x.Prefix == p {
			continue // the row being replaced
		}
		if x.Status == fleet.RouteAdvertised {
			continue // waiting routes reserve nothing: approval checks again
		}
		field := "prefix"
		if r.Mapped.IsValid() {
			field = "mappedPrefix"
		}
		return fleet.Route{}, fleet.Errorf(fleet.CodeConflict, field, "%s overlaps %s, the route of SIM %s to %s", reach, x.Reach(), x.SIMID, x.Prefix)
	}
	if err := tx.PutRoute(ctx, r); err != nil {
		return fleet.Route{}, err
	}
	tx.Publish(fleet.Change{Kind: fleet.ChangeSIM, ID: sim.ID})
	return r, nil
}

// checkHosts refuses host names that are not DNS labels and addresses
// outside the LAN.
func checkHosts(lan netip.Prefix, hosts map[string]netip.Addr) error {
	if len(hosts) > fleet.MaxHostsPerRoute {
		return fleet.Errorf(fleet.CodeInvalid, "hosts", "at most %d hosts per route", fleet.MaxHostsPerRoute)
	}
	for name, a := range hosts {
		if err := fleet.ValidateHostName("hosts", name); err != nil {
			return err
		}
		if !lan.Contains(a) {
			return fleet.Errorf(fleet.CodeInvalid, "hosts", "%s (%s) is not on the LAN %s", name, a, lan)
		}
	}
	return nil
}

// SetRouteHosts replaces the named hosts of a SIM's route.
func (s *Service) SetRouteHosts(ctx context.Context, a Actor, simID string, prefix netip.Prefix, hosts map[string]netip.Addr) (fleet.Route, error) {
	if err := require(a, fleet.RoleOperator); err != nil {
		return fleet.Route{}, err
	}
	if hosts == nil {
		hosts = map[string]netip.Addr{}
	}
	var out fleet.Route
	err := s.st.Update(ctx, func(tx store.Tx) error {
		if err := tx.Lock(ctx, routesLock); err != nil {
			return err
		}
		have, err := tx.SIMRoutes(ctx, simID)
		if err != nil {
			return err
		}
		i := slices.IndexFunc(have, func(r fleet.Route) bool { return r.Prefix == prefix.Masked() })
		if i < 0 {
			return fleet.Errorf(fleet.CodeNotFound, "prefix", "SIM %s has no route %s", simID, prefix)
		}
		if err := checkHosts(have[i].Prefix, hosts); err != nil {
			return err
		}
		out = have[i]
		out.Hosts, out.Updated = hosts, s.now()
		if err := tx.PutRoute(ctx, out); err != nil {
			return err
		}
		tx.Publish(fleet.Change{Kind: fleet.ChangeSIM, ID: simID})
		return s.event(ctx, tx, a, "sim.route.hosts", "sim", simID, map[string]any{"prefix": out.Prefix.String(), "hosts": len(hosts)})
	})
	return out, storeErr(err, "")
}

// checkLANPrefix refuses what cannot be a LAN behind a SIM: not IPv4,
// host bits set, the whole space, or a prefix overlapping the overlay
// pool or the platform range.
func (s *Service) checkLANPrefix(field string, p netip.Prefix) error {
	switch {
	case !p.IsValid():
		return fleet.Errorf(fleet.CodeRequired, field, "a CIDR prefix, e.g. 192.168.1.0/24")
	case !p.Addr().Is4() || p.Addr().Is4In6():
		return fleet.Errorf(fleet.CodeInvalid, field, "%s: an IPv4 prefix", p)
	case p != p.Masked():
		return fleet.Errorf(fleet.CodeInvalid, field, "%s has host bits set (want %s)", p, p.Masked())
	case p.Bits() < 8:
		return fleet.Errorf(fleet.CodeInvalid, field, "%s is wider than /8", p)
	case p.Overlaps(s.cfg.Pool):
		return fleet.Errorf(fleet.CodeInvalid, field, "%s overlaps the SIM address pool %s", p, s.cfg.Pool)
	case p.Overlaps(s.cfg.PlatformRange):
		return fleet.Errorf(fleet.CodeInvalid, field, "%s overlaps the platform range %s", p, s.cfg.PlatformRange)
	}
	return nil
}

// Where an IPv6 LAN cannot be: the unspecified, loopback and mapped
// range, link-local (every link has its own), multicast.
var notLAN6 = []netip.Prefix{netip.MustParsePrefix("::/8"), netip.MustParsePrefix("fe80::/10"), netip.MustParsePrefix("ff00::/8")}

// checkLAN6 refuses what cannot be an IPv6 LAN behind a SIM: host bits
// set, wider than /32, a reserved range, or overlapping the fleet's own
// ULA prefix (the overlay, its platform and 4via6 views).
func (s *Service) checkLAN6(ctx context.Context, tx store.Tx, p netip.Prefix) error {
	switch {
	case p != p.Masked():
		return fleet.Errorf(fleet.CodeInvalid, "prefix", "%s has host bits set (want %s)", p, p.Masked())
	case p.Bits() < 32:
		return fleet.Errorf(fleet.CodeInvalid, "prefix", "%s is wider than /32", p)
	}
	for _, r := range notLAN6 {
		if r.Overlaps(p) {
			return fleet.Errorf(fleet.CodeInvalid, "prefix", "%s is in %s, which no LAN is in", p, r)
		}
	}
	o6, err := s.overlay6In(ctx, tx)
	if err != nil {
		return err
	}
	if o6.Prefix().Overlaps(p) {
		return fleet.Errorf(fleet.CodeInvalid, "prefix", "%s overlaps the fleet's ULA prefix %s", p, o6)
	}
	return nil
}

// prefixWithin reports whether p lies inside outer.
func prefixWithin(p, outer netip.Prefix) bool {
	return p.Bits() >= outer.Bits() && outer.Contains(p.Addr())
}

// allocateMapped returns the first free prefix of size bits in pool: one
// that no route is reached by.
func allocateMapped(ctx context.Context, tx store.Tx, pool netip.Prefix, bits int) (netip.Prefix, error) {
	if bits < pool.Bits() {
		return netip.Prefix{}, fleet.Errorf(fleet.CodeInvalid, "prefix", "a /%d LAN cannot be mapped into the /%d LAN pool", bits, pool.Bits())
	}
	taken, err := tx.RoutesReaching(ctx, pool)
	if err != nil {
		return netip.Prefix{}, err
	}
	type span struct{ lo, hi uint64 }
	spans := make([]span, 0, len(taken))
	for _, r := range taken {
		if r.Status == fleet.RouteAdvertised {
			continue
		}
		lo, hi := v4bounds(r.Reach())
		spans = append(spans, span{lo, hi})
	}
	sort.Slice(spans, func(i, j int) bool { return spans[i].lo < spans[j].lo })
	size := uint64(1) << (32 - bits)
	poolLo, poolHi := v4bounds(pool)
	cand := poolLo
	for _, sp := range spans {
		if cand+size-1 < sp.lo {
			break // the gap before this span holds it
		}
		if sp.hi >= cand {
			cand = (sp.hi + 1 + size - 1) / size * size // the next aligned block after the span
		}
	}
	if cand+size-1 > poolHi {
		return netip.Prefix{}, fleet.Errorf(fleet.CodeExhausted, "mappedPrefix", "the LAN pool %s has no free /%d left", pool, bits)
	}
	var a [4]byte
	binary.BigEndian.PutUint32(a[:], uint32(cand))
	return netip.PrefixFrom(netip.AddrFrom4(a), bits), nil
}

// v4bounds returns an IPv4 prefix's first and last address as numbers.
func v4bounds(p netip.Prefix) (lo, hi uint64) {
	a := p.Masked().Addr().As4()
	lo = uint64(binary.BigEndian.Uint32(a[:]))
	return lo, lo | (uint64(1)<<(32-p.Bits()) - 1)
}

// maxSessionRoutes bounds the unmapped LANs one session names; past it a
// device reaches the others by a route of its own (the gateway routes
// them all the same).
const maxSessionRoutes = 256

// reachableLANs are the LAN destinations a SIM of group g may send into
// its tunnel: the LAN pool (every mapped LAN) and the unmapped LANs of
// other SIMs whose groups admit g, as the gateway's policy will. A store
// error leaves the unmapped ones out (logged): a session is still given.
func (s *Service) reachableLANs(ctx context.Context, sim fleet.SIM, g fleet.Group) []string {
	out := []string{s.cfg.LANPool.String()}
	own, err := s.st.SIMRoutes(ctx, sim.ID)
	if err != nil {
		s.log.Warn("listing a SIM's routes for its session", "sim", sim.ID, "err", err)
		return out
	}
	groups := map[string]*fleet.Group{g.ID: &g}
	owners := map[string]*fleet.Group{}
	groupOf := func(simID string) *fleet.Group {
		if og, ok := owners[simID]; ok {
			return og
		}
		owners[simID] = nil
		owner, err := s.st.SIM(ctx, simID)
		if err != nil || owner.GroupID == "" {
			return nil
		}
		if og, ok := groups[owner.GroupID]; ok {
			owners[simID] = og
			return og
		}
		og, err := s.st.Group(ctx, owner.GroupID)
		if err != nil {
			groups[owner.GroupID] = nil
			return nil
		}
		groups[owner.GroupID] = &og
		owners[simID] = &og
		return &og
	}
	overlapsOwn := func(p netip.Prefix) bool {
		for _, r := range own {
			if r.Prefix.Overlaps(p) {
				return true // its own LAN: a route to the tunnel would shadow it
			}
		}
		return false
	}
	for cursor := ""; ; {
		// Mapped LANs are all in the LAN pool already: only unmapped ones
		// are read (a session is asked for at every agent refresh).
		p, err := s.st.ListRoutes(ctx, store.RouteFilter{PageRequest: store.PageRequest{Limit: store.MaxLimit, Cursor: cursor}, Status: fleet.RouteApproved, Unmapped: true})
		if err != nil {
			s.log.Warn("listing routes for a session", "sim", sim.ID, "err", err)
			return out
		}
		for _, r := range p.Items {
			if r.SIMID == sim.ID || len(out) > maxSessionRoutes || overlapsOwn(r.Prefix) {
				continue
			}
			if og := groupOf(r.SIMID); og != nil && fleet.MutualD2D(g, *og) {
				out = append(out, r.Prefix.String())
			}
		}
		if p.Next == "" {
			return out
		}
		cursor = p.Next
	}
}
