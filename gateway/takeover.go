// SPDX-License-Identifier: Apache-2.0

package gateway

import (
	"context"
	"errors"
	"hash/maphash"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/wirefleet/wirefleet/engine"
	"github.com/wirefleet/wirefleet/fleet"
	"golang.zx2c4.com/wireguard/conn"

	"github.com/wirefleet/wirefleet/internal/tokenbucket"
)

// Taking over a device whose session lived on another node. When a node
// dies (or a load balancer moves a device's flow), the device keeps
// sending transport packets of a session no node here holds; a standard
// client initiates a new handshake only some 15 s after its last answer.
// The node that receives them finds, in the store's presence records,
// which SIM had a session at that endpoint on another node, and initiates
// the handshake itself, from the address the packets arrived on: the
// device's next packet brings the session back within a round trip.
//
// Such a packet cannot be authenticated, and a standard client accepts
// an initiation from any node (they share the installation's key) and
// moves its endpoint there: a packet forged from a device's address
// could move a live device. So a node takes over only from a node that
// is gone: over the mesh, no packet from it for meshAliveFor (its peers
// keep alive every second); without a mesh, the registry's word (down
// 30 s after its last heartbeat), so fast failover needs the mesh. A
// peer with a live session here is never touched (engine.InitiateTo).
// Lookups are bounded over all and per endpoint, so a spray of packets
// (they cannot be authenticated: anyone can send them) costs the store a
// bounded rate of indexed reads (two or three each) and the node a
// bounded rate of initiations: takeoverRate a second in steady state.
// While a mesh node has just gone silent (a mass failover: the devices
// of a dead node, 10,000 say, split over the survivors) the rate rises to
// takeoverSurgeRate, so they are taken over in seconds rather than left
// to their own handshake some 15 s on; a few workers keep store round
// trips from serialising them.
const (
	takeoverEvery     = 5 * time.Second        // per endpoint, at most one try in this time once it was tried through
	takeoverRetry     = 500 * time.Millisecond // again after a try that could not decide yet
	takeoverRate      = 50                     // lookups a second over all endpoints
	takeoverBurst     = 200
	takeoverSurgeRate = 2000 // more a second while a mesh node has just gone silent
	takeoverSurge     = 4000
	takeoverSurgeFor  = 2 * time.Minute // how long after a node went silent
	takeoverQueue     = 4096
	takeoverWorkers   = 8
)

type takeover struct {
	g *Gateway
	// next holds, per endpoint (a keyed hash of it: bounded memory, no
	// lock, no sweep), when it may be tried again, in unix nanoseconds.
	next  [1 << 16]atomic.Int64
	seed  maphash.Seed
	all   *tokenbucket.Set[struct{}]
	surge *tokenbucket.Set[struct{}] // only while a mesh node has just gone silent
	queue chan takeoverJob

	results [len(takeoverResults)]atomic.Uint64
}

type takeoverJob struct {
	remote netip.AddrPort
	ep     conn.Endpoint
	slot   *atomic.Int64
	due    int64 // what this job set the slot to: a retry replaces only its own claim
}

// takeoverResults are the outcomes counted by
// wirefleet_gateway_takeovers_total.
var takeoverResults = [...]string{"initiated", "no-presence", "refused", "holder-alive", "store-error", "dropped"}

func newTakeover(g *Gateway) *takeover {
	return &takeover{
		g:     g,
		seed:  maphash.MakeSeed(),
		all:   tokenbucket.NewSet[struct{}](takeoverRate, takeoverBurst, 1),
		surge: tokenbucket.NewSet[struct{}](takeoverSurgeRate, takeoverSurge, 1),
		queue: make(chan takeoverJob, takeoverQueue),
	}
}

func (t *takeover) count(result string) {
	for i, r := range takeoverResults {
		if r == result {
			t.results[i].Add(1)
		}
	}
}

// offer is the engine's UnplacedTransport hook: on the receive path, so
// it only rate-limits and queues.
func (t *takeover) offer(remote netip.AddrPort, ep conn.Endpoint) {
	slot := &t.next[maphash.Comparable(t.seed, remote)%uint64(len(t.next))]
	now := time.Now().UnixNano()
	due := slot.Load()
	if now < due {
		return
	}
	if ok, _ := t.all.Allow(struct{}{}); !ok {
		if m := t.g.mesh; m == nil || now-m.lostAt.Load() > int64(takeoverSurgeFor) {
			t.count("dropped")
			return
		}
		if ok, _ := t.surge.Allow(struct{}{}); !ok {
			t.count("dropped")
			return
		}
	}
	claim := now + int64(takeoverEvery)
	if !slot.CompareAndSwap(due, claim) {
		return // another packet of it claimed the try
	}
	select {
	case t.queue <- takeoverJob{remote: remote, ep: ep, slot: slot, due: claim}:
	default:
		slot.CompareAndSwap(claim, now) // not tried: the next packet may
		t.count("dropped")
	}
}

// run takes the queued endpoints over until the gateway stops; it runs
// on takeoverWorkers goroutines.
func (t *takeover) run() {
	defer t.g.wg.Done()
	for {
		select {
		case <-t.g.ctx.Done():
			return
		case j := <-t.queue:
			r := t.try(j)
			if r == "holder-alive" || r == "no-presence" || r == "store-error" {
				// Soon again: the holder may be dying (its last packets
				// within meshAliveFor), the presence not written yet.
				j.slot.CompareAndSwap(j.due, time.Now().Add(takeoverRetry).UnixNano())
			}
			t.count(r)
		}
	}
}

// try looks up which SIM had a session at j's endpoint on another node and
// initiates a handshake with it.
func (t *takeover) try(j takeoverJob) string {
	g := t.g
	ctx, cancel := context.WithTimeout(g.ctx, 5*time.Second)
	defer cancel()
	ps, err := g.st.PresencesAt(ctx, j.remote.String())
	if err != nil {
		g.log.Debug("takeover: reading presences", "endpoint", j.remote, "err", err)
		return "store-error"
	}
	me := g.gatewayID()
	for _, p := range ps { // newest first
		if p.Gateway == me {
			continue // a session of ours that ended: the device handshakes itself
		}
		if alive, why := g.nodeAlive(ctx, p.Gateway); alive {
			// The packet cannot be authenticated (it may be forged from
			// the device's address): while the node holding the session
			// lives, the session is left where it is.
			g.log.Debug("takeover: the node holding the session is alive", "sim", p.SIMID, "node", p.Gateway, "why", why)
			return "holder-alive"
		}
		sim, err := g.st.SIM(ctx, p.SIMID)
		if err != nil {
			return "store-error"
		}
		if sim.Status != fleet.StatusActive {
			return "refused"
		}
		err = g.eng.InitiateTo(ctx, sim.PublicKey, j.ep)
		var denied *engine.DeniedError
		switch {
		case errors.As(err, &denied), errors.Is(err, engine.ErrUnknownPeer), errors.Is(err, engine.ErrPeerElsewhere):
			return "refused"
		case err != nil:
			return "store-error"
		}
		g.log.Info("taking over a device from another node", "sim", sim.ID, "from_node", p.Gateway, "endpoint", j.remote)
		return "initiated"
	}
	return "no-presence"
}

// nodeAlive says whether node (a presence's gateway) still runs: a mesh
// peer heard from within meshAliveFor, or, without the mesh, a node the
// registry counts as up.
func (g *Gateway) nodeAlive(ctx context.Context, node string) (bool, string) {
	if m := g.mesh; m != nil {
		p, added := m.peer(node)
		if p == nil && time.Since(time.Unix(0, m.lastSync.Load())) > meshMissTTL {
			m.syncPeers() // a node that joined since the last registry read
			p, added = m.peer(node)
		}
		if p != nil {
			switch {
			case !p.Stats().LastReceived.IsZero():
				return heard(p), "mesh"
			case time.Since(added) < meshAliveFor:
				return true, "mesh peer just added" // not heard from yet: wait and see
			}
			// Never heard from over the mesh (a firewall between the
			// nodes?): the registry's word, as without a mesh.
		}
	}
	nodes, err := g.st.ListNodes(ctx)
	if err != nil {
		return true, "registry unreadable" // in doubt, leave the session be
	}
	for _, n := range nodes {
		if n.Name == node {
			return n.Up(time.Now()), "registry"
		}
	}
	return false, "not registered"
}
