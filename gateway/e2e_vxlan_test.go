// SPDX-License-Identifier: Apache-2.0

package gateway

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/wirefleet/wirefleet/controlplane"
	"github.com/wirefleet/wirefleet/fleet"
)

// A VXLAN Gate peer — a namespace with a Linux vxlan interface set up
// with `ip` commands only, as SORACOM documents for Gate peers — pings a
// device and fetches from a mapped LAN host; the device pings it back.
// A VXLAN packet with an unregistered VNI is dropped and counted, and a
// Gate peer of a group without access reaches nothing.
func TestVXLANGatePeer(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.VXLANListen = ":4789" })
	ctx := context.Background()
	sites := f.group("sites", fleet.GroupSettings{DeviceToDevice: fleet.D2DPolicy{Mode: fleet.D2DGroup}})
	others := f.group("others", fleet.GroupSettings{DeviceToDevice: fleet.D2DPolicy{Mode: fleet.D2DGroup}})
	dev := f.newDevice(sites.ID)
	router := f.newDevice(sites.ID)
	f.behind(router, "lana", netip.MustParsePrefix("192.168.1.1/24"), netip.MustParsePrefix("192.168.1.10/24"), siteHandler("site A"))
	ra, err := f.svc.AddSIMRoute(ctx, f.admin, router.sim.ID, controlplane.RouteSpec{Prefix: netip.MustParsePrefix("192.168.1.0/24"), Map: true})
	if err != nil {
		t.Fatal(err)
	}
	hostA := netip.AddrFrom4([4]byte{ra.Mapped.Addr().As4()[0], ra.Mapped.Addr().As4()[1], ra.Mapped.Addr().As4()[2], 10})
	for _, d := range []*device{dev, router} {
		if err := d.pingUntil(MetadataAddr.String(), 10*time.Second); err != nil {
			t.Fatal(err)
		}
	}

	// The Gate peer host on an underlay of its own (the fixture's
	// 10.230.0.0/16 lies inside the SIM pool's range, which a Gate peer's
	// outer address may not), configured with ip only.
	f.gwNS.MustExec("ip", "addr", "add", "192.0.2.1/24", "dev", f.bridge)
	gwUnderlay := "192.0.2.1"
	gpNS := f.env.NewNS("gp")
	outer := netip.MustParsePrefix("192.0.2.10/24")
	_, link := f.join(gpNS, outer)
	// A veth hands its packets on with checksums left to "hardware" that
	// does not exist: the inner TCP checksum inside the VXLAN payload
	// would reach the gateway unfilled. A physical NIC fills it; here the
	// kernel must, before encapsulation.
	gpNS.MustExec("ethtool", "-K", link.Name, "tx", "off")
	gp, err := f.svc.CreateGatePeer(ctx, f.admin, controlplane.GatePeerSpec{Name: "vpc", GroupID: sites.ID, OuterAddress: outer.Addr(), VNI: 10})
	if err != nil {
		t.Fatal(err)
	}
	vx := f.env.Name("vx")
	gpNS.MustExec("ip", "link", "add", vx, "type", "vxlan", "id", "10", "local", outer.Addr().String(), "remote", gwUnderlay, "dstport", "4789", "dev", link.Name)
	gpNS.MustExec("ip", "addr", "add", netip.PrefixFrom(gp.InnerAddress, f.svc.Config().Pool.Bits()).String(), "dev", vx)
	gpNS.MustExec("ip", "link", "set", vx, "up")
	gateway := f.svc.Config().Pool.Masked().Addr().Next()
	gpNS.MustExec("ip", "route", "add", f.svc.Config().LANPool.String(), "via", gateway.String())

	pingFrom := func(ns interface {
		Exec(string, ...string) (string, error)
	}, dst string) error {
		var err error
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
			if _, err = ns.Exec("ping", "-c", "1", "-W", "1", "-n", dst); err == nil {
				return nil
			}
		}
		return err
	}
	if err := pingFrom(gpNS, dev.addr()); err != nil {
		t.Fatalf("Gate peer → device %s: %v\n%s", dev.addr(), err, f.dump())
	}
	if err := pingFrom(gpNS, hostA.String()); err != nil {
		t.Fatalf("Gate peer → mapped LAN host %s: %v\n%s", hostA, err, f.dump())
	}
	if got, err := getIn(gpNS, "http://"+hostA.String()+"/"); err != nil || got != "site A" {
		t.Fatalf("Gate peer → http://%s/: %q %v", hostA, got, err)
	}
	if err := dev.ping(gp.InnerAddress.String(), 2, 2*time.Second); err != nil {
		t.Fatalf("device → Gate peer %s: %v", gp.InnerAddress, err)
	}
	if out := gpNS.MustExec("ip", "neigh", "show", "dev", vx); !strings.Contains(out, "02:77:66:00:00:01") {
		t.Errorf("the Gate peer did not learn the gateway's MAC for devices:\n%s", out)
	}

	// An unregistered VNI from the same host: dropped, counted.
	vx2 := f.env.Name("vy")
	gpNS.MustExec("ip", "link", "add", vx2, "type", "vxlan", "id", "11", "local", outer.Addr().String(), "remote", gwUnderlay, "dstport", "4789", "dev", link.Name)
	gpNS.MustExec("ip", "addr", "add", "10.250.0.2/24", "dev", vx2)
	gpNS.MustExec("ip", "link", "set", vx2, "up")
	gpNS.Exec("ping", "-c", "1", "-W", "1", "-n", "10.250.0.1")
	waitFor(t, "the unknown VNI to be counted", func() bool { return f.gw.vx.drops.get(dropVXLANUnknown) > 0 })

	// A Gate peer of a group without access reaches nothing; counted.
	other, err := f.svc.CreateGatePeer(ctx, f.admin, controlplane.GatePeerSpec{Name: "stranger", GroupID: others.ID, OuterAddress: outer.Addr(), VNI: 12})
	if err != nil {
		t.Fatal(err)
	}
	vx3 := f.env.Name("vz")
	gpNS.MustExec("ip", "link", "add", vx3, "type", "vxlan", "id", "12", "local", outer.Addr().String(), "remote", gwUnderlay, "dstport", "4789", "dev", link.Name)
	gpNS.MustExec("ip", "addr", "add", netip.PrefixFrom(other.InnerAddress, 32).String(), "dev", vx3)
	gpNS.MustExec("ip", "link", "set", vx3, "up")
	gpNS.MustExec("ip", "route", "add", dev.addr()+"/32", "dev", vx3, "src", other.InnerAddress.String())
	policyDrops := f.gw.router.drops.get(dropPolicy)
	if _, err := gpNS.Exec("ping", "-c", "2", "-W", "1", "-n", dev.addr()); err == nil {
		t.Fatal("a Gate peer of a group without access reached the device")
	}
	if f.gw.router.drops.get(dropPolicy) == policyDrops {
		t.Fatalf("the stranger's packets were not refused by policy\n%s", f.dump())
	}
	gpNS.MustExec("ip", "route", "del", dev.addr()+"/32", "dev", vx3)

	// Removed: its traffic stops at once.
	if err := f.svc.DeleteGatePeer(ctx, f.admin, gp.ID); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the removed Gate peer to be refused", func() bool {
		_, err := gpNS.Exec("ping", "-c", "1", "-W", "1", "-n", "-I", vx, dev.addr())
		return err != nil
	})
}
