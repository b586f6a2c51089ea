// SPDX-License-Identifier: Apache-2.0

package forwarder

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"log/slog"
	"math/big"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wirefleet/wirefleet/controlplane"
	"github.com/wirefleet/wirefleet/controlplane/store"
	"github.com/wirefleet/wirefleet/fleet"
	"github.com/wirefleet/wirefleet/gateway"
	"github.com/wirefleet/wirefleet/internal/egress"
	"github.com/wirefleet/wirefleet/internal/fairshare"
	"github.com/wirefleet/wirefleet/internal/gwtest"
	"github.com/wirefleet/wirefleet/internal/netns"
	"github.com/wirefleet/wirefleet/internal/seal"
	"github.com/wirefleet/wirefleet/services/platform"
)

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

// fixture is the shared platform (internal/gwtest) with the forwarder on
// the gateway, its logs collected. Destinations are servers on loopback:
// the forwarder's goroutines run in the root namespace.
type fixture struct {
	*gwtest.Platform
	t    *testing.T
	svc  *controlplane.Service
	gw   *gateway.Gateway
	fwd  *Service
	logs *lockedLog
}

// closeGateway closes the gateway (a test's own close, before cleanup's).
func (f *fixture) closeGateway() error { return f.gw.Close() }

func newFixture(t *testing.T, cfg Config) *fixture { return newFixtureWith(t, cfg, gwtest.Options{}) }

// newFixtureShare is newFixture with each SIM's share of the services.
func newFixtureShare(t *testing.T, cfg Config, share fairshare.Limits) *fixture {
	return newFixtureWith(t, cfg, gwtest.Options{Share: share})
}

// newFixtureWith is newFixture with the platform's options o (its
// subnet, secrets, logs and services are the fixture's).
func newFixtureWith(t *testing.T, cfg Config, o gwtest.Options) *fixture {
	key, err := seal.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{t: t, logs: &lockedLog{t: t}}
	f.Platform = gwtest.Start(t, gwtest.Options{Subnet: 231, Secrets: key, Log: f.logs, Level: slog.LevelDebug, Share: o.Share, Inspect: o.Inspect,
		Services: func(_ store.Store, log *slog.Logger) []platform.Service {
			cfg.Secrets, cfg.Logger = key, log
			if cfg.Egress.Allow == nil {
				cfg.Egress = testEgress // the test's upstreams: loopback and its namespaces
			}
			f.fwd = New(cfg)
			return []platform.Service{f.fwd}
		}})
	f.svc, f.gw = f.Service, f.Gateway
	return f
}

func (f *fixture) group(name string, s fleet.GroupSettings) fleet.Group { return f.Group(name, s) }

// device is one Debian wireguard-go with its SIM.
type device struct {
	ns  *netns.NS
	wg  *netns.WireGuard
	sim fleet.SIM
}

// newDevice makes a device of the group (gwtest.Platform.Device) and
// waits for its tunnel to carry traffic.
func (f *fixture) newDevice(groupID string, tags map[string]string) *device {
	f.t.Helper()
	d := f.Device(groupID, tags)
	return &device{ns: d.NS, wg: d.WG, sim: d.SIM}
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

// testEgress lets the forwarder reach the tests' own upstreams: loopback
// and the addresses of the namespaces they create (10.0.0.0/8). The
// default policy refuses both (TestEgressRefused).
var testEgress = egress.Policy{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("10.0.0.0/8")}}
