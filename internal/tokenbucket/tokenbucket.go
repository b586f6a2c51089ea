// SPDX-License-Identifier: Apache-2.0

// Package tokenbucket holds token buckets: one (Bucket), and a bounded set
// of them by key (Set), for limits per source, per SIM or per peer.
package tokenbucket

import (
	"math"
	"sync"
	"time"

	"github.com/wirefleet/wirefleet/internal/clock"
)

// Bucket is one token bucket. Its zero value is empty; Fill makes it full.
// It is not safe for concurrent use: its owner holds a lock.
type Bucket struct {
	tokens float64
	last   time.Time
}

// Fill makes the bucket full at now.
func (b *Bucket) Fill(now time.Time, burst float64) {
	b.tokens, b.last = burst, now
}

// refill brings the bucket to now and returns its tokens.
func (b *Bucket) refill(now time.Time, rate, burst float64) float64 {
	if el := now.Sub(b.last).Seconds(); el > 0 {
		b.tokens = math.Min(burst, b.tokens+el*rate)
		b.last = now
	}
	return b.tokens
}

// Take takes one token at now. When none is left it returns false and how
// long until one is.
func (b *Bucket) Take(now time.Time, rate, burst float64) (bool, time.Duration) {
	if b.refill(now, rate, burst) >= 1 {
		b.tokens--
		return true, 0
	}
	return false, time.Duration((1 - b.tokens) / rate * float64(time.Second))
}

// Full reports whether the bucket has refilled by now: it is then the same
// as a new one, and a set may forget it.
func (b *Bucket) Full(now time.Time, rate, burst float64) bool {
	return b.refill(now, rate, burst) >= burst
}

// Set is a bounded set of buckets by key, each made full on first use.
// When max keys are held, full buckets are forgotten and, if none is, an
// arbitrary one. It is safe for concurrent use.
type Set[K comparable] struct {
	rate, burst float64
	max         int
	clk         clock.Clock

	mu sync.Mutex
	m  map[K]*Bucket
}

// NewSet returns a set of buckets of rate tokens a second and burst
// tokens at most, for at most max keys.
func NewSet[K comparable](rate, burst float64, max int) *Set[K] {
	return &Set[K]{rate: rate, burst: burst, max: max, clk: clock.Real{}, m: map[K]*Bucket{}}
}

// SetClock replaces the set's clock (tests).
func (s *Set[K]) SetClock(c clock.Clock) { s.clk = c }

// Allow takes one token from k's bucket.
func (s *Set[K]) Allow(k K) (bool, time.Duration) {
	now := s.clk.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.m[k]
	if b == nil {
		if len(s.m) >= s.max {
			s.sweep(now)
		}
		b = &Bucket{}
		b.Fill(now, s.burst)
		s.m[k] = b
	}
	return b.Take(now, s.rate, s.burst)
}

// sweep forgets full buckets; if none is, it drops some so the map stays
// bounded. s.mu is held.
func (s *Set[K]) sweep(now time.Time) {
	for k, b := range s.m {
		if b.Full(now, s.rate, s.burst) {
			delete(s.m, k)
		}
	}
	for k := range s.m {
		if len(s.m) < s.max {
			return
		}
		delete(s.m, k)
	}
}

// Len reports how many keys are held.
func (s *Set[K]) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.m)
}
