// SPDX-License-Identifier: Apache-2.0

// Package clock is how a component is given the time: every component
// whose decisions depend on the wall clock (WireGuard timers, cookie
// secrets, expiry, rate limits, record timestamps, detector windows)
// takes a Clock in its Config, so tests drive it with a Fake instead of
// waiting. Deadlines on connections and measured durations use the time
// package directly: they are about real time.
package clock

import (
	"sync"
	"time"
)

// Clock tells the time.
type Clock interface {
	Now() time.Time
}

// Func adapts a function to a Clock: for tests whose time is computed.
type Func func() time.Time

// Now implements Clock.
func (f Func) Now() time.Time { return f() }

// Real is the system clock.
type Real struct{}

// Now implements Clock.
func (Real) Now() time.Time { return time.Now() }

// Fake is a clock that moves only when told. It is safe for concurrent use.
type Fake struct {
	mu sync.Mutex
	t  time.Time
}

// NewFake returns a fake clock reading t.
func NewFake(t time.Time) *Fake { return &Fake{t: t} }

// Now implements Clock.
func (f *Fake) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.t
}

// Advance moves the clock forward by d.
func (f *Fake) Advance(d time.Duration) {
	f.mu.Lock()
	f.t = f.t.Add(d)
	f.mu.Unlock()
}
