// SPDX-License-Identifier: Apache-2.0

package gateway

import (
	"context"
	"errors"
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
// An attacker who forges a device's source address can make this node
// send that device an initiation (148 bytes for a 32-byte packet, once
// per takeoverEvery per endpoint): the device answers it and keeps its
// session either way. Lookups are bounded per endpoint and over all, so a
// spray of forged packets costs the store a bounded rate of indexed reads.
const (
	takeoverEvery  = 5 * time.Second // per endpoint, at most one try in this time
	takeoverRate   = 50              // lookups a second over all endpoints
	takeoverBurst  = 200
	takeoverQueue  = 256
	takeoverSweepN = 65536 // endpoints remembered at most
)

type takeover struct {
	g       *Gateway
	perEP   *tokenbucket.Set[netip.AddrPort]
	all     *tokenbucket.Set[struct{}]
	queue   chan takeoverJob
	results [len(takeoverResults)]atomic.Uint64
}

type takeoverJob struct {
	remote netip.AddrPort
	ep     conn.Endpoint
}

// takeoverResults are the outcomes counted by
// wirefleet_gateway_takeovers_total.
var takeoverResults = [...]string{"initiated", "no-presence", "refused", "store-error", "dropped"}

func newTakeover(g *Gateway) *takeover {
	return &takeover{
		g:     g,
		perEP: tokenbucket.NewSet[netip.AddrPort](1/takeoverEvery.Seconds(), 1, takeoverSweepN),
		all:   tokenbucket.NewSet[struct{}](takeoverRate, takeoverBurst, 1),
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
	if ok, _ := t.perEP.Allow(remote); !ok {
		return
	}
	if ok, _ := t.all.Allow(struct{}{}); !ok {
		t.count("dropped")
		return
	}
	select {
	case t.queue <- takeoverJob{remote: remote, ep: ep}:
	default:
		t.count("dropped")
	}
}

// run takes the queued endpoints over until the gateway stops.
func (t *takeover) run() {
	defer t.g.wg.Done()
	for {
		select {
		case <-t.g.ctx.Done():
			return
		case j := <-t.queue:
			t.count(t.try(j))
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
