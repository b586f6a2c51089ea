// SPDX-License-Identifier: Apache-2.0

package store_test

import (
	"testing"

	"github.com/wirefleet/wirefleet/controlplane/store"
	"github.com/wirefleet/wirefleet/fleet"
)

func TestPrefixEnd(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"pump", "pumq"},
		{"é", "ê"},
		{"a\ud7ff", "a\ue000"},
		{"ab\U0010FFFF", "ac"},
		{"\U0010FFFF\U0010FFFF", ""},
		{"", ""},
	} {
		if got := store.PrefixEnd(c.in); got != c.want {
			t.Errorf("PrefixEnd(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestSIMNameCursor(t *testing.T) {
	c := store.SIMNameCursor(fleet.SIM{ID: "sim_1", Name: "pump.7 é"})
	if n, id, err := store.ParseSIMNameCursor(c); err != nil || n != "pump.7 é" || id != "sim_1" {
		t.Fatalf("round trip: %q %q %v", n, id, err)
	}
	for _, bad := range []string{"", "x", "!!.sim_1", "cHVtcA.", "_w.sim_1"} {
		if _, _, err := store.ParseSIMNameCursor(bad); err == nil {
			t.Errorf("cursor %q accepted", bad)
		}
	}
}
