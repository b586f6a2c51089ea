// SPDX-License-Identifier: Apache-2.0

package gateway

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"sync"
	"time"

	"github.com/wirefleet/wirefleet/controlplane"
	"github.com/wirefleet/wirefleet/controlplane/store"
)

// Gateways sharing a database record each SIM's live session (once when
// it comes online, once when it ends: two writes per session, not per
// packet or handshake). A gateway holding a SIM's older session that hears
// another gateway recorded a newer one watches its own session for a
// while: a device that moved stops sending here; one still sending is a
// second device with the same key.

// defaultSecondGatewayWindow is how long the older session is watched;
// defaultMovedSilence how long it must be silent to be ended here.
const (
	defaultSecondGatewayWindow = 20 * time.Second
	defaultMovedSilence        = 30 * time.Second
	// presenceSkew is how far in the future another node's record may be
	// dated and still count (clocks differ a little; a record dated
	// beyond that is a wrong clock or a wrong row, and would otherwise
	// count as newer than every session here for as long as it lasts).
	presenceSkew = 5 * time.Second
)

type presenceOp struct {
	set      bool
	sim      string
	endpoint string
	since    time.Time
}

// ID is this gateway's name in presence records and the node registry:
// Config.ID, or this host's name and the WireGuard port.
func (g *Gateway) ID() string { return g.gatewayID() }

// gatewayID names this gateway in presence records.
func (g *Gateway) gatewayID() string {
	if g.cfg.ID != "" {
		return g.cfg.ID
	}
	host, _ := os.Hostname()
	return fmt.Sprintf("%s:%d", host, g.eng.Port())
}

// presenceQueue holds the session changes still to write, the latest per
// SIM: a burst of reconnecting devices is never dropped (memory is bounded
// by the SIMs, not by the changes), and a SIM that came and went before
// the writer looked costs one write, its last state.
type presenceQueue struct {
	mu      sync.Mutex
	pending map[string]presenceOp
	wake    chan struct{} // one wake-up pending at most
}

func newPresenceQueue() *presenceQueue {
	return &presenceQueue{pending: map[string]presenceOp{}, wake: make(chan struct{}, 1)}
}

func (q *presenceQueue) put(op presenceOp) {
	q.mu.Lock()
	q.pending[op.sim] = op
	q.mu.Unlock()
	q.poke()
}

// poke wakes the writer.
func (q *presenceQueue) poke() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// take returns what is pending and empties the queue.
func (q *presenceQueue) take() map[string]presenceOp {
	q.mu.Lock()
	defer q.mu.Unlock()
	m := q.pending
	q.pending = map[string]presenceOp{}
	return m
}

// putBack returns ops whose write failed, unless a newer change of the
// same SIM came meanwhile.
func (q *presenceQueue) putBack(ops []presenceOp) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, op := range ops {
		if _, newer := q.pending[op.sim]; !newer {
			q.pending[op.sim] = op
		}
	}
}

// presenceBatch is the most session changes written in one transaction.
const presenceBatch = 1000

// recordPresence queues a presence write (never blocks the engine's hooks).
func (g *Gateway) recordPresence(op presenceOp) { g.presence.put(op) }

// writePresences serves the presence queue, in batches. At shutdown,
// Close writes what is still queued once the engine is closed, so the
// session ends of the last moments are written too (finalFlush).
func (g *Gateway) writePresences() {
	defer g.wg.Done()
	id := g.gatewayID()
	if err := g.svc.ClearPresence(g.ctx, "", id); err != nil && g.ctx.Err() == nil {
		g.log.Warn("clearing this gateway's old presences", "gateway", id, "err", err)
	}
	for {
		select {
		case <-g.ctx.Done():
			return // Close writes what is left, once the engine is down
		case <-g.presence.wake:
			if n := g.flushPresences(g.ctx, id); n > 0 && g.ctx.Err() == nil {
				// The store is away: what failed is queued again; try
				// again in a second, without spinning.
				select {
				case <-g.ctx.Done():
				case <-time.After(time.Second):
				}
				g.presence.poke()
			}
		}
	}
}

// flushPresences writes every queued change and returns how many could
// not be written (queued again).
func (g *Gateway) flushPresences(ctx context.Context, id string) (failed int) {
	m := g.presence.take()
	ops := make([]presenceOp, 0, len(m))
	for _, op := range m {
		ops = append(ops, op)
	}
	for len(ops) > 0 {
		batch := ops[:min(len(ops), presenceBatch)]
		ops = ops[len(batch):]
		ws := make([]controlplane.PresenceWrite, len(batch))
		for i, op := range batch {
			ws[i] = controlplane.PresenceWrite{Presence: store.Presence{SIMID: op.sim, Gateway: id, Endpoint: op.endpoint, Since: op.since}, Clear: !op.set}
		}
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := g.svc.WritePresences(wctx, ws)
		cancel()
		if err != nil {
			if ctx.Err() == nil {
				g.log.Warn("recording presence", "sessions", len(batch), "err", err)
			}
			// The rest would fail alike: all of it waits for the next try.
			g.presence.putBack(batch)
			g.presence.putBack(ops)
			return len(batch) + len(ops)
		}
	}
	return 0
}

// queuePresenceCheck hands a presence change to the checker: the change
// feed's watcher applies suspensions and must never wait on a database
// read. A full queue drops the check (counted in the log): detection
// waits for the next session, revocation never waits.
func (g *Gateway) queuePresenceCheck(simID string) {
	for _, st := range g.states(simID) {
		if st.online.Load() {
			select {
			case g.presenceChecks <- simID:
			default:
				g.log.Debug("presence check queue full; check skipped", "sim", simID)
			}
			return
		}
	}
}

// checkPresences serves the presence-check queue.
func (g *Gateway) checkPresences() {
	defer g.wg.Done()
	for {
		select {
		case <-g.ctx.Done():
			return
		case id := <-g.presenceChecks:
			g.checkPresence(id)
		}
	}
}

// checkPresence runs when some gateway recorded a session of simID. If
// this gateway holds an older session of it, it watches that session.
func (g *Gateway) checkPresence(simID string) {
	var mine *simState
	for _, st := range g.states(simID) {
		if st.online.Load() && !st.revoked.Load() {
			mine = st
		}
	}
	if mine == nil {
		return
	}
	since := time.Unix(0, mine.onlineSince.Load())
	ctx, cancel := context.WithTimeout(g.ctx, 5*time.Second)
	ps, err := g.st.Presences(ctx, simID)
	cancel()
	if err != nil {
		return
	}
	id := g.gatewayID()
	latest := time.Now().Add(presenceSkew)
	var other *store.Presence
	for i, p := range ps {
		if p.Gateway != id && p.Since.After(since) && !p.Since.After(latest) {
			other = &ps[i]
		}
	}
	if other == nil {
		return
	}
	p := g.eng.Peer(mine.key)
	if p == nil || stateOf(p) != mine {
		return
	}
	// The watch compares this node's own readings only (the other node's
	// clock decides nothing but that its record is newer).
	start := time.Now()
	rx0 := p.Stats().RxBytes
	window := g.cfg.SecondGatewayWindow
	if window == 0 {
		window = defaultSecondGatewayWindow
	}
	silence := g.cfg.MovedSilence
	if silence == 0 {
		silence = defaultMovedSilence
	}
	sleep := func(d time.Duration) bool {
		select {
		case <-g.ctx.Done():
			return false
		case <-time.After(d):
			return true
		}
	}
	same := func() bool { return mine.online.Load() && !mine.revoked.Load() && g.eng.Peer(mine.key) == p }
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		if !sleep(window) || !same() {
			return
		}
		s := p.Stats()
		switch {
		case s.LastHandshake.After(start):
			// A new handshake here since the other node's session began:
			// the device came back (its session there replaced ours on the
			// device, so it had to shake hands again). Two devices keep
			// their sessions and only rekey every two minutes. Its
			// presence record here becomes the newest again, so the other
			// nodes look for it here.
			now := g.clk.Now()
			mine.onlineSince.Store(now.UnixNano())
			g.recordPresence(presenceOp{set: true, sim: simID, endpoint: endpointString(s.Endpoint), since: now})
			if !mine.online.Load() {
				g.recordPresence(presenceOp{sim: simID}) // it ended meanwhile: its record goes too
			}
			return
		case s.LastReceived.Before(start):
			// Nothing heard since: the device moved to the other node, or
			// is silent. Once silent for MovedSilence (a device that keeps
			// alive is heard by then), its session here ends rather than
			// at expiry minutes on: until then this node would hand the
			// SIM's traffic to a session the device no longer holds
			// instead of to the node it moved to. Its presence record here
			// is cleared with it.
			if wait := time.Until(s.LastReceived.Add(silence)); wait > 0 && !sleep(wait) {
				return
			}
			if s := p.Stats(); same() && s.LastReceived.Before(start) && !s.LastHandshake.After(start) && g.eng.RemovePeer(mine.key) {
				g.log.Info("the device moved to another node; its session here ended", "sim", simID, "node", other.Gateway)
			}
			return
		case s.RxBytes <= rx0 || g.mon == nil:
			return // heard, but keepalives only: an idle device here
		}
		// Data kept arriving here after the other node's session began:
		// two devices hold the key.
		ctx, cancel := context.WithTimeout(g.ctx, 5*time.Second)
		defer cancel()
		ps, err := g.st.Presences(ctx, simID)
		if err != nil {
			return
		}
		for _, q := range ps {
			if q.Gateway == other.Gateway {
				g.mon.ObserveSecondGateway(simID, q.Gateway, q.Endpoint, s.Endpoint)
				return
			}
		}
	}()
}

// endpointString formats an endpoint for presence records.
func endpointString(ap netip.AddrPort) string {
	if !ap.IsValid() {
		return ""
	}
	return ap.String()
}

// finalFlush writes the session records and device events still queued;
// Close calls it once the engine and the writers have stopped.
func (g *Gateway) finalFlush() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if n := g.flushPresences(ctx, g.gatewayID()); n > 0 {
		g.log.Warn("session records not written at shutdown", "count", n)
	}
	g.events.flush(ctx)
}
