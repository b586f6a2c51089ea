// SPDX-License-Identifier: Apache-2.0

package engine

import (
	"sync"
	"sync/atomic"
)

// wheelSlots is the timer wheel's size: at the default 100 ms tick it
// spans 409.6 s. A deadline beyond it is armed at the last slot and
// re-evaluated then (only key zeroing, at 3×RejectAfterTime, is so far).
const wheelSlots = 4096

// timerWheel holds each peer at the slot of its next timer deadline, so
// the timer loop touches only the peers with something due — its cost
// follows events, not the peers held (100,000 idle sessions are 100,000
// map entries, not 1,000,000 checks a second).
//
// A peer is armed at one slot at a time (Peer.wheelSlot); arming earlier
// leaves the old entry behind, skipped as stale when its slot fires.
// Anything that creates a deadline earlier than the one a peer is armed
// at must call arm: new peers, handshakes sent and completed, and the two
// passive-keepalive transitions of the data path (an atomic load there
// when already armed early enough).
type timerWheel struct {
	tick int64 // slot width, clock nanos

	mu     sync.Mutex
	cursor int64 // the next slot number to fire
	slots  [wheelSlots][]wheelEntry
	armed  atomic.Int64 // entries held, stale ones included (for tests and metrics)
}

type wheelEntry struct {
	p    *Peer
	slot int64
}

func newTimerWheel(tick, now int64) *timerWheel {
	return &timerWheel{tick: tick, cursor: now / tick}
}

// arm makes sure p's timers are evaluated by the end of the tick that
// clock time at falls in. The slot fires from the tick's start on, so a
// RunTimers at exactly at sees the deadline (the timers compare exact
// times: a look a little early re-arms the peer for the next tick).
func (w *timerWheel) arm(p *Peer, at int64) {
	slot := at / w.tick
	if cur := p.wheelSlot.Load(); cur != 0 && cur <= slot {
		return // already due as early
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	slot = min(max(slot, w.cursor), w.cursor+wheelSlots-1)
	if cur := p.wheelSlot.Load(); cur != 0 && cur <= slot {
		return
	}
	p.wheelSlot.Store(slot)
	i := slot & (wheelSlots - 1)
	w.slots[i] = append(w.slots[i], wheelEntry{p: p, slot: slot})
	w.armed.Add(1)
}

// due takes out the peers whose slot has come by clock time now, appended
// to buf. Each is unarmed: evaluating its timers arms it again.
func (w *timerWheel) due(now int64, buf []*Peer) []*Peer {
	target := now / w.tick
	w.mu.Lock()
	defer w.mu.Unlock()
	if target+1 < w.cursor {
		// The clock stepped back (the engine's clock is the wall clock):
		// every armed peer is looked at now, against the new time, and
		// arms itself again from it — else all would wait out the step.
		w.cursor = target - wheelSlots + 1
	}
	for n := 0; w.cursor <= target && n < wheelSlots; n++ {
		i := w.cursor & (wheelSlots - 1)
		entries := w.slots[i]
		for _, e := range entries {
			// Every entry here was armed for this very slot (arm keeps
			// slots within one turn of the cursor); a peer armed earlier
			// since is stale here.
			if e.p.wheelSlot.CompareAndSwap(e.slot, 0) {
				buf = append(buf, e.p)
			}
		}
		w.armed.Add(-int64(len(entries)))
		if cap(entries) > 1024 {
			w.slots[i] = nil // a burst's slot does not keep its memory
		} else {
			clear(entries)
			w.slots[i] = entries[:0]
		}
		w.cursor++
	}
	if w.cursor <= target {
		w.cursor = target + 1 // a jump of more than a turn: every slot was fired once
	}
	return buf
}
