// SPDX-License-Identifier: Apache-2.0

package monitor

import (
	"fmt"
	"net/netip"
	"testing"
	"time"
)

// A clone whose clock is behind never wins a handshake: its initiations
// are refused as replays from another endpoint while the real device holds
// the session. Three within the window are a cloned key.
func TestClonedKeyByReplays(t *testing.T) {
	h := newHarness(Config{})
	h.m.ObserveEndpoint("sim-1", epA)
	for i := byte(1); i <= 2; i++ {
		h.now = h.now.Add(5 * time.Second)
		h.m.ObserveReplay("sim-1", epB, stamp(i))
	}
	if len(h.alerts) != 0 {
		t.Fatalf("alert after two replays: %v", h.kinds())
	}
	h.now = h.now.Add(5 * time.Second)
	h.m.ObserveReplay("sim-1", epB, stamp(3))
	if len(h.alerts) != 1 || h.alerts[0].Kind != KindClonedKey || h.alerts[0].Evidence["refused"] != epB.String() {
		t.Fatalf("alerts %+v, want one cloned-key naming %v", h.alerts, epB)
	}
}

// Replays from the session's own endpoint (retransmissions, or an attacker
// replaying a capture from where it was captured) are not a clone, nor are
// replays spread wider than the window, nor replays when no session is
// known.
func TestReplaysThatAreNotClones(t *testing.T) {
	h := newHarness(Config{})
	h.m.ObserveReplay("sim-0", epB, stamp(1)) // nothing known about sim-0
	h.m.ObserveEndpoint("sim-1", epA)
	for i := byte(1); i <= 10; i++ {
		h.m.ObserveReplay("sim-1", epA, stamp(i))
	}
	h.m.ObserveEndpoint("sim-2", epA)
	for i := byte(1); i <= 3; i++ {
		h.now = h.now.Add(90 * time.Second)
		h.m.ObserveEndpoint("sim-2", epA) // the session keeps living
		h.m.ObserveReplay("sim-2", epB, stamp(i))
	}
	// An attacker replaying one captured initiation from elsewhere, again
	// and again: one timestamp, never a clone.
	h.m.ObserveEndpoint("sim-3", epA)
	for i := 0; i < 20; i++ {
		h.now = h.now.Add(time.Second)
		h.m.ObserveReplay("sim-3", epC, stamp(7))
	}
	if len(h.alerts) != 0 {
		t.Fatalf("alerts %v", h.kinds())
	}
}

// stamp returns a TAI64N-shaped timestamp ordered by n.
func stamp(n byte) [12]byte {
	var s [12]byte
	s[7] = n
	return s
}

func TestFirstSeen(t *testing.T) {
	h := newHarness(Config{LearnFor: 10 * time.Minute, Suppress: time.Minute})
	d := func(i int) netip.AddrPort { return netip.MustParseAddrPort(fmt.Sprintf("192.0.2.%d:443", i)) }
	for i := 1; i <= 5; i++ {
		h.m.ObserveFlow("sim-1", d(i), true)
		h.now = h.now.Add(time.Minute)
	}
	// Learning ends; the learned destinations stay quiet.
	h.now = h.now.Add(10 * time.Minute)
	for i := 1; i <= 5; i++ {
		h.m.ObserveFlow("sim-1", d(i), true)
	}
	if len(h.alerts) != 0 {
		t.Fatalf("alerts on learned destinations: %v", h.kinds())
	}
	h.m.ObserveFlow("sim-1", d(9), true)
	if len(h.alerts) != 1 || h.alerts[0].Kind != KindFirstSeen || h.alerts[0].Evidence["destination"] != d(9).String() {
		t.Fatalf("alerts %+v, want first-seen of %v", h.alerts, d(9))
	}
	// A new destination fires once: it is known afterwards.
	h.now = h.now.Add(2 * time.Minute)
	h.m.ObserveFlow("sim-1", d(9), true)
	if len(h.alerts) != 1 {
		t.Fatalf("the same destination fired again: %v", h.kinds())
	}
	h.m.ObserveFlow("sim-1", d(10), true)
	if len(h.alerts) != 2 {
		t.Fatalf("alerts %v, want a second first-seen", h.kinds())
	}
	// Without first-seen asked for, a SIM is never learned nor alerted on.
	for i := 1; i <= 50; i++ {
		h.m.ObserveFlow("sim-2", d(i), false)
		h.now = h.now.Add(time.Minute)
	}
	if len(h.alerts) != 2 {
		t.Fatalf("alerts for a SIM without first-seen: %v", h.kinds())
	}
}

func TestVolumeLimits(t *testing.T) {
	h := newHarness(Config{})
	lim := VolumeLimits{MaxBytes: 1 << 20, MaxPackets: 1000}
	h.m.ObserveVolume("sim-1", "g", Volume{Bytes: 500 << 10, Packets: 400, Interval: time.Minute}, lim)
	// 1 MiB over 30 s is 2 MiB per minute: normalised to the minute.
	h.m.ObserveVolume("sim-2", "g", Volume{Bytes: 600 << 10, Packets: 100, Interval: 30 * time.Second}, lim)
	h.m.ObserveVolume("sim-3", "g", Volume{Bytes: 1000, Packets: 5000, Interval: time.Minute}, lim)
	if got := h.kinds(); len(got) != 2 || h.alerts[0].SIM != "sim-2" || h.alerts[1].SIM != "sim-3" {
		t.Fatalf("alerts %+v, want volume alerts for sim-2 (bytes) and sim-3 (packets)", h.alerts)
	}
	if h.alerts[0].Kind != KindVolume || h.alerts[1].Evidence["maxPacketsPerMinute"] != uint64(1000) {
		t.Fatalf("alerts %+v", h.alerts)
	}
}

// A group whose devices send about 100 KiB a minute: one sending 20 MiB is
// far over its usual; the usual itself, and a quiet group's device sending
// under the floor, are not.
func TestVolumeOverGroupPercentile(t *testing.T) {
	h := newHarness(Config{})
	lim := VolumeLimits{Factor: 10}
	for round := 0; round < 3; round++ {
		for i := 0; i < 40; i++ {
			h.m.ObserveVolume(fmt.Sprintf("sim-%d", i), "fleet", Volume{Bytes: uint64(80+i) << 10, Packets: 100, Interval: time.Minute}, lim)
		}
		h.now = h.now.Add(time.Minute)
	}
	if len(h.alerts) != 0 {
		t.Fatalf("alerts on usual traffic: %+v", h.alerts)
	}
	h.m.ObserveVolume("sim-7", "fleet", Volume{Bytes: 20 << 20, Packets: 15000, Interval: time.Minute}, lim)
	if len(h.alerts) != 1 || h.alerts[0].Kind != KindVolume || h.alerts[0].SIM != "sim-7" {
		t.Fatalf("alerts %+v, want volume for sim-7", h.alerts)
	}
	// Another group with few samples: no percentile yet, no alert.
	for i := 0; i < 5; i++ {
		h.m.ObserveVolume(fmt.Sprintf("q-%d", i), "quiet", Volume{Bytes: 1 << 10, Interval: time.Minute}, lim)
	}
	h.m.ObserveVolume("q-9", "quiet", Volume{Bytes: 50 << 20, Interval: time.Minute}, lim)
	if len(h.alerts) != 1 {
		t.Fatalf("alert without enough samples: %+v", h.alerts)
	}
}

func TestUnexpectedListener(t *testing.T) {
	h := newHarness(Config{})
	h.m.ObserveListener("sim-1", 23, netip.MustParseAddr("10.128.0.9"))
	h.m.ObserveListener("sim-1", 2323, netip.MustParseAddr("10.128.0.9"))
	if len(h.alerts) != 1 || h.alerts[0].Kind != KindListener || h.alerts[0].Evidence["port"] != uint16(23) {
		t.Fatalf("alerts %+v, want one unexpected-listener on port 23", h.alerts)
	}
}

func TestSecondGateway(t *testing.T) {
	h := newHarness(Config{})
	h.m.ObserveSecondGateway("sim-1", "gw-2", epB.String(), epA)
	h.m.ObserveSecondGateway("sim-1", "gw-2", epB.String(), epA)
	if len(h.alerts) != 1 || h.alerts[0].Kind != KindClonedKey || h.alerts[0].Evidence["otherGateway"] != "gw-2" {
		t.Fatalf("alerts %+v, want one cloned-key naming gw-2", h.alerts)
	}
}
