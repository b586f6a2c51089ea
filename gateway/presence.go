// SPDX-License-Identifier: Apache-2.0

package gateway

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"time"

	"github.com/wirefleet/wirefleet/controlplane/store"
)

// Gateways sharing a database record each SIM's live session (once when
// it comes online, once when it ends: two writes per session, not per
// packet or handshake). A gateway holding a SIM's older session that hears
// another gateway recorded a newer one watches its own session for a
// while: a device that moved stops sending here; one still sending is a
// second device with the same key.

// defaultSecondGatewayWindow is how long the older session is watched.
const defaultSecondGatewayWindow = 20 * time.Second

type presenceOp struct {
	set      bool
	sim      string
	endpoint string
	since    time.Time
}

// gatewayID names this gateway in presence records.
func (g *Gateway) gatewayID() string {
	if g.cfg.ID != "" {
		return g.cfg.ID
	}
	host, _ := os.Hostname()
	return fmt.Sprintf("%s:%d", host, g.eng.Port())
}

// recordPresence queues a presence write (never blocks the engine's hooks).
func (g *Gateway) recordPresence(op presenceOp) {
	select {
	case g.presence <- op:
	default:
		g.log.Warn("presence queue full; a session is not recorded", "sim", op.sim)
	}
}

// writePresences serves the presence queue.
func (g *Gateway) writePresences() {
	defer g.wg.Done()
	id := g.gatewayID()
	if err := g.svc.ClearPresence(g.ctx, "", id); err != nil && g.ctx.Err() == nil {
		g.log.Warn("clearing this gateway's old presences", "gateway", id, "err", err)
	}
	for {
		select {
		case <-g.ctx.Done():
			return
		case op := <-g.presence:
			ctx, cancel := context.WithTimeout(g.ctx, 5*time.Second)
			var err error
			if op.set {
				err = g.svc.SetPresence(ctx, store.Presence{SIMID: op.sim, Gateway: id, Endpoint: op.endpoint, Since: op.since})
			} else {
				err = g.svc.ClearPresence(ctx, op.sim, id)
			}
			cancel()
			if err != nil && g.ctx.Err() == nil {
				g.log.Warn("recording presence", "sim", op.sim, "err", err)
			}
		}
	}
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
	if mine == nil || g.mon == nil {
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
	var other *store.Presence
	for i, p := range ps {
		if p.Gateway != id && p.Since.After(since) {
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
	rx0 := p.Stats().RxBytes
	window := g.cfg.SecondGatewayWindow
	if window == 0 {
		window = defaultSecondGatewayWindow
	}
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		select {
		case <-g.ctx.Done():
			return
		case <-time.After(window):
		}
		if !mine.online.Load() || mine.revoked.Load() || g.eng.Peer(mine.key) != p {
			return
		}
		s := p.Stats()
		if s.RxBytes <= rx0 {
			return // the device moved to the other gateway
		}
		if s.LastHandshake.After(other.Since) {
			// A new handshake here since the other gateway's session began:
			// the device came back (its session there replaced ours on the
			// device, so it had to shake hands again). Two devices keep
			// their sessions and only rekey every two minutes.
			return
		}
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
