// SPDX-License-Identifier: Apache-2.0

package main

import (
	"fmt"
	"strings"

	"github.com/wirefleet/wirefleet/fleet"
)

// termSafe returns s with every control and bidi character written as a
// visible escape (\x1b, \u009b, \u202e): what the CLI prints comes partly
// from devices (names, tags), and a raw ESC or OSC sequence would let one
// rewrite an operator's terminal. The API refuses such labels now; data
// stored before, or by other means, is shown escaped.
func termSafe(s string) string {
	if strings.IndexFunc(s, fleet.IsUnsafeRune) < 0 {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		switch {
		case !fleet.IsUnsafeRune(r):
			b.WriteRune(r)
		case r < 0x80:
			fmt.Fprintf(&b, `\x%02x`, r)
		default:
			fmt.Fprintf(&b, `\u%04x`, r)
		}
	}
	return b.String()
}
