// SPDX-License-Identifier: Apache-2.0

package engine

import (
	"net/netip"
	"testing"
	"time"

	"github.com/wirefleet/wirefleet/internal/clock"
	"github.com/wirefleet/wirefleet/keystore"
)

const tick = int64(100 * time.Millisecond)

func dueSet(w *timerWheel, now int64) map[*Peer]bool {
	out := map[*Peer]bool{}
	for _, p := range w.due(now, nil) {
		if out[p] {
			panic("a peer came out twice")
		}
		out[p] = true
	}
	return out
}

// The wheel hands out a peer in the tick its deadline falls in, once,
// however often it was armed; arming earlier wins, later is a no-op;
// deadlines past one turn come out at the turn's end; a clock jump of
// several turns fires everything once.
func TestTimerWheel(t *testing.T) {
	start := int64(1_000_000) * tick
	w := newTimerWheel(tick, start)
	a, b, c, d := &Peer{}, &Peer{}, &Peer{}, &Peer{}
	w.arm(a, start+5*tick)
	w.arm(a, start+9*tick) // later: a stays at +5
	w.arm(b, start+9*tick)
	w.arm(b, start+3*tick)                   // earlier: b moves to +3, its +9 entry is stale
	w.arm(c, start-50*tick)                  // in the past: the next tick
	w.arm(d, start+int64(wheelSlots)*3*tick) // beyond a turn

	if got := dueSet(w, start); len(got) != 1 || !got[c] {
		t.Fatalf("at start: %v, want only the past deadline", got)
	}
	if got := dueSet(w, start+3*tick-1); len(got) != 0 {
		t.Fatalf("before b's tick: %d due", len(got))
	}
	if got := dueSet(w, start+3*tick); len(got) != 1 || !got[b] {
		t.Fatalf("at b's deadline: %v", got)
	}
	if got := dueSet(w, start+5*tick+tick/2); len(got) != 1 || !got[a] {
		t.Fatalf("in a's tick: %v", got)
	}
	if got := dueSet(w, start+20*tick); len(got) != 0 {
		t.Fatalf("b's stale entry came out: %v", got)
	}
	if got := dueSet(w, start+int64(wheelSlots-2)*tick); len(got) != 0 {
		t.Fatalf("d early: %v", got)
	}
	if got := dueSet(w, start+int64(wheelSlots)*tick); len(got) != 1 || !got[d] {
		t.Fatalf("d at the turn's end: %v", got)
	}
	if n := w.armed.Load(); n != 0 {
		t.Fatalf("%d entries left", n)
	}

	// A jump over several turns fires each armed peer once.
	now := start + int64(wheelSlots)*tick
	peers := make([]*Peer, 3000)
	for i := range peers {
		peers[i] = &Peer{}
		w.arm(peers[i], now+int64(i%wheelSlots)*tick+int64(i))
		w.arm(peers[i], now+int64(i%wheelSlots)*tick) // re-armed a little earlier, same tick
	}
	if got := dueSet(w, now+int64(5*wheelSlots)*tick); len(got) != len(peers) {
		t.Fatalf("after a jump: %d of %d", len(got), len(peers))
	}
	w.arm(a, now+int64(5*wheelSlots)*tick+2*tick)
	if got := dueSet(w, now+int64(5*wheelSlots)*tick+2*tick); !got[a] {
		t.Fatal("armed after a jump: not fired")
	}

	// The clock stepped back an hour: what was armed comes out at once
	// (to be armed again from the new time), and new deadlines fire at
	// their time, not an hour late.
	later := now + int64(5*wheelSlots)*tick + 10*tick
	w.arm(b, later+50*tick)
	back := later - int64(time.Hour)
	if got := dueSet(w, back); len(got) != 1 || !got[b] {
		t.Fatalf("after a step back: %v", got)
	}
	w.arm(c, back+3*tick)
	if got := dueSet(w, back+3*tick); len(got) != 1 || !got[c] {
		t.Fatalf("armed after a step back: %v", got)
	}
}

// Idle peers cost the timer loop nothing: 500 peers with a 25 s
// persistent keepalive are evaluated when it falls due, not at every
// tick in between.
func TestIdlePeersNotEvaluated(t *testing.T) {
	clk := clock.NewFake(time.Now())
	a := newNode(t, nil, func(c *Config) { c.Clock = clk; c.TimerInterval = -1 })
	const n = 500
	for i := range n {
		k, _ := keystore.GenerateMemory()
		// No endpoint: the keepalive cannot go out, the timer still runs.
		if _, err := a.e.AddPeer(PeerConfig{PublicKey: k.PublicKey(), AllowedIPs: pfx(netip.AddrFrom4([4]byte{10, 98, byte(i >> 8), byte(i)})), PersistentKeepalive: 25 * time.Second}); err != nil {
			t.Fatal(err)
		}
	}
	a.e.RunTimers() // the first look at each: keepalive due at once
	if got := a.e.timerEvals.Load(); got != n {
		t.Fatalf("first run evaluated %d, want %d", got, n)
	}
	for s := 1; s < 25; s++ {
		clk.Advance(time.Second)
		for range 10 { // ten ticks a second, as the loop runs
			a.e.RunTimers()
		}
	}
	if got := a.e.timerEvals.Load(); got != n {
		t.Fatalf("%d evaluations while nothing was due (want none)", got-n)
	}
	clk.Advance(time.Second)
	a.e.RunTimers()
	if got := a.e.timerEvals.Load(); got != 2*n {
		t.Fatalf("at 25 s: %d evaluated, want %d", got-n, n)
	}
}
