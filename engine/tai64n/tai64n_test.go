// SPDX-License-Identifier: Apache-2.0

package tai64n

import (
	"testing"
	"time"
)

func TestOrderAndWhitening(t *testing.T) {
	t0 := time.Unix(1700000000, 0)
	a := From(t0)
	if b := From(t0.Add(time.Millisecond)); b.After(a) {
		t.Fatal("1 ms later should fall in the same whitened slot")
	}
	if b := From(t0.Add(20 * time.Millisecond)); !b.After(a) {
		t.Fatal("20 ms later must compare greater")
	}
	if b := From(t0.Add(time.Second)); !b.After(a) || a.After(b) {
		t.Fatal("ordering broken across seconds")
	}
	if got := a.Time(); !got.Equal(t0) {
		t.Fatalf("decode = %v, want %v", got, t0)
	}
}
