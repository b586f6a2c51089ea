// SPDX-License-Identifier: Apache-2.0

package gateway

import (
	"context"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wirefleet/wirefleet/controlplane/store"
	"github.com/wirefleet/wirefleet/fleet"
	"github.com/wirefleet/wirefleet/internal/netmap"
	"github.com/wirefleet/wirefleet/internal/packet"
)

// lanRoute is one approved route behind a SIM as the data path uses it.
type lanRoute struct {
	sim    string
	prefix netip.Prefix                          // the LAN as the device sees it
	reach  netip.Prefix                          // what the fleet sends to (mapped, or prefix)
	in     netmap.Map                            // reach → prefix, for destinations; invalid when unmapped
	out    netmap.Map                            // prefix → reach, for sources; invalid when unmapped
	hosts  atomic.Pointer[map[string]netip.Addr] // named LAN hosts (LAN addresses), for DNS
	// Traffic through the route (packets and bytes toward the LAN, and
	// from it), and packets dropped on the way to it by reason.
	inPackets, inBytes, outPackets, outBytes atomic.Uint64
	drops                                    dropCounters
}

func (r *lanRoute) mapped() bool { return r.in.Valid() }

// enter readies pkt (decoded as ip) for the LAN: its destination
// translated on a mapped LAN, and counted.
func (r *lanRoute) enter(pkt []byte, ip *packet.Parsed) {
	if r.mapped() {
		netmap.Dst(pkt, ip, r.in)
	}
	r.inPackets.Add(1)
	r.inBytes.Add(uint64(len(pkt)))
}

// lanTable holds every approved route the gateway knows, read on the data
// path without a lock: a change builds a new snapshot.
type lanTable struct {
	mu   sync.Mutex // serialises writers
	snap atomic.Pointer[lanSnapshot]
}

// lanSnapshot is one immutable state of the table.
type lanSnapshot struct {
	byReach map[netip.Prefix]*lanRoute // masked reach prefix
	lengths []int                      // the reach prefix lengths present, longest first
	bySIM   map[string][]*lanRoute
}

func (t *lanTable) load() *lanSnapshot {
	if s := t.snap.Load(); s != nil {
		return s
	}
	return &lanSnapshot{}
}

// lookup returns the route whose reach holds dst, longest prefix first.
// Without routes it costs one load and a nil check.
func (t *lanTable) lookup(dst netip.Addr) *lanRoute {
	s := t.snap.Load()
	if s == nil {
		return nil
	}
	for _, bits := range s.lengths {
		p, _ := dst.Prefix(bits)
		if r := s.byReach[p]; r != nil {
			return r
		}
	}
	return nil
}

// source returns the route of SIM sim whose LAN holds src.
func (t *lanTable) source(sim string, src netip.Addr) *lanRoute {
	s := t.snap.Load()
	if s == nil {
		return nil
	}
	for _, r := range s.bySIM[sim] {
		if r.prefix.Contains(src) {
			return r
		}
	}
	return nil
}

// ofSIM returns a SIM's routes.
func (t *lanTable) ofSIM(sim string) []*lanRoute { return t.load().bySIM[sim] }

// prefixes returns the LAN prefixes of a SIM (its tunnel's extra allowed
// sources).
func (t *lanTable) prefixes(sim string) []netip.Prefix {
	rs := t.ofSIM(sim)
	out := make([]netip.Prefix, len(rs))
	for i, r := range rs {
		out[i] = r.prefix
	}
	return out
}

// set replaces the approved routes of one SIM (routes may hold others,
// which are skipped) and reports whether anything changed. Counters of
// routes that stay are kept.
func (t *lanTable) set(sim string, routes []fleet.Route) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	old := t.load()
	var next []*lanRoute
	for _, fr := range routes {
		if fr.SIMID != sim || fr.Status != fleet.RouteApproved {
			continue
		}
		if i := slices.IndexFunc(old.bySIM[sim], func(r *lanRoute) bool { return r.prefix == fr.Prefix && r.reach == fr.Reach() }); i >= 0 {
			r := old.bySIM[sim][i]
			if h := r.hosts.Load(); h == nil || !maps.Equal(*h, fr.Hosts) {
				hosts := maps.Clone(fr.Hosts)
				r.hosts.Store(&hosts) // names change in place: the routing does not
			}
			next = append(next, r)
			continue
		}
		next = append(next, newLANRoute(fr))
	}
	if slices.Equal(next, old.bySIM[sim]) {
		return false
	}
	bySIM := make(map[string][]*lanRoute, len(old.bySIM)+1)
	for id, rs := range old.bySIM {
		if id != sim {
			bySIM[id] = rs
		}
	}
	if len(next) > 0 {
		bySIM[sim] = next
	}
	t.snap.Store(build(bySIM))
	return true
}

// replaceAll installs routes (every SIM's approved ones) as the whole table.
func (t *lanTable) replaceAll(routes []fleet.Route) {
	t.mu.Lock()
	defer t.mu.Unlock()
	bySIM := map[string][]*lanRoute{}
	for _, fr := range routes {
		if fr.Status != fleet.RouteApproved {
			continue
		}
		bySIM[fr.SIMID] = append(bySIM[fr.SIMID], newLANRoute(fr))
	}
	t.snap.Store(build(bySIM))
}

func newLANRoute(fr fleet.Route) *lanRoute {
	r := &lanRoute{sim: fr.SIMID, prefix: fr.Prefix, reach: fr.Reach()}
	if fr.Mapped.IsValid() {
		r.in = netmap.Map{From: fr.Mapped, To: fr.Prefix}
		r.out = r.in.Inverse()
	}
	hosts := maps.Clone(fr.Hosts)
	r.hosts.Store(&hosts)
	return r
}

// host returns the address the fleet reaches SIM sim's LAN host name by
// (its mapped address on a mapped route), and its address on the LAN.
func (t *lanTable) host(sim, name string) (reach, onLAN netip.Addr, ok bool) {
	for _, r := range t.ofSIM(sim) {
		h := r.hosts.Load()
		if h == nil {
			continue
		}
		if a, found := (*h)[name]; found {
			if r.mapped() {
				return r.out.Addr(a), a, true
			}
			return a, a, true
		}
	}
	return netip.Addr{}, netip.Addr{}, false
}

func build(bySIM map[string][]*lanRoute) *lanSnapshot {
	s := &lanSnapshot{byReach: map[netip.Prefix]*lanRoute{}, bySIM: bySIM}
	for _, rs := range bySIM {
		for _, r := range rs {
			s.byReach[r.reach.Masked()] = r
			if !slices.Contains(s.lengths, r.reach.Bits()) {
				s.lengths = append(s.lengths, r.reach.Bits())
			}
		}
	}
	slices.Sort(s.lengths)
	slices.Reverse(s.lengths)
	return s
}

// all returns every route, for metrics.
func (t *lanTable) all() []*lanRoute {
	s := t.load()
	var out []*lanRoute
	for _, rs := range s.bySIM {
		out = append(out, rs...)
	}
	return out
}

// lanNames maps the names of SIMs with named LAN hosts to their ids, for
// <host>.<sim-name>.lan.<zone>. SIM names are not unique: a name two such
// SIMs share resolves to nothing (their ids still do).
type lanNames struct {
	mu     sync.Mutex
	byID   map[string]string
	byName map[string]map[string]bool
}

func (n *lanNames) set(id, name string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.byID == nil {
		n.byID, n.byName = map[string]string{}, map[string]map[string]bool{}
	}
	if old, ok := n.byID[id]; ok {
		delete(n.byName[old], id)
	}
	delete(n.byID, id)
	name = strings.ToLower(name)
	if name == "" || fleet.ValidateHostName("name", name) != nil {
		return // not a DNS label: reachable by id only
	}
	n.byID[id] = name
	if n.byName[name] == nil {
		n.byName[name] = map[string]bool{}
	}
	n.byName[name][id] = true
}

// resolve returns the SIM id a name stands for, if exactly one.
func (n *lanNames) resolve(name string) (string, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	ids := n.byName[name]
	if len(ids) != 1 {
		return "", false
	}
	for id := range ids {
		return id, true
	}
	return "", false
}

// lanHost is the DNS service's LANHost: ref is a SIM id, or the name of a
// SIM with named hosts.
func (g *Gateway) lanHost(ref, host string) (simID string, reach, onLAN netip.Addr, ok bool) {
	if reach, onLAN, ok = g.lans.host(ref, host); ok {
		return ref, reach, onLAN, true
	}
	id, found := g.lanNames.resolve(ref)
	if !found {
		return "", netip.Addr{}, netip.Addr{}, false
	}
	reach, onLAN, ok = g.lans.host(id, host)
	return id, reach, onLAN, ok
}

// nameFor records the name of a SIM with named LAN hosts (or forgets it).
func (g *Gateway) nameFor(ctx context.Context, id string, routes []fleet.Route) {
	named := slices.ContainsFunc(routes, func(r fleet.Route) bool { return r.Status == fleet.RouteApproved && len(r.Hosts) > 0 })
	if !named {
		g.lanNames.set(id, "")
		return
	}
	for _, st := range g.states(id) { // held here: recheckSIM has just refreshed its copy
		if sim := st.SIM(); sim != nil && !st.stale.Load() {
			g.lanNames.set(id, sim.Name)
			return
		}
	}
	sim, err := g.st.SIM(ctx, id)
	if err != nil {
		g.log.Warn("reading the name of a SIM with named LAN hosts", "sim", id, "err", err)
		return
	}
	g.lanNames.set(id, sim.Name)
}

// loadRoutes reads every approved route from the store into the table.
func (g *Gateway) loadRoutes(ctx context.Context) error {
	var all []fleet.Route
	for cursor := ""; ; {
		p, err := g.st.ListRoutes(ctx, store.RouteFilter{PageRequest: store.PageRequest{Limit: store.MaxLimit, Cursor: cursor}, Status: fleet.RouteApproved})
		if err != nil {
			return err
		}
		all = append(all, p.Items...)
		if p.Next == "" {
			break
		}
		cursor = p.Next
	}
	g.lans.replaceAll(all)
	bySIM := map[string][]fleet.Route{}
	for _, r := range all {
		bySIM[r.SIMID] = append(bySIM[r.SIMID], r)
	}
	for id, rs := range bySIM {
		g.nameFor(ctx, id, rs)
	}
	return nil
}

// refreshRoutes re-reads one SIM's routes after a change of the SIM (held
// here or not: its LANs are routed to wherever it comes online), and gives
// its held sessions the new LAN prefixes as allowed sources at once.
func (g *Gateway) refreshRoutes(id string) {
	ctx, cancel := context.WithTimeout(g.ctx, 5*time.Second)
	defer cancel()
	rs, err := g.st.SIMRoutes(ctx, id)
	if err != nil {
		g.log.Warn("re-reading SIM routes after change", "sim", id, "err", err)
		return
	}
	g.nameFor(ctx, id, rs) // a rename is a change of the SIM too
	if !g.lans.set(id, rs) {
		return
	}
	g.log.Info("SIM routes changed", "sim", id, "routes", len(g.lans.ofSIM(id)))
	for _, st := range g.states(id) {
		p := g.eng.Peer(st.key)
		if sim := st.SIM(); sim != nil && p != nil && stateOf(p) == st {
			g.eng.SetAllowedIPs(p, g.allowedIPs(*sim))
		}
	}
}

// allowedIPs are a SIM tunnel's allowed sources: its address and the LANs
// behind it.
func (g *Gateway) allowedIPs(sim fleet.SIM) []netip.Prefix {
	own := []netip.Prefix{netip.PrefixFrom(sim.Address, 32)}
	if a6 := g.o6.Addr(sim.Address); a6.IsValid() {
		own = append(own, netip.PrefixFrom(a6, 128))
	}
	return append(own, g.lans.prefixes(sim.ID)...)
}
