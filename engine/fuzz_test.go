// SPDX-License-Identifier: Apache-2.0

package engine

import (
	"net/netip"
	"testing"

	"github.com/wirefleet/wirefleet/engine/cookie"
	"github.com/wirefleet/wirefleet/engine/noise"
	"github.com/wirefleet/wirefleet/engine/tai64n"
	"github.com/wirefleet/wirefleet/engine/wire"
	"github.com/wirefleet/wirefleet/keystore"
	"golang.zx2c4.com/wireguard/conn"
)

// FuzzInboundDatagram feeds arbitrary datagrams through the engine's real
// inbound code (classification, handshake handling, decryption, delivery)
// with an established session in place. Handshake-typed inputs get a valid
// MAC1 so the fuzzer reaches the Noise code behind the MAC check. Nothing
// may panic; no forged input may create a peer or deliver a packet.
func FuzzInboundDatagram(f *testing.F) {
	// b resolves unknown keys through a resolver that knows one more
	// device, so creating a peer from forged bytes is possible in
	// principle — and must never happen.
	other, _ := keystore.GenerateMemory()
	a, b, pb, _ := pair(f, nil, func(c *Config) {
		c.Resolver = mapResolver{other.PublicKey(): {AllowedIPs: pfx(addrA)}}
		c.HandshakeWorkers = 1
	})
	a.e.Send(pb, [][]byte{ping(addrB, addrA)})
	recv(f, b.in, "setup packet")

	// Seeds: a real transport packet, a real initiation, and the others.
	kp := pb.current.Load()
	buf := getBuf()
	pkt := ping(addrB, addrA)
	copy((*buf)[16:], pkt)
	el := []outElem{{buf: buf, n: len(pkt), kp: kp, counter: 1 << 20}}
	a.e.encrypt(el)
	f.Add(append([]byte(nil), (*buf)[:el[0].n]...))
	_, m, err := noise.CreateInitiation(noise.InitiationParams{Local: a.e.PublicKey(), Peer: b.e.PublicKey(), StaticStatic: &pb.ss, SenderIndex: 7, Timestamp: tai64n.From(a.e.now())})
	if err != nil {
		f.Fatal(err)
	}
	init := make([]byte, wire.InitiationSize)
	m.Marshal(init)
	f.Add(init)
	f.Add(append([]byte{2, 0, 0, 0}, make([]byte, wire.ResponseSize-4)...))
	f.Add(append([]byte{3, 0, 0, 0}, make([]byte, wire.CookieReplySize-4)...))

	var mac cookie.Generator
	mac.Init(b.e.PublicKey())
	ep := &conn.StdNetEndpoint{AddrPort: netip.MustParseAddrPort("127.0.0.1:1")}
	peers := b.e.PeerCount()
	f.Fuzz(func(t *testing.T, data []byte) {
		data = append([]byte(nil), data...)
		// Handshake messages run synchronously here (the same handlers the
		// workers call), so the assertions below see their effect.
		switch typ, err := wire.Type(data); {
		case err != nil:
		case typ == wire.TypeInitiation:
			mac.AddMACs(data, b.e.now())
			b.e.handleInitiation(data, ep)
		case typ == wire.TypeResponse:
			mac.AddMACs(data, b.e.now())
			b.e.handleResponse(data, ep)
		case typ == wire.TypeCookieReply:
			b.e.handleCookieReply(data)
		}
		if b.e.Peer(other.PublicKey()) != nil {
			t.Fatal("forged bytes created a peer for a key only the resolver knows")
		}
		if typ, err := wire.Type(data); err != nil || typ != wire.TypeTransport {
			return
		}
		var cache indexCache
		el, ok := b.e.classify(data, ep, &cache)
		if !ok {
			return
		}
		eb := getBuf()
		copy(*eb, data)
		el.buf = eb
		batch := &inBatch{elems: []inElem{el}}
		b.e.decrypt(batch.elems)
		if batch.elems[0].n >= 0 && batch.elems[0].counter != 1<<20 {
			t.Fatalf("forged transport message decrypted")
		}
		b.e.deliver(batch, nil, nil)
		putBuf(eb)
		if b.e.PeerCount() != peers {
			t.Fatal("a forged datagram created a peer")
		}
	})
}
