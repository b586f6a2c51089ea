// SPDX-License-Identifier: Apache-2.0

package gateway

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/wirefleet/wirefleet/controlplane"
	"github.com/wirefleet/wirefleet/fleet"
	"github.com/wirefleet/wirefleet/wgkey"
)

// TestTakeoverFromAnotherNode: a standard device whose packets move from
// one node to another mid-session keeps sending transport packets of the
// old session. While the node holding it is alive, the other declines
// (the packets cannot be authenticated: they may be forged to move a
// live device). Once it is gone, the node receiving them finds the SIM in
// the presence records and initiates the handshake itself: the device is
// back well before the ~15 s after which it would have initiated. Packets
// from an endpoint no node had a session at start nothing.
func TestTakeoverFromAnotherNode(t *testing.T) {
	tg := newTwoGateways(t)
	ctx := context.Background()
	key, _ := wgkey.NewPrivate()
	sim, _, err := tg.svc.CreateSIM(ctx, controlplane.System, controlplane.SIMSpec{PublicKey: key.Public()})
	if err != nil {
		t.Fatal(err)
	}
	tunDev, dev := memDevice(t, key, tg.gwKey, tg.gws[0].Port(), "")
	peer := func(gw int) string {
		return fmt.Sprintf("public_key=%x\nendpoint=127.0.0.1:%d\nallowed_ip=100.127.0.0/16\n", tg.gwKey[:], tg.gws[gw].Port())
	}
	replies := make(chan struct{}, 1024)
	go func() {
		for range tunDev.Out() {
			select {
			case replies <- struct{}{}:
			default:
			}
		}
	}()
	send := func() { tunDev.Send(echoRequest(sim.Address, MetadataAddr)) }
	waitForWithin(t, 20*time.Second, "the device on gw1", func() bool { send(); return tg.gws[0].Connection(sim.ID).Online })
	waitForWithin(t, 20*time.Second, "gw1's presence recorded", func() bool {
		ps, _ := tg.svc.View().Presences(ctx, sim.ID)
		return len(ps) == 1 && ps[0].Gateway == "gw1"
	})
	if got := tg.gws[1].takeover.results[0].Load(); got != 0 {
		t.Fatalf("gw2 initiated %d handshakes before the device came", got)
	}

	// While gw1 is up (the registry says so; there is no mesh here), a
	// packet of its session reaching gw2 moves nothing: it may be forged.
	now := time.Now().UTC()
	if err := tg.svc.Heartbeat(ctx, fleet.Node{Name: "gw1", Version: "test", Started: now, Seen: now}); err != nil {
		t.Fatal(err)
	}
	if err := dev.IpcSet(peer(1)); err != nil {
		t.Fatal(err)
	}
	waitForWithin(t, 20*time.Second, "gw2 declining while gw1 lives", func() bool { send(); return tg.gws[1].takeoverCounts()["holder-alive"] > 0 })
	if c := tg.gws[1].takeoverCounts(); c["initiated"] != 0 || tg.gws[1].Connection(sim.ID).Online {
		t.Fatalf("gw2 took over from a live gw1: %v", c)
	}
	// gw1 is gone (its registry row says so): the device's next packets
	// reaching gw2 bring the session there.
	if err := tg.svc.Heartbeat(ctx, fleet.Node{Name: "gw1", Version: "test", Started: now, Seen: now.Add(-time.Hour), Degraded: "stopped"}); err != nil {
		t.Fatal(err)
	}
	moved := time.Now()
	for len(replies) > 0 {
		<-replies
	}
	deadline := moved.Add(10 * time.Second) // the device alone: ~15 s at least
	for {
		send()
		select {
		case <-replies:
		case <-time.After(100 * time.Millisecond):
			if time.Now().After(deadline) {
				t.Fatalf("no answer through gw2 %s after the move; takeovers %v", time.Since(moved), tg.gws[1].takeoverCounts())
			}
			continue
		}
		if tg.gws[1].Connection(sim.ID).Online {
			break
		}
	}
	t.Logf("answered through gw2 %s after the move", time.Since(moved).Round(time.Millisecond))
	if c := tg.gws[1].takeoverCounts(); c["initiated"] != 1 {
		t.Fatalf("gw2's takeovers %v, want one initiated", c)
	}
	if p := tg.gws[1].eng.Peer(key.Public()); p == nil || p.Endpoint() != tg.gws[0].eng.Peer(key.Public()).Endpoint() {
		t.Fatal("gw2 does not hold the device at the endpoint gw1 had it at")
	}

	// A transport packet from where no node had a session: looked up,
	// nothing sent; the same again at once is not even looked up.
	c, err := net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), tg.gws[1].Port())))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	stray := make([]byte, 32)
	binary.LittleEndian.PutUint32(stray, 4) // transport, to a receiver index no one holds
	binary.LittleEndian.PutUint32(stray[4:], 0xdeadbeef)
	for range 3 {
		c.Write(stray)
	}
	waitForWithin(t, 20*time.Second, "the stray packet looked up", func() bool { return tg.gws[1].takeoverCounts()["no-presence"] == 1 })
	time.Sleep(200 * time.Millisecond)
	if got := tg.gws[1].takeoverCounts(); got["no-presence"] != 1 || got["initiated"] != 1 {
		t.Fatalf("after stray packets: %v, want one lookup and no initiation", got)
	}
}

// takeoverCounts is the takeover outcomes by name.
func (g *Gateway) takeoverCounts() map[string]uint64 {
	out := map[string]uint64{}
	for i, r := range takeoverResults {
		out[r] = g.takeover.results[i].Load()
	}
	return out
}

// Unauthenticated packets buy takeover lookups at the steady rate only
// (its burst, then dropped and counted); while a mesh node has just gone
// silent, a mass failover's, the surge bucket lets many more through.
func TestTakeoverRateSurgesOnlyAfterANodeWentSilent(t *testing.T) {
	g := &Gateway{}
	tk := newTakeover(g)
	spray := func(from, n int) {
		for i := range n {
			tk.offer(netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 18, byte((from + i) >> 8), byte(from + i)}), 40000), nil)
		}
	}
	dropped := func() uint64 { return tk.results[slices.Index(takeoverResults[:], "dropped")].Load() }
	spray(0, 1000)
	if q := len(tk.queue); q > takeoverBurst+10 || dropped() == 0 {
		t.Fatalf("steady state: %d tries queued of 1,000 endpoints, %d dropped; want about the burst of %d queued", q, dropped(), takeoverBurst)
	}
	steady := len(tk.queue)
	g.mesh = &mesh{}
	g.mesh.lostAt.Store(time.Now().UnixNano())
	spray(1000, 1000)
	if q := len(tk.queue) - steady; q < 900 {
		t.Fatalf("a node just gone silent: %d more tries queued of 1,000 endpoints, want nearly all", q)
	}
}
