// SPDX-License-Identifier: Apache-2.0

package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/wirefleet/wirefleet/fleet"
	"github.com/wirefleet/wirefleet/services/metadata"
)

// Two devices in a group with device-to-device on reach each other (ping,
// TCP) and the platform services; with it off, or from a group without a
// rule, they cannot.
func TestDeviceToDevice(t *testing.T) {
	f := newFixture(t)
	grp := f.group("plant", fleet.GroupSettings{DeviceToDevice: fleet.D2DPolicy{Mode: fleet.D2DGroup}, UserData: "hello devices"})
	other := f.group("office", fleet.GroupSettings{DeviceToDevice: fleet.D2DPolicy{Mode: fleet.D2DGroup}})
	a, b := f.newDevice(grp.ID), f.newDevice(grp.ID)
	c := f.newDevice(other.ID)

	if err := a.pingUntil(MetadataAddr.String(), 10*time.Second); err != nil {
		t.Fatalf("device A cannot ping the metadata service: %v", err)
	}
	if err := b.pingUntil(MetadataAddr.String(), 10*time.Second); err != nil {
		t.Fatalf("device B cannot ping the metadata service: %v", err)
	}
	if err := c.pingUntil(MetadataAddr.String(), 10*time.Second); err != nil {
		t.Fatalf("device C cannot ping the metadata service: %v", err)
	}
	if err := a.ping(b.addr(), 3, 5*time.Second); err != nil {
		t.Fatalf("A → B with device-to-device on: %v", err)
	}
	if err := b.ping(a.addr(), 3, 5*time.Second); err != nil {
		t.Fatalf("B → A with device-to-device on: %v", err)
	}
	// TCP, B listening.
	ln := b.listen(7000)
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(conn, conn); conn.Close() }()
		}
	}()
	conn, err := a.dial(fmt.Sprintf("%s:7000", b.addr()))
	if err != nil {
		t.Fatalf("TCP A → B: %v", err)
	}
	payload := strings.Repeat("wirefleet ", 100_000)
	go conn.Write([]byte(payload))
	got := make([]byte, len(payload))
	conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	if _, err := io.ReadFull(conn, got); err != nil || string(got) != payload {
		t.Fatalf("TCP echo through the gateway: %v", err)
	}
	conn.Close()

	// Another group, each with its own "group" rule: no path between them.
	if err := c.ping(a.addr(), 2, 1*time.Second); err == nil {
		t.Fatal("C (other group) reached A")
	}
	if err := a.ping(c.addr(), 2, 1*time.Second); err == nil {
		t.Fatal("A reached C (other group)")
	}

	// Both resolve service and SIM names and read their own metadata.
	for _, d := range []*device{a, b} {
		for _, server := range []string{"100.127.0.53", "100.127.1.53"} {
			ip, rc, err := d.resolve(server, "metadata."+DefaultZone+".")
			if err != nil || ip != MetadataAddr {
				t.Fatalf("%s resolving metadata via %s: %v %v %v", d.sim.ID, server, ip, rc, err)
			}
		}
		peer := a
		if d == a {
			peer = b
		}
		ip, rc, err := d.resolve("100.127.0.53", peer.sim.ID+".sim."+DefaultZone+".")
		if err != nil || ip != peer.sim.Address {
			t.Fatalf("%s resolving %s: %v %v %v", d.sim.ID, peer.sim.ID, ip, rc, err)
		}
		out, err := d.curl("http://100.127.100.127/v1/subscriber")
		if err != nil || !strings.HasSuffix(out, "\n200") {
			t.Fatalf("metadata for %s: %v %s", d.sim.ID, err, out)
		}
		var sub metadata.Subscriber
		if err := json.Unmarshal([]byte(strings.TrimSuffix(out, "\n200")), &sub); err != nil {
			t.Fatal(err)
		}
		if sub.ID != d.sim.ID || sub.IMSI != d.sim.IMSI || sub.IPAddress != d.addr() || sub.GroupName != "plant" || sub.Status != fleet.StatusActive {
			t.Fatalf("metadata of %s is %+v", d.sim.ID, sub)
		}
		out, err = d.curl("http://100.127.100.127/v1/userdata")
		if err != nil || out != "hello devices\n200" {
			t.Fatalf("userdata: %v %q", err, out)
		}
	}
	// Names of SIMs the caller may not reach do not exist for it.
	if ip, rc, err := c.resolve("100.127.0.53", a.sim.ID+".sim."+DefaultZone+"."); err != nil || ip.IsValid() || rc.String() != "RCodeNameError" {
		t.Fatalf("C resolving A (other group): %v %v %v", ip, rc, err)
	}
	// Outside the zone: refused, no recursion.
	if _, rc, err := a.resolve("100.127.0.53", "example.com."); err != nil || rc.String() != "RCodeRefused" {
		t.Fatalf("example.com: %v %v", rc, err)
	}

	// Tags: refused while the group does not allow devices to write them.
	out, err := a.curl("-X", "PUT", "-d", `[{"tagName":"fw","tagValue":"1.2"}]`, "http://100.127.100.127/v1/subscriber/tags")
	if err != nil || !strings.HasSuffix(out, "\n403") {
		t.Fatalf("tag write without permission: %v %s", err, out)
	}
	if sim, _ := f.svc.View().SIM(context.Background(), a.sim.ID); sim.Tags["fw"] != "" {
		t.Fatal("tag written without permission")
	}
	s := grp.Settings
	s.DevicesMayWriteTags = true
	if _, err := f.svc.UpdateGroup(context.Background(), f.admin, grp.ID, nil, &s); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "group change reaches the gateway", func() bool { p := f.gw.policies.get(grp.ID); return p != nil && p.settings.DevicesMayWriteTags })
	out, err = a.curl("-X", "PUT", "-d", `[{"tagName":"fw","tagValue":"1.2"}]`, "http://100.127.100.127/v1/subscriber/tags")
	if err != nil || !strings.HasSuffix(out, "\n200") {
		t.Fatalf("tag write: %v %s", err, out)
	}
	if sim, _ := f.svc.View().SIM(context.Background(), a.sim.ID); sim.Tags["fw"] != "1.2" {
		t.Fatalf("tag not written: %v", sim.Tags)
	}
	if sim, _ := f.svc.View().SIM(context.Background(), b.sim.ID); sim.Tags["fw"] != "" {
		t.Fatal("A's tag write touched B")
	}

	// C moves into A's group: the change reaches the gateway without a new
	// handshake, and C now reaches A.
	if _, err := f.svc.SetSIMGroup(context.Background(), f.admin, c.sim.ID, grp.ID); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the group move reaches the gateway", func() bool {
		p := f.gw.router.peerFor(c.sim.Address)
		return p != nil && stateOf(p).SIM().GroupID == grp.ID
	})
	if err := c.ping(a.addr(), 2, 5*time.Second); err != nil {
		t.Fatalf("C, moved into A's group, cannot reach A: %v", err)
	}

	// Device-to-device off: A and B no longer reach each other.
	s.DeviceToDevice.Mode = fleet.D2DOff
	if _, err := f.svc.UpdateGroup(context.Background(), f.admin, grp.ID, nil, &s); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "group change reaches the gateway", func() bool { p := f.gw.policies.get(grp.ID); return p != nil && p.mode == fleet.D2DOff })
	if err := a.ping(b.addr(), 2, 1*time.Second); err == nil {
		t.Fatal("A reached B with device-to-device off")
	}
	if err := a.ping(MetadataAddr.String(), 1, 5*time.Second); err != nil {
		t.Fatalf("platform services must stay reachable: %v", err)
	}
	if n := f.gw.router.drops.get(dropPolicy); n == 0 {
		t.Fatal("policy drops not counted")
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	waitForWithin(t, 5*time.Second, what, cond)
}

func waitForWithin(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out: %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
