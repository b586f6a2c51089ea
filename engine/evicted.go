// SPDX-License-Identifier: Apache-2.0

package engine

import (
	"sync"

	"github.com/wirefleet/wirefleet/engine/tai64n"
	"github.com/wirefleet/wirefleet/wgkey"
)

// TimestampKeeper is implemented by resolvers that persist the newest
// handshake timestamp of an evicted peer (and hand it back in
// PeerConfig.LastTimestamp), so a captured initiation cannot be replayed
// once the peer's memory is gone — not even after a restart.
type TimestampKeeper interface {
	KeepTimestamp(key wgkey.Public, ts tai64n.Timestamp)
}

// evictedTimestamps remembers the newest timestamp of evicted peers, up to
// a bound, oldest forgotten first: replay protection for resolvers that do
// not keep timestamps themselves. About 60 bytes an entry.
type evictedTimestamps struct {
	mu    sync.Mutex
	m     map[wgkey.Public]tai64n.Timestamp
	order []wgkey.Public // ring of insertion order
	next  int
	max   int
}

func newEvictedTimestamps(max int) *evictedTimestamps {
	return &evictedTimestamps{m: make(map[wgkey.Public]tai64n.Timestamp), max: max}
}

func (t *evictedTimestamps) put(k wgkey.Public, ts tai64n.Timestamp) {
	if t.max <= 0 {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.m[k]; ok {
		t.m[k] = ts
		return
	}
	if len(t.order) < t.max {
		t.order = append(t.order, k)
	} else {
		delete(t.m, t.order[t.next])
		t.order[t.next] = k
		t.next = (t.next + 1) % t.max
	}
	t.m[k] = ts
}

func (t *evictedTimestamps) get(k wgkey.Public) (tai64n.Timestamp, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	ts, ok := t.m[k]
	return ts, ok
}
