// SPDX-License-Identifier: Apache-2.0

// Package gwtest is the end-to-end platform the gateway's service packages
// test against: a gateway in a network namespace of its own, on a bridge
// every device's veth joins (one outer address, one L2 segment, as a
// gateway with one public address sees the Internet), over a real SQLite
// store; and devices made of Debian wireguard-go in namespaces of their
// own, configured from the control plane's wg-quick export the way
// wg-quick would. Everything is removed when the test ends (internal/netns).
package gwtest

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wirefleet/wirefleet/controlplane"
	"github.com/wirefleet/wirefleet/controlplane/store"
	"github.com/wirefleet/wirefleet/controlplane/store/sqlitestore"
	"github.com/wirefleet/wirefleet/fleet"
	"github.com/wirefleet/wirefleet/gateway"
	"github.com/wirefleet/wirefleet/internal/fairshare"
	"github.com/wirefleet/wirefleet/internal/netns"
	"github.com/wirefleet/wirefleet/internal/seal"
	"github.com/wirefleet/wirefleet/keystore"
	"github.com/wirefleet/wirefleet/services/platform"
	"github.com/wirefleet/wirefleet/wgkey"
)

func init() {
	// Devices talk plain curl and nc.
	netns.Tools = append(netns.Tools, "curl", "nc")
}

// Port is the gateway's WireGuard port (it has a namespace of its own).
const Port = 51820

// Options configure a Platform.
type Options struct {
	// Subnet is the second octet of the outer network 10.<Subnet>.0.0/16
	// (the gateway is .0.1, device n is .n.2). Each package uses its own, so
	// packages testing at once never meet.
	Subnet byte
	// Secrets seals group settings' secrets (forwarder credentials, the
	// webhook secret) and opens them in the gateway.
	Secrets *seal.Key
	// Services returns the platform services to run on the gateway.
	Services func(st store.Store, log *slog.Logger) []platform.Service
	// Log receives the platform's logs (default: the test's log).
	Log io.Writer
	// Level is the log level (default Info).
	Level slog.Level
	// Share is each SIM's share of the services (zero: the defaults).
	Share fairshare.Limits
	// Inspect lets the gateway inspect groups' traffic (records in the
	// store, forwarded through the first service that can).
	Inspect bool
	// Remote is the control plane's remote-access policy (mappings are
	// refused without one).
	Remote controlplane.RemotePolicy
}

// Platform is a running gateway and control plane.
type Platform struct {
	T       testing.TB
	Env     *netns.Env
	NS      *netns.NS // the gateway's namespace
	Bridge  string
	Addr    netip.Addr // the gateway's outer address
	Store   store.Store
	Service *controlplane.Service
	Gateway *gateway.Gateway
	Key     wgkey.Public // the gateway's public key
	Logger  *slog.Logger
	subnet  byte
	nDev    int
}

// Start builds and starts a platform; the test's cleanup stops it.
func Start(t testing.TB, o Options) *Platform {
	t.Helper()
	env := netns.New(t)
	p := &Platform{T: t, Env: env, NS: env.NewNS("gw"), subnet: o.Subnet, Addr: netip.AddrFrom4([4]byte{10, o.Subnet, 0, 1})}
	p.Bridge = env.Name("br")
	// A fixed MAC: otherwise the bridge takes its lowest port's, and
	// changes it as ports join, stranding neighbours' ARP entries.
	p.NS.MustExec("ip", "link", "add", p.Bridge, "address", fmt.Sprintf("02:00:0a:%02x:00:01", o.Subnet), "type", "bridge")
	p.NS.MustExec("ip", "addr", "add", netip.PrefixFrom(p.Addr, 16).String(), "dev", p.Bridge)
	p.NS.MustExec("ip", "link", "set", p.Bridge, "up")
	ctx := context.Background()
	st, err := sqlitestore.Open(ctx, filepath.Join(t.TempDir(), "wirefleet.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	p.Store = st
	ks, err := keystore.GenerateMemory()
	if err != nil {
		t.Fatal(err)
	}
	p.Key = ks.PublicKey()
	w := o.Log
	if w == nil {
		w = testLog{t}
	}
	p.Logger = slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: o.Level}))
	cfg := controlplane.Config{
		Endpoint:         netip.AddrPortFrom(p.Addr, Port).String(),
		GatewayPublicKey: func() wgkey.Public { return ks.PublicKey() },
		Logger:           p.Logger,
		Remote:           o.Remote,
	}
	if o.Secrets != nil { // never a nil *seal.Key inside the interface
		cfg.Secrets = o.Secrets
	}
	p.Service = controlplane.New(st, cfg)
	var services []platform.Service
	if o.Services != nil {
		services = o.Services(st, p.Logger)
	}
	gcfg := gateway.Config{ControlPlane: p.Service, KeyStore: ks, ListenPort: Port, Logger: p.Logger, Services: services, Secrets: o.Secrets, ServiceShare: o.Share}
	if o.Inspect {
		gcfg.Records = st
		for _, s := range services {
			if rf, ok := s.(gateway.RecordForwarder); ok {
				gcfg.RecordForwarder = rf
				break
			}
		}
	}
	p.Gateway, err = gateway.New(gcfg)
	if err != nil {
		t.Fatal(err)
	}
	p.NS.MustDo(p.Gateway.Start) // the UDP socket opens inside the gateway's namespace
	t.Cleanup(func() { p.Gateway.Close() })
	return p
}

// testLog writes log lines to the test's log.
type testLog struct{ t testing.TB }

func (w testLog) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(b)))
	return len(b), nil
}

// Group creates a group.
func (p *Platform) Group(name string, s fleet.GroupSettings) fleet.Group {
	p.T.Helper()
	g, err := p.Service.CreateGroup(context.Background(), controlplane.System, name, s)
	if err != nil {
		p.T.Fatal(err)
	}
	return g
}

// Device is one Debian wireguard-go with its SIM.
type Device struct {
	NS  *netns.NS
	WG  *netns.WireGuard
	SIM fleet.SIM
}

// Device makes a namespace joined to the gateway's bridge, a wireguard-go
// in it with a new SIM of the group (tags may be nil), configures it from
// the SIM's wg-quick export, and waits until the tunnel carries traffic.
func (p *Platform) Device(groupID string, tags map[string]string) *Device {
	t := p.T
	t.Helper()
	d := p.NewDevice()
	ctx := context.Background()
	sim, _, err := p.Service.CreateSIM(ctx, controlplane.System, controlplane.SIMSpec{Name: fmt.Sprintf("dev%d", p.nDev), GroupID: groupID, Tags: tags, PublicKey: d.WG.Public})
	if err != nil {
		t.Fatal(err)
	}
	d.SIM = sim
	sim, sess, err := p.Service.SessionFor(ctx, controlplane.System, sim.ID)
	if err != nil {
		t.Fatal(err)
	}
	p.Connect(d, sim, sess)
	return d
}

// NewDevice makes a device's namespace on the bridge and its wireguard-go,
// with no SIM yet and its tunnel down (Connect brings it up).
func (p *Platform) NewDevice() *Device {
	p.nDev++
	n := p.nDev
	d := &Device{NS: p.Env.NewNS(fmt.Sprintf("d%d", n))}
	gwEnd, _ := p.Env.Veth(p.NS, netip.Prefix{}, d.NS, netip.MustParsePrefix(fmt.Sprintf("10.%d.%d.2/16", p.subnet, n)))
	p.NS.MustExec("ip", "link", "set", gwEnd.Name, "master", p.Bridge)
	d.WG = d.NS.StartWireGuardGo("")
	return d
}

// Connect configures the device from its SIM's wg-quick export and waits
// until the tunnel carries traffic.
func (p *Platform) Connect(d *Device, sim fleet.SIM, sess fleet.Session) {
	t := p.T
	t.Helper()
	n := p.nDev
	p.configure(d, controlplane.WireGuardConfig(sim, sess))
	deadline := time.Now().Add(20 * time.Second)
	for {
		out, err := d.NS.Exec("curl", "-sS", "--max-time", "2", "-o", "/dev/null", "-w", "%{http_code}", "http://"+gateway.MetadataAddr.String()+"/")
		if err == nil && out != "000" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("device %d: the tunnel carries nothing after 20 s: %v %s", n, err, out)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// configure applies a wg-quick file as wg-quick would: the address on the
// interface, a route per AllowedIPs, the rest through wg setconf.
func (p *Platform) configure(d *Device, export string) {
	t := p.T
	var conf strings.Builder
	var addresses, allowed []string
	for _, line := range strings.Split(export, "\n") {
		k, v, _ := strings.Cut(line, "=")
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		switch k {
		case "Address":
			for _, a := range strings.Split(v, ",") {
				addresses = append(addresses, strings.TrimSpace(a))
			}
			continue
		case "DNS":
			continue
		case "PrivateKey":
			if v != controlplane.PrivateKeyPlaceholder {
				t.Fatalf("the export holds a private key the platform should not have: %q", line)
			}
			line = "PrivateKey = " + d.WG.Private.Base64()
		case "AllowedIPs":
			for _, a := range strings.Split(v, ",") {
				allowed = append(allowed, strings.TrimSpace(a))
			}
		}
		conf.WriteString(line + "\n")
	}
	d.WG.SetConf(conf.String())
	for _, a := range addresses {
		d.WG.AddAddr(netip.MustParsePrefix(a))
	}
	d.WG.Up()
	for _, a := range allowed {
		p.Env.AddRoute(d.NS, a, "dev", d.WG.Name)
	}
}

// Sh runs a shell line in the device's namespace.
func (d *Device) Sh(line string) (string, error) { return d.NS.Exec("sh", "-c", line) }
