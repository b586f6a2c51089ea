// SPDX-License-Identifier: Apache-2.0

package monitor

import (
	"slices"
	"time"
)

// Volume is what a SIM sent during one interval.
type Volume struct {
	Bytes, Packets uint64
	Interval       time.Duration
}

// VolumeLimits are a group's volume rules, per minute; zero fields are off.
type VolumeLimits struct {
	MaxBytes, MaxPackets uint64
	// Factor alerts when a SIM's bytes per minute exceed Factor times the
	// group's 95th percentile of SIM-minutes (and Config.VolumeFloor).
	Factor float64
}

// volumeSamples is how many SIM-minutes a group's percentile is taken over.
const volumeSamples = 1024

// groupVolume is a group's recent SIM-minutes, for its usual volume.
type groupVolume struct {
	ring  []uint64 // bytes per minute, a ring once full
	next  int
	fresh int    // samples since p95 was computed
	p95   uint64 // cached
}

func (g *groupVolume) add(v uint64) {
	if len(g.ring) < volumeSamples {
		g.ring = append(g.ring, v)
	} else {
		g.ring[g.next] = v
		g.next = (g.next + 1) % volumeSamples
	}
	g.fresh++
}

// percentile95 is recomputed only after an eighth of the samples changed:
// the gateway reports every SIM every minute, and sorting per report would
// cost more than the traffic it watches.
func (g *groupVolume) percentile95() uint64 {
	if g.fresh >= max(1, len(g.ring)/8) {
		s := slices.Clone(g.ring)
		slices.Sort(s)
		g.p95 = s[(len(s)*95)/100]
		g.fresh = 0
	}
	return g.p95
}

// ObserveVolume records what a SIM of group sent in one interval and
// alerts when it is over the group's limits or far over its usual.
func (m *Monitor) ObserveVolume(sim, group string, v Volume, lim VolumeLimits) {
	if v.Interval <= 0 {
		return
	}
	perMin := func(n uint64) uint64 { return uint64(float64(n) * float64(time.Minute) / float64(v.Interval)) }
	bytes, packets := perMin(v.Bytes), perMin(v.Packets)
	now := m.cfg.Clock.Now()
	m.mu.Lock()
	s := m.state(sim)
	if v.Bytes > 0 {
		s.lastSeen = now
	}
	ev := map[string]any{"bytesPerMinute": bytes, "packetsPerMinute": packets}
	var reason string
	switch {
	case lim.MaxBytes > 0 && bytes > lim.MaxBytes:
		reason, ev["maxBytesPerMinute"] = "bytes per minute over the group's limit", lim.MaxBytes
	case lim.MaxPackets > 0 && packets > lim.MaxPackets:
		reason, ev["maxPacketsPerMinute"] = "packets per minute over the group's limit", lim.MaxPackets
	}
	if lim.Factor > 0 && group != "" {
		g := m.groups[group]
		if g == nil {
			g = &groupVolume{}
			m.groups[group] = g
		}
		if reason == "" && len(g.ring) >= m.cfg.VolumeMinSamples {
			p95 := g.percentile95()
			if bytes > m.cfg.VolumeFloor && float64(bytes) > lim.Factor*float64(p95) {
				reason, ev["groupP95BytesPerMinute"], ev["factor"] = "bytes per minute far over the group's usual", p95, lim.Factor
			}
		}
		// Idle minutes are not samples: the usual is of SIMs that send.
		if bytes > 0 {
			g.add(bytes)
		}
	}
	fire := reason != "" && m.unsuppressed(s, KindVolume, now)
	m.mu.Unlock()
	if fire {
		m.cfg.Alert(Alert{Kind: KindVolume, SIM: sim, Severity: "medium", Time: now, Detail: "the SIM sent " + reason, Evidence: ev})
	}
}
