// SPDX-License-Identifier: Apache-2.0

package gateway

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/wirefleet/wirefleet/controlplane"
	"github.com/wirefleet/wirefleet/engine"
	"github.com/wirefleet/wirefleet/fleet"
	"github.com/wirefleet/wirefleet/internal/memtun"
	"github.com/wirefleet/wirefleet/internal/packet"
	"github.com/wirefleet/wirefleet/keystore"
	"github.com/wirefleet/wirefleet/wgkey"
)

// TestMeshDeviceToDevice: two nodes on one PostgreSQL, joined by the
// inter-node mesh; device A's session is on gw1, device B's on gw2, both
// of one group that allows device-to-device. A's packets to B cross the
// mesh (the policy decided on gw1) and reach B; B's to A cross it back;
// a LAN behind B (mapped) is reached from A and its host answers back. A
// device of a group without device-to-device gets nothing across. A mesh
// peer that answers nothing degrades the node. A handshake on the mesh
// from a key no node registered is refused and counted; a registered
// node's key cannot pose as the platform nor as another node's device.
func TestMeshDeviceToDevice(t *testing.T) {
	meshKeys := [2]*keystore.Memory{}
	for i := range meshKeys {
		meshKeys[i], _ = keystore.GenerateMemory()
	}
	tg := newTwoGateways(t, func(i int, c *Config) { c.Mesh = &MeshConfig{KeyStore: meshKeys[i]} })
	ctx := context.Background()
	now := time.Now().UTC()
	for _, gw := range tg.gws {
		if err := tg.svc.Heartbeat(ctx, fleet.Node{Name: gw.ID(), Version: "test", Started: now, Seen: now, MeshKey: gw.MeshKey(), MeshEndpoint: fmt.Sprintf("127.0.0.1:%d", gw.MeshPort())}); err != nil {
			t.Fatal(err)
		}
	}
	for _, gw := range tg.gws {
		gw.mesh.syncPeers()
	}
	grp, err := tg.svc.CreateGroup(ctx, controlplane.System, "plant", fleet.GroupSettings{DeviceToDevice: fleet.D2DPolicy{Mode: fleet.D2DGroup}})
	if err != nil {
		t.Fatal(err)
	}
	closed, err := tg.svc.CreateGroup(ctx, controlplane.System, "closed", fleet.GroupSettings{})
	if err != nil {
		t.Fatal(err)
	}
	type device struct {
		sim fleet.SIM
		tun *memtun.Chan
		got chan []byte
	}
	o6, err := tg.svc.Overlay6(ctx)
	if err != nil || !o6.Enabled() {
		t.Fatalf("the fleet's IPv6 plan: %v %v", o6, err)
	}
	newDevice := func(group string, gw int) *device {
		key, _ := wgkey.NewPrivate()
		sim, _, err := tg.svc.CreateSIM(ctx, controlplane.System, controlplane.SIMSpec{PublicKey: key.Public(), GroupID: group})
		if err != nil {
			t.Fatal(err)
		}
		d := &device{sim: sim, got: make(chan []byte, 64)}
		d.tun, _ = memDevice(t, key, tg.gwKey, tg.gws[gw].Port(), fmt.Sprintf("allowed_ip=10.128.0.0/9\nallowed_ip=10.64.0.0/10\nallowed_ip=%s\n", o6.View()))
		go func() {
			for p := range d.tun.Out() {
				select {
				case d.got <- p:
				default:
				}
			}
		}()
		waitForWithin(t, 20*time.Second, "the device online", func() bool {
			d.tun.Send(echoRequest(sim.Address, MetadataAddr))
			return tg.gws[gw].Connection(sim.ID).Online
		})
		waitForWithin(t, 20*time.Second, "its presence recorded", func() bool {
			ps, _ := tg.svc.View().Presences(ctx, sim.ID)
			return len(ps) == 1
		})
		for len(d.got) > 0 {
			<-d.got
		}
		return d
	}
	a, b := newDevice(grp.ID, 0), newDevice(grp.ID, 1)
	// receives says whether to gets a packet from from within d, sending
	// again while it waits (the first packets start the location lookup).
	receives := func(from, to *device, d time.Duration) bool {
		for end := time.Now().Add(d); time.Now().Before(end); {
			from.tun.Send(echoRequest(from.sim.Address, to.sim.Address))
			select {
			case p := <-to.got:
				if netip.AddrFrom4([4]byte(p[12:16])) == from.sim.Address {
					return true
				}
			case <-time.After(100 * time.Millisecond):
			}
		}
		return false
	}
	// The first packet of each way arrives: it waits while gw1 locates B
	// and while gw2 checks where A's session is, rather than being
	// dropped (a ping's first echo, a TCP SYN one second late).
	first := func(from, to *device) bool {
		from.tun.Send(echoRequest(from.sim.Address, to.sim.Address))
		for end := time.After(10 * time.Second); ; {
			select {
			case p := <-to.got:
				if netip.AddrFrom4([4]byte(p[12:16])) == from.sim.Address {
					return true
				}
			case <-end:
				return false
			}
		}
	}
	if !first(a, b) {
		t.Fatalf("A on gw1 → B on gw2: the first packet lost; gw1 mesh %d forwarded, gw2 %d delivered, not here %d, source unknown %d", tg.gws[0].mesh.forwarded.Load(), tg.gws[1].mesh.delivered.Load(), tg.gws[1].mesh.drops[0].Load(), tg.gws[1].mesh.drops[4].Load())
	}
	if !first(b, a) {
		t.Fatal("B on gw2 → A on gw1: the first packet lost")
	}
	if !receives(a, b, 5*time.Second) || !receives(b, a, 5*time.Second) {
		t.Fatal("A and B: later packets lost")
	}
	if tg.gws[0].mesh.forwarded.Load() == 0 || tg.gws[1].mesh.delivered.Load() == 0 {
		t.Fatal("the packets did not cross the mesh")
	}
	// IPv6 between the two SIMs' twins crosses too, both ways, the first
	// packet included.
	a6, b6 := o6.Addr(a.sim.Address), o6.Addr(b.sim.Address)
	first6 := func(from, to *device, src, dst netip.Addr) bool {
		from.tun.Send(echoRequest6(src, dst))
		for end := time.After(10 * time.Second); ; {
			select {
			case p := <-to.got:
				if p[0]>>4 == 6 && netip.AddrFrom16([16]byte(p[8:24])) == src && netip.AddrFrom16([16]byte(p[24:40])) == dst {
					return true
				}
			case <-end:
				return false
			}
		}
	}
	f0, d0 := tg.gws[0].mesh.forwarded.Load(), tg.gws[1].mesh.delivered.Load()
	if !first6(a, b, a6, b6) || !first6(b, a, b6, a6) {
		var d []string
		for i, gw := range tg.gws {
			for _, r := range dropReasons {
				if n := gw.router.drops.get(r); n > 0 {
					d = append(d, fmt.Sprintf("gw%d %s %d", i+1, r, n))
				}
			}
			for j, r := range meshDropReasons {
				if n := gw.mesh.drops[j].Load(); n > 0 {
					d = append(d, fmt.Sprintf("gw%d mesh %s %d", i+1, r, n))
				}
			}
		}
		t.Fatalf("IPv6 between %s on gw1 and %s on gw2 across the mesh: lost (gw1 forwarded %d→%d, gw2 delivered %d→%d; drops: %v; mesh engines %+v / %+v)", a6, b6,
			f0, tg.gws[0].mesh.forwarded.Load(), d0, tg.gws[1].mesh.delivered.Load(), d, tg.gws[0].mesh.eng.Counters(), tg.gws[1].mesh.eng.Counters())
	}

	// A spraying new destinations (addresses of no SIM) is held to its
	// share of lookups; C's first packet to D, a SIM newly on gw2, still
	// waits for its lookup and arrives.
	c, d := newDevice(grp.ID, 0), newDevice(grp.ID, 1)
	base := d.sim.Address.As4()
	for i := range 300 {
		base[2], base[3] = 200, byte(i)
		a.tun.Send(echoRequest(a.sim.Address, netip.AddrFrom4(base)))
	}
	share := slices.Index(meshDropReasons[:], meshDropLookupShare)
	waitForWithin(t, 10*time.Second, "A's spray held to its share of lookups", func() bool { return tg.gws[0].mesh.drops[share].Load() > 0 })
	if !first(c, d) {
		t.Fatal("C's first packet to D lost after A's spray")
	}
	// A packet that waited for a location while its destination came
	// online here is delivered here: A's to C, both on gw1.
	pa := tg.gws[0].router.peerFor(a.sim.Address)
	pkt := echoRequest(a.sim.Address, c.sim.Address)
	var parsed packet.Parsed
	if pa == nil || parsed.Decode(pkt) != nil {
		t.Fatalf("A's peer on gw1 %v, or its packet does not parse", pa)
	}
	for len(c.got) > 0 {
		<-c.got
	}
	tg.gws[0].router.sendHeld([]meshHeldOut{{pkt: pkt, ip: parsed, dst: c.sim.Address, peer: pa, st: stateOf(pa)}})
	select {
	case p := <-c.got:
		if netip.AddrFrom4([4]byte(p[12:16])) != a.sim.Address {
			t.Fatalf("C got a packet from %v, want A's", netip.AddrFrom4([4]byte(p[12:16])))
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a held packet for a SIM now here was not delivered here")
	}

	// A LAN behind B (mapped: the fleet reaches it at another prefix),
	// reached from A across the mesh, and its host's answer back.
	rt, err := tg.svc.AddSIMRoute(ctx, controlplane.System, b.sim.ID, controlplane.RouteSpec{Prefix: netip.MustParsePrefix("192.168.50.0/24"), Map: true})
	if err != nil {
		t.Fatal(err)
	}
	lanHost := netip.MustParseAddr("192.168.50.7")
	m4 := rt.Mapped.Addr().As4()
	m4[3] = 7
	mappedHost := netip.AddrFrom4(m4) // .7 of the mapped prefix
	reached := false
	for end := time.Now().Add(5 * time.Second); !reached && time.Now().Before(end); {
		a.tun.Send(echoRequest(a.sim.Address, mappedHost))
		select {
		case p := <-b.got:
			reached = netip.AddrFrom4([4]byte(p[16:20])) == lanHost && netip.AddrFrom4([4]byte(p[12:16])) == a.sim.Address
		case <-time.After(100 * time.Millisecond):
		}
	}
	if !reached {
		t.Fatalf("A on gw1 → the LAN behind B on gw2 (%v, mapped %v): nothing arrived as %v", rt.Prefix, rt.Mapped, lanHost)
	}
	answered := false
	for end := time.Now().Add(5 * time.Second); !answered && time.Now().Before(end); {
		b.tun.Send(echoRequest(lanHost, a.sim.Address)) // the LAN host answers, through B
		select {
		case p := <-a.got:
			answered = netip.AddrFrom4([4]byte(p[12:16])) == mappedHost
		case <-time.After(100 * time.Millisecond):
		}
	}
	if !answered {
		t.Fatalf("the LAN host's answer did not reach A from %v", mappedHost)
	}

	// Another group, without device-to-device: refused at the ingress node.
	c = newDevice(closed.ID, 1)
	before := tg.gws[1].mesh.forwarded.Load()
	if receives(c, a, 2*time.Second) {
		t.Fatal("a device of a group without device-to-device reached another node's device")
	}
	if got := tg.gws[1].mesh.forwarded.Load(); got != before {
		t.Fatalf("gw2 forwarded %d packets of a group without device-to-device", got-before)
	}

	if d := tg.gws[0].Degraded(); len(d) != 0 {
		t.Fatalf("gw1 degraded with its mesh working: %q", d)
	}
	// Idle, each node still hears the other (heartbeats both ways): how a
	// node tells a live one from a dead one before taking its devices.
	time.Sleep(2 * meshAliveFor)
	for i, gw := range tg.gws {
		if held, up := gw.MeshPeers(); held != 1 || up != 1 {
			t.Fatalf("gw%d after %s idle: %d mesh peers held, %d heard from; want 1 and 1", i+1, 2*meshAliveFor, held, up)
		}
	}
	// A node registered as up whose mesh endpoint answers nothing: gw1
	// says it cannot reach it (its health and its registry row).
	meshPeerGrace = 300 * time.Millisecond
	defer func() { meshPeerGrace = time.Minute }()
	ghost, _ := keystore.GenerateMemory()
	now = time.Now().UTC()
	if err := tg.svc.Heartbeat(ctx, fleet.Node{Name: "gw3", Version: "test", Started: now, Seen: now, MeshKey: ghost.PublicKey(), MeshEndpoint: "127.0.0.1:9"}); err != nil {
		t.Fatal(err)
	}
	tg.gws[0].mesh.syncPeers()
	waitForWithin(t, 20*time.Second, "gw1 degraded by an unreachable mesh peer", func() bool {
		d := tg.gws[0].Degraded()
		return len(d) == 1 && d[0] == "mesh peer gw3 unreachable"
	})

	// A key no node registered knocks on gw2's mesh port: refused.
	stranger, _ := keystore.GenerateMemory()
	eng, err := engine.New(engine.Config{KeyStore: stranger, Handler: engine.HandlerFunc(func([]engine.InboundPacket) {}), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if err := eng.Up(); err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	p, err := eng.AddPeer(engine.PeerConfig{PublicKey: tg.gws[1].MeshKey(), Endpoint: netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), tg.gws[1].MeshPort()), AllowedIPs: []netip.Prefix{netip.MustParsePrefix("10.128.0.0/9")}})
	if err != nil {
		t.Fatal(err)
	}
	eng.Send(p, [][]byte{echoRequest(a.sim.Address, b.sim.Address)})
	waitForWithin(t, 20*time.Second, "the stranger's handshake refused", func() bool {
		return tg.gws[1].mesh.eng.Counters().HandshakesRejected["unknown-key"] > 0
	})

	// Registered (a node with this key is up), it is taken at its next
	// handshake; it still cannot pose as the platform (DNS, metadata).
	now = time.Now().UTC()
	if err := tg.svc.Heartbeat(ctx, fleet.Node{Name: "gw4", Version: "test", Started: now, Seen: now, MeshKey: stranger.PublicKey(), MeshEndpoint: fmt.Sprintf("127.0.0.1:%d", eng.Port())}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(meshMissTTL) // past the registry read the refusal used
	eng.Initiate(p)
	waitForWithin(t, 20*time.Second, "the new node taken at its handshake", func() bool { return p.Stats().HasSession })
	bad := tg.gws[1].mesh.drops[3].Load()
	eng.Send(p, [][]byte{echoRequest(MetadataAddr, b.sim.Address)})
	waitForWithin(t, 20*time.Second, "a platform source from a node refused", func() bool { return tg.gws[1].mesh.drops[3].Load() > bad })
	if meshDropReasons[3] != meshDropSource {
		t.Fatal("the drop index moved")
	}
	// Nor speak for a device whose session is on another node (A's, on
	// gw1): refused at gw2, which knows where A's session is.
	elsewhere := tg.gws[1].mesh.drops[5].Load()
	deliveredBefore := tg.gws[1].mesh.delivered.Load()
	waitForWithin(t, 20*time.Second, "a packet posing as A from another node refused", func() bool {
		eng.Send(p, [][]byte{echoRequest(a.sim.Address, b.sim.Address)})
		time.Sleep(50 * time.Millisecond)
		return tg.gws[1].mesh.drops[5].Load() > elsewhere
	})
	if meshDropReasons[5] != meshDropSourceElsewhere {
		t.Fatal("the drop index moved")
	}
	if got := tg.gws[1].mesh.delivered.Load(); got != deliveredBefore {
		t.Fatalf("gw2 delivered %d packets posing as A from gw4", got-deliveredBefore)
	}
}

// echoRequest6 is an ICMPv6 echo request from src to dst.
func echoRequest6(src, dst netip.Addr) []byte {
	b := make([]byte, 40+8)
	b[0] = 0x60
	binary.BigEndian.PutUint16(b[4:], 8)
	b[6], b[7] = packet.ICMPv6, 64
	copy(b[8:24], src.AsSlice())
	copy(b[24:40], dst.AsSlice())
	b[40] = 128 // echo request
	binary.BigEndian.PutUint16(b[42:], packet.TransportChecksum(packet.ICMPv6, src, dst, b[40:]))
	return b
}
