// SPDX-License-Identifier: Apache-2.0

package engine

import (
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wirefleet/wirefleet/engine/cookie"
	"github.com/wirefleet/wirefleet/engine/noise"
	"github.com/wirefleet/wirefleet/engine/tai64n"
	"github.com/wirefleet/wirefleet/keystore"
	"github.com/wirefleet/wirefleet/wgkey"
	"golang.zx2c4.com/wireguard/conn"
)

// PeerConfig describes a peer, given to AddPeer or returned by a Resolver.
type PeerConfig struct {
	PublicKey    wgkey.Public
	PresharedKey wgkey.Preshared
	// AllowedIPs are the inner source addresses the peer may send from, and
	// (for a TUN engine) the destinations routed to it.
	AllowedIPs []netip.Prefix
	// Endpoint is where to send initiations before the peer has been heard
	// from; the zero value means "wait for the peer".
	Endpoint netip.AddrPort
	// PersistentKeepalive sends a keepalive after this much silence (0: off).
	PersistentKeepalive time.Duration
	// Identity is opaque to the engine (a gateway puts the SIM here).
	Identity any
	// LastTimestamp is the newest handshake timestamp known for the peer
	// (a TimestampKeeper resolver's memory); older initiations are replays.
	LastTimestamp tai64n.Timestamp
	// FixedEndpoint keeps Endpoint whatever address the peer's packets
	// come from (no roaming): for peers at known addresses, so that whoever
	// holds the peer's key elsewhere cannot draw its traffic. SetEndpoint
	// still moves it.
	FixedEndpoint bool
}

// Peer is a remote WireGuard party with its sessions. Engines hand out
// *Peer values; their methods are safe for concurrent use.
type Peer struct {
	e         *Engine
	key       wgkey.Public
	psk       wgkey.Preshared
	allowed   atomic.Pointer[[]netip.Prefix] // replaced whole by SetAllowedIPs
	identity  any
	keepalive time.Duration
	lazy      bool // resolved on demand: evicted when idle
	fixed     bool // the endpoint does not follow the peer's packets
	// oneShot: its pending initiation is not retransmitted (InitiateTo's,
	// asked by a packet nobody could authenticate); guarded by mu.
	oneShot bool
	cookies cookie.Generator

	endpoint atomic.Pointer[endpointBox]

	current atomic.Pointer[keypair]

	mu         sync.Mutex // handshake state and keypair rotation
	ss         [32]byte   // DH(our static, peer static) for ssFor
	ssFor      *identity  // the static key ss was computed with
	initFor    *identity  // the static key of our pending initiation
	previous   *keypair
	next       *keypair
	initiator  *noise.Initiator
	initIndex  uint32 // index of our pending initiation, 0 if none
	initSentAt int64
	initQueued bool
	attempts   int
	lastTS     tai64n.Timestamp
	lastInitAt int64
	staged     [][]byte
	removed    bool

	// Timer inputs, clock nanos; 0 means unset.
	lastHandshake   atomic.Int64
	keepaliveDue    atomic.Int64 // first data received since we last sent
	newHandshakeDue atomic.Int64 // first data sent since we last received
	lastTraversal   atomic.Int64 // any authenticated packet, either way
	lastReceived    atomic.Int64 // an authenticated packet from the peer (keepalives too)
	lastActivity    atomic.Int64
	expiredReported atomic.Bool
	wheelSlot       atomic.Int64 // the timer wheel slot p is armed at, 0 if none

	rxBytes, txBytes     atomic.Uint64
	rxPackets, txPackets atomic.Uint64
}

type endpointBox struct {
	ep   conn.Endpoint
	addr netip.AddrPort
	src  netip.Addr // the local address its datagrams arrived on
}

// PublicKey returns the peer's static public key.
func (p *Peer) PublicKey() wgkey.Public { return p.key }

// Identity returns what the peer's config or resolver attached (a SIM).
func (p *Peer) Identity() any { return p.identity }

// AllowedIPs returns (a copy of) the inner source prefixes the peer may use.
func (p *Peer) AllowedIPs() []netip.Prefix { return append([]netip.Prefix(nil), p.allowedIPs()...) }

func (p *Peer) allowedIPs() []netip.Prefix {
	if a := p.allowed.Load(); a != nil {
		return *a
	}
	return nil
}

// Endpoint returns the peer's current outer address (zero if unknown).
func (p *Peer) Endpoint() netip.AddrPort {
	if b := p.endpoint.Load(); b != nil {
		return b.addr
	}
	return netip.AddrPort{}
}

// PeerStats is a snapshot of a peer's counters.
type PeerStats struct {
	Endpoint      netip.AddrPort
	LastHandshake time.Time // zero if never
	RxBytes       uint64    // inner bytes received
	TxBytes       uint64    // inner bytes sent
	RxPackets     uint64    // inner packets received (keepalives not counted)
	TxPackets     uint64    // inner packets sent
	HasSession    bool
	// LastReceived is when the last authenticated packet (keepalives too)
	// came from the peer, to within 10 ms; zero if none.
	LastReceived time.Time
	// UnansweredSince is when we first sent data that nothing authenticated
	// from the peer has followed yet (zero if answered): the sign of a peer
	// that lost our session, for example a restarted gateway.
	UnansweredSince time.Time
}

// Stats returns the peer's counters.
func (p *Peer) Stats() PeerStats {
	s := PeerStats{Endpoint: p.Endpoint(), RxBytes: p.rxBytes.Load(), TxBytes: p.txBytes.Load(), RxPackets: p.rxPackets.Load(), TxPackets: p.txPackets.Load()}
	if t := p.lastHandshake.Load(); t != 0 {
		s.LastHandshake = time.Unix(0, t)
	}
	if t := p.newHandshakeDue.Load(); t != 0 {
		s.UnansweredSince = time.Unix(0, t)
	}
	if t := p.lastReceived.Load(); t != 0 {
		s.LastReceived = time.Unix(0, t)
	}
	kp := p.current.Load()
	s.HasSession = kp != nil && p.e.nanos()-kp.created < int64(RejectAfterTime)
	return s
}

// allows reports whether src is inside the peer's allowed IPs.
func (p *Peer) allows(src netip.Addr) bool {
	for _, pfx := range p.allowedIPs() {
		if pfx.Contains(src) {
			return true
		}
	}
	return false
}

// hasIPv6 reports whether any allowed IP is IPv6 (asked only on the path
// of a refused packet).
func (p *Peer) hasIPv6() bool {
	for _, pfx := range p.allowedIPs() {
		if pfx.Addr().Is6() {
			return true
		}
	}
	return false
}

// setEndpoint records the outer address of an authenticated packet and
// reports a change (roaming).
//
// A change of the local address alone (the peer now sends to another of
// this host's addresses) is kept too, without an event: replies leave
// from the address the peer last sent to.
func (p *Peer) setEndpoint(ep conn.Endpoint) {
	addr, src := endpointAddr(ep), ep.SrcIP()
	old := p.endpoint.Load()
	if p.fixed && old != nil {
		return
	}
	if old != nil && old.addr == addr {
		if old.src != src {
			p.endpoint.Store(&endpointBox{ep: ep, addr: addr, src: src})
		}
		return
	}
	p.endpoint.Store(&endpointBox{ep: ep, addr: addr, src: src})
	if old != nil && p.e.hooks.EndpointChanged != nil {
		p.e.hooks.EndpointChanged(EndpointEvent{Peer: p, Old: old.addr, New: addr, Time: p.e.now()})
	}
}

// peerTable maps static keys to active peers, sharded by key.
type peerTable struct {
	shards [64]struct {
		sync.RWMutex
		m map[wgkey.Public]*Peer
	}
	count atomic.Int64
}

func newPeerTable() *peerTable {
	t := new(peerTable)
	for i := range t.shards {
		t.shards[i].m = make(map[wgkey.Public]*Peer)
	}
	return t
}

func (t *peerTable) shard(k wgkey.Public) int { return int(k[0]) % len(t.shards) }

func (t *peerTable) get(k wgkey.Public) *Peer {
	s := &t.shards[t.shard(k)]
	s.RLock()
	p := s.m[k]
	s.RUnlock()
	return p
}

// insert adds p unless a peer with its key exists; it returns the peer now
// in the table.
func (t *peerTable) insert(p *Peer) *Peer {
	s := &t.shards[t.shard(p.key)]
	s.Lock()
	defer s.Unlock()
	if old := s.m[p.key]; old != nil {
		return old
	}
	s.m[p.key] = p
	t.count.Add(1)
	return p
}

func (t *peerTable) remove(p *Peer) bool {
	s := &t.shards[t.shard(p.key)]
	s.Lock()
	defer s.Unlock()
	if s.m[p.key] != p {
		return false
	}
	delete(s.m, p.key)
	t.count.Add(-1)
	return true
}

// each calls fn for every peer, one shard snapshot at a time so fn may
// take peer locks.
func (t *peerTable) each(fn func(*Peer)) {
	var buf []*Peer
	for i := range t.shards {
		s := &t.shards[i]
		s.RLock()
		buf = buf[:0]
		for _, p := range s.m {
			buf = append(buf, p)
		}
		s.RUnlock()
		for _, p := range buf {
			fn(p)
		}
	}
}

// computeStaticStaticLocked computes and caches the static-static DH of
// the peer with id's key (p.mu held, or p not yet shared).
func (p *Peer) computeStaticStaticLocked(id *identity, remote netip.AddrPort) error {
	if p.ssFor == id {
		return nil
	}
	ss, err := id.ks.DH(p.e.ctx, keystore.DHRequest{Purpose: keystore.StaticStatic, Peer: p.key, PeerStatic: p.key, Remote: remote})
	if err != nil {
		return fmt.Errorf("engine: static-static DH for %s: %w", p.key.Short(), err)
	}
	p.ss, p.ssFor = ss, id
	return nil
}

// staticStatic returns the static-static DH with id's key.
func (p *Peer) staticStatic(id *identity, remote netip.AddrPort) ([32]byte, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.computeStaticStaticLocked(id, remote); err != nil {
		return [32]byte{}, err
	}
	return p.ss, nil
}
