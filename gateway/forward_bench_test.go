// SPDX-License-Identifier: Apache-2.0

package gateway

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.zx2c4.com/wireguard/conn"
	wgdevice "golang.zx2c4.com/wireguard/device"
	"golang.zx2c4.com/wireguard/tun"

	"github.com/wirefleet/wirefleet/controlplane"
	"github.com/wirefleet/wirefleet/controlplane/store/sqlitestore"
	"github.com/wirefleet/wirefleet/fleet"
	"github.com/wirefleet/wirefleet/internal/egress"
	"github.com/wirefleet/wirefleet/internal/memtun"
	"github.com/wirefleet/wirefleet/keystore"
	"github.com/wirefleet/wirefleet/wgkey"
)

// BenchmarkForwarding measures device-to-device forwarding through a hub:
// device A (golang.zx2c4.com/wireguard, fed 1420-byte UDP packets by a
// memtun source as fast as it takes them) → hub → device B (same
// implementation, memtun sink), all over 127.0.0.1 UDP in this process.
// Only the hub differs:
//
//   - wirefleet: our gateway (engine + router + policy check), SIMs in
//     SQLite, the security monitor with every detector on;
//   - wirefleet-nomonitor: the same without the monitor (Config.NoMonitor);
//   - wggo-hub: a golang.zx2c4.com/wireguard device whose TUN loops every
//     packet it writes back into its reads, so it routes A's packets to B by
//     allowed IPs — the classic hub (wireguard-go + kernel forwarding) with
//     the kernel replaced by the cheapest possible in-memory loop;
//   - wirefleet-lan: no monitor, A sends to a host on a LAN behind B
//     (192.168.1.0/24, an unmapped route);
//   - wirefleet-lan-mapped: the same LAN reached by its mapped prefix
//     (10.64.0.0/24): every packet translated 1:1 (destination, checksums).
//     Its ratio to wirefleet-lan is the translation's cost.
//   - wirefleet-mirror: no monitor, the group mirrored (GRE in UDP, no
//     rate cap) to a socket on loopback that never reads: its ratio to
//     wirefleet-nomonitor is what mirroring costs (each packet is
//     mirrored twice, leaving A and reaching B).
//   - wirefleet-inspect: no monitor, inspection on for the group (every
//     packet counted, flows tracked and classified).
//   - wirefleet-capture: no monitor, a capture session on B (every packet
//     it receives written to a pcapng file in the test's directory): its
//     ratio to wirefleet-nomonitor is what a capture costs.
//   - wirefleet-ipv6: no monitor, A sends to B's IPv6 address (the twin
//     of its IPv4 one), 1420-byte IPv6 packets. Its ratio to
//     wirefleet-nomonitor is what IPv6 costs the gateway.
//
// The figure is inner Gbit/s delivered to B (b.N is ignored beyond one
// measured window per iteration; run with -benchtime=1x).
func BenchmarkForwarding(b *testing.B) {
	for _, hub := range []string{"wirefleet", "wirefleet-nomonitor", "wirefleet-mirror", "wirefleet-capture", "wirefleet-inspect", "wirefleet-ipv6", "wirefleet-lan", "wirefleet-lan-mapped", "wggo-hub"} {
		b.Run(hub, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				gbps, loss := forwardOnce(b, hub, 3*time.Second)
				b.ReportMetric(gbps, "Gbit/s")
				b.ReportMetric(loss*100, "%loss")
			}
		})
	}
}

var (
	benchA = netip.MustParseAddr("10.128.0.10")
	benchB = netip.MustParseAddr("10.128.0.11")
)

func forwardOnce(b *testing.B, hub string, window time.Duration) (gbps, loss float64) {
	keyA, _ := wgkey.NewPrivate()
	keyB, _ := wgkey.NewPrivate()
	var hubPub wgkey.Public
	var hubPort uint16
	src, dst := benchA, benchB
	extraAllowed := ""
	switch hub {
	case "wirefleet", "wirefleet-nomonitor", "wirefleet-mirror", "wirefleet-capture", "wirefleet-inspect", "wirefleet-ipv6", "wirefleet-lan", "wirefleet-lan-mapped":
		gw := benchGateway(b, map[netip.Addr]wgkey.Public{benchA: keyA.Public(), benchB: keyB.Public()}, hub != "wirefleet")
		hubPub, hubPort = gw.Engine().PublicKey(), gw.Port()
		if hub == "wirefleet-inspect" {
			benchSettings(b, gw, func(s *fleet.GroupSettings) { s.Inspection = fleet.Inspection{Enabled: true, IntervalSeconds: 60} },
				func(p *groupPolicy) bool { return p.inspectEvery > 0 })
		}
		if hub == "wirefleet-capture" {
			id := benchCapture(b, gw)
			defer func() {
				b.ReportMetric(float64(gw.caps.running()[id].packets.Load()), "captured")
				b.ReportMetric(float64(gw.caps.running()[id].dropped.Load()), "capture-dropped")
			}()
		}
		if hub == "wirefleet-mirror" {
			benchMirror(b, gw)
			defer func() {
				b.ReportMetric(float64(gw.mirror.sent.Load()), "mirrored")
				b.ReportMetric(float64(gw.mirror.dropped.Load()), "mirror-dropped")
			}()
		}
		if hub == "wirefleet-ipv6" {
			src, dst = gw.o6.Addr(benchA), gw.o6.Addr(benchB)
			extraAllowed = "allowed_ip=" + gw.o6.View().String() + "\n"
		}
		if strings.HasPrefix(hub, "wirefleet-lan") {
			sim, err := gw.st.SIMByAddress(context.Background(), benchB)
			if err != nil {
				b.Fatal(err)
			}
			spec := controlplane.RouteSpec{Prefix: netip.MustParsePrefix("192.168.1.0/24"), Map: hub == "wirefleet-lan-mapped"}
			r, err := gw.svc.AddSIMRoute(context.Background(), controlplane.System, sim.ID, spec)
			if err != nil {
				b.Fatal(err)
			}
			dst = netip.AddrFrom4([4]byte{r.Reach().Addr().As4()[0], r.Reach().Addr().As4()[1], r.Reach().Addr().As4()[2], 10})
		}
	case "wggo-hub":
		hubKey, _ := wgkey.NewPrivate()
		lt := newLoopTun(1420, 128)
		dev := wgdevice.NewDevice(lt, conn.NewStdNetBind(), wgdevice.NewLogger(wgdevice.LogLevelError, "hub: "))
		b.Cleanup(dev.Close)
		pa, pb := keyA.Public(), keyB.Public()
		uapi := fmt.Sprintf("private_key=%x\nlisten_port=0\npublic_key=%x\nallowed_ip=%s/32\npublic_key=%x\nallowed_ip=%s/32\n",
			hubKey[:], pa[:], benchA, pb[:], benchB)
		if err := dev.IpcSet(uapi); err != nil {
			b.Fatal(err)
		}
		if err := dev.Up(); err != nil {
			b.Fatal(err)
		}
		hubPub, hubPort = hubKey.Public(), listenPort(b, dev)
	}
	source := memtun.NewSource(memtun.UDPPacket(netip.AddrPortFrom(src, 9000), netip.AddrPortFrom(dst, 9000), 1420), 1420, 0)
	sink := memtun.NewSink(1420, 0)
	for _, d := range []struct {
		key  wgkey.Private
		addr netip.Addr
		tun  tun.Device
	}{{keyB, benchB, sink}, {keyA, benchA, source}} {
		dev := wgdevice.NewDevice(d.tun, conn.NewStdNetBind(), wgdevice.NewLogger(wgdevice.LogLevelError, "dev: "))
		b.Cleanup(dev.Close)
		uapi := fmt.Sprintf("private_key=%x\nlisten_port=0\npublic_key=%x\nendpoint=127.0.0.1:%d\nallowed_ip=10.128.0.0/9\nallowed_ip=10.64.0.0/10\nallowed_ip=192.168.1.0/24\n%spersistent_keepalive_interval=1\n",
			d.key[:], hubPub[:], hubPort, extraAllowed)
		if err := dev.IpcSet(uapi); err != nil {
			b.Fatal(err)
		}
		if err := dev.Up(); err != nil {
			b.Fatal(err)
		}
		if d.addr == benchB {
			time.Sleep(200 * time.Millisecond) // B's session first, so the hub can forward
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for sink.Written.Packets() == 0 {
		if time.Now().After(deadline) {
			b.Fatalf("%s: nothing delivered", hub)
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(time.Second) // warm-up
	b0, g0, t0 := sink.Written.Bytes(), source.Generated.Packets(), time.Now()
	p0 := sink.Written.Packets()
	time.Sleep(window)
	el := time.Since(t0).Seconds()
	gen := source.Generated.Packets() - g0
	got := sink.Written.Packets() - p0
	gbps = float64(sink.Written.Bytes()-b0) * 8 / el / 1e9
	if gen > 0 && gen > got {
		loss = float64(gen-got) / float64(gen)
	}
	return gbps, loss
}

// benchGateway starts a gateway whose store holds one SIM per address, all
// in one group with device-to-device on.
func benchGateway(b *testing.B, sims map[netip.Addr]wgkey.Public, noMonitor bool) *Gateway {
	ctx := context.Background()
	st, err := sqlitestore.Open(ctx, filepath.Join(b.TempDir(), "bench.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	ks, _ := keystore.GenerateMemory()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	svc := controlplane.New(st, controlplane.Config{GatewayPublicKey: func() wgkey.Public { return ks.PublicKey() }, Logger: log})
	settings := fleet.GroupSettings{Version: fleet.SettingsVersion, DeviceToDevice: fleet.D2DPolicy{Mode: fleet.D2DGroup}}
	if !noMonitor {
		// Every detector on, so the figure is their whole cost: an
		// allow-list checked per packet, first-seen, listeners, volume.
		settings.Security = fleet.SecurityProfile{AllowList: []string{"10.128.0.0/9"}, Block: true, FirstSeen: true,
			CheckListeners: true, ListenPorts: []uint16{22}, MaxBytesPerMinute: 1 << 40, VolumeFactor: 10}
	}
	g, err := svc.CreateGroup(ctx, controlplane.System, "bench", settings)
	if err != nil {
		b.Fatal(err)
	}
	for addr, pub := range sims {
		if _, _, err := svc.CreateSIM(ctx, controlplane.System, controlplane.SIMSpec{GroupID: g.ID, Address: addr, PublicKey: pub}); err != nil {
			b.Fatal(err)
		}
	}
	gw, err := New(Config{ControlPlane: svc, KeyStore: ks, Logger: log, NoMonitor: noMonitor,
		Egress:                 egress.Policy{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}, // the mirror sink
		MirrorPacketsPerSecond: 10_000_000,
		CaptureDir:             b.TempDir(),
		Records:                st}) // the whole cost of mirroring, not the cap's
	if err != nil {
		b.Fatal(err)
	}
	if err := gw.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { gw.Close() })
	return gw
}

// benchMirror turns mirroring on for the bench group, to a UDP socket on
// loopback that never reads.
func benchMirror(b *testing.B, gw *Gateway) {
	sink, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	// Never read: the peer is another host, whose reading is not the
	// gateway's cost (the kernel drops what overflows the socket).
	b.Cleanup(func() { sink.Close() })
	ctx := context.Background()
	g, err := gw.st.GroupByName(ctx, "bench")
	if err != nil {
		b.Fatal(err)
	}
	g.Settings.Mirroring = fleet.Mirroring{Peers: []fleet.MirrorPeer{{IPAddress: "127.0.0.1", Protocol: fleet.MirrorGREUDP, Port: uint16(sink.LocalAddr().(*net.UDPAddr).Port), Enabled: true}}}
	if _, err := gw.svc.UpdateGroup(ctx, controlplane.System, g.ID, nil, &g.Settings); err != nil {
		b.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		if p := gw.policies.get(g.ID); p != nil && len(p.mirrors) == 1 || time.Now().After(deadline) {
			return
		}
		if err := gw.policies.refresh(ctx, gw.st, g.ID); err != nil {
			b.Fatal(err)
		}
	}
}

// benchSettings changes the bench group's settings and waits until the
// gateway holds them (applied reports it).
func benchSettings(b *testing.B, gw *Gateway, change func(*fleet.GroupSettings), applied func(*groupPolicy) bool) {
	ctx := context.Background()
	g, err := gw.st.GroupByName(ctx, "bench")
	if err != nil {
		b.Fatal(err)
	}
	change(&g.Settings)
	if _, err := gw.svc.UpdateGroup(ctx, controlplane.System, g.ID, nil, &g.Settings); err != nil {
		b.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); ; {
		if p := gw.policies.get(g.ID); p != nil && applied(p) || time.Now().After(deadline) {
			return
		}
		if err := gw.policies.refresh(ctx, gw.st, g.ID); err != nil {
			b.Fatal(err)
		}
	}
}

// benchCapture starts a capture session on B and waits until it writes.
func benchCapture(b *testing.B, gw *Gateway) string {
	ctx := context.Background()
	sim, err := gw.st.SIMByAddress(ctx, benchB)
	if err != nil {
		b.Fatal(err)
	}
	c, err := gw.svc.CreateCapture(ctx, controlplane.System, controlplane.CaptureSpec{SIMID: sim.ID, Duration: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); gw.caps.running()[c.ID] == nil; {
		if time.Now().After(deadline) {
			b.Fatal("the capture did not start")
		}
		time.Sleep(10 * time.Millisecond)
	}
	return c.ID
}

func listenPort(b *testing.B, dev *wgdevice.Device) uint16 {
	uapi, err := dev.IpcGet()
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(uapi, "\n") {
		if v, ok := strings.CutPrefix(line, "listen_port="); ok {
			var p uint16
			fmt.Sscan(v, &p)
			return p
		}
	}
	b.Fatal("no listen_port")
	return 0
}

// loopTun is a tun.Device that hands back, on Read, every packet written to
// it: a router in memory, for a wireguard-go hub. Writes block when the loop
// is full (backpressure, as a kernel queue would drop instead).
type loopTun struct {
	mtu, batch int
	q          chan []byte
	pool       sync.Pool
	events     chan tun.Event
	closed     chan struct{}
	once       sync.Once
}

func newLoopTun(mtu, batch int) *loopTun {
	t := &loopTun{mtu: mtu, batch: batch, q: make(chan []byte, 4096), events: make(chan tun.Event, 1), closed: make(chan struct{})}
	t.pool.New = func() any { return make([]byte, 0, mtu+64) }
	t.events <- tun.EventUp
	return t
}

func (t *loopTun) File() *os.File           { return nil }
func (t *loopTun) MTU() (int, error)        { return t.mtu, nil }
func (t *loopTun) Name() (string, error)    { return "loop", nil }
func (t *loopTun) Events() <-chan tun.Event { return t.events }
func (t *loopTun) BatchSize() int           { return t.batch }
func (t *loopTun) Close() error {
	t.once.Do(func() { close(t.closed) })
	return nil
}

func (t *loopTun) Write(bufs [][]byte, offset int) (int, error) {
	for _, b := range bufs {
		p := append(t.pool.Get().([]byte)[:0], b[offset:]...)
		select {
		case t.q <- p:
		case <-t.closed:
			return 0, os.ErrClosed
		}
	}
	return len(bufs), nil
}

func (t *loopTun) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	var p []byte
	select {
	case p = <-t.q:
	case <-t.closed:
		return 0, os.ErrClosed
	}
	n := 0
	for {
		sizes[n] = copy(bufs[n][offset:], p)
		t.pool.Put(p[:0])
		n++
		if n == len(bufs) || n == t.batch {
			return n, nil
		}
		select {
		case p = <-t.q:
		default:
			return n, nil
		}
	}
}
