// SPDX-License-Identifier: Apache-2.0

package gateway

import (
	"encoding/binary"
	"net"
	"net/netip"
	"testing"

	"github.com/wirefleet/wirefleet/fleet"
)

// testVXLAN is an endpoint over a router with no sessions, sending on a
// loopback socket: enough to parse and answer, nothing to forward to.
func testVXLAN(t testing.TB) (*vxlanEndpoint, *gatePeer) {
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	pool := netip.MustParsePrefix("10.128.0.0/9")
	g := &Gateway{pool: pool}
	g.policies.groups = map[string]*groupPolicy{}
	g.router = newRouter(&g.policies, &g.lans, nil, netip.MustParsePrefix("100.127.0.0/16"), pool)
	v := &vxlanEndpoint{g: g, conn: conn, inner: pool.Addr().Next()}
	peer := &gatePeer{GatePeer: fleet.GatePeer{ID: "gp_1", OuterAddress: netip.MustParseAddr("127.0.0.2"), InnerAddress: netip.MustParseAddr("10.128.0.9"), VNI: 10}}
	v.table.Store(&gateTable{byOuter: map[gateKey]*gatePeer{{peer.OuterAddress, 10}: peer}, byInner: map[netip.Addr]*gatePeer{peer.InnerAddress: peer}})
	return v, peer
}

func vxlanFrame(vni uint32, etherType uint16, payload []byte) []byte {
	b := make([]byte, vxlanHdr+etherHdr+len(payload))
	b[0] = 0x08
	binary.BigEndian.PutUint32(b[4:], vni<<8)
	copy(b[8:14], broadcastMAC[:])
	copy(b[14:20], []byte{0x02, 0, 0, 0, 0, 0x09})
	binary.BigEndian.PutUint16(b[20:22], etherType)
	copy(b[22:], payload)
	return b
}

// Frames from an unregistered (outer, VNI), not VXLAN, or with a forged
// inner source are dropped and counted by reason; the peer's MAC is
// learned from what it sends.
func TestVXLANRefusals(t *testing.T) {
	v, peer := testVXLAN(t)
	from := peer.OuterAddress
	v.handle(vxlanFrame(11, etherIPv4, make([]byte, 20)), from)
	v.handle(vxlanFrame(10, etherIPv4, make([]byte, 20)), netip.MustParseAddr("127.0.0.3"))
	if n := v.drops.get(dropVXLANUnknown); n != 2 {
		t.Errorf("unknown peer drops %d, want 2", n)
	}
	v.handle([]byte{0, 0, 0, 0, 0, 0, 10, 0}, from) // no I flag, short
	v.handle(vxlanFrame(10, 0x86dd, make([]byte, 40)), from)
	if n := v.drops.get(dropVXLANMalformed); n != 2 {
		t.Errorf("malformed drops %d, want 2", n)
	}
	forged := make([]byte, 20)
	forged[0], forged[3], forged[8], forged[9] = 0x45, 20, 64, 1
	copy(forged[12:], []byte{10, 128, 0, 77}) // not the peer's inner address
	copy(forged[16:], []byte{10, 128, 0, 3})
	v.handle(vxlanFrame(10, etherIPv4, forged), from)
	if n := v.drops.get(dropVXLANSource); n != 1 {
		t.Errorf("forged source drops %d, want 1", n)
	}
	if m := peer.mac.Load(); m == nil || m[5] != 0x09 {
		t.Errorf("peer MAC not learned: %v", m)
	}
}

// Whatever arrives on the VXLAN port, the endpoint does not panic.
func FuzzVXLANHandle(f *testing.F) {
	arp := make([]byte, arpLen)
	binary.BigEndian.PutUint16(arp[0:], 1)
	binary.BigEndian.PutUint16(arp[2:], etherIPv4)
	arp[4], arp[5], arp[7] = 6, 4, 1
	copy(arp[14:18], []byte{10, 128, 0, 9})
	copy(arp[24:28], []byte{10, 128, 0, 3})
	f.Add(vxlanFrame(10, etherARP, arp))
	ping := make([]byte, 28)
	ping[0], ping[3], ping[8], ping[9], ping[20] = 0x45, 28, 64, 1, 8
	copy(ping[12:], []byte{10, 128, 0, 9})
	copy(ping[16:], []byte{10, 64, 0, 10})
	f.Add(vxlanFrame(10, etherIPv4, ping))
	f.Add([]byte{8, 0, 0, 0, 0, 0, 10, 0})
	v, peer := testVXLAN(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		v.handle(b, peer.OuterAddress)
	})
}

// A packet larger than an Ethernet frame's payload, on its way to a Gate
// peer, is framed whole (it used to overrun a pooled buffer and panic).
func TestVXLANLargePacket(t *testing.T) {
	v, peer := testVXLAN(t)
	big := make([]byte, 9000)
	big[0] = 0x45
	v.toPeer(peer, big)
	if peer.txPackets.Load() != 1 {
		t.Fatal("not sent")
	}
}

// SIM names for LAN host DNS: a shared name resolves to nothing, a name
// that is no DNS label is ignored, a rename moves it.
func TestLANNames(t *testing.T) {
	var n lanNames
	n.set("sim_a", "Pump-Station")
	if id, ok := n.resolve("pump-station"); !ok || id != "sim_a" {
		t.Fatalf("resolve: %q %v", id, ok)
	}
	n.set("sim_b", "pump-station")
	if _, ok := n.resolve("pump-station"); ok {
		t.Error("a name two SIMs share resolved")
	}
	n.set("sim_b", "well 7") // not a DNS label
	if id, ok := n.resolve("pump-station"); !ok || id != "sim_a" {
		t.Errorf("after the other SIM's rename: %q %v", id, ok)
	}
	if _, ok := n.resolve("well 7"); ok {
		t.Error("a name that is no DNS label resolved")
	}
	n.set("sim_a", "")
	if _, ok := n.resolve("pump-station"); ok {
		t.Error("a forgotten SIM's name resolved")
	}
}
