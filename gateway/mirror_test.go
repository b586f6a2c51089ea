// SPDX-License-Identifier: Apache-2.0

package gateway

import (
	"bytes"
	"log/slog"
	"net"
	"net/netip"
	"testing"
	"time"

	"golang.org/x/net/ipv4"
	"golang.org/x/time/rate"

	"github.com/wirefleet/wirefleet/fleet"
	"github.com/wirefleet/wirefleet/internal/ipfix"
	"github.com/wirefleet/wirefleet/internal/memtun"
	"github.com/wirefleet/wirefleet/internal/packet"
)

// A peer that cannot keep up costs the data path nothing: copies beyond
// the queue are dropped and counted, never waited for.
func TestMirrorQueueDrops(t *testing.T) {
	m := newMirror(&Gateway{})
	to := []*mirrorTarget{{}}
	pkt := make([]byte, 1420)
	for i := 0; i < mirrorQueue+100; i++ {
		m.copy(to, pkt) // nobody sends: the queue fills
	}
	if got := m.dropped.Load(); got != 100 {
		t.Fatalf("%d copies dropped, want 100", got)
	}
	if len(m.queue) != mirrorQueue {
		t.Fatalf("queue holds %d", len(m.queue))
	}
}

// One device's breakout share: at most breakoutFlowsPerDevice flows and
// breakoutDialingPerDevice connections being set up; another device is
// not affected, and a flow given back makes room.
func TestBreakoutShares(t *testing.T) {
	o6, _ := fleet.ParseOverlay6("", "fd00:1:2::/48")
	b := &breakout{g: &Gateway{o6: o6}, shares: map[netip.Addr]*deviceShare{}}
	a, other := netip.MustParseAddr("10.128.0.5"), netip.MustParseAddr("10.128.0.6")
	for i := 0; i < breakoutDialingPerDevice; i++ {
		if !b.take(a, true) {
			t.Fatalf("dial %d refused", i)
		}
	}
	if b.take(o6.Addr(a), true) {
		t.Fatal("a device dialled past its share through its IPv6 address")
	}
	if !b.take(other, true) {
		t.Fatal("another device was refused")
	}
	for i := breakoutDialingPerDevice; i < breakoutFlowsPerDevice; i++ {
		if !b.take(a, false) {
			t.Fatalf("flow %d refused", i)
		}
	}
	if b.take(a, false) || b.overShare.Load() != 2 {
		t.Fatalf("past the flow share: refused %d", b.overShare.Load())
	}
	b.give(a, true, false)
	if !b.take(a, false) {
		t.Fatal("a flow given back made no room")
	}
}

// Inspection per SIM: a group with perSim keeps one interval per SIM,
// each record naming its SIM; without it, one for the group.
func TestInspectionPerSIM(t *testing.T) {
	in := &inspector{g: &Gateway{}, groups: map[statsKey]*groupStats{}, exporters: map[statsKey]*ipfix.Exporter{}}
	perSIM := &groupPolicy{id: "grp_a", settings: fleet.GroupSettings{Inspection: fleet.Inspection{Enabled: true, PerSIM: true}}}
	whole := &groupPolicy{id: "grp_b", settings: fleet.GroupSettings{Inspection: fleet.Inspection{Enabled: true}}}
	pkt := memtun.UDPPacket(netip.MustParseAddrPort("10.128.0.5:5000"), netip.MustParseAddrPort("100.127.0.53:53"), 60)
	var ip packet.Parsed
	if err := ip.Decode(pkt); err != nil {
		t.Fatal(err)
	}
	for _, sim := range []string{"sim_1", "sim_2", "sim_2"} {
		in.account(perSIM.inspectKey(sim), pkt, &ip)
		in.account(whole.inspectKey(sim), pkt, &ip)
	}
	now := time.Now()
	for k, want := range map[statsKey]int64{{"grp_a", "sim_1"}: 1, {"grp_a", "sim_2"}: 2, {"grp_b", ""}: 3} {
		r, flows, ok := in.take(k, now)
		if !ok || r.SIMID != k.sim || r.GroupID != k.group || r.Traffic.Statistics.Packets != want || len(flows) != 1 || r.Detected.Protos[0].Name != "DNS" {
			t.Errorf("%v: %+v %v, want %d packets", k, r, ok, want)
		}
	}
	if len(in.groups) != 3 {
		t.Fatalf("%d intervals held", len(in.groups))
	}
}

// A peer's rate cap: copies beyond it are dropped and counted, not sent.
func TestMirrorRateCap(t *testing.T) {
	m := newMirror(&Gateway{outside: Outside{}.withDefaults()})
	// GRE in UDP to loopback; nothing is flushed, so nothing is sent.
	tg := &mirrorTarget{addr: netip.MustParseAddr("127.0.0.1"), udp: true, port: 9, limiter: rate.NewLimiter(0, 3)} // a burst of 3, no refill
	for i := 0; i < 5; i++ {
		m.queueFor(tg, []byte{0, 0, 8, 0})
	}
	if m.dropped.Load() != 2 || len(m.conns["udp"].pending) != 3 {
		t.Fatalf("%d copies dropped past the cap, %d queued; want 2 and 3", m.dropped.Load(), len(m.conns["udp"].pending))
	}
	m.conns["udp"].pc.Close()
}

// Runs of equal-sized copies to one peer go out as UDP GSO super-datagrams
// and arrive as the datagrams they were, in order: sizes that change, a
// shorter last one, another peer and runs longer than gsoSegments each
// start a new message.
func TestMirrorGSO(t *testing.T) {
	var rx [2]*net.UDPConn
	for i := range rx {
		c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetReadBuffer(4 << 20)
		rx[i] = c
	}
	pc, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	m := newMirror(&Gateway{log: slog.New(slog.DiscardHandler)})
	c := &outConn{pc: pc, batch: ipv4.NewPacketConn(pc), gso: true}
	var want [2][][]byte
	sizes := []int{}
	for i := 0; i < 70; i++ {
		sizes = append(sizes, 1424) // longer than one message holds
	}
	sizes = append(sizes, 600, 1424, 1424, 900, 900, 300)
	for i, n := range sizes {
		peer := 0
		if i == len(sizes)-2 {
			peer = 1
		}
		b := make([]byte, n)
		b[0], b[1] = byte(i), byte(i>>8)
		want[peer] = append(want[peer], b)
		c.pending = append(c.pending, ipv4.Message{Buffers: [][]byte{b}, Addr: rx[peer].LocalAddr()})
	}
	m.flush(c)
	if !c.gso {
		t.Skip("this kernel refuses UDP GSO: the copies went one by one")
	}
	if got := m.sent.Load(); got != uint64(len(sizes)) {
		t.Fatalf("sent %d, want %d (dropped %d)", got, len(sizes), m.dropped.Load())
	}
	buf := make([]byte, 65536)
	for peer := range rx {
		for k, w := range want[peer] {
			rx[peer].SetReadDeadline(time.Now().Add(2 * time.Second))
			n, err := rx[peer].Read(buf)
			if err != nil {
				t.Fatalf("peer %d datagram %d: %v", peer, k, err)
			}
			if !bytes.Equal(buf[:n], w) {
				t.Fatalf("peer %d datagram %d: %d bytes starting %x, want %d starting %x", peer, k, n, buf[:2], len(w), w[:2])
			}
		}
	}
}
