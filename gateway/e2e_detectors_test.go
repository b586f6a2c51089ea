// SPDX-License-Identifier: Apache-2.0

package gateway

import (
	"fmt"
	"io"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/wirefleet/wirefleet/engine"
	"github.com/wirefleet/wirefleet/fleet"
	"github.com/wirefleet/wirefleet/gateway/monitor"
	"github.com/wirefleet/wirefleet/internal/clock"
	"github.com/wirefleet/wirefleet/keystore"
)

// The traffic detectors a group's profile turns on, with real devices
// (Debian wireguard-go): a destination first seen after learning, a device
// accepting a connection on a port the profile does not expect (and not
// on one it does), and a SIM sending over its volume limit.
func TestTrafficDetectors(t *testing.T) {
	f := newFixture(t, func(c *Config) {
		c.Monitor.LearnFor = 3 * time.Second
		c.VolumeInterval = 500 * time.Millisecond
	})
	grp := f.group("g", fleet.GroupSettings{
		DeviceToDevice: fleet.D2DPolicy{Mode: fleet.D2DGroup},
		Security: fleet.SecurityProfile{
			FirstSeen:         true,
			CheckListeners:    true,
			ListenPorts:       []uint16{8080},
			MaxBytesPerMinute: 32 << 20, // per minute; readings every 0.5 s scale 0.27 MiB up to it
		},
	})
	a, b := f.newDevice(grp.ID), f.newDevice(grp.ID)
	for _, d := range []*device{a, b} {
		if err := d.ping(MetadataAddr.String(), 1, 5*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	// b serves on the expected port and on one the profile does not list.
	for _, port := range []int{8080, 2222} {
		ln := b.listen(port)
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				go func() { io.Copy(io.Discard, c); c.Close() }()
			}
		}()
	}
	connect := func(port string) {
		t.Helper()
		c, err := a.dial(net.JoinHostPort(b.addr(), port))
		if err != nil {
			t.Fatalf("a → b:%s: %v", port, err)
		}
		c.Write([]byte("hello"))
		c.Close()
	}
	connect("8080")
	time.Sleep(500 * time.Millisecond)
	if contains(f.alerts(b.sim.ID), monitor.KindListener) {
		t.Fatal("a listener on an expected port raised an alert")
	}
	connect("2222")
	waitFor(t, "an unexpected-listener alert for b", func() bool { return contains(f.alerts(b.sim.ID), monitor.KindListener) })

	// First seen: after learning (the metadata address and b were learned),
	// a reaches a platform address it never did.
	time.Sleep(3 * time.Second)
	if err := a.ping(MetadataAddr.String(), 1, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if contains(f.alerts(a.sim.ID), monitor.KindFirstSeen) {
		t.Fatal("a learned destination raised first-seen")
	}
	a.ns.MustDo(func() error {
		c, err := net.Dial("udp", netip.AddrPortFrom(DNSAddrs[1], 53).String())
		if err != nil {
			return err
		}
		defer c.Close()
		_, err = c.Write([]byte("not a query"))
		return err
	})
	waitFor(t, "a first-seen alert for a", func() bool { return contains(f.alerts(a.sim.ID), monitor.KindFirstSeen) })

	// Volume: a sends 6 MiB as fast as it can: far over 32 MiB a minute.
	// b's acknowledgements (about 2 % of the bytes) stay under it.
	if contains(f.alerts(a.sim.ID), monitor.KindVolume) {
		t.Fatal("a volume alert before the burst")
	}
	c, err := a.dial(net.JoinHostPort(b.addr(), "8080"))
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64<<10)
	for i := 0; i < 96; i++ {
		if _, err := c.Write(buf); err != nil {
			t.Fatal(err)
		}
	}
	c.Close()
	waitFor(t, "a volume alert for a", func() bool { return contains(f.alerts(a.sim.ID), monitor.KindVolume) })
	if contains(f.alerts(b.sim.ID), monitor.KindVolume) {
		t.Fatal("the receiver of the burst raised a volume alert: volume counts what a SIM sends")
	}
}

// A clone whose clock is behind never wins a handshake: the real device
// (Debian wireguard-go) keeps its session while the clone's initiations
// (our engine with the same private key on a clock an hour late, in a
// namespace of its own) are refused as replays. Three of them from the
// second endpoint are a cloned-key alert.
func TestClonedKeyByRefusedReplays(t *testing.T) {
	refused := make(chan struct{}, 16)
	f := newFixture(t, func(c *Config) {
		c.EngineHooks.HandshakeRejected = func(ev engine.RejectEvent) {
			if ev.Reason == engine.RejectReplayedTimestamp {
				select {
				case refused <- struct{}{}:
				default:
				}
			}
		}
	})
	grp := f.group("g", fleet.GroupSettings{})
	a := f.newDevice(grp.ID)
	if err := a.ping(MetadataAddr.String(), 1, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	f.nDev++
	ns := f.env.NewNS("late")
	f.join(ns, netip.MustParsePrefix(fmt.Sprintf("10.230.%d.2/16", f.nDev)))
	late := clock.NewFake(time.Now().Add(-time.Hour))
	clone, err := engine.New(engine.Config{
		KeyStore: keystore.NewMemory(a.wg.Private),
		Handler:  engine.HandlerFunc(func([]engine.InboundPacket) {}),
		Clock:    late,
	})
	if err != nil {
		t.Fatal(err)
	}
	ns.MustDo(clone.Up) // its UDP socket opens in the clone's namespace
	t.Cleanup(func() { clone.Close() })
	p, err := clone.AddPeer(engine.PeerConfig{
		PublicKey:  f.gw.Engine().PublicKey(),
		Endpoint:   netip.AddrPortFrom(gwAddr, gwPort),
		AllowedIPs: []netip.Prefix{netip.MustParsePrefix("100.127.0.0/16")},
	})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		clone.Initiate(p)
		select {
		case <-refused:
		case <-time.After(10 * time.Second):
			t.Fatalf("initiation %d of the late clone was not refused as a replay", i+1)
		}
		late.Advance(6 * time.Second) // past RekeyTimeout, still an hour late
	}
	waitFor(t, "a cloned-key alert", func() bool { return contains(f.alerts(a.sim.ID), monitor.KindClonedKey) })
	// The real device kept its session throughout.
	if err := a.ping(MetadataAddr.String(), 1, 5*time.Second); err != nil {
		t.Fatalf("the device lost its session: %v", err)
	}
}
