// SPDX-License-Identifier: Apache-2.0

package gateway

import "testing"

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
