// SPDX-License-Identifier: Apache-2.0

// Package monitor watches what the gateway sees — handshakes, endpoints,
// inner flows, volumes — per SIM, and raises alerts: cloned keys (endpoints
// taking turns, or one endpoint's initiations refused as replays while
// another holds the session), scanning (fan-out), destinations outside a
// group's allow-list, first-seen destinations, traffic volume over a limit
// or far over the group's usual, and devices accepting connections on
// ports their profile does not expect. It is pure
// bookkeeping over observations with a clock, so every detector is tested
// without a network; the gateway feeds it from the engine's hooks and its
// router.
package monitor

import (
	"bytes"
	"net/netip"
	"sync"
	"time"

	"github.com/wirefleet/wirefleet/internal/clock"
)

// Alert kinds.
const (
	KindClonedKey = "cloned-key"
	KindFanout    = "fan-out"
	KindAllowList = "outside-allow-list"
	KindFirstSeen = "first-seen"
	KindVolume    = "volume"
	KindListener  = "unexpected-listener"
	// KindKeyReplaced: the key of a SIM with a live session was replaced
	// by someone other than the device's own rotation (an operator, or an
	// auth key where the group allows Arc re-keys without proof).
	KindKeyReplaced = "key-replaced"
	// KindEgressDenied: the SIM tried to reach a destination outside the
	// fleet that its group's egress rules deny.
	KindEgressDenied = "egress-denied"
)

// Alert is one detected incident.
type Alert struct {
	Kind     string         `json:"kind"`
	SIM      string         `json:"sim"`
	Severity string         `json:"severity"` // "high", "medium", "low"
	Detail   string         `json:"detail"`
	Time     time.Time      `json:"time"`
	Evidence map[string]any `json:"evidence,omitempty"`
}

// Config tunes the detectors; zero values take the defaults.
type Config struct {
	// CloneWindow: a SIM's endpoint going back to one it left within this
	// window (A→B→A) is a cloned key, not a roam. Default 2 minutes.
	CloneWindow time.Duration
	// CloneFlips is how many such returns within the window raise the
	// alert. Default 2: one return can be a device bouncing between Wi-Fi
	// and cellular once; two are two devices taking turns.
	CloneFlips int
	// FanoutLimit is the number of distinct destinations per minute above
	// which a SIM is scanning. Default 40.
	FanoutLimit int
	// CloneReplays is how many initiations of a SIM's key, refused as
	// replays and coming from another endpoint than the one holding the
	// session, raise a cloned-key alert within CloneWindow. Default 3: a
	// clone whose clock is behind never wins a handshake, so its
	// endpoint never takes a turn; this is how it shows.
	CloneReplays int
	// LearnFor is how long a SIM's destinations are learned, from its
	// first observed flow, before new ones raise first-seen alerts.
	// Default 1 hour.
	LearnFor time.Duration
	// MaxKnown bounds the destinations remembered per SIM. Default 1024.
	MaxKnown int
	// VolumeFloor is the bytes per minute below which a SIM is never
	// "far over the group's usual". Default 1 MiB.
	VolumeFloor uint64
	// VolumeMinSamples is how many SIM-minutes a group needs before its
	// percentile is trusted. Default 30.
	VolumeMinSamples int
	// Suppress is how long one (kind, SIM) stays quiet after an alert, so
	// an incident is one alert. Default 10 minutes.
	Suppress time.Duration
	// Clock is the detectors' time; default clock.Real.
	Clock clock.Clock
	// Alert receives alerts; it must not block.
	Alert func(Alert)
}

// Monitor holds per-SIM detector state. It is safe for concurrent use.
type Monitor struct {
	cfg    Config
	mu     sync.Mutex
	sims   map[string]*simState
	groups map[string]*groupVolume
}

type endpointSeen struct {
	ep   netip.AddrPort
	left time.Time // when the SIM moved away from ep
}

type simState struct {
	current     netip.AddrPort
	history     []endpointSeen // endpoints left recently, newest last (bounded)
	flips       []time.Time    // returns to a recently left endpoint
	minute      time.Time      // start of the fan-out window
	dsts        map[netip.AddrPort]struct{}
	lastSeen    time.Time
	quietTil    map[string]time.Time
	replays     []time.Time // refused fresh initiations from another endpoint than current
	replayStamp [12]byte    // the newest refused initiation's timestamp
	learnAt     time.Time   // first flow observed with first-seen on
	known       map[netip.AddrPort]struct{}
}

// New returns a Monitor.
func New(cfg Config) *Monitor {
	if cfg.CloneWindow == 0 {
		cfg.CloneWindow = 2 * time.Minute
	}
	if cfg.CloneFlips == 0 {
		cfg.CloneFlips = 2
	}
	if cfg.FanoutLimit == 0 {
		cfg.FanoutLimit = 40
	}
	if cfg.Suppress == 0 {
		cfg.Suppress = 10 * time.Minute
	}
	if cfg.CloneReplays == 0 {
		cfg.CloneReplays = 3
	}
	if cfg.LearnFor == 0 {
		cfg.LearnFor = time.Hour
	}
	if cfg.MaxKnown == 0 {
		cfg.MaxKnown = 1024
	}
	if cfg.VolumeFloor == 0 {
		cfg.VolumeFloor = 1 << 20
	}
	if cfg.VolumeMinSamples == 0 {
		cfg.VolumeMinSamples = 30
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.Real{}
	}
	if cfg.Alert == nil {
		cfg.Alert = func(Alert) {}
	}
	return &Monitor{cfg: cfg, sims: map[string]*simState{}, groups: map[string]*groupVolume{}}
}

func (m *Monitor) state(sim string) *simState {
	s := m.sims[sim]
	if s == nil {
		s = &simState{} // maps made at first use: most SIMs never raise an alert
		m.sims[sim] = s
	}
	return s
}

const maxHistory = 8

// ObserveEndpoint records the outer endpoint a SIM's authenticated packets
// (or handshake) came from. Call it on every change the engine reports.
func (m *Monitor) ObserveEndpoint(sim string, ep netip.AddrPort) {
	now := m.cfg.Clock.Now()
	m.mu.Lock()
	s := m.state(sim)
	s.lastSeen = now
	if !s.current.IsValid() || s.current == ep {
		s.current = ep
		m.mu.Unlock()
		return
	}
	// Moving from current to ep: is ep one we left within the window?
	returned := false
	kept := s.history[:0]
	for _, h := range s.history {
		if now.Sub(h.left) > m.cfg.CloneWindow {
			continue
		}
		if h.ep == ep {
			returned = true
			continue // it becomes current again
		}
		kept = append(kept, h)
	}
	s.history = append(kept, endpointSeen{ep: s.current, left: now})
	if len(s.history) > maxHistory {
		s.history = s.history[len(s.history)-maxHistory:]
	}
	prev := s.current
	s.current = ep
	var alert *Alert
	if returned {
		fl := s.flips[:0]
		for _, t := range s.flips {
			if now.Sub(t) <= m.cfg.CloneWindow {
				fl = append(fl, t)
			}
		}
		s.flips = append(fl, now)
		if len(s.flips) >= m.cfg.CloneFlips && m.unsuppressed(s, KindClonedKey, now) {
			alert = &Alert{
				Kind: KindClonedKey, SIM: sim, Severity: "high", Time: now,
				Detail:   "the SIM's key is used from endpoints that take turns: two devices hold it",
				Evidence: map[string]any{"endpoints": []string{prev.String(), ep.String()}, "returns": len(s.flips), "window": m.cfg.CloneWindow.String()},
			}
		}
	}
	m.mu.Unlock()
	if alert != nil {
		m.cfg.Alert(*alert)
	}
}

// ObserveFlow records an inner flow's destination from a SIM (the gateway
// calls it per new flow or sampled packet). With firstSeen (the SIM's
// group asks for it), destinations are learned for LearnFor and a new one
// after that raises a first-seen alert.
func (m *Monitor) ObserveFlow(sim string, dst netip.AddrPort, firstSeen bool) {
	now := m.cfg.Clock.Now()
	m.mu.Lock()
	s := m.state(sim)
	s.lastSeen = now
	var first *Alert
	if firstSeen {
		first = m.firstSeen(s, sim, dst, now)
	}
	if now.Sub(s.minute) >= time.Minute || s.dsts == nil {
		s.minute = now
		s.dsts = map[netip.AddrPort]struct{}{}
	}
	s.dsts[dst] = struct{}{}
	var alert *Alert
	if len(s.dsts) > m.cfg.FanoutLimit && m.unsuppressed(s, KindFanout, now) {
		alert = &Alert{
			Kind: KindFanout, SIM: sim, Severity: "medium", Time: now,
			Detail:   "the SIM reached more distinct destinations in a minute than its limit: scanning",
			Evidence: map[string]any{"destinations": len(s.dsts), "limit": m.cfg.FanoutLimit},
		}
	}
	m.mu.Unlock()
	if first != nil {
		m.cfg.Alert(*first)
	}
	if alert != nil {
		m.cfg.Alert(*alert)
	}
}

// firstSeen learns dst, or after the learning period alerts on it once (m.mu held).
func (m *Monitor) firstSeen(s *simState, sim string, dst netip.AddrPort, now time.Time) *Alert {
	if s.known == nil {
		s.known = map[netip.AddrPort]struct{}{}
		s.learnAt = now
	}
	if _, ok := s.known[dst]; ok {
		return nil
	}
	if len(s.known) < m.cfg.MaxKnown {
		s.known[dst] = struct{}{} // each new destination fires at most once
	}
	if now.Sub(s.learnAt) < m.cfg.LearnFor || !m.unsuppressed(s, KindFirstSeen, now) {
		return nil
	}
	return &Alert{
		Kind: KindFirstSeen, SIM: sim, Severity: "low", Time: now,
		Detail:   "the SIM reached a destination it never reached while its habits were learned",
		Evidence: map[string]any{"destination": dst.String(), "learnedSince": s.learnAt.UTC().Format(time.RFC3339), "known": len(s.known)},
	}
}

// ObserveReplay records an initiation with the SIM's key refused as a
// replay (its timestamp not newer than the last accepted one); stamp is
// that initiation's own TAI64N timestamp (12 bytes, big-endian, so byte
// order is time order). A capture replayed — by an attacker, from anywhere
// — repeats one stamp and counts once. A second device with the same key
// whose clock is behind sends initiations whose stamps advance, from
// another endpoint than the one holding the session: CloneReplays of those
// within CloneWindow are a cloned key.
func (m *Monitor) ObserveReplay(sim string, from netip.AddrPort, stamp [12]byte) {
	now := m.cfg.Clock.Now()
	m.mu.Lock()
	s := m.state(sim)
	if !s.current.IsValid() || s.current == from || now.Sub(s.lastSeen) > m.cfg.CloneWindow {
		m.mu.Unlock()
		return
	}
	if bytes.Compare(stamp[:], s.replayStamp[:]) <= 0 {
		m.mu.Unlock()
		return // not a new initiation: a replayed capture, or a retransmission
	}
	s.replayStamp = stamp
	kept := s.replays[:0]
	for _, t := range s.replays {
		if now.Sub(t) <= m.cfg.CloneWindow {
			kept = append(kept, t)
		}
	}
	s.replays = append(kept, now)
	var alert *Alert
	if len(s.replays) >= m.cfg.CloneReplays && m.unsuppressed(s, KindClonedKey, now) {
		alert = &Alert{
			Kind: KindClonedKey, SIM: sim, Severity: "high", Time: now,
			Detail:   "fresh initiations with the SIM's key, each older than the session's, keep coming from a second endpoint: a second device holds the key (its clock is behind)",
			Evidence: map[string]any{"session": s.current.String(), "refused": from.String(), "initiations": len(s.replays), "window": m.cfg.CloneWindow.String()},
		}
	}
	m.mu.Unlock()
	if alert != nil {
		m.cfg.Alert(*alert)
	}
}

// ObserveListener records a device accepting a TCP connection (answering
// a SYN) on port, for a peer, where its group's profile does not expect a
// listener on that port.
func (m *Monitor) ObserveListener(sim string, port uint16, peer netip.Addr) {
	m.fire(Alert{
		Kind: KindListener, SIM: sim, Severity: "medium",
		Detail:   "the device accepted a connection on a port its group's profile does not expect",
		Evidence: map[string]any{"port": port, "peer": peer.String()},
	})
}

// ObserveKeyReplaced records that the key of an online SIM was replaced
// under its live session by a key the device did not announce: the device
// is cut off, and whoever set the new key now speaks for the SIM.
// actor is who set the new key, as the audit trail names it ("" when
// unknown).
func (m *Monitor) ObserveKeyReplaced(sim string, old, replacement, actor string) {
	ev := map[string]any{"oldKey": old, "newKey": replacement}
	if actor != "" {
		ev["actor"] = actor
	}
	m.fire(Alert{
		Kind: KindKeyReplaced, SIM: sim, Severity: "high",
		Detail:   "the key of an online SIM was replaced by a key the device did not announce (not its own rotation)",
		Evidence: ev,
	})
}

// ObserveViolation records traffic from a SIM to a destination outside its
// group's allow-list (blocked or not, as the profile says).
func (m *Monitor) ObserveViolation(sim string, dst netip.AddrPort, blocked bool) {
	m.fire(Alert{
		Kind: KindAllowList, SIM: sim, Severity: "medium",
		Detail:   "the SIM sent to a destination outside its group's allow-list",
		Evidence: map[string]any{"destination": dst.String(), "blocked": blocked},
	})
}

// ObserveEgressDenied reports a flow its group's egress rules refused
// (rule is the deciding rule's index, -1 when none matched): an alert, at
// most one per suppression period per SIM, with the destination.
func (m *Monitor) ObserveEgressDenied(sim string, dst netip.AddrPort, proto uint8, rule int) {
	m.fire(Alert{
		Kind: KindEgressDenied, SIM: sim, Severity: "low",
		Detail:   "the SIM tried to reach a destination its group's egress rules deny",
		Evidence: map[string]any{"destination": dst.String(), "protocol": proto, "rule": rule},
	})
}

// fire raises a, stamped now, unless its kind is suppressed for the SIM:
// the detectors that need no state of their own beyond suppression.
func (m *Monitor) fire(a Alert) {
	a.Time = m.cfg.Clock.Now()
	m.mu.Lock()
	s := m.state(a.SIM)
	s.lastSeen = a.Time
	ok := m.unsuppressed(s, a.Kind, a.Time)
	m.mu.Unlock()
	if ok {
		m.cfg.Alert(a)
	}
}

// unsuppressed reports whether an alert of kind may fire now, and if so
// starts its quiet period (m.mu held).
func (m *Monitor) unsuppressed(s *simState, kind string, now time.Time) bool {
	if now.Before(s.quietTil[kind]) {
		return false
	}
	if s.quietTil == nil {
		s.quietTil = map[string]time.Time{}
	}
	s.quietTil[kind] = now.Add(m.cfg.Suppress)
	return true
}

// Forget drops SIMs not observed for idle, so state follows active SIMs.
func (m *Monitor) Forget(idle time.Duration) int {
	now := m.cfg.Clock.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for id, s := range m.sims {
		if now.Sub(s.lastSeen) > idle {
			delete(m.sims, id)
			n++
		}
	}
	return n
}

// ObserveSecondGateway records that another gateway holds a live session
// of the SIM's key (from endpoint there) while this gateway's session, from
// ours, kept carrying data after it began: two devices reaching two
// gateways with one key. A device that moved to the other gateway stops
// sending here, and is never reported.
func (m *Monitor) ObserveSecondGateway(sim, gateway, endpoint string, ours netip.AddrPort) {
	m.fire(Alert{
		Kind: KindClonedKey, SIM: sim, Severity: "high",
		Detail:   "the SIM's key is live on two gateways at once: two devices hold it",
		Evidence: map[string]any{"otherGateway": gateway, "otherEndpoint": endpoint, "endpoint": ours.String()},
	})
}
