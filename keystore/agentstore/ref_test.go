// SPDX-License-Identifier: Apache-2.0

package agentstore

import "testing"

func TestParseRef(t *testing.T) {
	for in, want := range map[string]Ref{
		"agent:/run/wirefleet/keyd.sock":              {"/run/wirefleet/keyd.sock", "wg"},
		"agent:/run/wirefleet/keyd.sock?slot=wg-next": {"/run/wirefleet/keyd.sock", "wg-next"},
	} {
		got, err := ParseRef(in)
		if err != nil || got != want {
			t.Errorf("%q: %+v, %v", in, got, err)
		}
		if back, err := ParseRef(got.String()); err != nil || back != want {
			t.Errorf("%q does not round-trip: %q", in, got.String())
		}
	}
	for _, in := range []string{
		"/run/keyd.sock",
		"agent:run/keyd.sock",
		"agent:/run/../tmp/keyd.sock",
		"agent:/run/keyd.sock?slot=a&slot=b",
		"agent:/run/keyd.sock?slot=a%20b",
		"agent:/run/keyd.sock?pin=1234",
		"agent:/run/keyd.sock?slot=",
	} {
		if r, err := ParseRef(in); err == nil {
			t.Errorf("%q accepted as %+v", in, r)
		}
	}
}
