// SPDX-License-Identifier: Apache-2.0

package gateway

import (
	"encoding/binary"
	"net/netip"
	"sync"
	"time"

	"github.com/wirefleet/wirefleet/engine"

	"github.com/wirefleet/wirefleet/gateway/monitor"
)

// The gateway feeds the security monitor from its vantage point: every
// authenticated endpoint change and handshake (cloned keys), every new
// flow a SIM starts (scanning). Alerts become audit events on the SIM,
// metrics and logs.

type alertCounts struct {
	mu sync.Mutex
	n  map[string]uint64
}

func (a *alertCounts) add(kind string) {
	a.mu.Lock()
	if a.n == nil {
		a.n = map[string]uint64{}
	}
	a.n[kind]++
	a.mu.Unlock()
}

func (a *alertCounts) snapshot() map[string]uint64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	m := make(map[string]uint64, len(a.n))
	for k, v := range a.n {
		m[k] = v
	}
	return m
}

func (g *Gateway) newMonitor(cfg monitor.Config) *monitor.Monitor {
	cfg.Alert = func(a monitor.Alert) {
		g.alerts.add(a.Kind)
		g.log.Warn("security alert", "kind", a.Kind, "sim", a.SIM, "severity", a.Severity, "detail", a.Detail)
		g.events.record(a.SIM, "device.alert", map[string]any{"kind": a.Kind, "severity": a.Severity, "detail": a.Detail, "evidence": a.Evidence})
		// Off the data path: the alert fired inside the router or an
		// engine hook.
		if g.ctx.Err() != nil {
			return // shutting down
		}
		g.wg.Add(1)
		go func() {
			defer g.wg.Done()
			g.respond(a)
		}()
	}
	return monitor.New(cfg)
}

// observeFlow tells the monitor about a packet's flow, but only when it is
// not the SIM's last flow again: bulk traffic to one destination costs one
// atomic load per packet, a scan one map update per new destination.
func (r *router) observeFlow(st *simState, pol *groupPolicy, dst netip.Addr, proto uint8, dport uint16) {
	var key uint64
	if dst.Is4() {
		d := dst.As4()
		key = uint64(d[0])<<56 | uint64(d[1])<<48 | uint64(d[2])<<40 | uint64(d[3])<<32 | uint64(dport)<<8 | uint64(proto)
	} else {
		// An IPv6 destination beyond the fleet: its low 64 bits folded
		// with the high ones (a repeat of the last flow is what counts;
		// a rare collision only reports a flow twice or once less).
		d := dst.As16()
		key = (binary.BigEndian.Uint64(d[:8])*0x9e3779b97f4a7c15 ^ binary.BigEndian.Uint64(d[8:])) + uint64(dport)<<8 + uint64(proto)
	}
	if st.lastFlow.Load() == key {
		return
	}
	st.lastFlow.Store(key)
	r.mon.ObserveFlow(st.id, netip.AddrPortFrom(dst, dport), pol != nil && pol.firstSeen)
}

// volumeInterval is how often the gateway reads every SIM's counters for
// the volume detector: the data path pays nothing for it.
const volumeInterval = time.Minute

// forgetEvery is how often the monitor drops SIMs silent for an hour.
const forgetEvery = 10 * time.Minute

// watchVolumes reports each held SIM's traffic of the last interval to the
// monitor, for groups with a volume rule.
func (g *Gateway) watchVolumes(every time.Duration) {
	defer g.wg.Done()
	t := time.NewTicker(every)
	defer t.Stop()
	last := time.Now()
	lastForget := last
	for {
		select {
		case <-g.ctx.Done():
			return
		case now := <-t.C:
			g.reportVolumes(now.Sub(last))
			last = now
			// Detector state follows active SIMs: an hour of silence
			// forgets a SIM (its learned destinations are learned again).
			if now.Sub(lastForget) >= forgetEvery {
				g.mon.Forget(time.Hour)
				lastForget = now
			}
		}
	}
}

func (g *Gateway) reportVolumes(interval time.Duration) {
	for _, st := range g.allStates() {
		p := g.eng.Peer(st.key)
		if p == nil || stateOf(p) != st {
			continue
		}
		s := p.Stats()
		db, dp := s.RxBytes-st.volBytes, s.RxPackets-st.volPackets
		st.volBytes, st.volPackets = s.RxBytes, s.RxPackets
		if !st.volSeen {
			st.volSeen = true // the first reading is a baseline
			continue
		}
		sim := st.SIM()
		pol := g.policies.get(sim.GroupID)
		if pol == nil || !pol.watchesVolume() {
			continue
		}
		g.mon.ObserveVolume(st.id, sim.GroupID, monitor.Volume{Bytes: db, Packets: dp, Interval: interval}, pol.volume)
	}
}

// onReplay feeds the cloned-key detector with an initiation of a held
// SIM's key refused as a replay.
func (g *Gateway) onReplay(ev engine.RejectEvent) {
	if g.mon == nil {
		return
	}
	if p := g.eng.Peer(ev.Key); p != nil {
		if st := stateOf(p); st != nil {
			g.mon.ObserveReplay(st.id, ev.Remote, ev.Timestamp)
		}
	}
}
