// SPDX-License-Identifier: Apache-2.0

package gateway

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	mrand "math/rand/v2"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wirefleet/wirefleet/controlplane/store"
	"github.com/wirefleet/wirefleet/engine/cookie"
	"github.com/wirefleet/wirefleet/engine/noise"
	"github.com/wirefleet/wirefleet/engine/tai64n"
	"github.com/wirefleet/wirefleet/engine/wire"
	"github.com/wirefleet/wirefleet/fleet"
	"github.com/wirefleet/wirefleet/keystore"
	"golang.org/x/sys/unix"
)

// Roaming: the device's outer address changes during a transfer (it moves
// to a second link, as from Wi-Fi to cellular); the transfer continues, the
// gateway follows and records the change.
func TestRoaming(t *testing.T) {
	f := newFixture(t)
	grp := f.group("g", fleet.GroupSettings{DeviceToDevice: fleet.D2DPolicy{Mode: fleet.D2DGroup}})
	a, b := f.newDevice(grp.ID), f.newDevice(grp.ID)
	if err := a.pingUntil(b.addr(), 10*time.Second); err != nil {
		t.Fatal(err)
	}
	s := startStream(t, a, b, 7002)
	waitFor(t, "the transfer to flow", func() bool { return s.total.Load() > 1<<20 })
	oldEP := a.connection().Endpoint

	// A second link with a new address, the route to the gateway moved
	// there, the old address gone.
	_, dev2 := f.join(a.ns, netip.Prefix{})
	dev2.AddAddr(netip.MustParsePrefix("10.230.201.2/32"))
	f.env.ReplaceRoute(a.ns, gwAddr.String()+"/32", "dev", dev2.Name, "src", "10.230.201.2")
	a.link.DelAddr(a.link.Addrs()[0])
	moved := s.total.Load()
	// Debian's wireguard-go pins the source address of its sends (sticky
	// sockets). Depending on where its sender is when the old address goes,
	// it either re-picks the source at once or goes quiet until its own
	// "sent but heard nothing" timer (KeepaliveTimeout + RekeyTimeout, 15 s)
	// starts a handshake from the new address — measured here: both happen,
	// about half the time each. The gateway follows the first authenticated
	// packet from the new address either way; the wait allows the client's
	// own recovery time.
	waitForWithin(t, 45*time.Second, "the gateway to follow the device", func() bool { return strings.HasPrefix(a.connection().Endpoint, "10.230.201.2:") })
	waitForWithin(t, 30*time.Second, "bytes after the move", func() bool { return s.total.Load() > moved+1<<20 })
	t.Logf("endpoint %s → %s; %d bytes after the move", oldEP, a.connection().Endpoint, s.total.Load()-moved)
	waitFor(t, "the endpoint_changed event", func() bool {
		p, err := f.svc.ListEvents(context.Background(), f.admin, store.EventFilter{ObjectID: a.sim.ID, Action: "device.endpoint_changed"})
		return err == nil && len(p.Items) > 0
	})
}

// capture records the UDP payloads sent to the gateway's WireGuard port
// over link (the gateway's end of a device's veth), with an AF_PACKET socket
// inside the gateway's namespace.
type capture struct {
	mu   sync.Mutex
	pkts [][]byte
	fd   int
	done chan struct{}
}

func startCapture(t *testing.T, f *fixture, d *device) *capture {
	c := &capture{done: make(chan struct{})}
	// ETH_P_ALL: the link is a bridge port, where only the all-protocols
	// taps see packets.
	proto := int(htons(unix.ETH_P_ALL))
	f.gwNS.MustDo(func() error {
		ifi, err := net.InterfaceByName(d.gwLink.Name)
		if err != nil {
			return err
		}
		c.fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM, proto)
		if err != nil {
			return err
		}
		tv := unix.Timeval{Usec: 100_000}
		unix.SetsockoptTimeval(c.fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
		return unix.Bind(c.fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifi.Index})
	})
	go func() {
		defer close(c.done)
		buf := make([]byte, 2048)
		for {
			n, _, err := unix.Recvfrom(c.fd, buf, 0)
			if err == unix.EBADF {
				return
			}
			if err != nil || n < 28 || buf[0]>>4 != 4 || buf[9] != 17 {
				if err != nil && err != unix.EAGAIN && err != unix.EINTR {
					return
				}
				continue
			}
			ihl := int(buf[0]&0xf) * 4
			if binary.BigEndian.Uint16(buf[ihl+2:]) != gwPort {
				continue
			}
			c.mu.Lock()
			c.pkts = append(c.pkts, append([]byte(nil), buf[ihl+8:n]...))
			c.mu.Unlock()
		}
	}()
	return c
}

func (c *capture) stop() [][]byte {
	unix.Close(c.fd)
	<-c.done
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.pkts
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// Garbage, replayed packets and a flood of initiations from many fake keys
// at the gateway's port, while a legitimate device keeps transferring and
// another one completes a fresh handshake. Nothing crashes, the transfer
// keeps moving, the replays get nowhere, and the flood pushes the engine
// under load (cookies).
func TestAttackWhileDevicesWork(t *testing.T) {
	f := newFixture(t)
	grp := f.group("g", fleet.GroupSettings{DeviceToDevice: fleet.D2DPolicy{Mode: fleet.D2DGroup}})
	a, b := f.newDevice(grp.ID), f.newDevice(grp.ID)
	capA := startCapture(t, f, a) // A's handshake and traffic, to replay
	a.configure()                 // a fresh session, so the capture holds its initiation
	if err := a.pingUntil(b.addr(), 10*time.Second); err != nil {
		t.Fatal(err)
	}
	s := startStream(t, a, b, 7003)
	waitFor(t, "the transfer to flow", func() bool { return s.total.Load() > 1<<20 })
	time.Sleep(500 * time.Millisecond)
	captured := capA.stop()
	var inits int
	for _, p := range captured {
		if typ, _ := wire.Type(p); typ == wire.TypeInitiation {
			inits++
		}
	}
	if inits == 0 || len(captured) < 100 {
		t.Fatalf("captured %d packets, %d initiations", len(captured), inits)
	}

	// Baseline throughput.
	t0, n0 := time.Now(), s.total.Load()
	time.Sleep(time.Second)
	base := float64(s.total.Load()-n0) / time.Since(t0).Seconds()

	// The attacker: its own namespace and link to the gateway.
	atk := f.env.NewNS("atk")
	f.join(atk, netip.MustParsePrefix("10.230.250.2/16"))
	var conns []net.Conn
	for i := 0; i < 3; i++ {
		atk.MustDo(func() error {
			c, err := net.Dial("udp", netip.AddrPortFrom(gwAddr, gwPort).String())
			conns = append(conns, c)
			return err
		})
	}
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	// Initiations from 2,000 fake keys, valid MAC1: each costs a lookup and DHs.
	gwPub := f.gw.Engine().PublicKey()
	var macs cookie.Generator
	macs.Init(gwPub)
	floods := make([][]byte, 2000)
	for i := range floods {
		ks, _ := keystore.GenerateMemory()
		ss, err := ks.DH(context.Background(), keystore.DHRequest{Purpose: keystore.StaticStatic, Peer: gwPub, PeerStatic: gwPub})
		if err != nil {
			t.Fatal(err)
		}
		_, msg, err := noise.CreateInitiation(noise.InitiationParams{Local: ks.PublicKey(), Peer: gwPub, StaticStatic: &ss, SenderIndex: uint32(i), Timestamp: tai64n.From(time.Now())})
		if err != nil {
			t.Fatal(err)
		}
		floods[i] = make([]byte, wire.InitiationSize)
		msg.Marshal(floods[i])
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	attack := func(c net.Conn, next func(i int) []byte) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				c.Write(next(i))
				if i%attackBurst == attackBurst-1 {
					time.Sleep(time.Millisecond)
				}
			}
		}()
	}
	garbage := make([]byte, 2048)
	attack(conns[0], func(i int) []byte { // garbage, sometimes with a valid type
		n := mrand.IntN(len(garbage))
		rand.Read(garbage[:n])
		if n >= 4 && i%2 == 0 {
			garbage[0], garbage[1], garbage[2], garbage[3] = byte(1+i%4), 0, 0, 0
		}
		return garbage[:n]
	})
	attack(conns[1], func(i int) []byte { return captured[i%len(captured)] })
	attack(conns[2], func(i int) []byte {
		m := floods[i%len(floods)]
		macs.AddMACs(m, time.Now())
		return m
	})
	before := f.gw.Engine().Counters()
	t1, n1 := time.Now(), s.total.Load()

	// Meanwhile B makes a fresh handshake (its config is re-applied).
	b.configure()
	hs := time.Now()
	if err := b.pingUntil(MetadataAddr.String(), 30*time.Second); err != nil {
		t.Fatalf("legitimate handshake during the attack: %v", err)
	}
	t.Logf("B's fresh handshake through the attack took %v", time.Since(hs).Round(time.Millisecond))
	if d := time.Until(t1.Add(3 * time.Second)); d > 0 {
		time.Sleep(d)
	}
	during := float64(s.total.Load()-n1) / time.Since(t1).Seconds()
	close(stop)
	wg.Wait()
	after := f.gw.Engine().Counters()
	t.Logf("A→B throughput %.1f MB/s before, %.1f MB/s during the attack (%.0f%%)", base/1e6, during/1e6, 100*during/base)
	t.Logf("counters during the attack: rejected %v, dropped %v, under load %v", diff(before.HandshakesRejected, after.HandshakesRejected), diff(before.Dropped, after.Dropped), after.UnderLoad)
	var handled uint64
	for _, n := range diff(before.HandshakesRejected, after.HandshakesRejected) {
		handled += n
	}
	for _, n := range diff(before.Dropped, after.Dropped) {
		handled += n
	}
	t.Logf("attack packets refused: about %.0f/s (garbage too short to classify is not counted)", float64(handled)/time.Since(t1).Seconds())
	// Devices keep working: the transfer moves data through the whole
	// attack. How much of its rate it keeps is a figure for the bench, not
	// an assertion: on a shared 2-core machine the attacker, both devices
	// and the gateway compete for the same cores (issue 14, item 7).
	if during == 0 {
		t.Fatalf("the legitimate transfer stalled during the attack (%.1f MB/s before)", base/1e6)
	}
	rej := diff(before.HandshakesRejected, after.HandshakesRejected)
	if rej["replayed-timestamp"]+rej["under-load-cookie-sent"] == 0 {
		t.Fatalf("replayed initiations not refused: %v", rej)
	}
	if rej["unknown-key"]+rej["under-load-cookie-sent"] == 0 {
		t.Fatalf("the flood of fake keys was not refused: %v", rej)
	}
	if d := diff(before.Dropped, after.Dropped); d["replay"]+d["no-session"]+d["decrypt"] == 0 {
		t.Fatalf("replayed transport packets not dropped: %v", d)
	}
	// A flood that put the engine under load is in the audit trail, once.
	if rej["under-load-cookie-sent"] > 0 {
		waitFor(t, "a gateway.flood event", func() bool {
			p, _ := f.svc.ListEvents(context.Background(), f.admin, store.EventFilter{Action: "gateway.flood"})
			return len(p.Items) == 1
		})
	}
	// Still alive and serving.
	if out, err := a.curl("http://100.127.100.127/v1/subscriber"); err != nil || !strings.HasSuffix(out, "\n200") {
		t.Fatalf("metadata after the attack: %v %s", err, out)
	}
}

// attackBurst is how many packets each of the three attackers sends per
// millisecond (at most): about 45,000 packets/s in all, with sleep overhead.
const attackBurst = 16

func diff(a, b map[string]uint64) map[string]uint64 {
	d := map[string]uint64{}
	for k, v := range b {
		if v > a[k] {
			d[k] = v - a[k]
		}
	}
	return d
}

// A gateway under load (demanding cookies, as during a flood) records one
// gateway.flood event in the audit trail, and devices still connect (they
// answer cookies; Debian wireguard-go does).
func TestFloodRecorded(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.ForceUnderLoad = true; c.ID = "gw-flood" })
	a := f.newDevice("")
	if err := a.pingUntil(MetadataAddr.String(), 15*time.Second); err != nil {
		t.Fatalf("a device cannot connect under load: %v", err)
	}
	waitFor(t, "a gateway.flood event", func() bool {
		p, _ := f.svc.ListEvents(context.Background(), f.admin, store.EventFilter{ObjectID: "gw-flood", Action: "gateway.flood"})
		return len(p.Items) == 1
	})
	time.Sleep(2 * time.Second)
	if p, _ := f.svc.ListEvents(context.Background(), f.admin, store.EventFilter{Action: "gateway.flood"}); len(p.Items) != 1 {
		t.Fatalf("%d flood events for one flood, want 1", len(p.Items))
	}
}
