package forwarder

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wirefleet/wirefleet/controlplane"
	"github.com/wirefleet/wirefleet/fleet"
	"github.com/wirefleet/wirefleet/gateway"
	"github.com/wirefleet/wirefleet/internal/netns"
	"github.com/wirefleet/wirefleet/keystore"
	"github.com/wirefleet/wirefleet/seal"
	"github.com/wirefleet/wirefleet/store/sqlitestore"
	"github.com/wirefleet/wirefleet/wgkey"
)

func init() {
	// The devices use plain curl and nc.
	netns.Tools = append(netns.Tools, "curl", "nc")
}

// gwAddr is the gateway's outer address on a bridge in its namespace that
// every device's veth joins (as in gateway/e2e_test.go).
var gwAddr = netip.MustParseAddr("10.231.0.1")

const gwPort = 51820

// lockedLog collects the gateway's logs, to check no secret is in them.
type lockedLog struct {
	mu sync.Mutex
	b  bytes.Buffer
	t  *testing.T
}

func (l *lockedLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.t.Log(strings.TrimSpace(string(p)))
	return l.b.Write(p)
}

func (l *lockedLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// fixture is a gateway with the forwarder in its own namespace over a
// real SQLite store, and devices made of Debian wireguard-go in namespaces
// of their own. Destinations are servers on loopback: the forwarder's
// goroutines run in the root namespace.
type fixture struct {
	t      *testing.T
	env    *netns.Env
	gwNS   *netns.NS
	bridge string
	svc    *controlplane.Service
	gw     *gateway.Gateway
	fwd    *Service
	gwPub  wgkey.Public
	logs   *lockedLog
	nDev   int
	once   sync.Once
}

// closeGateway closes the gateway once (gateway.Close must not run twice).
func (f *fixture) closeGateway() (err error) {
	f.once.Do(func() { err = f.gw.Close() })
	return err
}

func newFixture(t *testing.T, cfg Config) *fixture {
	env := netns.New(t)
	f := &fixture{t: t, env: env, gwNS: env.NewNS("gw"), logs: &lockedLog{t: t}}
	f.bridge = env.Name("br")
	f.gwNS.MustExec("ip", "link", "add", f.bridge, "address", "02:00:0a:e7:00:01", "type", "bridge")
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
	f.gwPub = ks.PublicKey()
	key, err := seal.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	f.svc = controlplane.New(st, controlplane.Config{
		Endpoint:         netip.AddrPortFrom(gwAddr, gwPort).String(),
		GatewayPublicKey: func() fleet.Key { return fleet.Key(ks.PublicKey()) },
		Log:              log,
		Secrets:          key,
	})
	cfg.Secrets, cfg.Logger = key, log
	f.fwd = New(cfg)
	f.gw, err = gateway.New(gateway.Config{Service: f.svc, KeyStore: ks, ListenPort: gwPort, Logger: log, Services: []gateway.PlatformService{f.fwd}})
	if err != nil {
		t.Fatal(err)
	}
	f.gwNS.MustDo(f.gw.Start)
	t.Cleanup(func() { f.closeGateway() })
	return f
}

func (f *fixture) group(name string, s fleet.GroupSettings) fleet.Group {
	f.t.Helper()
	g, err := f.svc.CreateGroup(context.Background(), controlplane.System, name, s)
	if err != nil {
		f.t.Fatal(err)
	}
	return g
}

// device is one Debian wireguard-go with its SIM.
type device struct {
	ns  *netns.NS
	wg  *netns.WireGuard
	sim fleet.SIM
}

// newDevice makes a namespace joined to the gateway's bridge, a
// wireguard-go in it with a SIM of the group, the platform range routed
// through the tunnel, and waits for the tunnel to carry traffic.
func (f *fixture) newDevice(groupID string, tags map[string]string) *device {
	f.t.Helper()
	f.nDev++
	n := f.nDev
	d := &device{ns: f.env.NewNS(fmt.Sprintf("d%d", n))}
	gwEnd, _ := f.env.Veth(f.gwNS, netip.Prefix{}, d.ns, netip.MustParsePrefix(fmt.Sprintf("10.231.%d.2/16", n)))
	f.gwNS.MustExec("ip", "link", "set", gwEnd.Name, "master", f.bridge)
	d.wg = d.ns.StartWireGuardGo("")
	sim, _, err := f.svc.CreateSIM(context.Background(), controlplane.System, controlplane.SIMSpec{Name: fmt.Sprintf("dev%d", n), GroupID: groupID, Tags: tags, PublicKey: fleet.Key(d.wg.Public)})
	if err != nil {
		f.t.Fatal(err)
	}
	d.sim = sim
	d.wg.Configure(netns.Config{Peers: []netns.Peer{{PublicKey: f.gwPub, Endpoint: netip.AddrPortFrom(gwAddr, gwPort),
		AllowedIPs: []netip.Prefix{controlplane.DefaultPlatformRange}, PersistentKeepalive: 1}}})
	d.wg.AddAddr(netip.PrefixFrom(sim.Address, 32))
	d.wg.Up()
	f.env.AddRoute(d.ns, controlplane.DefaultPlatformRange.String(), "dev", d.wg.Name)
	// The tunnel is up once the platform's metadata answers.
	deadline := time.Now().Add(20 * time.Second)
	for {
		out, err := d.ns.Exec("curl", "-sS", "--max-time", "2", "-o", "/dev/null", "-w", "%{http_code}", "http://"+gateway.MetadataAddr.String()+"/")
		if err == nil && out != "000" {
			break
		}
		if time.Now().After(deadline) {
			f.t.Fatalf("device %d: the tunnel carries nothing after 20 s: %v %s", n, err, out)
		}
		time.Sleep(200 * time.Millisecond)
	}
	return d
}

// sh runs a shell command line in the device's namespace.
func (d *device) sh(cmd string) (string, error) { return d.ns.Exec("sh", "-c", cmd) }

// testCA is a certificate authority of the test's own, and a server
// certificate it issued for 127.0.0.1.
type testCA struct {
	pem             string
	cert            tls.Certificate
	certPEM, keyPEM string // the server's, for servers configured by files
}

func newTestCA(t testing.TB) testCA {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "wirefleet test CA"}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(24 * time.Hour), IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		KeyUsage: x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return testCA{pem: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})),
		cert:    tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key},
		certPEM: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
		keyPEM:  string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}))}
}

// freePort returns a loopback port nothing listens on.
func freePort(t testing.TB) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := l.Addr().(*net.TCPAddr).Port
	l.Close()
	return p
}

func tlsServerConfig(ca testCA) *tls.Config {
	return &tls.Config{Certificates: []tls.Certificate{ca.cert}}
}

func bytesReader(b []byte) *bytes.Reader { return bytes.NewReader(b) }

// openConns is the number of device connections the forwarder holds.
func (s *Service) openConns() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}
