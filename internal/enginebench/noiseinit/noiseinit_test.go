// SPDX-License-Identifier: Apache-2.0

package noiseinit

import (
	"testing"
	"time"

	"github.com/wirefleet/wirefleet/internal/enginebench"
	"github.com/wirefleet/wirefleet/internal/enginebench/wggo"
)

// TestAcceptedByWireGuardGo: initiations made with our noise package are
// answered by a golang.zx2c4.com/wireguard responder — interop of our
// initiator, and the precondition for replaying them at any subject.
func TestAcceptedByWireGuardGo(t *testing.T) {
	hs, err := enginebench.NewHandshakeSet(Maker{}, 200)
	if err != nil {
		t.Fatal(err)
	}
	r, err := enginebench.Handshakes(wggo.Subject{}, hs, 20*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if r.Responses != 200 || r.CookieReplies != 0 {
		t.Fatalf("responses %d, cookie replies %d of 200", r.Responses, r.CookieReplies)
	}
}
