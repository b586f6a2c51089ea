// SPDX-License-Identifier: Apache-2.0

package ratelimit

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"testing"
	"time"

	"github.com/wirefleet/wirefleet/fleet"
	"github.com/wirefleet/wirefleet/internal/clock"
)

func TestBucket(t *testing.T) {
	l := New(Config{PerSecond: 2, Burst: 3})
	now := time.Unix(1000, 0)
	l.set.SetClock(clock.Func(func() time.Time { return now }))
	a := netip.MustParseAddr("192.0.2.1")
	for i := 0; i < 3; i++ {
		if ok, _ := l.Allow(a); !ok {
			t.Fatalf("request %d of the burst refused", i)
		}
	}
	ok, wait := l.Allow(a)
	if ok || wait <= 0 || wait > time.Second/2 {
		t.Fatalf("over the burst: ok=%v wait=%v, want refused with wait ≤ 0.5s", ok, wait)
	}
	if ok, _ := l.Allow(netip.MustParseAddr("192.0.2.2")); !ok {
		t.Fatal("another source was limited too")
	}
	now = now.Add(wait)
	if ok, _ := l.Allow(a); !ok {
		t.Fatal("refused after waiting the advised time")
	}
	// IPv6 sources share one bucket per /64.
	l6 := New(Config{PerSecond: 1, Burst: 1})
	l6.Allow(netip.MustParseAddr("2001:db8::1"))
	if ok, _ := l6.Allow(netip.MustParseAddr("2001:db8::2")); ok {
		t.Fatal("a second address of the same /64 got a fresh bucket")
	}
	if New(Config{PerSecond: -1}) != nil {
		t.Fatal("negative rate should disable limiting")
	}
}

func TestBounded(t *testing.T) {
	l := New(Config{PerSecond: 1, Burst: 5, MaxSources: 100})
	now := time.Unix(1000, 0)
	l.set.SetClock(clock.Func(func() time.Time { return now }))
	for i := 0; i < 1000; i++ {
		l.Allow(netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}))
		if l.Len() > 100 {
			t.Fatalf("%d sources tracked, limit 100", l.Len())
		}
	}
	// Idle buckets are swept first: a busy source keeps its state.
	busy := netip.MustParseAddr("192.0.2.9")
	for i := 0; i < 5; i++ {
		l.Allow(busy)
	}
	now = now.Add(10 * time.Second) // every other bucket has refilled
	for i := 0; i < 5; i++ {
		l.Allow(busy) // drained again, at the new time
	}
	for i := 0; i < 50; i++ { // fits once the idle ones are swept
		l.Allow(netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)}))
	}
	if ok, _ := l.Allow(busy); ok {
		t.Fatal("a drained source was forgotten while idle ones could be swept")
	}
}

func TestWrap429(t *testing.T) {
	proxy := []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	h := New(Config{PerSecond: 1, Burst: 2}).Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}), proxy)
	do := func(xff string) *httptest.ResponseRecorder {
		r := httptest.NewRequest("POST", "/x", nil)
		r.RemoteAddr = "127.0.0.1:5555"
		r.Header.Set("X-Forwarded-For", xff)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w
	}
	for i := 0; i < 2; i++ {
		if w := do("198.51.100.7"); w.Code != 200 {
			t.Fatalf("request %d: %d", i, w.Code)
		}
	}
	w := do("198.51.100.7")
	if w.Code != http.StatusTooManyRequests {
		t.Fatalf("third request: %d, want 429", w.Code)
	}
	if s, err := strconv.Atoi(w.Header().Get("Retry-After")); err != nil || s < 1 {
		t.Fatalf("Retry-After %q", w.Header().Get("Retry-After"))
	}
	var e fleet.Error
	if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil || e.Code != fleet.CodeRateLimited {
		t.Fatalf("body %s (%v)", w.Body, err)
	}
	// Behind the trusted proxy, another forwarded client has its own bucket.
	if w := do("198.51.100.8"); w.Code != 200 {
		t.Fatalf("another forwarded client: %d", w.Code)
	}
}
