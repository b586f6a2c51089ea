// SPDX-License-Identifier: Apache-2.0

package gateway

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wirefleet/wirefleet/controlplane"
	"github.com/wirefleet/wirefleet/controlplane/store"
	"github.com/wirefleet/wirefleet/fleet"
	"github.com/wirefleet/wirefleet/wgkey"
)

// A device forging another device's source address reaches nothing: the
// engine's cryptokey routing drops it and counts it.
func TestForgedSource(t *testing.T) {
	f := newFixture(t)
	grp := f.group("g", fleet.GroupSettings{DeviceToDevice: fleet.D2DPolicy{Mode: fleet.D2DGroup}})
	a, b, c := f.newDevice(grp.ID), f.newDevice(grp.ID), f.newDevice(grp.ID)
	for _, d := range []*device{a, b, c} {
		if err := d.pingUntil(MetadataAddr.String(), 10*time.Second); err != nil {
			t.Fatalf("%s (%s): %v\n%s\n%+v", d.sim.ID, d.addr(), err, d.wg.Show(), f.dump())
		}
	}
	before := f.gw.Engine().Counters().Dropped[engineDropSource]
	// A claims B's address and sends from it, to the metadata service and to C.
	a.ns.MustExec("ip", "addr", "add", b.addr()+"/32", "dev", a.wg.Name)
	for _, dst := range []string{MetadataAddr.String(), c.addr()} {
		if out, err := a.ns.Exec("ping", "-c", "3", "-i", "0.2", "-W", "1", "-I", b.addr(), dst); err == nil {
			t.Fatalf("forged ping to %s answered: %s", dst, out)
		}
	}
	if got := f.gw.Engine().Counters().Dropped[engineDropSource] - before; got < 6 {
		t.Fatalf("forged packets dropped by the engine: %d, want ≥ 6", got)
	}
	// A's own address still works.
	if err := a.ping(c.addr(), 1, 5*time.Second); err != nil {
		t.Fatal(err)
	}
}

const engineDropSource = "source-not-allowed"

// stream sends from src to dst over TCP until stopped, recording when dst
// last received bytes.
type stream struct {
	last  atomic.Int64 // unix nanos of the last read
	total atomic.Int64
	stop  chan struct{}
	wg    sync.WaitGroup
}

func startStream(t *testing.T, src, dst *device, port int) *stream {
	s := &stream{stop: make(chan struct{})}
	ln := dst.listen(port)
	conn, err := src.dial(fmt.Sprintf("%s:%d", dst.addr(), port))
	if err != nil {
		t.Fatal(err)
	}
	srv, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	s.wg.Add(2)
	go func() {
		defer s.wg.Done()
		buf := make([]byte, 32<<10)
		for {
			n, err := srv.Read(buf)
			if n > 0 {
				s.total.Add(int64(n))
				s.last.Store(time.Now().UnixNano())
			}
			if err != nil {
				return
			}
		}
	}()
	go func() {
		defer s.wg.Done()
		buf := make([]byte, 1200)
		for {
			select {
			case <-s.stop:
				return
			default:
			}
			conn.SetWriteDeadline(time.Now().Add(200 * time.Millisecond))
			conn.Write(buf)
			time.Sleep(time.Millisecond)
		}
	}()
	t.Cleanup(func() {
		close(s.stop)
		conn.Close()
		srv.Close()
		s.wg.Wait()
	})
	return s
}

// Suspend a SIM during a transfer: its traffic stops within a second and
// its peer is gone; its next handshakes are refused and recorded, once per
// interval; resumed, it reconnects by itself.
func TestSuspendDuringTransfer(t *testing.T) {
	f := newFixture(t)
	grp := f.group("g", fleet.GroupSettings{DeviceToDevice: fleet.D2DPolicy{Mode: fleet.D2DGroup}})
	a, b := f.newDevice(grp.ID), f.newDevice(grp.ID)
	if err := a.pingUntil(b.addr(), 10*time.Second); err != nil {
		t.Fatal(err)
	}
	s := startStream(t, a, b, 7001)
	waitFor(t, "the transfer to flow", func() bool { return s.total.Load() > 1<<20 })
	c := a.connection()
	if !c.Online || !strings.HasPrefix(c.Endpoint, a.link.Addr().String()+":") || c.RxBytes < 1<<20 || c.LastHandshake.IsZero() {
		t.Fatalf("live state of a transferring SIM: %+v", c)
	}

	ctx := context.Background()
	if _, err := f.svc.SetSIMStatus(ctx, f.admin, a.sim.ID, fleet.StatusSuspended); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	waitFor(t, "the peer to be removed", func() bool { return f.gw.Engine().Peer(a.sim.PublicKey) == nil })
	if d := time.Since(t0); d > time.Second {
		t.Fatalf("peer removed %v after the suspension", d)
	}
	if c := a.connection(); c.Online {
		t.Fatalf("suspended SIM still online: %+v", c)
	}
	time.Sleep(1500 * time.Millisecond)
	last := time.Unix(0, s.last.Load())
	if d := last.Sub(t0); d > time.Second {
		t.Fatalf("bytes still arrived %v after the suspension", d)
	}
	t.Logf("last bytes %v after the suspension (%d bytes before)", last.Sub(t0).Round(time.Millisecond), s.total.Load())

	// Resume: the device reconnects by itself (wireguard-go re-handshakes
	// when its data goes unanswered) and the transfer resumes.
	if _, err := f.svc.SetSIMStatus(ctx, f.admin, a.sim.ID, fleet.StatusActive); err != nil {
		t.Fatal(err)
	}
	resumed := s.total.Load()
	deadline := time.Now().Add(40 * time.Second)
	for s.total.Load() == resumed {
		if time.Now().After(deadline) {
			t.Fatal("the transfer did not resume after the SIM was resumed")
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("transfer resumed %v after the SIM was", time.Since(t0).Round(time.Millisecond))
}

// A suspended or terminated SIM cannot complete a handshake; rejections
// are audit events, at most one per key per interval.
func TestDeniedHandshakesRecorded(t *testing.T) {
	f := newFixture(t)
	a := f.newDevice("")
	if err := a.pingUntil(MetadataAddr.String(), 10*time.Second); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := f.svc.SetSIMStatus(ctx, f.admin, a.sim.ID, fleet.StatusSuspended); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the peer to be removed", func() bool { return f.gw.Engine().Peer(a.sim.PublicKey) == nil })
	denied := func() uint64 { return f.gw.Engine().Counters().HandshakesRejected["denied"] }
	before := denied()
	// Two fresh handshakes from the device (a reconfigure drops its session).
	for i := 0; i < 2; i++ {
		a.configure()
		if err := a.ping(MetadataAddr.String(), 2, time.Second); err == nil {
			t.Fatal("a suspended SIM reached the metadata service")
		}
	}
	if denied() < before+2 {
		t.Fatalf("denied handshakes %d → %d, want two more", before, denied())
	}
	var events []fleet.Event
	waitFor(t, "the rejection event", func() bool {
		p, err := f.svc.ListEvents(ctx, f.admin, store.EventFilter{ObjectID: a.sim.ID, Action: "device.handshake_rejected"})
		events = p.Items
		return err == nil && len(events) > 0
	})
	time.Sleep(200 * time.Millisecond)
	p, _ := f.svc.ListEvents(ctx, f.admin, store.EventFilter{ObjectID: a.sim.ID, Action: "device.handshake_rejected"})
	if len(p.Items) != 1 || p.Items[0].Actor != "sim:"+a.sim.ID {
		t.Fatalf("rejection events %+v, want one (rate-limited)", p.Items)
	}
	// The connection itself was recorded too.
	if p, _ := f.svc.ListEvents(ctx, f.admin, store.EventFilter{ObjectID: a.sim.ID, Action: "device.connected"}); len(p.Items) == 0 {
		t.Fatal("no device.connected event")
	}
	// Terminated: refused as well.
	if _, err := f.svc.SetSIMStatus(ctx, f.admin, a.sim.ID, fleet.StatusTerminated); err != nil {
		t.Fatal(err)
	}
	a.configure()
	if err := a.ping(MetadataAddr.String(), 2, time.Second); err == nil {
		t.Fatal("a terminated SIM reached the metadata service")
	}
}

// Re-keying a SIM drops the old key's session at once; the old key cannot
// handshake again.
func TestRekeyDropsSession(t *testing.T) {
	f := newFixture(t)
	a := f.newDevice("")
	if err := a.pingUntil(MetadataAddr.String(), 10*time.Second); err != nil {
		t.Fatal(err)
	}
	old := a.sim.PublicKey
	newKey, err := wgkey.NewPrivate()
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := f.svc.SetSIMKey(context.Background(), f.admin, a.sim.ID, controlplane.KeySpec{PublicKey: newKey.Public()}); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	waitFor(t, "the old key's peer to go", func() bool { return f.gw.Engine().Peer(old) == nil })
	if d := time.Since(t0); d > time.Second {
		t.Fatalf("old session dropped after %v", d)
	}
	a.configure() // fresh handshake with the old key
	if err := a.ping(MetadataAddr.String(), 2, time.Second); err == nil {
		t.Fatal("the old key still works")
	}
}

// A new SIM connects at once: no configuration is pushed anywhere, the
// gateway finds the key in the store at the device's first handshake.
func TestNewSIMConnectsAtOnce(t *testing.T) {
	f := newFixture(t)
	d := f.newDevice("") // a first device, so namespaces and the stack are warm
	if err := d.pingUntil(MetadataAddr.String(), 10*time.Second); err != nil {
		t.Fatal(err)
	}
	// A second device, configured before its SIM exists (address pinned).
	n := &device{f: f, ns: f.env.NewNS("new")}
	f.join(n.ns, netip.MustParsePrefix("10.230.99.2/16"))
	n.wg = n.ns.StartWireGuardGo("")
	addr := netip.MustParseAddr("10.128.200.1")
	n.wg.SetConf(fmt.Sprintf("[Interface]\nPrivateKey = %s\n\n[Peer]\nPublicKey = %s\nEndpoint = %s\nAllowedIPs = 100.127.0.0/16\n",
		n.wg.Private.Base64(), f.gw.Engine().PublicKey(), netip.AddrPortFrom(gwAddr, gwPort)))
	n.wg.AddAddr(netip.PrefixFrom(addr, 32))
	n.wg.Up()
	f.env.AddRoute(n.ns, "100.127.0.0/16", "dev", n.wg.Name)

	sim, _, err := f.svc.CreateSIM(context.Background(), f.admin, controlplane.SIMSpec{Name: "new", Address: addr, PublicKey: n.wg.Public})
	if err != nil {
		t.Fatal(err)
	}
	created := time.Now()
	n.sim = sim
	go n.ns.Exec("ping", "-c", "1", "-W", "2", MetadataAddr.String())
	waitFor(t, "the new SIM's handshake", func() bool {
		f.hsMu.Lock()
		defer f.hsMu.Unlock()
		_, ok := f.hsSeen[sim.ID]
		return ok
	})
	f.hsMu.Lock()
	d2 := f.hsSeen[sim.ID].Sub(created)
	f.hsMu.Unlock()
	t.Logf("new SIM's handshake completed %v after its creation", d2.Round(time.Microsecond))
	if d2 > 100*time.Millisecond {
		t.Fatalf("new SIM connected %v after creation, want ≤ 100 ms", d2)
	}
	if err := n.pingUntil(MetadataAddr.String(), 5*time.Second); err != nil {
		t.Fatal(err)
	}
}
