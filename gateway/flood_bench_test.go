// SPDX-License-Identifier: Apache-2.0

package gateway

import (
	"crypto/rand"
	"fmt"
	"net"
	"net/netip"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/ipv4"

	"github.com/wirefleet/wirefleet/engine/cookie"
	"github.com/wirefleet/wirefleet/engine/wire"
	"github.com/wirefleet/wirefleet/fleet"
	"github.com/wirefleet/wirefleet/internal/netns"
	"github.com/wirefleet/wirefleet/wgkey"
)

// The handshake flood of the hardening review (issue 14, item 7), end to
// end: one attacker namespace sends forged initiations (valid MAC1, no
// cookie) at the hub for floodFor, while device A — connected before —
// pings the hub every 10 ms and device B, reconfigured a second into the
// flood (its session gone), has to handshake anew. Measured for our
// gateway and, with the same devices and flood, for a hub made of Debian's
// wireguard-go. Run:
//
//	go test -run '^$' -bench HandshakeFlood -benchtime 1x ./gateway
//
// WIREFLEET_FLOOD_PPS sets the flood rate (default 130000).
// End to end on this machine's cores: the flood, both devices and the hub
// share them, so figures vary with the load; compare subjects of one run.
func BenchmarkHandshakeFlood(b *testing.B) {
	netns.Require(b)
	pps := 130000
	if v, err := strconv.Atoi(os.Getenv("WIREFLEET_FLOOD_PPS")); err == nil && v > 0 {
		pps = v
	}
	results := map[string]floodResult{}
	for _, subject := range []string{"wirefleetd", "wireguard-go"} {
		b.Run(subject, func(b *testing.B) {
			var r floodResult
			for i := 0; i < b.N; i++ {
				if subject == "wirefleetd" {
					r = floodOurs(b, pps)
				} else {
					r = floodDebian(b, pps)
				}
			}
			b.ReportMetric(r.loss, "ping-loss-%")
			b.ReportMetric(r.connect.Seconds(), "new-device-connect-s")
			b.ReportMetric(r.sent, "flood-pps")
			results[subject] = r
		})
	}
	ours, base := results["wirefleetd"], results["wireguard-go"]
	if ours.sent > 0 && base.sent > 0 {
		b.Logf("flood of %d forged initiations/s for %v: established device loses %.1f%% of pings (wireguard-go hub %.1f%%), a new device connects after %.1f s (wireguard-go hub %.1f s)",
			pps, floodFor, ours.loss, base.loss, ours.connect.Seconds(), base.connect.Seconds())
	}
}

const floodFor = 10 * time.Second

type floodResult struct {
	loss    float64       // % of A's pings lost during the flood
	connect time.Duration // B's reconnect, from its reconfiguration to its first answer
	sent    float64       // flood packets per second actually sent
}

// floodHub is what both subjects give the measurement.
type floodHub struct {
	env          *netns.Env
	join         func(n *netns.NS, addr netip.Prefix)
	endpoint     netip.AddrPort
	public       wgkey.Public
	target       string // the address A and B ping through the tunnel
	a, b         *netns.NS
	reconfigureB func()
}

func floodOurs(tb testing.TB, pps int) floodResult {
	f := newFixture(tb)
	grp := f.group("g", fleet.GroupSettings{})
	a, b := f.newDevice(grp.ID), f.newDevice(grp.ID)
	if err := a.pingUntil(MetadataAddr.String(), 10*time.Second); err != nil {
		tb.Fatal(err)
	}
	if err := b.pingUntil(MetadataAddr.String(), 10*time.Second); err != nil {
		tb.Fatal(err)
	}
	return measureFlood(tb, floodHub{env: f.env, join: func(n *netns.NS, addr netip.Prefix) { f.join(n, addr) },
		endpoint: netip.AddrPortFrom(gwAddr, gwPort), public: f.gw.Engine().PublicKey(), target: MetadataAddr.String(),
		a: a.ns, b: b.ns, reconfigureB: b.configure}, pps)
}

// floodDebian builds the same topology around a Debian wireguard-go hub:
// its own namespace and bridge, the devices peered with it.
func floodDebian(tb testing.TB, pps int) floodResult {
	env := netns.New(tb)
	hub := env.NewNS("hub")
	bridge := env.Name("br")
	hub.MustExec("ip", "link", "add", bridge, "address", "02:00:0a:e6:00:01", "type", "bridge")
	hub.MustExec("ip", "addr", "add", netip.PrefixFrom(gwAddr, 16).String(), "dev", bridge)
	hub.MustExec("ip", "link", "set", bridge, "up")
	join := func(n *netns.NS, addr netip.Prefix) {
		hubEnd, _ := env.Veth(hub, netip.Prefix{}, n, addr)
		hub.MustExec("ip", "link", "set", hubEnd.Name, "master", bridge)
	}
	hw := hub.StartWireGuardGo("")
	hw.AddAddr(netip.MustParsePrefix("10.99.0.1/24"))
	hw.Up()
	var peers []netns.Peer
	devs := make([]*netns.WireGuard, 2)
	for i := range devs {
		ns := env.NewNS(fmt.Sprintf("d%d", i+1))
		join(ns, netip.MustParsePrefix(fmt.Sprintf("10.230.%d.2/16", i+1)))
		w := ns.StartWireGuardGo("")
		w.AddAddr(netip.MustParsePrefix(fmt.Sprintf("10.99.0.%d/24", i+2)))
		w.Up()
		devs[i] = w
		peers = append(peers, netns.Peer{PublicKey: w.Public, AllowedIPs: []netip.Prefix{netip.MustParsePrefix(fmt.Sprintf("10.99.0.%d/32", i+2))}})
	}
	hw.Configure(netns.Config{ListenPort: gwPort, Peers: peers})
	toHub := netns.Config{Peers: []netns.Peer{{PublicKey: hw.Public, Endpoint: netip.AddrPortFrom(gwAddr, gwPort), AllowedIPs: []netip.Prefix{netip.MustParsePrefix("10.99.0.0/24")}}}}
	for _, w := range devs {
		w.Configure(toHub)
		if _, err := w.NS.Exec("ping", "-c", "1", "-W", "5", "10.99.0.1"); err != nil {
			tb.Fatalf("device through the wireguard-go hub: %v", err)
		}
	}
	return measureFlood(tb, floodHub{env: env, join: join, endpoint: netip.AddrPortFrom(gwAddr, gwPort), public: hw.Public, target: "10.99.0.1",
		a: devs[0].NS, b: devs[1].NS, reconfigureB: func() { devs[1].Configure(toHub) }}, pps)
}

var pingLoss = regexp.MustCompile(`([0-9.]+)% packet loss`)

func measureFlood(tb testing.TB, h floodHub, pps int) floodResult {
	atk := h.env.NewNS("atk")
	h.join(atk, netip.MustParsePrefix("10.230.250.2/16"))
	// Forged initiations: random content, a valid MAC1 (anyone who knows
	// the hub's public key can make one), no MAC2.
	var macs cookie.Generator
	macs.Init(h.public)
	msgs := make([]ipv4.Message, 4096)
	for i := range msgs {
		m := make([]byte, wire.InitiationSize)
		rand.Read(m)
		m[0], m[1], m[2], m[3] = byte(wire.TypeInitiation), 0, 0, 0
		macs.AddMACs(m, time.Now())
		msgs[i].Buffers = [][]byte{m}
	}
	var sock *net.UDPConn
	atk.MustDo(func() (err error) {
		sock, err = net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(h.endpoint))
		return err
	})
	defer sock.Close()
	pc := ipv4.NewPacketConn(sock)

	var (
		wg      sync.WaitGroup
		sent    int
		lossOut string
		connect time.Duration
	)
	start := time.Now()
	stop := start.Add(floodFor)
	wg.Add(3)
	go func() { // the flood, paced to pps
		defer wg.Done()
		for next := 0; time.Now().Before(stop); {
			due := int(time.Since(start).Seconds() * float64(pps))
			for sent < due {
				n := min(due-sent, 64)
				k, err := pc.WriteBatch(msgs[next:next+n], 0)
				if err != nil || k == 0 {
					break
				}
				sent += k
				next = (next + k) % (len(msgs) - 64)
			}
			time.Sleep(200 * time.Microsecond)
		}
	}()
	go func() { // A: a ping every 10 ms for the whole flood
		defer wg.Done()
		count := int(floodFor / (10 * time.Millisecond))
		lossOut, _ = h.a.Exec("ping", "-q", "-n", "-i", "0.01", "-W", "1", "-c", strconv.Itoa(count), h.target)
	}()
	go func() { // B: reconfigured a second in, pinging until an answer
		defer wg.Done()
		time.Sleep(time.Second)
		t0 := time.Now()
		h.reconfigureB()
		for time.Since(t0) < 60*time.Second {
			if _, err := h.b.Exec("ping", "-c", "1", "-W", "1", "-n", h.target); err == nil {
				connect = time.Since(t0)
				return
			}
		}
		connect = -1
	}()
	wg.Wait()
	r := floodResult{connect: connect, sent: float64(sent) / floodFor.Seconds()}
	m := pingLoss.FindStringSubmatch(lossOut)
	if m == nil {
		tb.Fatalf("no ping summary: %q", lossOut)
	}
	r.loss, _ = strconv.ParseFloat(m[1], 64)
	if connect < 0 {
		tb.Logf("the new device did not connect within 60 s")
	}
	tb.Logf("flood %.0f/s: ping loss %.1f%%, new device after %v (%s)", r.sent, r.loss, connect.Round(100*time.Millisecond), strings.TrimSpace(lossOut))
	return r
}
