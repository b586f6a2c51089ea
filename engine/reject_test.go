// SPDX-License-Identifier: Apache-2.0

package engine

import (
	"context"
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/wirefleet/wirefleet/engine/cookie"
	"github.com/wirefleet/wirefleet/engine/noise"
	"github.com/wirefleet/wirefleet/engine/tai64n"
	"github.com/wirefleet/wirefleet/engine/wire"
	"github.com/wirefleet/wirefleet/internal/clock"
	"github.com/wirefleet/wirefleet/keystore"
	"github.com/wirefleet/wirefleet/wgkey"
)

// initiation crafts a valid initiation from ks to responder, stamped ts,
// with MAC1: what an attacker could capture on the wire.
func initiation(t testing.TB, ks keystore.Store, responder wgkey.Public, ts time.Time) []byte {
	t.Helper()
	ss, err := ks.DH(context.Background(), keystore.DHRequest{Purpose: keystore.StaticStatic, Peer: responder})
	if err != nil {
		t.Fatal(err)
	}
	_, m, err := noise.CreateInitiation(noise.InitiationParams{Local: ks.PublicKey(), Peer: responder, StaticStatic: &ss, SenderIndex: 99, Timestamp: tai64n.From(ts)})
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, wire.InitiationSize)
	m.Marshal(b)
	var g cookie.Generator
	g.Init(responder)
	g.AddMACs(b, ts)
	return b
}

func sendRaw(t testing.TB, n *node, b []byte) {
	t.Helper()
	c, err := netDial(n.endpoint())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write(b); err != nil {
		t.Fatal(err)
	}
}

// A captured initiation replayed after the device's peer was evicted is
// still refused: the newest timestamp outlives the peer.
func TestReplayAfterEviction(t *testing.T) {
	for _, keeper := range []bool{false, true} {
		t.Run(map[bool]string{false: "engine-memory", true: "resolver-keeps"}[keeper], func(t *testing.T) {
			clk := clock.NewFake(time.Now())
			devKS, _ := keystore.GenerateMemory()
			res := &keepingResolver{mapResolver: mapResolver{devKS.PublicKey(): {AllowedIPs: pfx(addrA)}}, kept: map[wgkey.Public]tai64n.Timestamp{}}
			gw := newNode(t, nil, func(c *Config) {
				c.Clock, c.TimerInterval = clk, -1
				if keeper {
					c.Resolver = res
					c.EvictedTimestamps = -1 // only the resolver remembers
				} else {
					c.Resolver = res.mapResolver
				}
			})
			captured := initiation(t, devKS, gw.e.PublicKey(), clk.Now())
			sendRaw(t, gw, captured)
			waitFor(t, "peer", func() bool { return gw.e.Peer(devKS.PublicKey()) != nil })

			clk.Advance(2 * RejectAfterTime)
			gw.e.RunTimers()
			if gw.e.PeerCount() != 0 {
				t.Fatal("peer not evicted")
			}
			if keeper && len(res.kept) != 1 {
				t.Fatal("resolver was not given the timestamp")
			}
			if keeper {
				pc := res.mapResolver[devKS.PublicKey()]
				pc.LastTimestamp = res.kept[devKS.PublicKey()]
				res.mapResolver[devKS.PublicKey()] = pc
			}
			sendRaw(t, gw, captured)
			ev := waitReject(t, gw.rej, RejectReplayedTimestamp)
			if ev.Key != devKS.PublicKey() {
				t.Fatalf("event for %s", ev.Key.Short())
			}
			if gw.e.PeerCount() != 0 {
				t.Fatal("a replayed initiation brought the peer back")
			}
			// A fresh initiation from the real device still works.
			time.Sleep(30 * time.Millisecond)
			sendRaw(t, gw, initiation(t, devKS, gw.e.PublicKey(), clk.Now()))
			waitFor(t, "peer after a fresh initiation", func() bool { return gw.e.Peer(devKS.PublicKey()) != nil })
		})
	}
}

type keepingResolver struct {
	mapResolver
	kept map[wgkey.Public]tai64n.Timestamp
}

func (k *keepingResolver) KeepTimestamp(key wgkey.Public, ts tai64n.Timestamp) { k.kept[key] = ts }

// Each rejection reason the engine reports, provoked on purpose.
func TestRejectReasons(t *testing.T) {
	devKS, _ := keystore.GenerateMemory()
	failing := ResolverFunc(func(_ context.Context, key wgkey.Public, _ netip.AddrPort) (PeerConfig, error) {
		if key == devKS.PublicKey() {
			return PeerConfig{AllowedIPs: pfx(addrA)}, nil
		}
		return PeerConfig{}, errors.New("database unreachable")
	})
	// The gateway's clock only moves when told, so the 20 ms flood guard is
	// tested exactly, whatever the machine's load.
	clk := clock.NewFake(time.Now())
	gw := newNode(t, nil, func(c *Config) { c.Resolver = failing; c.Clock = clk; c.TimerInterval = -1 })

	// Bad MAC1: an initiation made for another responder.
	other, _ := keystore.GenerateMemory()
	sendRaw(t, gw, initiation(t, devKS, other.PublicKey(), time.Now()))
	waitReject(t, gw.rej, RejectBadMAC1)

	// Replayed timestamp, on a held peer.
	first := initiation(t, devKS, gw.e.PublicKey(), time.Now())
	sendRaw(t, gw, first)
	waitFor(t, "peer", func() bool { return gw.e.Peer(devKS.PublicKey()) != nil })
	clk.Advance(30 * time.Millisecond)
	sendRaw(t, gw, first)
	waitReject(t, gw.rej, RejectReplayedTimestamp)

	// Flood: a newer timestamp, but within 20 ms of the last accepted one
	// (on the gateway's clock, which does not move in between).
	clk.Advance(30 * time.Millisecond)
	sendRaw(t, gw, initiation(t, devKS, gw.e.PublicKey(), time.Now().Add(time.Second)))
	waitFor(t, "the newer initiation accepted", func() bool {
		p := gw.e.Peer(devKS.PublicKey())
		p.mu.Lock()
		defer p.mu.Unlock()
		return p.lastTS.After(tai64n.From(time.Now().Add(500 * time.Millisecond)))
	})
	sendRaw(t, gw, initiation(t, devKS, gw.e.PublicKey(), time.Now().Add(2*time.Second)))
	waitReject(t, gw.rej, RejectFlood)

	// The resolver fails: reported as such, not as an unknown key.
	stranger, _ := keystore.GenerateMemory()
	sendRaw(t, gw, initiation(t, stranger, gw.e.PublicKey(), time.Now()))
	ev := waitReject(t, gw.rej, RejectResolverError)
	if ev.Detail != "database unreachable" {
		t.Fatalf("detail %q", ev.Detail)
	}

	// Rate limited: under load, with valid cookies, one source gets a
	// burst and no more.
	gw2 := newNode(t, nil, func(c *Config) { c.ForceUnderLoad = true; c.Resolver = failing })
	dev := newNode(t, devKS, nil)
	p, _ := dev.e.AddPeer(PeerConfig{PublicKey: gw2.e.PublicKey(), AllowedIPs: pfx(addrB), Endpoint: gw2.endpoint()})
	dev.e.Initiate(p)
	waitReject(t, gw2.rej, RejectCookieSent)
	waitFor(t, "cookie at the device", func() bool { return p.cookies.HasCookie(time.Now()) })
	for i := 0; i < 40; i++ {
		p.mu.Lock()
		p.initIndex = 0 // let the next request go now
		p.mu.Unlock()
		dev.e.requestHandshake(p, true)
		time.Sleep(2 * time.Millisecond)
	}
	waitReject(t, gw2.rej, RejectRateLimited)
}
