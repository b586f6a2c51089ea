// SPDX-License-Identifier: Apache-2.0

//go:build cgo

package pkcs11store_test

import (
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wirefleet/wirefleet/engine"
	"github.com/wirefleet/wirefleet/keystore"
	"github.com/wirefleet/wirefleet/keystore/agentstore"
	"github.com/wirefleet/wirefleet/keystore/pkcs11store"
	"golang.zx2c4.com/wireguard/conn"
	"golang.zx2c4.com/wireguard/tun/tuntest"
)

type engineNode struct {
	e   *engine.Engine
	in  chan []byte
	hs  chan engine.HandshakeEvent
	rej chan engine.RejectEvent
}

func newEngine(t *testing.T, ks keystore.Store) *engineNode {
	t.Helper()
	n := &engineNode{in: make(chan []byte, 64), hs: make(chan engine.HandshakeEvent, 16), rej: make(chan engine.RejectEvent, 64)}
	e, err := engine.New(engine.Config{
		KeyStore: ks,
		Bind:     conn.NewStdNetBind(),
		Handler: engine.HandlerFunc(func(b []engine.InboundPacket) {
			for _, p := range b {
				select {
				case n.in <- append([]byte(nil), p.Data...):
				default:
				}
			}
		}),
		Hooks: engine.Hooks{
			HandshakeCompleted: func(ev engine.HandshakeEvent) {
				select {
				case n.hs <- ev:
				default:
				}
			},
			HandshakeRejected: func(ev engine.RejectEvent) {
				select {
				case n.rej <- ev:
				default:
				}
			},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Up(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	n.e = e
	return n
}

func (n *engineNode) endpoint() netip.AddrPort {
	return netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), n.e.Port())
}

func waitFor[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}

// Two engines over loopback, one with its static key in SoftHSM: handshakes
// complete with the token both as initiator and as responder, and packets
// flow both ways.
func TestEngineWithTokenKey(t *testing.T) {
	tok := openToken(t, "engine", nil)
	hsmKey, err := tok.Generate("wg-device")
	if err != nil {
		t.Fatal(err)
	}
	mem, _ := keystore.GenerateMemory()
	dev := newEngine(t, hsmKey)
	gw := newEngine(t, mem)
	addrDev, addrGw := netip.MustParseAddr("10.99.0.1"), netip.MustParseAddr("10.99.0.2")
	pGw, err := dev.e.AddPeer(engine.PeerConfig{PublicKey: gw.e.PublicKey(), AllowedIPs: []netip.Prefix{netip.PrefixFrom(addrGw, 32)}, Endpoint: gw.endpoint()})
	if err != nil {
		t.Fatal(err)
	}
	pDev, err := gw.e.AddPeer(engine.PeerConfig{PublicKey: hsmKey.PublicKey(), AllowedIPs: []netip.Prefix{netip.PrefixFrom(addrDev, 32)}})
	if err != nil {
		t.Fatal(err)
	}

	// The device initiates: static-static and initiator-se on the token.
	dev.e.Send(pGw, [][]byte{tuntest.Ping(addrGw, addrDev)})
	if ev := waitFor(t, dev.hs, "device handshake"); !ev.Initiator {
		t.Fatal("device handshake event says responder")
	}
	waitFor(t, gw.in, "device → gateway packet")
	gw.e.Send(pDev, [][]byte{tuntest.Ping(addrDev, addrGw)})
	waitFor(t, dev.in, "gateway → device packet")

	// The gateway initiates: responder-es on the token. (Past the
	// responder's initiation flood guard first.)
	time.Sleep(50 * time.Millisecond)
	gw.e.Initiate(pDev)
	for {
		ev := waitFor(t, dev.hs, "handshake initiated by the gateway")
		if !ev.Initiator {
			break
		}
	}
	gw.e.Send(pDev, [][]byte{tuntest.Ping(addrDev, addrGw)})
	waitFor(t, dev.in, "gateway → device packet after the second handshake")
}

// The deployment shape of issue 9: the key sits in SoftHSM, held by a key
// agent (initiator-only) over a Unix socket; the tunnel engine has only an
// agentstore client. The device connects and traffic flows; an initiation
// from the other side is refused by the agent, so it never reaches the
// token.
func TestEngineThroughAgentOverToken(t *testing.T) {
	tok := openToken(t, "engine-agent", nil)
	sock := filepath.Join(t.TempDir(), "keyd.sock")
	ln, err := agentstore.Listen(sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := agentstore.NewServer(agentstore.BackendOf[*pkcs11store.Key](tok), agentstore.Policy{InitiatorOnly: true})
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	ks, err := agentstore.Generate(sock, "wg-device")
	if err != nil {
		t.Fatal(err)
	}
	defer ks.Close()
	onToken, err := tok.Open("wg-device")
	if err != nil {
		t.Fatalf("the agent's key is not on the token: %v", err)
	}
	if onToken.PublicKey() != ks.PublicKey() {
		t.Fatal("agent and token disagree on the public key")
	}
	if ne, err := onToken.NonExtractable(); err != nil || !ne {
		t.Fatalf("agent-generated key: NonExtractable = %v, %v", ne, err)
	}

	mem, _ := keystore.GenerateMemory()
	dev := newEngine(t, ks)
	gw := newEngine(t, mem)
	addrDev, addrGw := netip.MustParseAddr("10.99.0.1"), netip.MustParseAddr("10.99.0.2")
	pGw, _ := dev.e.AddPeer(engine.PeerConfig{PublicKey: gw.e.PublicKey(), AllowedIPs: []netip.Prefix{netip.PrefixFrom(addrGw, 32)}, Endpoint: gw.endpoint()})
	pDev, _ := gw.e.AddPeer(engine.PeerConfig{PublicKey: ks.PublicKey(), AllowedIPs: []netip.Prefix{netip.PrefixFrom(addrDev, 32)}})
	dev.e.Send(pGw, [][]byte{tuntest.Ping(addrGw, addrDev)})
	waitFor(t, gw.in, "device → gateway packet")
	gw.e.Send(pDev, [][]byte{tuntest.Ping(addrDev, addrGw)})
	waitFor(t, dev.in, "gateway → device packet")

	time.Sleep(50 * time.Millisecond)
	gw.e.Initiate(pDev)
	for {
		ev := waitFor(t, dev.rej, "the device refusing an initiation")
		if ev.Reason == engine.RejectKeyStore {
			if !strings.Contains(ev.Detail, "initiator-only") {
				t.Fatalf("refusal detail %q", ev.Detail)
			}
			break
		}
	}
}

// A slow token (the test delay stands in for a secure element on I2C)
// delays handshakes, not traffic: while the device waits on its token for
// a handshake with one gateway, packets to another gateway, whose session
// is up, flow at once.
func TestEngineSlowTokenDoesNotStallTraffic(t *testing.T) {
	const delay = 400 * time.Millisecond
	tok := openToken(t, "engine-slow", func(c *pkcs11store.Config) { c.DHDelay = delay })
	hsmKey, err := tok.Generate("wg-device")
	if err != nil {
		t.Fatal(err)
	}
	dev := newEngine(t, hsmKey)
	addrDev := netip.MustParseAddr("10.99.0.1")
	var gws [2]*engineNode
	var peers [2]*engine.Peer
	addrs := [2]netip.Addr{netip.MustParseAddr("10.99.0.2"), netip.MustParseAddr("10.99.0.3")}
	for i := range gws {
		mem, _ := keystore.GenerateMemory()
		gws[i] = newEngine(t, mem)
		peers[i], _ = dev.e.AddPeer(engine.PeerConfig{PublicKey: gws[i].e.PublicKey(), AllowedIPs: []netip.Prefix{netip.PrefixFrom(addrs[i], 32)}, Endpoint: gws[i].endpoint()})
		gws[i].e.AddPeer(engine.PeerConfig{PublicKey: hsmKey.PublicKey(), AllowedIPs: []netip.Prefix{netip.PrefixFrom(addrDev, 32)}})
	}
	start := time.Now()
	dev.e.Send(peers[0], [][]byte{tuntest.Ping(addrs[0], addrDev)})
	waitFor(t, gws[0].in, "first packet through the slow token")
	if d := time.Since(start); d < delay {
		t.Fatalf("handshake with a %v token took %v: the delay is not applied", delay, d)
	}

	// Handshake with the second gateway: the device is now inside a slow DH.
	dev.e.Send(peers[1], [][]byte{tuntest.Ping(addrs[1], addrDev)})
	time.Sleep(delay / 4)
	for i := 0; i < 5; i++ {
		sent := time.Now()
		dev.e.Send(peers[0], [][]byte{tuntest.Ping(addrs[0], addrDev)})
		waitFor(t, gws[0].in, "packet on the established session")
		if d := time.Since(sent); d > delay/2 {
			t.Fatalf("a packet on an established session took %v while a handshake waited on the token", d)
		}
	}
	waitFor(t, gws[1].in, "first packet to the second gateway")
}
