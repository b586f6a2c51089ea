// SPDX-License-Identifier: Apache-2.0

package tokenbucket

import (
	"testing"
	"time"

	"github.com/wirefleet/wirefleet/internal/clock"
)

func TestBucket(t *testing.T) {
	var b Bucket
	now := time.Unix(1e9, 0)
	b.Fill(now, 2)
	for i := 0; i < 2; i++ {
		if ok, _ := b.Take(now, 4, 2); !ok {
			t.Fatalf("token %d of the burst refused", i)
		}
	}
	ok, wait := b.Take(now, 4, 2)
	if ok || wait != 250*time.Millisecond {
		t.Fatalf("empty: %v, wait %v", ok, wait)
	}
	if b.Full(now.Add(400*time.Millisecond), 4, 2) {
		t.Fatal("full before its time")
	}
	if !b.Full(now.Add(time.Second), 4, 2) {
		t.Fatal("not full after refilling")
	}
}

func TestSetBounded(t *testing.T) {
	s := NewSet[int](1, 1, 10)
	clk := clock.NewFake(time.Unix(1e9, 0))
	s.SetClock(clk)
	for i := 0; i < 100; i++ {
		s.Allow(i)
		if s.Len() > 10 {
			t.Fatalf("%d keys held, bound 10", s.Len())
		}
	}
	if ok, _ := s.Allow(99); ok {
		t.Fatal("a key's spent bucket was forgotten while it was held")
	}
	clk.Advance(2 * time.Second)
	if ok, _ := s.Allow(99); !ok {
		t.Fatal("refused after refilling")
	}
}
