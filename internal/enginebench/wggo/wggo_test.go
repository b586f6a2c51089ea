// SPDX-License-Identifier: Apache-2.0

package wggo

import (
	"testing"
	"time"

	"github.com/wirefleet/wirefleet/internal/enginebench"
	"github.com/wirefleet/wirefleet/internal/memtun"
)

// TestInitiationsAcceptedByResponder: every initiation the wireguard-go maker
// makes is answered by a wireguard-go responder with a handshake response (not
// a cookie reply), and the blaster counts them.
func TestInitiationsAcceptedByResponder(t *testing.T) {
	hs, err := enginebench.NewHandshakeSet(Initiations{}, 200)
	if err != nil {
		t.Fatal(err)
	}
	r, err := enginebench.Handshakes(Subject{}, hs, 20*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if r.Responses != 200 || r.CookieReplies != 0 || r.Sent != 200 {
		t.Fatalf("sent %d, responses %d, cookie replies %d; want 200, 200, 0", r.Sent, r.Responses, r.CookieReplies)
	}
	if r.PerSec <= 0 {
		t.Fatalf("rate %v", r.PerSec)
	}
}

// TestUnknownInitiatorsGetNoResponse: a responder that does not know the
// initiators answers nothing — the blaster does not count what was not earned.
func TestUnknownInitiatorsGetNoResponse(t *testing.T) {
	hs, err := enginebench.NewHandshakeSet(Initiations{}, 20)
	if err != nil {
		t.Fatal(err)
	}
	r, err := Subject{}.NewResponder(enginebench.ResponderConfig{PrivateKey: hs.Responder, Tun: memtun.NewSink(0, 0)})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	res, err := enginebench.Blast(r.Addr(), hs.Messages, 8, 3*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if res.Responses != 0 || res.Sent != 20 {
		t.Fatalf("sent %d, %d responses from a responder without peers; want 20, 0", res.Sent, res.Responses)
	}
}

func TestThroughputDelivers(t *testing.T) {
	r, err := enginebench.Throughput(Subject{}, 100*time.Millisecond, 500*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if r.Gbps <= 0 || r.PacketsPerSec <= 0 {
		t.Fatalf("nothing delivered: %+v", r)
	}
}

func TestResponderRefusesMoreThanMaxPeers(t *testing.T) {
	peers := make([]enginebench.PeerConfig, Subject{}.MaxPeers()+1)
	if _, err := (Subject{}).NewResponder(enginebench.ResponderConfig{PrivateKey: enginebench.NewPrivateKey(), Peers: peers, Tun: memtun.NewSink(0, 0)}); err == nil {
		t.Fatal("responder accepted more than MaxPeers peers")
	}
}
