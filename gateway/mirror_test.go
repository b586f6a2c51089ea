// SPDX-License-Identifier: Apache-2.0

package gateway

import (
	"net/netip"
	"testing"

	"github.com/wirefleet/wirefleet/fleet"
)

// A peer that cannot keep up costs the data path nothing: copies beyond
// the queue are dropped and counted, never waited for.
func TestMirrorQueueDrops(t *testing.T) {
	m := newMirror(&Gateway{})
	to := []*mirrorTarget{{}}
	pkt := make([]byte, 1420)
	for i := 0; i < mirrorQueue+100; i++ {
		m.copy(to, pkt) // nobody sends: the queue fills
	}
	if got := m.dropped.Load(); got != 100 {
		t.Fatalf("%d copies dropped, want 100", got)
	}
	if len(m.queue) != mirrorQueue {
		t.Fatalf("queue holds %d", len(m.queue))
	}
}

// One device's breakout share: at most breakoutFlowsPerDevice flows and
// breakoutDialingPerDevice connections being set up; another device is
// not affected, and a flow given back makes room.
func TestBreakoutShares(t *testing.T) {
	o6, _ := fleet.ParseOverlay6("", "fd00:1:2::/48")
	b := &breakout{g: &Gateway{o6: o6}, shares: map[netip.Addr]*deviceShare{}}
	a, other := netip.MustParseAddr("10.128.0.5"), netip.MustParseAddr("10.128.0.6")
	for i := 0; i < breakoutDialingPerDevice; i++ {
		if !b.take(a, true) {
			t.Fatalf("dial %d refused", i)
		}
	}
	if b.take(o6.Addr(a), true) {
		t.Fatal("a device dialled past its share through its IPv6 address")
	}
	if !b.take(other, true) {
		t.Fatal("another device was refused")
	}
	for i := breakoutDialingPerDevice; i < breakoutFlowsPerDevice; i++ {
		if !b.take(a, false) {
			t.Fatalf("flow %d refused", i)
		}
	}
	if b.take(a, false) || b.overShare.Load() != 2 {
		t.Fatalf("past the flow share: refused %d", b.overShare.Load())
	}
	b.give(a, true, false)
	if !b.take(a, false) {
		t.Fatal("a flow given back made no room")
	}
}
