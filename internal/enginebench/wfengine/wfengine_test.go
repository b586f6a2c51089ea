// SPDX-License-Identifier: Apache-2.0

package wfengine

import (
	"testing"
	"time"

	"github.com/wirefleet/wirefleet/internal/enginebench"
	"github.com/wirefleet/wirefleet/internal/enginebench/noiseinit"
	"github.com/wirefleet/wirefleet/internal/enginebench/wggo"
)

// TestResponderResolvesLazily: initiations from keys only the harness's Lookup
// knows are all answered; the responder held no peer beforehand.
func TestResponderResolvesLazily(t *testing.T) {
	for _, m := range []enginebench.InitiationMaker{noiseinit.Maker{}, wggo.Initiations{}} {
		hs, err := enginebench.NewHandshakeSet(m, 200)
		if err != nil {
			t.Fatal(err)
		}
		r, err := enginebench.Handshakes(Subject{}, hs, 20*time.Second)
		if err != nil {
			t.Fatalf("%T: %v", m, err)
		}
		if r.Responses != 200 || r.CookieReplies != 0 {
			t.Fatalf("%T: responses %d, cookie replies %d of 200", m, r.Responses, r.CookieReplies)
		}
	}
}

// TestThroughputDeliversAndCloses: bulk traffic flows between two engines and
// both close within enginebench.CloseTimeout while traffic is in flight.
func TestThroughputDeliversAndCloses(t *testing.T) {
	r, err := enginebench.Throughput(Subject{}, 100*time.Millisecond, 500*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if r.Gbps <= 0 {
		t.Fatalf("nothing delivered: %+v", r)
	}
}
