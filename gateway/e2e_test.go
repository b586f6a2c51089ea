// SPDX-License-Identifier: Apache-2.0

package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wirefleet/wirefleet/controlplane"
	"github.com/wirefleet/wirefleet/controlplane/api"
	"github.com/wirefleet/wirefleet/controlplane/store"
	"github.com/wirefleet/wirefleet/controlplane/store/sqlitestore"
	"github.com/wirefleet/wirefleet/engine"
	"github.com/wirefleet/wirefleet/fleet"
	"github.com/wirefleet/wirefleet/internal/egress"
	"github.com/wirefleet/wirefleet/internal/netns"
	"github.com/wirefleet/wirefleet/internal/seal"
	"github.com/wirefleet/wirefleet/keystore"
	"github.com/wirefleet/wirefleet/wgkey"
	"golang.org/x/net/dns/dnsmessage"
)

// gwAddr is the gateway's outer address, on a bridge in its namespace that
// every device's veth joins: one address, one L2 segment, as a gateway with
// one public address sees the Internet.
var gwAddr = netip.MustParseAddr("10.230.0.1")

const gwPort = 51820 // the gateway has a namespace of its own

// fixture is a gateway in its own network namespace over a real SQLite
// store, the REST API on loopback, and devices made of Debian wireguard-go
// in namespaces of their own, configured from the API's wg-quick export.
type fixture struct {
	t      testing.TB
	env    *netns.Env
	gwNS   *netns.NS
	bridge string // in gwNS, holding gwAddr
	svc    *controlplane.Service
	st     store.Store // the service's, for arranging what no operation makes
	gw     *Gateway
	api    *httptest.Server
	token  string
	admin  controlplane.Actor
	nDev   int
	hsMu   sync.Mutex
	hsSeen map[string]time.Time // SIM id → first completed handshake
	hsCh   chan string
}

// newFixture builds the fixture; opts adjust the gateway's Config.
func newFixture(t testing.TB, opts ...func(*Config)) *fixture {
	env := netns.New(t)
	f := &fixture{t: t, env: env, gwNS: env.NewNS("gw"), admin: controlplane.System, hsSeen: map[string]time.Time{}, hsCh: make(chan string, 64)}
	f.bridge = env.Name("br")
	// A fixed MAC: otherwise the bridge takes its lowest port's, and
	// changes it as ports join, stranding neighbours' ARP entries.
	f.gwNS.MustExec("ip", "link", "add", f.bridge, "address", "02:00:0a:e6:00:01", "type", "bridge")
	f.gwNS.MustExec("ip", "addr", "add", netip.PrefixFrom(gwAddr, 16).String(), "dev", f.bridge)
	f.gwNS.MustExec("ip", "link", "set", f.bridge, "up")
	ctx := context.Background()
	st, err := sqlitestore.Open(ctx, filepath.Join(t.TempDir(), "wirefleet.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	ks, err := keystore.GenerateMemory()
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	secrets, err := seal.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	f.st = st
	f.svc = controlplane.New(st, controlplane.Config{
		Endpoint:         netip.AddrPortFrom(gwAddr, gwPort).String(),
		GatewayPublicKey: func() wgkey.Public { return ks.PublicKey() },
		Logger:           log,
		Secrets:          secrets,
	})
	cfg := Config{ControlPlane: f.svc, KeyStore: ks, ListenPort: gwPort, Logger: log, Secrets: secrets, Records: st,
		Egress: egress.Policy{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}, // webhook receivers on loopback
		EngineHooks: engine.Hooks{
			HandshakeCompleted: func(ev engine.HandshakeEvent) {
				id := stateOf(ev.Peer).id
				f.hsMu.Lock()
				if _, ok := f.hsSeen[id]; !ok {
					f.hsSeen[id] = time.Now()
				}
				f.hsMu.Unlock()
				select {
				case f.hsCh <- id:
				default:
				}
			},
		}}
	for _, o := range opts {
		o(&cfg)
	}
	f.gw, err = New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	f.gwNS.MustDo(f.gw.Start) // the UDP socket opens inside the gateway's namespace
	t.Cleanup(func() { f.gw.Close() })
	secret, _, err := f.svc.EnsureAdminToken(ctx)
	if err != nil {
		t.Fatal(err)
	}
	f.token = secret
	f.api = httptest.NewServer(api.New(f.svc, api.Config{Logger: log, Connections: f.gw, CaptureDir: cfg.CaptureDir}))
	t.Cleanup(f.api.Close)
	return f
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func (f *fixture) group(name string, s fleet.GroupSettings) fleet.Group {
	f.t.Helper()
	s.Version = fleet.SettingsVersion
	g, err := f.svc.CreateGroup(context.Background(), f.admin, name, s)
	if err != nil {
		f.t.Fatal(err)
	}
	return g
}

// join links namespace n to the gateway's bridge with address addr on n's side.
func (f *fixture) join(n *netns.NS, addr netip.Prefix) (gwEnd, nEnd *netns.Link) {
	gwEnd, nEnd = f.env.Veth(f.gwNS, netip.Prefix{}, n, addr)
	f.gwNS.MustExec("ip", "link", "set", gwEnd.Name, "master", f.bridge)
	return gwEnd, nEnd
}

// device is one Debian wireguard-go with its SIM.
type device struct {
	f      *fixture
	ns     *netns.NS
	wg     *netns.WireGuard
	sim    fleet.SIM
	link   *netns.Link // the device's end of its veth to the gateway
	gwLink *netns.Link // the gateway's end

	configured bool
}

// newDevice makes a namespace with a veth to the gateway and a wireguard-go
// in it, registers a SIM with the device's public key (the platform never
// sees the private key) and configures the device from the API's export.
func (f *fixture) newDevice(groupID string) *device {
	f.t.Helper()
	return f.newPeer(groupID, fleet.KindDevice)
}

// newPeer is newDevice for a SIM of any kind (a site peer: no IMSI).
func (f *fixture) newPeer(groupID string, kind fleet.SIMKind) *device {
	f.t.Helper()
	f.nDev++
	n := f.nDev
	d := &device{f: f, ns: f.env.NewNS(fmt.Sprintf("d%d", n))}
	d.gwLink, d.link = f.join(d.ns, netip.MustParsePrefix(fmt.Sprintf("10.230.%d.2/16", n)))
	d.wg = d.ns.StartWireGuardGo("")
	sim, _, err := f.svc.CreateSIM(context.Background(), f.admin, controlplane.SIMSpec{Name: fmt.Sprintf("dev%d", n), GroupID: groupID, PublicKey: d.wg.Public, Kind: kind})
	if err != nil {
		f.t.Fatal(err)
	}
	d.sim = sim
	d.configure()
	return d
}

// configure applies GET /api/v1/sims/{id}/wireguard-config the way
// wg-quick would: the [Interface] Address on the interface, a route per
// AllowedIPs, the rest through wg setconf.
func (d *device) configure() {
	t := d.f.t
	t.Helper()
	req, _ := http.NewRequest("GET", d.f.api.URL+"/api/v1/sims/"+d.sim.ID+"/wireguard-config", nil)
	req.Header.Set("Authorization", "Bearer "+d.f.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("wireguard-config: %d %s", resp.StatusCode, body)
	}
	var conf strings.Builder
	var addresses, allowed []string
	for _, line := range strings.Split(string(body), "\n") {
		k, v, _ := strings.Cut(line, "=")
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		switch k {
		case "Address":
			for _, a := range strings.Split(v, ",") {
				addresses = append(addresses, strings.TrimSpace(a))
			}
			continue
		case "PrivateKey":
			if v != controlplane.PrivateKeyPlaceholder {
				t.Fatalf("the export holds a private key the platform should not have: %q", line)
			}
			line = "PrivateKey = " + d.wg.Private.Base64()
		case "AllowedIPs":
			for _, a := range strings.Split(v, ",") {
				allowed = append(allowed, strings.TrimSpace(a))
			}
		}
		conf.WriteString(line + "\n")
	}
	d.wg.SetConf(conf.String()) // replaces the peer: any session is gone
	if d.configured {
		return
	}
	d.configured = true
	for _, a := range addresses {
		d.wg.AddAddr(netip.MustParsePrefix(a))
	}
	d.wg.Up()
	for _, a := range allowed {
		d.f.env.AddRoute(d.ns, a, "dev", d.wg.Name)
	}
}

// connection reads the SIM's live state from GET /api/v1/sims/{id}.
func (d *device) connection() fleet.Connection {
	t := d.f.t
	t.Helper()
	req, _ := http.NewRequest("GET", d.f.api.URL+"/api/v1/sims/"+d.sim.ID, nil)
	req.Header.Set("Authorization", "Bearer "+d.f.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var v struct {
		Connection *fleet.Connection `json:"connection"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil || v.Connection == nil {
		t.Fatalf("GET sim: %v, connection %v", err, v.Connection)
	}
	return *v.Connection
}

func (d *device) addr() string { return d.sim.Address.String() }

// ping reports whether count echo requests to dst got answers.
func (d *device) ping(dst string, count int, wait time.Duration) error {
	out, err := d.ns.Exec("ping", "-c", fmt.Sprint(count), "-i", "0.2", "-W", fmt.Sprint(int(wait.Seconds())), "-n", dst)
	if err != nil {
		return fmt.Errorf("%v: %s", err, out)
	}
	return nil
}

// pingUntil pings dst until one answer or timeout.
func (d *device) pingUntil(dst string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var err error
	for time.Now().Before(deadline) {
		if err = d.ping(dst, 1, time.Second); err == nil {
			return nil
		}
	}
	return err
}

// dial opens a TCP connection from inside the device's namespace.
func (d *device) dial(addr string) (net.Conn, error) {
	var c net.Conn
	err := d.ns.Do(func() (err error) {
		c, err = net.DialTimeout("tcp", addr, 5*time.Second)
		return err
	})
	return c, err
}

// listen opens a TCP listener inside the device's namespace.
func (d *device) listen(port int) net.Listener {
	var ln net.Listener
	d.ns.MustDo(func() (err error) {
		ln, err = net.Listen("tcp", fmt.Sprintf("%s:%d", d.addr(), port))
		return err
	})
	d.f.t.Cleanup(func() { ln.Close() })
	return ln
}

// resolve asks the platform DNS server at server for name's A record.
func (d *device) resolve(server, name string) (netip.Addr, dnsmessage.RCode, error) {
	return d.resolveType(server, name, dnsmessage.TypeA)
}

// resolveType asks the platform DNS server at server for name's A or AAAA
// record.
func (d *device) resolveType(server, name string, typ dnsmessage.Type) (netip.Addr, dnsmessage.RCode, error) {
	q := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: 4242, RecursionDesired: true})
	q.StartQuestions()
	q.Question(dnsmessage.Question{Name: dnsmessage.MustNewName(name), Type: typ, Class: dnsmessage.ClassINET})
	msg, _ := q.Finish()
	var c net.Conn
	if err := d.ns.Do(func() (err error) {
		c, err = net.Dial("udp", net.JoinHostPort(server, "53"))
		return err
	}); err != nil {
		return netip.Addr{}, 0, err
	}
	defer c.Close()
	buf := make([]byte, 1500)
	for try := 0; try < 5; try++ {
		c.Write(msg)
		c.SetReadDeadline(time.Now().Add(time.Second))
		n, err := c.Read(buf)
		if err != nil {
			continue
		}
		var p dnsmessage.Parser
		h, err := p.Start(buf[:n])
		if err != nil {
			return netip.Addr{}, 0, err
		}
		p.SkipAllQuestions()
		for {
			a, err := p.Answer()
			if err != nil {
				return netip.Addr{}, h.RCode, nil
			}
			switch r := a.Body.(type) {
			case *dnsmessage.AResource:
				return netip.AddrFrom4(r.A), h.RCode, nil
			case *dnsmessage.AAAAResource:
				return netip.AddrFrom16(r.AAAA), h.RCode, nil
			}
		}
	}
	return netip.Addr{}, 0, fmt.Errorf("no DNS answer from %s", server)
}

// curl runs curl in the device's namespace.
func (d *device) curl(args ...string) (string, error) {
	out, err := d.ns.Exec("curl", append([]string{"-sS", "--max-time", "5", "-w", "\n%{http_code}"}, args...)...)
	return out, err
}

func init() {
	// curl is one more tool the end-to-end tests need in the namespaces.
	netns.Tools = append(netns.Tools, "curl")
}

// dump describes the gateway's state for failure messages.
func (f *fixture) dump() string {
	var b strings.Builder
	fmt.Fprintf(&b, "engine %+v\nrouter drops:", f.gw.Engine().Counters())
	for _, r := range dropReasons {
		if n := f.gw.router.drops.get(r); n > 0 {
			fmt.Fprintf(&b, " %s=%d", r, n)
		}
	}
	f.gw.router.mu.RLock()
	fmt.Fprintf(&b, "\nonline:")
	for a, p := range f.gw.router.byAddr {
		fmt.Fprintf(&b, " %s=%s(held %v, %+v)", a, p.PublicKey().Short(), f.gw.Engine().Peer(p.PublicKey()) == p, p.Stats())
	}
	f.gw.router.mu.RUnlock()
	return b.String()
}
