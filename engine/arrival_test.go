// SPDX-License-Identifier: Apache-2.0

package engine

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/wirefleet/wirefleet/internal/netns"
	"github.com/wirefleet/wirefleet/keystore"
	"golang.zx2c4.com/wireguard/tun"
)

// TestRepliesFromArrivalAddress: on a host with two addresses (its own
// and a virtual one, as keepalived moves between nodes), our engine
// answers a standard WireGuard peer from the address the peer sent to,
// so the peer keeps that endpoint rather than following the reply to the
// host's other address (and losing the virtual one's failover). When the
// peer switches to the other address, the answers follow at once.
// (conn.StdNetBind fails the first half: with UDP GRO on it loses the
// arrival address, see package udpbind.)
func TestRepliesFromArrivalAddress(t *testing.T) {
	env := netns.New(t)
	nsA, nsB := env.NewNS("a"), env.NewNS("b")
	linkA, _ := env.Veth(nsA, netip.MustParsePrefix("10.212.0.1/24"), nsB, netip.MustParsePrefix("10.212.0.2/24"))
	vip := netip.MustParseAddr("10.212.0.100")
	nsA.MustExec("ip", "addr", "add", netip.PrefixFrom(vip, 24).String(), "dev", linkA.Name)
	innerA, innerB := netip.MustParseAddr("10.97.0.1"), netip.MustParseAddr("10.97.0.2")

	ks, _ := keystore.GenerateMemory()
	tunName := env.Name("t")
	var eng *Engine
	nsA.MustDo(func() error {
		dev, err := tun.CreateTUN(tunName, 1420)
		if err != nil {
			return fmt.Errorf("creating TUN: %w", err)
		}
		eng, err = New(Config{KeyStore: ks, TUN: dev}) // the default bind
		if err != nil {
			dev.Close()
			return err
		}
		return eng.Up()
	})
	t.Cleanup(func() { eng.Close() })
	nsA.MustExec("ip", "addr", "add", netip.PrefixFrom(innerA, 24).String(), "dev", tunName)
	nsA.MustExec("ip", "link", "set", tunName, "up")

	atVIP := netip.AddrPortFrom(vip, eng.Port())
	wg := nsB.StartWireGuardGo("")
	wg.Configure(netns.Config{ListenPort: 51820, Peers: []netns.Peer{{
		PublicKey: ks.PublicKey(), Endpoint: atVIP, AllowedIPs: []netip.Prefix{netip.MustParsePrefix("10.97.0.0/24")},
	}}})
	wg.AddAddr(netip.PrefixFrom(innerB, 24))
	wg.Up()
	_, err := eng.AddPeer(PeerConfig{PublicKey: wg.Public, AllowedIPs: pfx(innerB)})
	if err != nil {
		t.Fatal(err)
	}
	ping := func(ns *netns.NS, to netip.Addr) {
		t.Helper()
		if out, err := ns.Exec("ping", "-c", "3", "-i", "0.2", "-W", "5", to.String()); err != nil {
			t.Fatalf("ping %s: %v\n%s", to, err, out)
		}
	}
	ping(nsB, innerA) // the peer's handshake, to the virtual address
	ping(nsA, innerB) // traffic our engine starts
	if got := wg.PeerEndpoint(ks.PublicKey()); got != atVIP {
		t.Fatalf("the peer's endpoint for us is %v after our answers, want %v (the address it sent to)", got, atVIP)
	}

	// The peer now sends to the host's own address (the same source):
	// the answers must leave from that address, not the one before.
	atOwn := netip.AddrPortFrom(netip.MustParseAddr("10.212.0.1"), eng.Port())
	wg.Set("peer", ks.PublicKey().String(), "endpoint", atOwn.String())
	ping(nsB, innerA)
	ping(nsA, innerB)
	if got := wg.PeerEndpoint(ks.PublicKey()); got != atOwn {
		t.Fatalf("the peer's endpoint for us is %v after it sent to %v: our answers left from the address before", got, atOwn)
	}
}
