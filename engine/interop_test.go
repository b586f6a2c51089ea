// SPDX-License-Identifier: Apache-2.0

package engine

import (
	"testing"
	"time"

	"github.com/wirefleet/wirefleet/internal/clock"
	"github.com/wirefleet/wirefleet/wgkey"
)

// Our engine initiates; golang.zx2c4.com/wireguard responds. Data flows
// both ways, with and without a preshared key.
func TestInteropWeInitiate(t *testing.T) {
	for _, withPSK := range []bool{false, true} {
		t.Run(map[bool]string{false: "nopsk", true: "psk"}[withPSK], func(t *testing.T) {
			var psk wgkey.Preshared
			if withPSK {
				psk, _ = wgkey.NewPreshared()
			}
			ours := newNode(t, nil, nil)
			ref := newWgGo(t, "")
			ref.set(t, peerUAPI(ours.e.PublicKey(), addrA.String()+"/32", ours.endpoint(), psk))
			p, err := ours.e.AddPeer(PeerConfig{PublicKey: ref.pub, PresharedKey: psk, AllowedIPs: pfx(addrB), Endpoint: ref.endpoint()})
			if err != nil {
				t.Fatal(err)
			}
			ours.e.Send(p, [][]byte{ping(addrB, addrA)})
			checkPing(t, recv(t, ref.tun.Inbound, "ping at wireguard-go"), addrB, addrA)
			ref.tun.Outbound <- ping(addrA, addrB)
			checkPing(t, recv(t, ours.in, "reply at our engine"), addrA, addrB)
			ev := <-ours.hs
			if !ev.Initiator || ev.Peer != p {
				t.Fatalf("handshake event %+v", ev)
			}
			// A burst both ways.
			for i := 0; i < 200; i++ {
				ours.e.Send(p, [][]byte{ping(addrB, addrA)})
			}
			for i := 0; i < 200; i++ {
				recv(t, ref.tun.Inbound, "burst at wireguard-go")
			}
		})
	}
}

// golang.zx2c4.com/wireguard initiates; our engine responds, with the peer
// held statically or resolved lazily.
func TestInteropTheyInitiate(t *testing.T) {
	for _, lazy := range []bool{false, true} {
		t.Run(map[bool]string{false: "static", true: "lazy"}[lazy], func(t *testing.T) {
			psk, _ := wgkey.NewPreshared()
			ref := newWgGo(t, "")
			ours := newNode(t, nil, func(c *Config) {
				if lazy {
					c.Resolver = mapResolver{ref.pub: {AllowedIPs: pfx(addrB), PresharedKey: psk, Identity: "sim-1"}}
				}
			})
			if !lazy {
				if _, err := ours.e.AddPeer(PeerConfig{PublicKey: ref.pub, PresharedKey: psk, AllowedIPs: pfx(addrB)}); err != nil {
					t.Fatal(err)
				}
			}
			ref.set(t, peerUAPI(ours.e.PublicKey(), addrA.String()+"/32", ours.endpoint(), psk))
			ref.tun.Outbound <- ping(addrA, addrB)
			checkPing(t, recv(t, ours.in, "ping at our engine"), addrA, addrB)
			p := ours.e.Peer(ref.pub)
			if p == nil {
				t.Fatal("peer not held after its handshake")
			}
			if lazy && p.Identity() != "sim-1" {
				t.Fatalf("identity %v", p.Identity())
			}
			ours.e.Send(p, [][]byte{ping(addrB, addrA)})
			checkPing(t, recv(t, ref.tun.Inbound, "reply at wireguard-go"), addrB, addrA)
			ev := <-ours.hs
			if ev.Initiator || ev.Peer != p {
				t.Fatalf("handshake event %+v", ev)
			}
		})
	}
}

// Rekey after RekeyAfterTime with our clock injected: the initiator (us)
// starts a new handshake when it sends on an old session, and traffic
// carries on over the new one.
func TestInteropRekey(t *testing.T) {
	clk := clock.NewFake(time.Now())
	ours := newNode(t, nil, func(c *Config) { c.Clock = clk })
	ref := newWgGo(t, "")
	ref.set(t, peerUAPI(ours.e.PublicKey(), addrA.String()+"/32", ours.endpoint(), wgkey.Preshared{}))
	p, _ := ours.e.AddPeer(PeerConfig{PublicKey: ref.pub, AllowedIPs: pfx(addrB), Endpoint: ref.endpoint()})
	ours.e.Send(p, [][]byte{ping(addrB, addrA)})
	recv(t, ref.tun.Inbound, "first ping")
	<-ours.hs
	first := p.current.Load()

	// wireguard-go refuses a second initiation within 20 ms of real time
	// (its flood guard), whatever our clock says.
	time.Sleep(50 * time.Millisecond)
	clk.Advance(RekeyAfterTime + time.Second)
	ours.e.Send(p, [][]byte{ping(addrB, addrA)}) // still sent on the old session, and triggers a rekey
	recv(t, ref.tun.Inbound, "ping on the old session")
	select {
	case ev := <-ours.hs:
		if !ev.Initiator {
			t.Fatal("rekey handshake not ours")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no rekey handshake")
	}
	if p.current.Load() == first {
		t.Fatal("session not replaced")
	}
	ours.e.Send(p, [][]byte{ping(addrB, addrA)})
	recv(t, ref.tun.Inbound, "ping on the new session")
	ref.tun.Outbound <- ping(addrA, addrB)
	recv(t, ours.in, "reply on the new session")

	// Past RejectAfterTime without traffic the old session is refused and
	// a fresh handshake carries the staged packet.
	time.Sleep(50 * time.Millisecond)
	clk.Advance(RejectAfterTime + time.Second)
	ours.e.Send(p, [][]byte{ping(addrB, addrA)})
	recv(t, ref.tun.Inbound, "ping after reject-after-time")
}

// Our responder demands cookies; golang.zx2c4.com/wireguard takes the
// cookie reply and its retry (after RekeyTimeout) carries a valid MAC2.
func TestInteropCookieUnderLoad(t *testing.T) {
	ref := newWgGo(t, "")
	ours := newNode(t, nil, func(c *Config) { c.ForceUnderLoad = true })
	ours.e.AddPeer(PeerConfig{PublicKey: ref.pub, AllowedIPs: pfx(addrB)})
	ref.set(t, peerUAPI(ours.e.PublicKey(), addrA.String()+"/32", ours.endpoint(), wgkey.Preshared{}))
	ref.tun.Outbound <- ping(addrA, addrB)
	ev := <-ours.rej
	if ev.Reason != RejectCookieSent {
		t.Fatalf("first initiation: %v, want a cookie reply", ev.Reason)
	}
	// wireguard-go retransmits after RekeyTimeout (5 s) with MAC2.
	select {
	case b := <-ours.in:
		checkPing(t, b, addrA, addrB)
	case <-time.After(RekeyTimeout + 5*time.Second):
		t.Fatalf("no data after the cookie round; counters %+v", ours.e.Counters())
	}
}
