// Package monitor watches what the gateway sees — handshakes, endpoints,
// inner flows — per SIM, and raises alerts: cloned keys, scanning
// (fan-out), destinations outside a group's allow-list. It is pure
// bookkeeping over observations with a clock, so every detector is tested
// without a network; the gateway feeds it from the engine's hooks and its
// router.
package monitor

import (
	"net/netip"
	"sync"
	"time"
)

// Alert kinds.
const (
	KindClonedKey = "cloned-key"
	KindFanout    = "fan-out"
	KindAllowList = "outside-allow-list"
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
	// Suppress is how long one (kind, SIM) stays quiet after an alert, so
	// an incident is one alert. Default 10 minutes.
	Suppress time.Duration
	// Now is the clock; default time.Now.
	Now func() time.Time
	// Alert receives alerts; it must not block.
	Alert func(Alert)
}

// Monitor holds per-SIM detector state. It is safe for concurrent use.
type Monitor struct {
	cfg  Config
	mu   sync.Mutex
	sims map[string]*simState
}

type endpointSeen struct {
	ep   netip.AddrPort
	left time.Time // when the SIM moved away from ep
}

type simState struct {
	current  netip.AddrPort
	history  []endpointSeen // endpoints left recently, newest last (bounded)
	flips    []time.Time    // returns to a recently left endpoint
	minute   time.Time      // start of the fan-out window
	dsts     map[netip.AddrPort]struct{}
	lastSeen time.Time
	quietTil map[string]time.Time
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
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Alert == nil {
		cfg.Alert = func(Alert) {}
	}
	return &Monitor{cfg: cfg, sims: map[string]*simState{}}
}

func (m *Monitor) state(sim string) *simState {
	s := m.sims[sim]
	if s == nil {
		s = &simState{quietTil: map[string]time.Time{}}
		m.sims[sim] = s
	}
	return s
}

const maxHistory = 8

// ObserveEndpoint records the outer endpoint a SIM's authenticated packets
// (or handshake) came from. Call it on every change the engine reports.
func (m *Monitor) ObserveEndpoint(sim string, ep netip.AddrPort) {
	now := m.cfg.Now()
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
// calls it per new flow or sampled packet).
func (m *Monitor) ObserveFlow(sim string, dst netip.AddrPort) {
	now := m.cfg.Now()
	m.mu.Lock()
	s := m.state(sim)
	s.lastSeen = now
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
	if alert != nil {
		m.cfg.Alert(*alert)
	}
}

// ObserveViolation records traffic from a SIM to a destination outside its
// group's allow-list (blocked or not, as the profile says).
func (m *Monitor) ObserveViolation(sim string, dst netip.AddrPort, blocked bool) {
	now := m.cfg.Now()
	m.mu.Lock()
	s := m.state(sim)
	s.lastSeen = now
	fire := m.unsuppressed(s, KindAllowList, now)
	m.mu.Unlock()
	if fire {
		m.cfg.Alert(Alert{
			Kind: KindAllowList, SIM: sim, Severity: "medium", Time: now,
			Detail:   "the SIM sent to a destination outside its group's allow-list",
			Evidence: map[string]any{"destination": dst.String(), "blocked": blocked},
		})
	}
}

// unsuppressed reports whether an alert of kind may fire now, and if so
// starts its quiet period (m.mu held).
func (m *Monitor) unsuppressed(s *simState, kind string, now time.Time) bool {
	if now.Before(s.quietTil[kind]) {
		return false
	}
	s.quietTil[kind] = now.Add(m.cfg.Suppress)
	return true
}

// Forget drops SIMs not observed for idle, so state follows active SIMs.
func (m *Monitor) Forget(idle time.Duration) int {
	now := m.cfg.Now()
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
