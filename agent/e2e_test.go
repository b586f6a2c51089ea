// SPDX-License-Identifier: Apache-2.0

package agent

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/wirefleet/wirefleet/controlplane"
	"github.com/wirefleet/wirefleet/fleet"
	"github.com/wirefleet/wirefleet/gateway"
	"github.com/wirefleet/wirefleet/internal/netns"
	"golang.org/x/net/dns/dnsmessage"
)

// Two devices, each an agent with a kernel TUN in its own network
// namespace, bootstrapped with an auth key from the real control plane,
// connected to the real gateway: each reaches metadata and DNS, and they
// ping each other because their group allows device-to-device.
func TestKernelAgentsWithGateway(t *testing.T) {
	env := netns.New(t)
	p := newPlatform(t)
	ctx := context.Background()
	grp, err := p.svc.CreateGroup(ctx, controlplane.System, "fleet", fleet.GroupSettings{DeviceToDevice: fleet.D2DPolicy{Mode: fleet.D2DGroup}})
	if err != nil {
		t.Fatal(err)
	}
	_, secret, err := p.svc.CreateAuthKey(ctx, controlplane.System, controlplane.AuthKeySpec{GroupID: grp.ID, MaxUses: 2})
	if err != nil {
		t.Fatal(err)
	}
	type dev struct {
		ns     *netns.NS
		cfg    *Config
		tn     *Tunnel
		ifname string
	}
	devs := make([]*dev, 2)
	for i := range devs {
		d := &dev{ns: env.NewNS(fmt.Sprintf("d%d", i))}
		up := env.Uplink(d.ns, netip.MustParsePrefix(fmt.Sprintf("10.213.0.%d/30", 4*i)))
		path := filepath.Join(t.TempDir(), "agent.json")
		if d.cfg, err = Bootstrap(ctx, BootstrapOptions{Server: p.api, AuthKey: secret, ConfigPath: path}); err != nil {
			t.Fatal(err)
		}
		// The device reaches the gateway through its uplink.
		d.cfg.GatewayEndpoint = netip.AddrPortFrom(up.RootAddr(), uint16(p.port)).String()
		ifname := env.Name(fmt.Sprintf("t%d", i))
		d.ifname = ifname
		d.ns.MustDo(func() (err error) {
			d.tn, err = Up(ctx, d.cfg, UpOptions{TUNName: ifname, Logger: quiet, ConfigPath: path, Dial: dialIn(d.ns)})
			return err
		})
		t.Cleanup(func() { d.tn.Close() })
		devs[i] = d
	}
	a, b := devs[0], devs[1]
	if out, err := a.ns.Exec("ping", "-c", "3", "-W", "5", b.cfg.Address.Addr().String()); err != nil {
		t.Fatalf("device to device through the gateway: %v\n%s", err, out)
	}
	// Metadata: the caller's own SIM, with no credential.
	resp := httpGetIn(t, a.ns, "100.127.100.127:80", "/v1/subscriber")
	if !strings.Contains(resp, a.cfg.SIMID) || !strings.Contains(resp, a.cfg.IMSI) {
		t.Fatalf("metadata answer:\n%s", resp)
	}
	// Both families: the TUN holds the IPv6 address too, and the peer and
	// the platform answer over IPv6.
	o6, err := p.svc.Overlay6(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := netip.PrefixFrom(o6.Addr(a.cfg.Address.Addr()), 128); a.cfg.Address6 != want {
		t.Fatalf("bootstrap gave address6 %v, want %v", a.cfg.Address6, want)
	}
	if out := a.ns.MustExec("ip", "-6", "addr", "show", "dev", a.ifname); !strings.Contains(out, a.cfg.Address6.String()) {
		t.Fatalf("the TUN lacks its IPv6 address %v:\n%s", a.cfg.Address6, out)
	}
	if out, err := a.ns.Exec("ping", "-c", "3", "-W", "5", b.cfg.Address6.Addr().String()); err != nil {
		t.Fatalf("device to device over IPv6: %v\n%s", err, out)
	}
	resp = httpGetIn(t, a.ns, netip.AddrPortFrom(o6.Addr(gateway.MetadataAddr), 80).String(), "/v1/subscriber")
	if !strings.Contains(resp, a.cfg.SIMID) || !strings.Contains(resp, " 200 ") {
		t.Fatalf("metadata over IPv6:\n%s", resp)
	}
	// DNS: the other device's name resolves to its address.
	var got netip.Addr
	a.ns.MustDo(func() error {
		c, err := net.Dial("udp", "100.127.0.53:53")
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		bld := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: 42, RecursionDesired: true})
		bld.StartQuestions()
		bld.Question(dnsmessage.Question{Name: dnsmessage.MustNewName(b.cfg.SIMID + ".sim." + gateway.DefaultZone + "."), Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET})
		q, _ := bld.Finish()
		if _, err := c.Write(q); err != nil {
			return err
		}
		buf := make([]byte, 1500)
		n, err := c.Read(buf)
		if err != nil {
			return err
		}
		var m dnsmessage.Message
		if err := m.Unpack(buf[:n]); err != nil {
			return err
		}
		for _, ans := range m.Answers {
			if ar, ok := ans.Body.(*dnsmessage.AResource); ok {
				got = netip.AddrFrom4(ar.A)
			}
		}
		return nil
	})
	if got != b.cfg.Address.Addr() {
		t.Fatalf("DNS answered %v for the other device, want %v", got, b.cfg.Address.Addr())
	}

	// A LAN approved behind b reaches a's running tunnel without a
	// reconnect: the engine, the TUN's routes and the saved config.
	lan := netip.MustParsePrefix("172.29.0.0/24")
	if _, err := p.svc.AddSIMRoute(ctx, controlplane.System, b.cfg.SIMID, controlplane.RouteSpec{Prefix: lan}); err != nil {
		t.Fatal(err)
	}
	// In the device's namespace: the TUN's routes are there (the Dial
	// option takes the agent's requests there too).
	refresh := func() (changed bool) {
		t.Helper()
		a.ns.MustDo(func() (err error) { changed, err = a.tn.RefreshAllowedIPs(ctx); return err })
		return changed
	}
	changed := refresh()
	if !changed || !slices.Contains(a.tn.gateway.AllowedIPs(), lan) {
		t.Fatalf("after the refresh: changed %v, allowed IPs %v", changed, a.tn.gateway.AllowedIPs())
	}
	if out := a.ns.MustExec("ip", "route", "show", "dev", a.ifname); !strings.Contains(out, lan.String()) {
		t.Fatalf("no route to the new LAN on %s:\n%s", a.ifname, out)
	}
	if saved, err := LoadConfig(filepath.Join(filepath.Dir(a.cfg.KeyRef[len("file:"):]), "agent.json")); err == nil && !slices.Contains(saved.AllowedIPs, lan) {
		t.Errorf("the saved config does not name the new LAN: %v", saved.AllowedIPs)
	}
	if refresh() {
		t.Error("a refresh without a change changed something")
	}
	if err := p.svc.DeleteSIMRoute(ctx, controlplane.System, b.cfg.SIMID, lan); err != nil {
		t.Fatal(err)
	}
	changed = refresh()
	if out := a.ns.MustExec("ip", "route", "show", "dev", a.ifname); !changed || strings.Contains(out, lan.String()) {
		t.Fatalf("after the route went: changed %v, routes:\n%s", changed, out)
	}

	// The agent's check-in through the tunnel names its version, which
	// the platform keeps as the SIM's agent.
	a.ns.MustDo(func() error { return a.tn.CheckIn(ctx) })
	sim, err := p.svc.GetSIM(ctx, controlplane.System, a.cfg.SIMID)
	if want := "wirefleet-agent/" + Version(); err != nil || sim.Agent != want || sim.AgentSeen.IsZero() {
		t.Fatalf("the SIM's agent after a check-in: %q (seen %v, %v), want %q", sim.Agent, sim.AgentSeen, err, want)
	}
}

// dialIn dials inside ns: the agent's own requests into its tunnel must
// leave from the device's namespace, not the test process's.
func dialIn(ns *netns.NS) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		var c net.Conn
		err := ns.Do(func() (err error) {
			c, err = (&net.Dialer{Timeout: 10 * time.Second}).DialContext(ctx, network, addr)
			return err
		})
		return c, err
	}
}
