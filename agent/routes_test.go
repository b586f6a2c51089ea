// SPDX-License-Identifier: Apache-2.0

package agent

import "testing"

func TestParsePrefixes(t *testing.T) {
	got, err := ParsePrefixes(" 192.168.1.0/24, 10.9.0.0/16,")
	if err != nil || len(got) != 2 || got[1].String() != "10.9.0.0/16" {
		t.Fatalf("%v %v", got, err)
	}
	for _, bad := range []string{"192.168.1.1/24", "192.168.1/24", "lan"} {
		if _, err := ParsePrefixes(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	if got, err := ParsePrefixes(""); err != nil || len(got) != 0 {
		t.Errorf("empty: %v %v", got, err)
	}
}
