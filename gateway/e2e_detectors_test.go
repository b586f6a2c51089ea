package gateway

import (
	"io"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/wirefleet/wirefleet/fleet"
	"github.com/wirefleet/wirefleet/monitor"
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
