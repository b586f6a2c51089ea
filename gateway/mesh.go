// SPDX-License-Identifier: Apache-2.0

package gateway

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wirefleet/wirefleet/controlplane/store"
	"github.com/wirefleet/wirefleet/engine"
	"github.com/wirefleet/wirefleet/fleet"
	"github.com/wirefleet/wirefleet/internal/packet"
	"github.com/wirefleet/wirefleet/internal/tokenbucket"
	"github.com/wirefleet/wirefleet/keystore"
	"github.com/wirefleet/wirefleet/wgkey"
)

// The inter-node mesh: device-to-device traffic between devices whose
// sessions live on different nodes. Each node runs a second engine of
// ours on a port of its own, with a key of its own (not the
// installation's: a node's mesh key opens nothing a device could use),
// and holds the other nodes of the registry as static peers. A packet
// from a device here to a SIM whose session is on another node is
// checked against the policy here, at the ingress node, and goes to that
// node over the mesh; the node there hands it to the device's session
// without a second policy decision. Where a SIM's session is comes from
// the store's presence records, cached and forgotten on each presence
// change the change feed brings. A mesh packet from a key that is not a
// registered node's is refused at the handshake (counted by the mesh
// engine); one for a SIM that has no session there is dropped and
// counted.
//
// SIM addresses, IPv4 LANs behind SIMs and IPv6 between SIMs' twins
// cross the mesh in this version: IPv6 LANs, 4via6 and the taps of the
// destination's group (mirror, capture, inspection) at the egress node
// are not done yet.

// MeshConfig joins a gateway to the inter-node mesh.
type MeshConfig struct {
	// KeyStore holds this node's mesh key.
	KeyStore keystore.Store
	// ListenPort is the mesh's UDP port (0: any).
	ListenPort uint16
	// Endpoint is how the other nodes reach this one ("host:port"),
	// registered in the node registry.
	Endpoint string
}

const (
	meshPeerSync    = 10 * time.Second // the registry read again
	meshLocTTL      = 30 * time.Second // a location kept (a presence change forgets it sooner)
	meshMissTTL     = 2 * time.Second  // "no session elsewhere" kept
	meshLookupQueue = 256
	// A packet whose SIM is being located (the first of a flow to a SIM
	// on another node, or from one) waits for the lookup instead of being
	// dropped: at most meshHoldPerKey a SIM, meshHoldMax in all, and at
	// most meshHoldFor (a lookup that takes longer drops what waited).
	// meshLookupWorkers serve the lookups, so one slow read does not hold
	// up the rest.
	meshHoldPerKey = 8
	meshHoldMax    = 4096
	// One device's share: lookups it may start a second (a burst of
	// meshLookupBurst), and packets of its held at once, so that one
	// spraying new destinations cannot use up the queue and the hold
	// that every device's first packets need.
	meshLookupRate    = 20
	meshLookupBurst   = 64
	meshHoldPerSender = 64
	meshHoldFor       = 2 * time.Second
	meshLookupWorkers = 4
	// Each node sends every other a heartbeat every meshHeartbeat (a
	// data packet: WireGuard's own keepalive is skipped by a side that
	// just received one, so with it only one side may be heard), and one
	// not heard from for meshAliveFor is gone (a takeover from it may go
	// ahead).
	meshHeartbeat = time.Second
	meshAliveFor  = 2500 * time.Millisecond
	// meshHeartbeatProto marks a heartbeat: an IPv4 header alone, from
	// and to 0.0.0.0, of an experimental protocol number (RFC 3692).
	meshHeartbeatProto = 253
)

// heartbeatPacket is the mesh's heartbeat.
var heartbeatPacket = func() []byte {
	b := make([]byte, 20)
	b[0], b[3], b[8], b[9] = 0x45, 20, 1, meshHeartbeatProto
	binary.BigEndian.PutUint16(b[10:], packet.Checksum(b))
	return b
}()

// Mesh drop reasons (wirefleet_mesh_dropped_packets_total).
const (
	meshDropNotHere  = "target-not-here"   // a packet from a node for a SIM with no session here
	meshDropNotInner = "not-a-sim"         // a packet from a node not addressed to a SIM
	meshDropLookup   = "lookup-queue-full" // too many locations being looked up
	meshDropSource   = "bad-source"        // a packet from a node neither from a SIM nor from a LAN behind one
	// meshDropSourceUnknown: where the source's session is is being
	// looked up (its first packets); meshDropSourceElsewhere: the source's
	// session is not on the node that sent it; meshDropPolicy: the two
	// groups' policy refuses it.
	meshDropSourceUnknown   = "source-unknown"
	meshDropSourceElsewhere = "source-elsewhere"
	meshDropPolicy          = "d2d-denied"
	// meshDropLookupShare: the sending SIM started more lookups than its
	// share; meshDropHoldShare: it has more packets waiting than its share.
	meshDropLookupShare = "lookup-share"
	meshDropHoldShare   = "hold-share"
)

var meshDropReasons = [...]string{meshDropNotHere, meshDropNotInner, meshDropLookup, meshDropSource, meshDropSourceUnknown, meshDropSourceElsewhere, meshDropPolicy, meshDropLookupShare, meshDropHoldShare}

type mesh struct {
	g   *Gateway
	cfg MeshConfig
	eng *engine.Engine

	syncMu  sync.Mutex // held through a registry read and its application
	mu      sync.RWMutex
	loc     map[meshKey]meshLoc // a SIM (by address or id) → where its session is
	peers   map[string]*engine.Peer
	added   map[string]time.Time // when each peer was added
	lookups chan meshKey
	asked   map[meshKey]bool // lookups under way (guarded by mu)
	held    map[meshKey]*meshHold
	heldN   int            // packets in held (guarded by mu)
	heldBy  map[string]int // packets in held per sending SIM (guarded by mu)
	// lookupShare is each sending SIM's share of lookups started.
	lookupShare *tokenbucket.Set[string]

	forwarded, delivered atomic.Uint64
	// lostAt is when a held node was last seen gone silent (heard before,
	// not within meshAliveFor), unix nanoseconds: takeovers may surge.
	lostAt   atomic.Int64
	lastSync atomic.Int64 // unix nanoseconds of the last registry read
	nodes    []fleet.Node // the registry as last read (guarded by mu)
	drops    [len(meshDropReasons)]atomic.Uint64
}

// meshKey names a SIM whose location is looked up: by its address (a
// packet to it) or by its id (a packet to a LAN behind it).
type meshKey struct {
	addr netip.Addr
	sim  string
}

// meshHold is what waits for one lookup: packets from devices here to go
// out over the mesh, and packets from the mesh to be delivered here.
type meshHold struct {
	since time.Time // when the first packet came
	out   []meshHeldOut
	in    []engine.InboundPacket // Data copied
}

// meshHeldOut is a packet from a device here, with what the router knew
// of it when it had to wait: the rest of its decision (the policy with
// the destination's group) is taken once the destination is located.
type meshHeldOut struct {
	pkt  []byte // a copy
	ip   packet.Parsed
	dst  netip.Addr   // the destination SIM's IPv4 address (an IPv6 packet's: its twin's)
	peer *engine.Peer // the sender's: an ICMP error goes back to it
	st   *simState    // the sender's (revoked meanwhile: dropped)
	from *lanRoute    // the LAN the packet comes out of; nil: the SIM itself
	lan  *lanRoute    // the LAN behind a SIM it is for; nil: for a SIM
}

type meshLoc struct {
	sim   string
	group string
	node  string
	peer  *engine.Peer // nil: no session on another node
	until time.Time
}

func newMesh(g *Gateway, cfg MeshConfig) (*mesh, error) {
	m := &mesh{g: g, cfg: cfg, loc: map[meshKey]meshLoc{}, peers: map[string]*engine.Peer{}, added: map[string]time.Time{}, lookups: make(chan meshKey, meshLookupQueue), asked: map[meshKey]bool{},
		held: map[meshKey]*meshHold{}, heldBy: map[string]int{}, lookupShare: tokenbucket.NewSet[string](meshLookupRate, meshLookupBurst, 65536)}
	eng, err := engine.New(engine.Config{
		KeyStore:   cfg.KeyStore,
		ListenPort: cfg.ListenPort,
		MTU:        tunnelMTU,
		Handler:    engine.HandlerFunc(m.deliver),
		Resolver:   engine.ResolverFunc(m.resolve),
		Logger:     g.log.With("part", "mesh"),
	})
	if err != nil {
		return nil, fmt.Errorf("gateway: the mesh engine: %w", err)
	}
	m.eng = eng
	return m, nil
}

func (m *mesh) drop(reason string) {
	for i, r := range meshDropReasons {
		if r == reason {
			m.drops[i].Add(1)
		}
	}
}

// start brings the mesh engine up and keeps its peers and lookups going.
func (m *mesh) start() error {
	if err := m.eng.Up(); err != nil {
		return fmt.Errorf("gateway: the mesh engine: %w", err)
	}
	m.syncPeers()
	m.g.wg.Add(2)
	go func() {
		defer m.g.wg.Done()
		t := time.NewTicker(meshPeerSync)
		defer t.Stop()
		hb := time.NewTicker(meshHeartbeat)
		defer hb.Stop()
		for {
			select {
			case <-m.g.ctx.Done():
				return
			case <-t.C:
				m.syncPeers()
			case <-hb.C:
				m.mu.RLock()
				for _, p := range m.peers {
					m.eng.Send(p, [][]byte{heartbeatPacket}) // brings a session up, too
					if last := p.Stats().LastReceived; !last.IsZero() && time.Since(last) >= meshAliveFor && time.Since(last) < takeoverSurgeFor {
						m.lostAt.Store(time.Now().UnixNano())
					}
				}
				m.mu.RUnlock()
			}
		}
	}()
	m.g.wg.Add(meshLookupWorkers - 1)
	for range meshLookupWorkers {
		go func() {
			defer m.g.wg.Done()
			for {
				select {
				case <-m.g.ctx.Done():
					return
				case a := <-m.lookups:
					m.lookup(a)
				}
			}
		}()
	}
	return nil
}

// resolve is the mesh engine's Resolver: a node that joined since the
// last registry read is taken at its first handshake, if the registry has
// its key for a node that is up (and not this one); anyone else is
// refused as unknown.
func (m *mesh) resolve(ctx context.Context, key wgkey.Public, _ netip.AddrPort) (engine.PeerConfig, error) {
	// The registry as last read, read again at most every few seconds:
	// handshakes from unknown keys must not each cost a query.
	if time.Since(time.Unix(0, m.lastSync.Load())) > meshMissTTL {
		m.syncPeers()
	}
	m.mu.RLock()
	nodes := m.nodes
	m.mu.RUnlock()
	me, now := m.g.gatewayID(), time.Now()
	for _, n := range nodes {
		if n.MeshKey == key && n.Name != me && n.Up(now) {
			ep, err := netip.ParseAddrPort(n.MeshEndpoint)
			if err != nil {
				return engine.PeerConfig{}, &engine.DeniedError{Reason: "no mesh endpoint registered"}
			}
			return m.peerConfig(n, ep), nil
		}
	}
	return engine.PeerConfig{}, engine.ErrUnknownPeer
}

// peerConfig is how the mesh holds node n.
func (m *mesh) peerConfig(n fleet.Node, ep netip.AddrPort) engine.PeerConfig {
	// Any source, IPv4 and IPv6: a node forwards devices' packets and the
	// answers of hosts on LANs behind them (its key is the trust; deliver
	// checks the sources).
	// Its endpoint is the registry's, fixed: a packet from elsewhere, even
	// with its key, does not draw its traffic away.
	return engine.PeerConfig{PublicKey: n.MeshKey, Endpoint: ep, AllowedIPs: []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0")}, Identity: n.Name, FixedEndpoint: true}
}

// PublicKey is this node's mesh key.
func (m *mesh) publicKey() wgkey.Public { return m.eng.PublicKey() }

// syncPeers holds every other registered node that is up and has a mesh
// key as a peer, and lets go of the others.
func (m *mesh) syncPeers() {
	// One at a time (the ticker, lookups and the resolver call it): an
	// older registry read must not be applied after a newer one.
	m.syncMu.Lock()
	defer m.syncMu.Unlock()
	m.lastSync.Store(time.Now().UnixNano())
	ctx, cancel := context.WithTimeout(m.g.ctx, 5*time.Second)
	defer cancel()
	nodes, err := m.g.st.ListNodes(ctx)
	if err != nil {
		m.g.log.Warn("mesh: reading the node registry", "err", err)
		return
	}
	me := m.g.gatewayID()
	now := time.Now()
	want := map[string]fleet.Node{}
	for _, n := range nodes {
		if n.Name != me && n.Up(now) && !n.MeshKey.IsZero() && n.MeshEndpoint != "" && n.MeshKey != m.publicKey() {
			want[n.Name] = n
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.nodes = nodes
	for name, p := range m.peers {
		if n, ok := want[name]; !ok || n.MeshKey != p.PublicKey() {
			m.eng.RemovePeer(p.PublicKey())
			delete(m.peers, name)
			delete(m.added, name)
			m.g.log.Info("mesh: node left", "node", name)
		}
	}
	for name, n := range want {
		ep, err := netip.ParseAddrPort(n.MeshEndpoint)
		if err != nil {
			m.g.log.Warn("mesh: a node's endpoint", "node", name, "endpoint", n.MeshEndpoint, "err", err)
			continue
		}
		if p := m.peers[name]; p != nil {
			if p.Endpoint() != ep {
				m.eng.SetEndpoint(p, ep)
			}
			continue
		}
		p := m.eng.Peer(n.MeshKey) // taken at its handshake (resolve)
		if p != nil {
			m.eng.SetEndpoint(p, ep)
		} else if p, err = m.eng.AddPeer(m.peerConfig(n, ep)); err != nil {
			m.g.log.Warn("mesh: adding a node", "node", name, "err", err)
			continue
		}
		m.peers[name] = p
		m.added[name] = time.Now()
		m.g.log.Info("mesh: node joined", "node", name, "endpoint", ep)
	}
	// Locations at a node that left are no longer good.
	for a, l := range m.loc {
		if l.peer != nil && m.peers[l.node] != l.peer {
			delete(m.loc, a)
		}
	}
}

// route says where a packet to SIM address dst goes when no session of it
// is here: the mesh peer of the node holding it and the SIM's group, or
// ok false (unknown yet: a lookup starts, within sender's share; or no
// node has it). sender is the SIM sending, "" for a packet from a node.
func (m *mesh) route(dst netip.Addr, sender string) (*engine.Peer, string, bool) {
	return m.routeKey(meshKey{addr: dst}, sender)
}

// routeSIM is route for a packet to a LAN behind SIM id.
func (m *mesh) routeSIM(id, sender string) (*engine.Peer, string, bool) {
	return m.routeKey(meshKey{sim: id}, sender)
}

func (m *mesh) routeKey(k meshKey, sender string) (*engine.Peer, string, bool) {
	l, ok := m.locate(k, sender)
	if !ok || l.peer == nil {
		return nil, "", false
	}
	return l.peer, l.group, true
}

// locate is where the SIM k names has its session (another node's), if
// known: a lookup starts when it is not, or no longer fresh.
func (m *mesh) locate(k meshKey, sender string) (meshLoc, bool) {
	now := time.Now()
	m.mu.RLock()
	l, found := m.loc[k]
	asked := m.asked[k]
	m.mu.RUnlock()
	fresh := found && now.Before(l.until)
	// An expired location is still used (up to one more TTL) while it is
	// looked up again, so a flow does not stall every 30 s.
	usable := fresh || found && l.peer != nil && now.Before(l.until.Add(meshLocTTL))
	if !fresh && !asked && m.mayLookUp(sender) {
		m.mu.Lock()
		if !m.asked[k] {
			select {
			case m.lookups <- k:
				m.asked[k] = true
			default:
				m.drop(meshDropLookup)
			}
		}
		m.mu.Unlock()
	}
	if usable && l.peer != nil {
		return l, true
	}
	return meshLoc{}, false
}

// mayLookUp says whether sender (a SIM; "" for a node) may start a lookup
// now: within its share (counted when not).
func (m *mesh) mayLookUp(sender string) bool {
	if sender == "" {
		return true
	}
	if ok, _ := m.lookupShare.Allow(sender); !ok {
		m.drop(meshDropLookupShare)
		return false
	}
	return true
}

// pending says whether where the SIM at dst is is not known yet: a lookup
// under way, or none made (a packet for it is dropped without an ICMP
// error: the answer may be "elsewhere").
func (m *mesh) pending(dst netip.Addr) bool {
	k := meshKey{addr: dst}
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.asked[k] {
		return true
	}
	// Not looked up (the sender over its share of lookups): not known to
	// be nowhere either.
	l, found := m.loc[k]
	return !found || l.peer != nil || !time.Now().Before(l.until) // all but a fresh "nowhere"
}

// peer is the mesh peer of node, and when it was added (nil if not held).
func (m *mesh) peer(node string) (*engine.Peer, time.Time) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.peers[node], m.added[node]
}

// hold keeps a packet while k is looked up (out, from a device here;
// else in, from the mesh), and says whether it did: not when no lookup
// of k is under way, nor past the bounds.
func (m *mesh) hold(k meshKey, out *meshHeldOut, in *engine.InboundPacket) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.asked[k] || m.heldN >= meshHoldMax {
		return false
	}
	h := m.held[k]
	if h == nil {
		h = &meshHold{since: time.Now()}
		m.held[k] = h
	}
	if len(h.out)+len(h.in) >= meshHoldPerKey {
		return false
	}
	if out != nil {
		if m.heldBy[out.st.id] >= meshHoldPerSender {
			m.drop(meshDropHoldShare)
			return false
		}
		m.heldBy[out.st.id]++
		o := *out
		o.pkt = slices.Clone(o.pkt)
		h.out = append(h.out, o)
	} else {
		c := *in
		c.Data = slices.Clone(c.Data)
		h.in = append(h.in, c)
	}
	m.heldN++
	return true
}

// lookup finds which node holds a session of the SIM k names, then lets
// what was held for it go on (decided: a location or a miss) or drops it
// (the store away).
func (m *mesh) lookup(k meshKey) {
	decided := false
	defer func() {
		m.mu.Lock()
		delete(m.asked, k)
		h := m.held[k]
		delete(m.held, k)
		if h != nil {
			m.heldN -= len(h.out) + len(h.in)
			for _, o := range h.out {
				if m.heldBy[o.st.id]--; m.heldBy[o.st.id] <= 0 {
					delete(m.heldBy, o.st.id)
				}
			}
		}
		m.mu.Unlock()
		if h == nil {
			return
		}
		if !decided || time.Since(h.since) > meshHoldFor {
			m.g.router.drops.addN(dropOffline, uint64(len(h.out)))
			for range h.in {
				m.drop(meshDropSourceUnknown)
			}
			return
		}
		if len(h.out) > 0 {
			m.g.router.sendHeld(h.out)
		}
		if len(h.in) > 0 {
			m.deliverFrom(h.in, false)
		}
	}()
	ctx, cancel := context.WithTimeout(m.g.ctx, 5*time.Second)
	defer cancel()
	miss := meshLoc{sim: k.sim, until: time.Now().Add(meshMissTTL)}
	var sim fleet.SIM
	var err error
	if k.sim != "" {
		sim, err = m.g.st.SIM(ctx, k.sim)
	} else {
		sim, err = m.g.st.SIMByAddress(ctx, k.addr)
	}
	if errors.Is(err, store.ErrNotFound) {
		m.set(k, miss)
		decided = true
		return
	}
	if err != nil {
		return // the store away: asked again at the next packet
	}
	ps, err := m.g.st.Presences(ctx, sim.ID)
	if err != nil {
		return
	}
	if sim.GroupID != "" {
		if err := m.g.policies.ensure(ctx, m.g.st, sim.GroupID); err != nil {
			return
		}
	}
	me := m.g.gatewayID()
	// A session on a node not held yet (one that joined since the last
	// registry read): read the registry now, at most every few seconds.
	m.mu.RLock()
	unknown := false
	for _, p := range ps {
		if p.Gateway != me && m.peers[p.Gateway] == nil {
			unknown = true
		}
	}
	m.mu.RUnlock()
	if unknown && time.Since(time.Unix(0, m.lastSync.Load())) > meshMissTTL {
		m.syncPeers()
	}
	m.mu.RLock()
	var best *store.Presence
	for i, p := range ps {
		if p.Gateway != me && m.peers[p.Gateway] != nil && (best == nil || p.Since.After(best.Since)) {
			best = &ps[i]
		}
	}
	var l meshLoc
	if best != nil {
		l = meshLoc{sim: sim.ID, group: sim.GroupID, node: best.Gateway, peer: m.peers[best.Gateway], until: time.Now().Add(meshLocTTL)}
	}
	m.mu.RUnlock()
	if best == nil {
		m.set(k, miss)
		decided = true
		return
	}
	m.set(k, l)
	decided = true
}

func (m *mesh) set(k meshKey, l meshLoc) {
	m.mu.Lock()
	m.loc[k] = l
	m.mu.Unlock()
}

// forget marks what is known of a SIM's location stale (its presence or
// record changed): looked up again at its next packet, still used while
// that lookup runs (the store may be away: a switchover must not cut
// traffic that needs no store). Misses are dropped.
func (m *mesh) forget(simID string) { m.stale(func(l meshLoc) bool { return l.sim == simID }) }

// forgetAll marks every location stale (the change feed was
// resubscribed: changes may have been missed).
func (m *mesh) forgetAll() { m.stale(func(meshLoc) bool { return true }) }

// stale marks the locations which selects stale and drops every miss.
func (m *mesh) stale(which func(meshLoc) bool) {
	now := time.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	for k, l := range m.loc {
		switch {
		case l.peer == nil:
			delete(m.loc, k)
		case which(l) && l.until.After(now):
			l.until = now
			m.loc[k] = l
		}
	}
}

// send takes packets over the mesh to a node.
func (m *mesh) send(p *engine.Peer, pkts [][]byte) {
	m.forwarded.Add(uint64(len(pkts)))
	m.eng.Send(p, pkts)
}

// deliver is the mesh engine's Handler: packets another node checked
// against the policy, for SIMs whose sessions are here.
func (m *mesh) deliver(batch []engine.InboundPacket) { m.deliverFrom(batch, true) }

// deliverFrom is deliver; mayHold false for packets that already waited
// for their source's location once (they are not held again).
func (m *mesh) deliverFrom(batch []engine.InboundPacket, mayHold bool) {
	r := m.g.router
	var target *engine.Peer
	var pending [][]byte
	flush := func() {
		if len(pending) > 0 {
			r.eng.Send(target, pending)
			m.delivered.Add(uint64(len(pending)))
			pending = pending[:0]
		}
	}
	for i := range batch {
		in := &batch[i]
		// src and dst are the IPv4 view: an IPv6 packet goes between two
		// SIMs' twins, and is read as between the SIMs.
		src, dst := in.IP.Src, in.IP.Dst
		switch in.IP.Version {
		case 4:
			if in.IP.Proto == meshHeartbeatProto && dst.IsUnspecified() {
				continue // a heartbeat: the engine noted it was heard
			}
		case 6:
			s4, sok := r.o6.V4(src)
			d4, dok := r.o6.V4(dst)
			if !r.o6.Enabled() || !sok || !dok || !r.pool.Contains(s4) || !r.pool.Contains(d4) {
				m.drop(meshDropNotInner)
				continue
			}
			src, dst = s4, d4
		default:
			m.drop(meshDropNotInner)
			continue
		}
		// A node forwards devices' packets and LAN hosts' answers, never
		// the platform's own (its services answer on each node): a
		// source in the platform range, or neither a SIM's nor a LAN's,
		// is refused (a stolen mesh key cannot pose as DNS here).
		if r.plat.Contains(src) || !r.pool.Contains(src) && r.lans.lookup(src) == nil {
			m.drop(meshDropSource)
			continue
		}
		var to *engine.Peer
		var dstLAN *lanRoute
		switch {
		case r.pool.Contains(dst):
			to = r.peerFor(dst)
		default:
			if dstLAN = r.lans.lookup(dst); dstLAN == nil {
				m.drop(meshDropNotInner)
				continue
			}
			to = r.peerOf(dstLAN.sim)
		}
		if to == nil {
			m.drop(meshDropNotHere)
			continue
		}
		dstSt := stateOf(to)
		if dstSt == nil || dstSt.revoked.Load() {
			m.drop(meshDropNotHere)
			continue
		}
		// The source's session must be on the node that sent it (a node
		// forwards only its own devices' packets), and the two groups'
		// policy must let it through: decided at the ingress node, checked
		// again here so that one node's key cannot speak for another's
		// devices nor past the policy.
		node, _ := in.Peer.Identity().(string)
		srcKey := meshKey{addr: src}
		if !r.pool.Contains(src) {
			srcKey = meshKey{sim: r.lans.lookup(src).sim}
		}
		l, known := m.locate(srcKey, "")
		switch {
		case !known && mayHold && m.hold(srcKey, nil, in):
			continue // delivered once the source is located
		case !known:
			m.drop(meshDropSourceUnknown)
			continue
		case l.node != node:
			m.drop(meshDropSourceElsewhere)
			continue
		case !d2dAllowed(r.policies.get(l.group), r.policies.get(dstSt.SIM().GroupID), in.IP.Proto, in.IP.SrcPort, in.IP.DstPort):
			m.drop(meshDropPolicy)
			continue
		}
		if dstLAN != nil {
			// A LAN behind a SIM here: translated on its way in, as a
			// packet from a device here would be.
			dstLAN.enter(in.Data, &in.IP)
		}
		if to != target {
			flush()
			target = to
		}
		pending = append(pending, in.Data)
	}
	flush()
}

func (m *mesh) close() { m.eng.Close() }

// heard says whether p was heard from within meshAliveFor.
func heard(p *engine.Peer) bool {
	last := p.Stats().LastReceived
	return !last.IsZero() && time.Since(last) < meshAliveFor
}

// meshPeerStale is how long a held node may go without a handshake before
// it counts as unreachable: sessions are renewed every two minutes while
// the persistent keepalive runs. meshPeerGrace is how long a node just
// added may take to its first one (a variable: tests shorten it).
const meshPeerStale = 3 * time.Minute

var meshPeerGrace = time.Minute

// unreachable lists the held nodes the mesh cannot reach: no handshake
// within meshPeerStale (or none yet, meshPeerGrace after they were
// added). A node is only held while the registry says it is up.
func (m *mesh) unreachable() []string {
	m.mu.RLock()
	defer m.mu.RUnlock()
	var out []string
	now := time.Now()
	for name, p := range m.peers {
		s := p.Stats()
		switch {
		case s.LastHandshake.IsZero() && now.Sub(m.added[name]) > meshPeerGrace,
			!s.LastHandshake.IsZero() && now.Sub(s.LastHandshake) > meshPeerStale:
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

// Degraded says what does not work on this gateway, for /healthz and the
// node registry: under load (handshakes must show a cookie), mesh peers
// it cannot reach. Empty when all works.
func (g *Gateway) Degraded() []string {
	var out []string
	if g.eng.UnderLoad() {
		out = append(out, "under load: handshakes must show a cookie")
	}
	if g.mesh != nil {
		for _, n := range g.mesh.unreachable() {
			out = append(out, "mesh peer "+n+" unreachable")
		}
	}
	return out
}

// MeshPeers is how many other nodes the mesh holds, and how many of them
// were heard from within meshAliveFor (0, 0 without a mesh).
func (g *Gateway) MeshPeers() (held, up int) {
	if g.mesh == nil {
		return 0, 0
	}
	g.mesh.mu.RLock()
	defer g.mesh.mu.RUnlock()
	for _, p := range g.mesh.peers {
		if heard(p) {
			up++
		}
	}
	return len(g.mesh.peers), up
}
