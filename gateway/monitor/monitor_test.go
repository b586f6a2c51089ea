// SPDX-License-Identifier: Apache-2.0

package monitor

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/wirefleet/wirefleet/internal/clock"
)

type harness struct {
	now    time.Time
	alerts []Alert
	m      *Monitor
}

func newHarness(cfg Config) *harness {
	h := &harness{now: time.Unix(1_800_000_000, 0)}
	cfg.Clock = clock.Func(func() time.Time { return h.now })
	cfg.Alert = func(a Alert) { h.alerts = append(h.alerts, a) }
	h.m = New(cfg)
	return h
}

func (h *harness) kinds() []string {
	var k []string
	for _, a := range h.alerts {
		k = append(k, a.Kind)
	}
	return k
}

var (
	epA = netip.MustParseAddrPort("198.51.100.7:40001")
	epB = netip.MustParseAddrPort("203.0.113.9:51000")
	epC = netip.MustParseAddrPort("192.0.2.44:3000")
)

// Two devices with one key take turns: A→B→A→B within seconds.
func TestClonedKeyAlternation(t *testing.T) {
	h := newHarness(Config{})
	for i, ep := range []netip.AddrPort{epA, epB, epA, epB, epA, epB} {
		h.m.ObserveEndpoint("sim-1", ep)
		h.now = h.now.Add(time.Duration(i+1) * 300 * time.Millisecond)
	}
	if len(h.alerts) != 1 || h.alerts[0].Kind != KindClonedKey || h.alerts[0].SIM != "sim-1" {
		t.Fatalf("alerts %+v, want one cloned-key alert (suppression makes it one)", h.alerts)
	}
}

// A device roams once (Wi-Fi to cellular), and back hours later: no alert.
func TestRealRoamDoesNotFire(t *testing.T) {
	h := newHarness(Config{})
	h.m.ObserveEndpoint("sim-1", epA)
	h.now = h.now.Add(10 * time.Minute)
	h.m.ObserveEndpoint("sim-1", epB)
	h.now = h.now.Add(3 * time.Hour)
	h.m.ObserveEndpoint("sim-1", epA)
	// One bounce back within the window (A→B→A) is tolerated too.
	h.now = h.now.Add(30 * time.Second)
	h.m.ObserveEndpoint("sim-1", epB)
	// And a chain of new addresses (a moving device) never returns.
	for _, ep := range []netip.AddrPort{epB, epC, netip.MustParseAddrPort("192.0.2.45:3000")} {
		h.now = h.now.Add(5 * time.Second)
		h.m.ObserveEndpoint("sim-2", ep)
	}
	if len(h.alerts) != 0 {
		t.Fatalf("roaming raised %v", h.kinds())
	}
}

func TestFanout(t *testing.T) {
	h := newHarness(Config{FanoutLimit: 20})
	dst := func(i int) netip.AddrPort { return netip.MustParseAddrPort(fmt.Sprintf("10.128.0.%d:22", i)) }
	for i := 1; i <= 20; i++ {
		h.m.ObserveFlow("sim-1", dst(i), false)
	}
	if len(h.alerts) != 0 {
		t.Fatal("alert at the limit")
	}
	// The same destinations again are not new.
	for i := 1; i <= 20; i++ {
		h.m.ObserveFlow("sim-1", dst(i), false)
	}
	h.m.ObserveFlow("sim-1", dst(21), false)
	if len(h.alerts) != 1 || h.alerts[0].Kind != KindFanout {
		t.Fatalf("alerts %v, want one fan-out", h.kinds())
	}
	for i := 22; i <= 50; i++ {
		h.m.ObserveFlow("sim-1", dst(i), false)
	}
	if len(h.alerts) != 1 {
		t.Fatal("suppression did not hold")
	}
	// A minute later the window restarts; another SIM is independent.
	h.now = h.now.Add(time.Minute)
	for i := 1; i <= 5; i++ {
		h.m.ObserveFlow("sim-1", dst(i), false)
		h.m.ObserveFlow("sim-2", dst(i), false)
	}
	if len(h.alerts) != 1 {
		t.Fatalf("alerts %v after the window restarted", h.kinds())
	}
}

func TestSuppressionExpires(t *testing.T) {
	h := newHarness(Config{Suppress: time.Minute})
	flip := func() {
		for _, ep := range []netip.AddrPort{epA, epB, epA, epB} {
			h.m.ObserveEndpoint("sim-1", ep)
			h.now = h.now.Add(time.Second)
		}
	}
	flip()
	flip()
	if len(h.alerts) != 1 {
		t.Fatalf("%d alerts within suppression", len(h.alerts))
	}
	h.now = h.now.Add(2 * time.Minute)
	flip()
	if len(h.alerts) != 2 {
		t.Fatalf("%d alerts after suppression expired, want 2", len(h.alerts))
	}
}

func TestForget(t *testing.T) {
	h := newHarness(Config{})
	h.m.ObserveEndpoint("sim-1", epA)
	h.now = h.now.Add(time.Hour)
	h.m.ObserveEndpoint("sim-2", epA)
	if n := h.m.Forget(30 * time.Minute); n != 1 || len(h.m.sims) != 1 {
		t.Fatalf("forgot %d, %d left", n, len(h.m.sims))
	}
}
