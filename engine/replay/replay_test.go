// SPDX-License-Identifier: Apache-2.0

package replay

import (
	"math"
	"math/rand/v2"
	"testing"
)

const noLimit = math.MaxUint64

func TestSequence(t *testing.T) {
	var f Filter
	steps := []struct {
		c    uint64
		want bool
	}{
		{0, true}, {0, false}, {1, true}, {1, false}, {5, true}, {3, true}, {3, false},
		{WindowSize + 5, true}, {5, false}, {6, true}, {4, false}, // 4 < (W+5)-W: too old
		{WindowSize*3 + 100, true}, {WindowSize*2 + 99, false}, {WindowSize*3 + 99, true},
		{WindowSize * 3, true}, {WindowSize*3 + 100 - WindowSize, true}, {WindowSize*3 + 100 - WindowSize - 1, false},
	}
	for i, s := range steps {
		if got := f.Accept(s.c, noLimit); got != s.want {
			t.Fatalf("step %d: Accept(%d) = %v, want %v", i, s.c, got, s.want)
		}
	}
}

func TestLimit(t *testing.T) {
	var f Filter
	if f.Accept(10, 10) || !f.Accept(9, 10) {
		t.Fatal("limit not applied")
	}
}

// TestAgainstModel compares the filter with an obvious set-based model.
func TestAgainstModel(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var f Filter
	seen := map[uint64]bool{}
	var last uint64
	any := false
	for i := 0; i < 200000; i++ {
		var c uint64
		switch r.IntN(4) {
		case 0:
			c = last + uint64(r.IntN(3000))
		case 1:
			if last > 3000 {
				c = last - uint64(r.IntN(3000))
			}
		default:
			c = last + uint64(r.IntN(8))
		}
		want := !seen[c] && (!any || c > last || last-c <= WindowSize)
		if got := f.Accept(c, noLimit); got != want {
			t.Fatalf("op %d: Accept(%d) = %v, want %v (last %d)", i, c, got, want, last)
		}
		if want {
			seen[c] = true
			if c > last || !any {
				last = c
			}
			any = true
		}
	}
}

func FuzzFilter(f *testing.F) {
	f.Add([]byte{0, 0, 1, 0, 255, 255, 0, 3})
	f.Fuzz(func(t *testing.T, data []byte) {
		var fl Filter
		seen := map[uint64]bool{}
		var last uint64
		any := false
		for len(data) >= 2 {
			c := uint64(data[0])<<8 | uint64(data[1])
			c *= 7
			data = data[2:]
			want := !seen[c] && (!any || c > last || last-c <= WindowSize)
			if got := fl.Accept(c, noLimit); got != want {
				t.Fatalf("Accept(%d) = %v, want %v", c, got, want)
			}
			if want {
				seen[c] = true
				if c > last || !any {
					last = c
				}
				any = true
			}
		}
	})
}
