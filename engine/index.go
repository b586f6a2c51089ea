// SPDX-License-Identifier: Apache-2.0

package engine

import (
	"crypto/rand"
	"encoding/binary"
	"sync"
)

// indexEntry is what a receiver index names: a pending handshake we
// initiated, or a keypair.
type indexEntry struct {
	peer *Peer
	kp   *keypair // nil while the index names our pending initiation
}

const indexShards = 64

// indexTable maps our 32-bit receiver indices to sessions. Sharded, so the
// per-packet lookup on many cores does not contend on one lock.
type indexTable struct {
	shards [indexShards]struct {
		sync.RWMutex
		m map[uint32]indexEntry
	}
}

func newIndexTable() *indexTable {
	t := new(indexTable)
	for i := range t.shards {
		t.shards[i].m = make(map[uint32]indexEntry)
	}
	return t
}

func (t *indexTable) shard(i uint32) int { return int(i % indexShards) }

// newIndex allocates a fresh random index for e.
func (t *indexTable) newIndex(e indexEntry) uint32 {
	var b [4]byte
	for {
		rand.Read(b[:])
		i := binary.LittleEndian.Uint32(b[:])
		if i == 0 {
			continue // 0 means "none" in peer state
		}
		s := &t.shards[t.shard(i)]
		s.Lock()
		if _, taken := s.m[i]; !taken {
			s.m[i] = e
			s.Unlock()
			return i
		}
		s.Unlock()
	}
}

func (t *indexTable) lookup(i uint32) (indexEntry, bool) {
	s := &t.shards[t.shard(i)]
	s.RLock()
	e, ok := s.m[i]
	s.RUnlock()
	return e, ok
}

// swap points an existing index at a keypair (a handshake became a session).
func (t *indexTable) set(i uint32, e indexEntry) {
	s := &t.shards[t.shard(i)]
	s.Lock()
	s.m[i] = e
	s.Unlock()
}

func (t *indexTable) delete(i uint32) {
	s := &t.shards[t.shard(i)]
	s.Lock()
	delete(s.m, i)
	s.Unlock()
}

func (t *indexTable) len() int {
	n := 0
	for i := range t.shards {
		t.shards[i].RLock()
		n += len(t.shards[i].m)
		t.shards[i].RUnlock()
	}
	return n
}
