// SPDX-License-Identifier: Apache-2.0

package gateway

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/wirefleet/wirefleet/controlplane"
	"github.com/wirefleet/wirefleet/fleet"
	"github.com/wirefleet/wirefleet/internal/inettest"
)

// Redirection through a Gate peer that NATs onward: with it on, a
// device's fetch from the stand-in Internet goes through the operator's
// host (the server sees that host's address) and its answer comes back;
// turned off, the normal path is back at once (here: no route, the group
// has no breakout). A next hop that is no Gate peer is refused.
func TestRedirection(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.VXLANListen = ":4789" })
	ctx := context.Background()
	grp := f.group("redirected", fleet.GroupSettings{DeviceToDevice: fleet.D2DPolicy{Mode: fleet.D2DGroup}, Routes: []string{"203.0.113.0/24"}})
	dev := f.newDevice(grp.ID)
	if err := dev.pingUntil(MetadataAddr.String(), 10*time.Second); err != nil {
		t.Fatal(err)
	}

	// The operator's host: a Gate peer on an underlay of its own, with a
	// vxlan interface, forwarding and masquerading onward.
	f.gwNS.MustExec("ip", "addr", "add", "198.18.5.1/24", "dev", f.bridge)
	gpNS := f.env.NewNS("gp")
	outer := netip.MustParsePrefix("198.18.5.10/24")
	_, link := f.join(gpNS, outer)
	gpNS.MustExec("ethtool", "-K", link.Name, "tx", "off") // see TestVXLANGatePeer
	gp, err := f.svc.CreateGatePeer(ctx, f.admin, controlplane.GatePeerSpec{Name: "ids", GroupID: grp.ID, OuterAddress: outer.Addr(), VNI: 20})
	if err != nil {
		t.Fatal(err)
	}
	vx := f.env.Name("vx")
	gpNS.MustExec("ip", "link", "add", vx, "type", "vxlan", "id", "20", "local", outer.Addr().String(), "remote", "198.18.5.1", "dstport", "4789", "dev", link.Name)
	gpNS.MustExec("ip", "addr", "add", netip.PrefixFrom(gp.InnerAddress, f.svc.Config().Pool.Bits()).String(), "dev", vx)
	gpNS.MustExec("ip", "link", "set", vx, "up")
	inet := inettest.New(t, f.env, gpNS)
	gpNS.MustExec("sysctl", "-q", "-w", "net.ipv4.ip_forward=1")
	gpNS.MustExec("nft", "add", "table", "ip", "nat")
	gpNS.MustExec("nft", "add chain ip nat post { type nat hook postrouting priority 100 ; }")
	gpNS.MustExec("nft", "add", "rule", "ip", "nat", "post", "oifname", "!=", vx, "masquerade")

	url := "http://" + inettest.WebA.String() + "/"
	if _, err := dev.curl("--max-time", "2", url); err == nil {
		t.Fatal("reached the Internet before the redirection (the group has no breakout)")
	}

	var fe *fleet.Error
	bad := grp.Settings
	bad.Redirection = fleet.Redirection{Enabled: true, GatePeerID: "gp_nope"}
	if _, err := f.svc.UpdateGroup(ctx, f.admin, grp.ID, nil, &bad); !errors.As(err, &fe) || fe.Field != "settings.redirection.gatePeerId" {
		t.Fatalf("a next hop that is no Gate peer: %v", err)
	}

	on := grp.Settings
	on.Redirection = fleet.Redirection{Enabled: true, GatePeerID: gp.ID}
	if _, err := f.svc.UpdateGroup(ctx, f.admin, grp.ID, nil, &on); err != nil {
		t.Fatal(err)
	}
	var out string
	waitFor(t, "the fetch through the operator's host", func() bool {
		out, err = dev.curl("--max-time", "2", url)
		return err == nil
	})
	if !strings.HasSuffix(out, "\n200") || !strings.Contains(out, "from "+inet.GatewayV4.String()+":") {
		t.Fatalf("redirected fetch: %q (the server must see the operator's host %s)", out, inet.GatewayV4)
	}
	// The platform stays on its path.
	if out, err := dev.curl("http://" + MetadataAddr.String() + "/v1/subscriber"); err != nil || !strings.HasSuffix(out, "\n200") {
		t.Fatalf("metadata while redirected: %v %q", err, out)
	}

	// Its next hop cannot be deleted while the group names it.
	if err := f.svc.DeleteGatePeer(ctx, f.admin, gp.ID); !errors.As(err, &fe) || fe.Code != fleet.CodeConflict {
		t.Fatalf("deleting the next hop of a redirection: %v", err)
	}

	off := grp.Settings
	if _, err := f.svc.UpdateGroup(ctx, f.admin, grp.ID, nil, &off); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the normal path back", func() bool {
		_, err := dev.curl("--max-time", "1", url)
		return err != nil
	})
}
