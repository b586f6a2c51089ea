// SPDX-License-Identifier: Apache-2.0

// Package replay is the sliding-window filter that refuses a transport
// counter seen before or too far behind the newest one (RFC 6479's ring of
// bitmap blocks: constant time, no shifting).
package replay

const (
	blockBits  = 64
	ringBlocks = 32 // 256 bytes per filter: sessions stay small
	// WindowSize is how far behind the newest accepted counter a counter may
	// be and still be accepted, when not seen before.
	WindowSize = (ringBlocks - 1) * blockBits
)

// Filter tracks the counters accepted on one receiving key. The zero value
// is ready. It is not safe for concurrent use.
type Filter struct {
	last uint64
	ring [ringBlocks]uint64
}

// Reset forgets every counter.
func (f *Filter) Reset() { *f = Filter{} }

// Accept reports whether counter is fresh (below limit, inside the window,
// not seen before) and, if so, records it.
func (f *Filter) Accept(counter, limit uint64) bool {
	if counter >= limit {
		return false
	}
	block := counter / blockBits
	if counter > f.last {
		cur := f.last / blockBits
		diff := block - cur
		if diff > ringBlocks {
			diff = ringBlocks
		}
		for i := uint64(1); i <= diff; i++ {
			f.ring[(cur+i)%ringBlocks] = 0
		}
		f.last = counter
	} else if f.last-counter > WindowSize {
		return false
	}
	bit := uint64(1) << (counter % blockBits)
	b := &f.ring[block%ringBlocks]
	if *b&bit != 0 {
		return false
	}
	*b |= bit
	return true
}
