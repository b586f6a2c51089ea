// SPDX-License-Identifier: Apache-2.0

// Package ratelimit limits requests per source address with token
// buckets, for the unauthenticated control-plane routes (bootstrap, Arc
// auth, attested bootstrap), and finds a request's source address behind
// trusted reverse proxies.
package ratelimit

import (
	"encoding/json"
	"math"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/wirefleet/wirefleet/fleet"
	"github.com/wirefleet/wirefleet/internal/tokenbucket"
)

// Defaults of Config.
const (
	DefaultPerSecond  = 10
	DefaultBurst      = 20
	DefaultMaxSources = 65536
)

// Config sets a Limiter's rates. The zero Config is the defaults.
type Config struct {
	// PerSecond is the sustained number of requests a source may make;
	// 0 means DefaultPerSecond, negative disables limiting.
	PerSecond float64
	// Burst is how many requests a source may make at once; 0 means
	// DefaultBurst.
	Burst int
	// MaxSources bounds the memory: at most this many sources are
	// tracked; 0 means DefaultMaxSources.
	MaxSources int
}

// Limiter is a set of token buckets, one per source. IPv6 sources are
// counted per /64, since one host usually holds a whole /64. Buckets that
// have refilled are forgotten; when MaxSources are tracked, idle ones are
// swept and, if none is idle, an arbitrary one is dropped. It is safe for
// concurrent use. A nil *Limiter allows everything.
type Limiter struct {
	set *tokenbucket.Set[netip.Addr]
}

// New returns a limiter for c, or nil when c disables limiting.
func New(c Config) *Limiter {
	if c.PerSecond < 0 {
		return nil
	}
	if c.PerSecond == 0 {
		c.PerSecond = DefaultPerSecond
	}
	if c.Burst <= 0 {
		c.Burst = DefaultBurst
	}
	if c.MaxSources <= 0 {
		c.MaxSources = DefaultMaxSources
	}
	return &Limiter{set: tokenbucket.NewSet[netip.Addr](c.PerSecond, float64(c.Burst), c.MaxSources)}
}

func sourceKey(a netip.Addr) netip.Addr {
	a = a.Unmap()
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p.Addr()
	}
	return a
}

// Allow takes one token from the bucket of src. When none is left it
// returns false and how long until one is.
func (l *Limiter) Allow(src netip.Addr) (bool, time.Duration) {
	if l == nil {
		return true, 0
	}
	return l.set.Allow(sourceKey(src))
}

// Len reports how many sources are tracked.
func (l *Limiter) Len() int {
	if l == nil {
		return 0
	}
	return l.set.Len()
}

// Wrap returns next limited per source address, as found by
// ClientAddr with trustedProxies. A request over the limit gets 429, a
// JSON error with code "rate_limited" and a Retry-After header in whole
// seconds. A request whose source cannot be determined is refused the
// same way (it has no bucket of its own).
func (l *Limiter) Wrap(next http.Handler, trustedProxies []netip.Prefix) http.Handler {
	if l == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		src, ok := ClientAddr(r, trustedProxies)
		wait := time.Second
		if ok {
			if ok, wait = l.Allow(src); ok {
				next.ServeHTTP(w, r)
				return
			}
		}
		TooMany(w, wait)
	})
}

// TooMany writes the 429 answer: Retry-After (at least one second) and a
// JSON fleet error with code "rate_limited".
func TooMany(w http.ResponseWriter, wait time.Duration) {
	secs := int(math.Ceil(wait.Seconds()))
	if secs < 1 {
		secs = 1
	}
	w.Header().Set("Retry-After", strconv.Itoa(secs))
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusTooManyRequests)
	json.NewEncoder(w).Encode(fleet.Errorf(fleet.CodeRateLimited, "", "too many requests from this source; retry in %d s", secs))
}

// ClientAddr is the request's source address: the peer's, or — when the
// peer is in trustedProxies — the nearest X-Forwarded-For entry that is
// not itself a trusted proxy. Without trusted proxies the header is
// ignored. ok is false when an address cannot be parsed.
func ClientAddr(r *http.Request, trustedProxies []netip.Prefix) (netip.Addr, bool) {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}, false
	}
	addr := ap.Addr().Unmap()
	trusted := func(a netip.Addr) bool {
		for _, p := range trustedProxies {
			if p.Contains(a) {
				return true
			}
		}
		return false
	}
	if !trusted(addr) {
		return addr, true
	}
	var hops []string
	for _, v := range r.Header.Values("X-Forwarded-For") {
		hops = append(hops, strings.Split(v, ",")...)
	}
	for i := len(hops) - 1; i >= 0; i-- {
		a, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			return netip.Addr{}, false
		}
		a = a.Unmap()
		if !trusted(a) {
			return a, true
		}
	}
	return addr, true
}
