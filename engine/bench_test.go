// SPDX-License-Identifier: Apache-2.0

package engine

import (
	"context"
	"net/netip"
	"testing"

	"github.com/wirefleet/wirefleet/engine/noise"
	"github.com/wirefleet/wirefleet/engine/tai64n"
	"github.com/wirefleet/wirefleet/engine/wire"
	"github.com/wirefleet/wirefleet/keystore"
	"github.com/wirefleet/wirefleet/wgkey"
	"golang.zx2c4.com/wireguard/conn"
)

// BenchmarkX25519 is the unit of handshake cost: one scalar multiplication.
func BenchmarkX25519(b *testing.B) {
	ks, _ := keystore.GenerateMemory()
	peer, _ := wgkey.NewPrivate()
	req := keystore.DHRequest{Peer: peer.Public()}
	for b.Loop() {
		ks.DH(context.Background(), req)
	}
}

// BenchmarkResponderInitiation measures the responder's whole work per
// initiation from a known (held) peer, without UDP: MAC1, two DH in the
// Noise code, the response's three, state updates. About four X25519.
func BenchmarkResponderInitiation(b *testing.B) {
	gw := newNode(b, nil, func(c *Config) { c.Bind = conn.NewStdNetBind() })
	devKS, _ := keystore.GenerateMemory()
	p, err := gw.e.AddPeer(PeerConfig{PublicKey: devKS.PublicKey(), AllowedIPs: pfx(addrA)})
	if err != nil {
		b.Fatal(err)
	}
	ss, _ := devKS.DH(context.Background(), keystore.DHRequest{Purpose: keystore.StaticStatic, Peer: gw.e.PublicKey()})
	msgs := make([][]byte, 256)
	for i := range msgs {
		_, m, _ := noise.CreateInitiation(noise.InitiationParams{Local: devKS.PublicKey(), Peer: gw.e.PublicKey(), StaticStatic: &ss, Timestamp: tai64n.From(gw.e.now())})
		msgs[i] = make([]byte, wire.InitiationSize)
		m.Marshal(msgs[i])
	}
	ep := &conn.StdNetEndpoint{AddrPort: netip.MustParseAddrPort("127.0.0.1:9")}
	i := 0
	for b.Loop() {
		p.mu.Lock()
		p.lastTS, p.lastInitAt = tai64n.Timestamp{}, 0 // let the same messages in again
		p.mu.Unlock()
		gw.e.handleInitiation(msgs[i%len(msgs)], ep)
		i++
	}
}
