// SPDX-License-Identifier: Apache-2.0

package engine

import (
	"context"
	"testing"
	"time"

	"github.com/wirefleet/wirefleet/keystore"
)

// slowStore delays the initiator-se DH, the one an initiator makes when
// the response arrives (a secure element on a slow bus).
type slowStore struct {
	keystore.Store
	delay time.Duration
}

func (s slowStore) DH(ctx context.Context, req keystore.DHRequest) ([32]byte, error) {
	if req.Purpose == keystore.InitiatorSE {
		select {
		case <-time.After(s.delay):
		case <-ctx.Done():
			return [32]byte{}, ctx.Err()
		}
	}
	return s.Store.DH(ctx, req)
}

// Packets sent while the first handshake waits on a slow key store go out
// on the session that handshake makes; they do not start a second one
// (whose initiation, reaching the responder before any data on the new
// session, would make it replace the session the initiator is using).
func TestPacketsDuringSlowHandshake(t *testing.T) {
	const delay = 400 * time.Millisecond
	mem, err := keystore.GenerateMemory()
	if err != nil {
		t.Fatal(err)
	}
	a := newNode(t, slowStore{mem, delay}, nil)
	b := newNode(t, nil, nil)
	pb, _ := a.e.AddPeer(PeerConfig{PublicKey: b.e.PublicKey(), AllowedIPs: pfx(addrB), Endpoint: b.endpoint()})
	b.e.AddPeer(PeerConfig{PublicKey: a.e.PublicKey(), AllowedIPs: pfx(addrA)})
	a.e.Send(pb, [][]byte{ping(addrB, addrA)}) // starts the handshake
	time.Sleep(delay / 4)                      // the response is in; its DH waits
	const more = 5
	for range more {
		a.e.Send(pb, [][]byte{ping(addrB, addrA)})
	}
	for i := 0; i < 1+more; i++ {
		recv(t, b.in, "a packet sent during the slow handshake")
	}
	time.Sleep(3 * delay) // long enough for a second handshake, if one had started
	if n := a.e.Counters().HandshakesCompleted; n != 1 {
		t.Fatalf("%d handshakes completed, want 1", n)
	}
	a.e.Send(pb, [][]byte{ping(addrB, addrA)})
	recv(t, b.in, "a packet after the handshake")
	if c := b.e.Counters(); c.Dropped["no-session"] != 0 {
		t.Fatalf("the responder dropped packets for want of a session: %+v", c)
	}
}
