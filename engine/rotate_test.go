// SPDX-License-Identifier: Apache-2.0

package engine

import (
	"testing"
	"time"

	"github.com/wirefleet/wirefleet/keystore"
)

// SetKeyStore rotates the static key under traffic: the session in use
// carries packets until the handshake with the new key completes, then
// traffic moves to the new session; nothing is lost.
func TestSetKeyStoreRotatesWithoutLoss(t *testing.T) {
	oldKS, _ := keystore.GenerateMemory()
	newKS, _ := keystore.GenerateMemory()
	// The gateway resolves both keys to the same device (a rotation grace
	// window).
	gw := newNode(t, nil, func(c *Config) {
		c.Resolver = mapResolver{
			oldKS.PublicKey(): {AllowedIPs: pfx(addrA), Identity: "sim-1"},
			newKS.PublicKey(): {AllowedIPs: pfx(addrA), Identity: "sim-1"},
		}
	})
	dev := newNode(t, oldKS, nil)
	p, _ := dev.e.AddPeer(PeerConfig{PublicKey: gw.e.PublicKey(), AllowedIPs: pfx(addrB), Endpoint: gw.endpoint()})
	dev.e.Send(p, [][]byte{ping(addrB, addrA)})
	recv(t, gw.in, "before rotation")
	<-dev.hs

	const total = 400
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < total; i++ {
			dev.e.Send(p, [][]byte{ping(addrB, addrA)})
			if i == 100 {
				dev.e.SetKeyStore(newKS)
			}
			time.Sleep(time.Millisecond)
		}
	}()
	got := 0
	timeout := time.After(10 * time.Second)
loop:
	for got < total {
		select {
		case <-gw.in:
			got++
		case <-timeout:
			break loop
		}
	}
	<-done
	if got != total {
		t.Fatalf("%d of %d packets arrived across the rotation", got, total)
	}
	if dev.e.PublicKey() != newKS.PublicKey() {
		t.Fatal("public key not replaced")
	}
	if gw.e.Peer(newKS.PublicKey()) == nil {
		t.Fatal("no session with the new key at the gateway")
	}
	select {
	case ev := <-dev.hs:
		if !ev.Initiator {
			t.Fatal("rotation handshake not ours")
		}
	default:
		t.Fatal("no handshake with the new key")
	}
	// Packets now travel on the new key's session.
	before := gw.e.Peer(newKS.PublicKey()).Stats()
	sent := p.Stats()
	dev.e.Send(p, [][]byte{ping(addrB, addrA)})
	recv(t, gw.in, "after rotation")
	after := gw.e.Peer(newKS.PublicKey()).Stats()
	if after.RxBytes == before.RxBytes {
		t.Fatal("traffic did not move to the new key's session")
	}
	// One packet each way counted: the packet counters feed the monitor's
	// volume detector.
	if after.RxPackets != before.RxPackets+1 || p.Stats().TxPackets != sent.TxPackets+1 {
		t.Fatalf("packets counted: rx %d→%d, tx %d→%d; want one more each", before.RxPackets, after.RxPackets, sent.TxPackets, p.Stats().TxPackets)
	}
}
