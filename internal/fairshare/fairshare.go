// SPDX-License-Identifier: Apache-2.0

// Package fairshare gives every SIM its own share of an in-tunnel
// service: a cap on the connections it holds, a rate of requests and a
// budget of bytes in flight. When the service as a whole is full, a
// newcomer is let in by closing the oldest connection of the SIM that
// holds the most — so one device, however many connections it opens,
// cannot lock the others out (max-min fairness on connections).
//
// The gateway puts a Share in front of each service's listeners (Listener,
// PacketConn); a service asks the Account behind a connection, a request
// or a datagram for a request token (Account.Request) or a byte budget
// (Account.Hold), and Handler does both for HTTP.
package fairshare

import (
	"context"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wirefleet/wirefleet/internal/clock"
	"github.com/wirefleet/wirefleet/internal/tokenbucket"
)

// Defaults of Limits.
const (
	DefaultConns     = 64
	DefaultPerSecond = 100
	DefaultBurst     = 1000 // the data store's own burst: a share must not be tighter than a service's documented limit
	DefaultInFlight  = 4 << 20
	// DefaultMaxConns is below the services' own backstops (4096): the
	// share must be what binds, since an evicted connection leaves the
	// service's own count only when its goroutine sees the close.
	DefaultMaxConns = 3072
)

// Limits are one SIM's share of one service. The zero value is the
// defaults; a negative field means no limit of that kind.
type Limits struct {
	// Conns is how many connections one SIM may hold open.
	Conns int
	// MaxConns is how many connections the service holds in all; when it
	// is reached, room is made by evicting (see the package comment).
	MaxConns int
	// PerSecond and Burst are one SIM's token bucket: a token per
	// accepted connection, HTTP request, stream message or datagram.
	PerSecond float64
	Burst     int
	// InFlight is how many bytes of one SIM's requests the service may be
	// handling at once (a body being read or forwarded).
	InFlight int64
}

func (l Limits) withDefaults() Limits {
	if l.Conns == 0 {
		l.Conns = DefaultConns
	}
	if l.MaxConns == 0 {
		l.MaxConns = DefaultMaxConns
	}
	if l.PerSecond == 0 {
		l.PerSecond = DefaultPerSecond
	}
	if l.Burst <= 0 {
		l.Burst = DefaultBurst
	}
	if l.InFlight == 0 {
		l.InFlight = DefaultInFlight
	}
	return l
}

// Reasons a share refuses, the values of the metrics' limit label.
const (
	ReasonConns    = "conns"     // the SIM holds Limits.Conns
	ReasonFull     = "full"      // the service holds MaxConns and the SIM already has its fair part
	ReasonRate     = "rate"      // the SIM's token bucket is empty
	ReasonInFlight = "in_flight" // the SIM's byte budget is spent
)

var reasons = [...]string{ReasonConns, ReasonFull, ReasonRate, ReasonInFlight}

// refuse counts a refusal.
func (s *Share) refuse(why string) {
	for i, r := range reasons {
		if r == why {
			s.refused[i].Add(1)
		}
	}
	s.m.refuse(why)
}

// Refused reports how many times the share refused for reason why (one of
// the Reason constants).
func (s *Share) Refused(why string) uint64 {
	for i, r := range reasons {
		if r == why {
			return s.refused[i].Load()
		}
	}
	return 0
}

// Evicted reports how many connections were closed to make room.
func (s *Share) Evicted() uint64 { return s.evicted.Load() }

// Share is one service's accounts, one per SIM (by key). It is safe for
// concurrent use.
type Share struct {
	lim     Limits
	m       *serviceMetrics
	clk     clock.Clock
	refused [len(reasons)]atomic.Uint64
	evicted atomic.Uint64

	mu       sync.Mutex
	accounts map[string]*Account
	holding  map[*Account]struct{} // accounts with connections, for eviction
	conns    int
	sweepAt  int
}

// New returns a share with limits l, counted in m under the service's
// name (m may be nil).
func New(name string, l Limits, m *Metrics) *Share {
	return &Share{lim: l.withDefaults(), m: m.service(name), clk: clock.Real{}, accounts: map[string]*Account{}, holding: map[*Account]struct{}{}, sweepAt: 1024}
}

// Limits returns the share's limits, defaults filled in.
func (s *Share) Limits() Limits { return s.lim }

// Account is one SIM's part of a share.
type Account struct {
	s   *Share
	key string
	// Guarded by s.mu.
	conns    []*conn // oldest first
	bucket   tokenbucket.Bucket
	inFlight int64
}

// Key returns the account's key (the gateway's name for the SIM).
func (a *Account) Key() string { return a.key }

// account returns key's account, made on first use. s.mu is held.
func (s *Share) account(key string) *Account {
	a := s.accounts[key]
	if a == nil {
		if len(s.accounts) >= s.sweepAt {
			s.sweep()
		}
		a = &Account{s: s, key: key}
		a.bucket.Fill(s.clk.Now(), float64(s.lim.Burst))
		s.accounts[key] = a
	}
	return a
}

// Account returns key's account.
func (s *Share) Account(key string) *Account {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.account(key)
}

// sweep forgets accounts that hold nothing and whose bucket is full
// again: they are the same as new ones. s.mu is held.
func (s *Share) sweep() {
	now := s.clk.Now()
	for k, a := range s.accounts {
		if a.idle(now) {
			delete(s.accounts, k)
		}
	}
	s.sweepAt = max(1024, 2*len(s.accounts))
}

func (a *Account) idle(now time.Time) bool {
	if len(a.conns) > 0 || a.inFlight > 0 {
		return false
	}
	return a.s.lim.PerSecond < 0 || a.bucket.Full(now, a.s.lim.PerSecond, float64(a.s.lim.Burst))
}

// take takes a token; when none is left it returns how long until one
// is. s.mu is held.
func (a *Account) take() (bool, time.Duration) {
	if a.s.lim.PerSecond < 0 {
		return true, 0
	}
	return a.bucket.Take(a.s.clk.Now(), a.s.lim.PerSecond, float64(a.s.lim.Burst))
}

// Request takes one request token. Over the SIM's rate it returns false,
// how long until a token is there, and counts the refusal. A nil Account
// allows everything.
func (a *Account) Request() (bool, time.Duration) {
	ok, wait := a.tryTake()
	if a != nil && !ok {
		a.s.refuse(ReasonRate)
	}
	return ok, wait
}

// Wait takes one request token, waiting until there is one (for streams,
// where waiting slows the sender through TCP's own flow control); a wait
// is counted as a refusal once. It returns ctx's error if ctx ends first.
// A nil Account never waits.
func (a *Account) Wait(ctx context.Context) error {
	counted := false
	for {
		ok, wait := a.tryTake()
		if ok {
			return nil
		}
		if !counted {
			a.s.refuse(ReasonRate)
			counted = true
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

func (a *Account) tryTake() (bool, time.Duration) {
	if a == nil {
		return true, 0
	}
	a.s.mu.Lock()
	defer a.s.mu.Unlock()
	return a.take()
}

// Hold reserves n bytes of the SIM's budget of bytes in flight; release
// gives them back (once, however often it is called). Over the budget it
// returns false and counts the refusal; a single request larger than the
// whole budget is let through when nothing else of the SIM is in flight,
// so a big but legitimate body is slow, never impossible. A nil Account
// allows everything.
func (a *Account) Hold(n int64) (release func(), ok bool) {
	if a == nil || n <= 0 || a.s.lim.InFlight < 0 {
		return func() {}, true
	}
	if !a.grab(n) {
		return nil, false
	}
	var once sync.Once
	return func() { once.Do(func() { a.give(n) }) }, true
}

// grab adds n to the bytes in flight if the budget allows, and counts a
// refusal if not.
func (a *Account) grab(n int64) bool {
	s := a.s
	s.mu.Lock()
	ok := a.inFlight == 0 || a.inFlight+n <= s.lim.InFlight
	if ok {
		a.inFlight += n
	}
	s.mu.Unlock()
	if !ok {
		s.refuse(ReasonInFlight)
	}
	return ok
}

// give returns n bytes to the budget.
func (a *Account) give(n int64) {
	a.s.mu.Lock()
	a.inFlight -= n
	a.s.mu.Unlock()
}

// admit lets a new connection of key in, or says why not; a refused
// attempt costs a token too (churn is work). When the service is full it evicts the oldest connection of the SIM holding the
// most, if that SIM holds at least two more than key would; the evicted
// connection is returned for the caller to close outside the lock.
func (s *Share) admit(key string, c net.Conn) (*conn, *conn, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.account(key)
	if s.lim.Conns >= 0 && len(a.conns) >= s.lim.Conns {
		return nil, nil, ReasonConns
	}
	if ok, _ := a.take(); !ok {
		return nil, nil, ReasonRate
	}
	var evict *conn
	if s.lim.MaxConns >= 0 && s.conns >= s.lim.MaxConns {
		var heaviest *Account
		for h := range s.holding {
			if heaviest == nil || len(h.conns) > len(heaviest.conns) {
				heaviest = h
			}
		}
		if heaviest == nil || len(heaviest.conns) < len(a.conns)+2 {
			return nil, nil, ReasonFull
		}
		evict = heaviest.conns[0]
		s.drop(evict)
	}
	w := &conn{Conn: c, acct: a}
	s.hold(a, w)
	return w, evict, ""
}

// hold counts c as a's. s.mu is held.
func (s *Share) hold(a *Account, c *conn) {
	a.conns = append(a.conns, c)
	c.counted = true
	s.holding[a] = struct{}{}
	s.conns++
	s.m.conns.Inc()
}

// drop stops counting c. s.mu is held.
func (s *Share) drop(c *conn) {
	if !c.counted {
		return
	}
	c.counted = false
	a := c.acct
	for i, x := range a.conns {
		if x == c {
			a.conns = append(a.conns[:i], a.conns[i+1:]...)
			break
		}
	}
	if len(a.conns) == 0 {
		delete(s.holding, a)
	}
	s.conns--
	s.m.conns.Dec()
}

// Conns reports how many connections the share counts, and how many of
// them are key's.
func (s *Share) Conns(key string) (total, of int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if a := s.accounts[key]; a != nil {
		of = len(a.conns)
	}
	return s.conns, of
}
