// SPDX-License-Identifier: Apache-2.0

package remoteaccess_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
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
	"github.com/wirefleet/wirefleet/internal/netns"
	"github.com/wirefleet/wirefleet/keystore"
	"github.com/wirefleet/wirefleet/services/platform"
	"github.com/wirefleet/wirefleet/services/remoteaccess"
	"github.com/wirefleet/wirefleet/wgkey"
)

// The topology: the gateway in a namespace of its own with a bridge
// (10.230.0.1/16) that devices' veths join for WireGuard, and one veth per
// operator-side namespace (10.231.N.1/24 on the gateway's side, .2 on the
// other): the public side of remote access.
var gwAddr = netip.MustParseAddr("10.230.0.1")

const (
	gwPort   = 51820
	portMin  = 40000
	portMax  = 40009
	devPort  = 2222
	greeting = "hello from the device\n"
)

type fixture struct {
	t      testing.TB
	env    *netns.Env
	gwNS   *netns.NS
	bridge string
	svc    *controlplane.Service
	gw     *gateway.Gateway
	remote *remoteaccess.Service
	cert   *x509.Certificate
	fp     string
	admin  controlplane.Actor
	nNS    int
}

func newFixture(t testing.TB, pol controlplane.RemotePolicy) *fixture {
	env := netns.New(t)
	f := &fixture{t: t, env: env, gwNS: env.NewNS("gw"), admin: controlplane.System}
	f.bridge = env.Name("br")
	f.gwNS.MustExec("ip", "link", "add", f.bridge, "address", "02:00:0a:e6:00:01", "type", "bridge")
	f.gwNS.MustExec("ip", "addr", "add", netip.PrefixFrom(gwAddr, 16).String(), "dev", f.bridge)
	f.gwNS.MustExec("ip", "link", "set", f.bridge, "up")
	ctx := context.Background()
	dir := t.TempDir()
	st, err := sqlitestore.Open(ctx, filepath.Join(dir, "wirefleet.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	ks, err := keystore.GenerateMemory()
	if err != nil {
		t.Fatal(err)
	}
	cert, fp, err := remoteaccess.LoadOrCreateCertificate(dir, []string{"10.231.1.1", "remote.test"})
	if err != nil {
		t.Fatal(err)
	}
	f.cert, _ = x509.ParseCertificate(cert.Certificate[0])
	f.fp = fp
	pol.Host = "10.231.1.1"
	pol.PortMin, pol.PortMax = portMin, portMax
	pol.TLSFingerprint = fp
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
	f.svc = controlplane.New(st, controlplane.Config{
		Endpoint:         netip.AddrPortFrom(gwAddr, gwPort).String(),
		GatewayPublicKey: func() wgkey.Public { return ks.PublicKey() },
		Logger:           log,
		Remote:           pol,
	})
	f.remote = remoteaccess.New(remoteaccess.Config{
		TLS:          &tls.Config{Certificates: []tls.Certificate{cert}},
		Logger:       log,
		Resync:       2 * time.Second,
		ControlPlane: f.svc,
		// Public ports open inside the gateway's namespace.
		Listen: func(network, addr string) (ln net.Listener, err error) {
			err = f.gwNS.Do(func() (err error) {
				ln, err = net.Listen(network, addr)
				return err
			})
			return ln, err
		},
	})
	f.gw, err = gateway.New(gateway.Config{ControlPlane: f.svc, KeyStore: ks, ListenPort: gwPort, Logger: log, Services: []platform.Service{f.remote}})
	if err != nil {
		t.Fatal(err)
	}
	f.gwNS.MustDo(f.gw.Start)
	t.Cleanup(func() { f.gw.Close() })
	return f
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// device is a Debian wireguard-go in a namespace, with its SIM, configured
// from the platform's wg-quick export.
type device struct {
	ns  *netns.NS
	wg  *netns.WireGuard
	sim fleet.SIM
}

func (f *fixture) newDevice() *device {
	t := f.t
	t.Helper()
	f.nNS++
	d := &device{ns: f.env.NewNS(fmt.Sprintf("d%d", f.nNS))}
	gwEnd, _ := f.env.Veth(f.gwNS, netip.Prefix{}, d.ns, netip.MustParsePrefix(fmt.Sprintf("10.230.%d.2/16", f.nNS)))
	f.gwNS.MustExec("ip", "link", "set", gwEnd.Name, "master", f.bridge)
	d.wg = d.ns.StartWireGuardGo("")
	ctx := context.Background()
	sim, _, err := f.svc.CreateSIM(ctx, f.admin, controlplane.SIMSpec{Name: fmt.Sprintf("dev%d", f.nNS), PublicKey: d.wg.Public})
	if err != nil {
		t.Fatal(err)
	}
	d.sim = sim
	_, sess, err := f.svc.SessionFor(ctx, f.admin, sim.ID)
	if err != nil {
		t.Fatal(err)
	}
	sess.PrivateKey = d.wg.Private
	var conf strings.Builder
	for _, line := range strings.Split(controlplane.WireGuardConfig(sim, sess), "\n") {
		if !strings.HasPrefix(line, "Address") { // wg-quick's, not wg's
			conf.WriteString(line + "\n")
		}
	}
	d.wg.SetConf(conf.String())
	d.wg.AddAddr(netip.PrefixFrom(sim.Address, 32))
	d.wg.Up()
	for _, a := range sess.AllowedIPs {
		f.env.AddRoute(d.ns, a, "dev", d.wg.Name)
	}
	// Up when it reaches the metadata service.
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, err := d.ns.Exec("ping", "-c", "1", "-W", "1", "-n", gateway.MetadataAddr.String()); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("device %s never reached the platform", sim.ID)
		}
	}
	return d
}

// serve runs a TCP service on the device: a greeting, then an echo. It
// reports every connection's remote address on seen.
func (d *device) serve(t testing.TB, port int) (seen chan netip.AddrPort) {
	seen = make(chan netip.AddrPort, 1024)
	var ln net.Listener
	d.ns.MustDo(func() (err error) {
		ln, err = net.Listen("tcp", netip.AddrPortFrom(d.sim.Address, uint16(port)).String())
		return err
	})
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			select {
			case seen <- netip.MustParseAddrPort(c.RemoteAddr().String()):
			default: // benchmarks make more connections than anyone reads
			}
			go func() {
				defer c.Close()
				io.WriteString(c, greeting)
				io.Copy(c, c)
			}()
		}
	}()
	return seen
}

// operator is a namespace on the public side of the gateway.
type operator struct {
	ns   *netns.NS
	addr netip.Addr
	gw   netip.Addr // the gateway's address as this namespace sees it
}

func (f *fixture) newOperator(n int) *operator {
	o := &operator{ns: f.env.NewNS(fmt.Sprintf("op%d", n)), addr: netip.MustParseAddr(fmt.Sprintf("10.231.%d.2", n)), gw: netip.MustParseAddr(fmt.Sprintf("10.231.%d.1", n))}
	f.env.Veth(f.gwNS, netip.PrefixFrom(o.gw, 24), o.ns, netip.PrefixFrom(o.addr, 24))
	return o
}

func (o *operator) dial(port int) (net.Conn, error) {
	var c net.Conn
	err := o.ns.Do(func() (err error) {
		c, err = net.DialTimeout("tcp", netip.AddrPortFrom(o.gw, uint16(port)).String(), 5*time.Second)
		return err
	})
	return c, err
}

func (f *fixture) waitListening(id string, want bool) {
	f.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		has := false
		for _, l := range f.remote.Listening() {
			has = has || l == id
		}
		if has == want {
			return
		}
		if time.Now().After(deadline) {
			f.t.Fatalf("mapping %s listening: want %v", id, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// events returns the actions recorded for a mapping, oldest first.
func (f *fixture) events(id string) []fleet.Event {
	p, err := f.svc.ListEvents(context.Background(), f.admin, store.EventFilter{ObjectID: id, PageRequest: store.PageRequest{Limit: 1000}})
	if err != nil {
		f.t.Fatal(err)
	}
	out := make([]fleet.Event, 0, len(p.Items))
	for i := len(p.Items) - 1; i >= 0; i-- {
		out = append(out, p.Items[i])
	}
	return out
}

func (f *fixture) waitEvent(id, action string, match func(fleet.Event) bool) fleet.Event {
	f.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		for _, e := range f.events(id) {
			if e.Action == action && (match == nil || match(e)) {
				return e
			}
		}
		if time.Now().After(deadline) {
			f.t.Fatalf("no %s event for %s; trail: %+v", action, id, f.events(id))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// readGreeting reads the device's greeting through c.
func readGreeting(c net.Conn) (string, error) {
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	return line, err
}

// TestRemoteAccess is the walk-through: an operator reaches a
// device's TCP service through a mapping and the device sees the platform
// address; another source is refused; at expiry the open connection ends
// and new ones are refused; with TLS a TLS client reaches the plain
// service; deleting a mapping cuts it; every step is in the audit trail.
func TestRemoteAccess(t *testing.T) {
	f := newFixture(t, controlplane.RemotePolicy{})
	d := f.newDevice()
	seen := d.serve(t, devPort)
	op, other := f.newOperator(1), f.newOperator(2)
	ctx := context.Background()

	// A mapping needs explicit sources.
	if _, err := f.svc.CreateMapping(ctx, f.admin, controlplane.MappingSpec{SIMID: d.sim.ID, Port: devPort}); !isCode(err, fleet.CodeRequired, "allowedSources") {
		t.Fatalf("mapping without sources: %v", err)
	}
	const life = 12 * time.Second
	m, err := f.svc.CreateMapping(ctx, f.admin, controlplane.MappingSpec{SIMID: d.sim.ID, Port: devPort, Duration: life,
		AllowedSources: []netip.Prefix{netip.PrefixFrom(op.addr, 32)}})
	if err != nil {
		t.Fatal(err)
	}
	if m.Host != "10.231.1.1" || m.PublicPort < portMin || m.PublicPort > portMax || m.TLSFingerprint != "" {
		t.Fatalf("mapping answer %+v", m)
	}
	f.waitListening(m.ID, true)

	// The operator reaches the service; the device sees 100.127.10.17.
	c, err := op.dial(m.PublicPort)
	if err != nil {
		t.Fatalf("operator dial: %v", err)
	}
	defer c.Close()
	if g, err := readGreeting(c); err != nil || g != greeting {
		t.Fatalf("greeting through the mapping: %q %v", g, err)
	}
	select {
	case src := <-seen:
		if src.Addr() != remoteaccess.DefaultSource {
			t.Fatalf("the device saw the connection come from %s, want %s", src, remoteaccess.DefaultSource)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the device saw no connection")
	}
	payload := strings.Repeat("x", 100_000)
	go io.WriteString(c, payload)
	got := make([]byte, len(payload))
	if _, err := io.ReadFull(c, got); err != nil || string(got) != payload {
		t.Fatalf("echo through the mapping: %v", err)
	}
	f.waitEvent(m.ID, "mapping.connect", func(e fleet.Event) bool { return e.Details["source"] == op.addr.String() })

	// Another source: accepted by TCP, closed at once, nothing reaches the device.
	oc, err := other.dial(m.PublicPort)
	if err == nil {
		oc.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, rerr := oc.Read(make([]byte, 64))
		oc.Close()
		if n != 0 || rerr == nil || errors.Is(rerr, errTimeout(rerr)) {
			t.Fatalf("other source read %d bytes, err %v: not refused", n, rerr)
		}
	}
	select {
	case src := <-seen:
		t.Fatalf("a refused source's connection reached the device (from %s)", src)
	case <-time.After(300 * time.Millisecond):
	}
	f.waitEvent(m.ID, "mapping.deny", func(e fleet.Event) bool {
		return e.Details["source"] == other.addr.String() && e.Details["reason"] == remoteaccess.DenySource
	})

	// Expiry: the open connection ends, the port closes.
	c.SetReadDeadline(time.Now().Add(life + 15*time.Second))
	if _, err := io.Copy(io.Discard, c); err != nil && !isReset(err) {
		t.Fatalf("open connection at expiry: %v", err)
	}
	if time.Now().Before(m.Expires) {
		t.Fatalf("the connection ended before expiry (%s)", time.Until(m.Expires))
	}
	f.waitListening(m.ID, false)
	if c2, err := op.dial(m.PublicPort); err == nil {
		c2.SetReadDeadline(time.Now().Add(3 * time.Second))
		n, _ := c2.Read(make([]byte, 64))
		c2.Close()
		t.Fatalf("connection accepted after expiry (read %d bytes)", n)
	}
	closeEv := f.waitEvent(m.ID, "mapping.close", nil)
	if closeEv.Details["reason"] != "expired" || num(closeEv.Details["bytesToDevice"]) != float64(len(payload)) ||
		num(closeEv.Details["bytesFromDevice"]) != float64(len(greeting)+len(payload)) || num(closeEv.Details["durationMs"]) <= 0 {
		t.Fatalf("close event %+v", closeEv.Details)
	}
	f.waitEvent(m.ID, "mapping.expire", nil)
	if _, err := f.svc.GetMapping(ctx, f.admin, m.ID); !isCode(err, fleet.CodeNotFound, "id") {
		t.Fatalf("expired mapping still listed: %v", err)
	}

	// TLS: a TLS client, pinning the platform's certificate, reaches the plain service.
	tm, err := f.svc.CreateMapping(ctx, f.admin, controlplane.MappingSpec{SIMID: d.sim.ID, Port: devPort, TLS: true,
		AllowedSources: []netip.Prefix{netip.MustParsePrefix("10.231.1.0/24")}})
	if err != nil {
		t.Fatal(err)
	}
	if tm.TLSFingerprint != f.fp || time.Until(tm.Expires) < 59*time.Minute || time.Until(tm.Expires) > time.Hour {
		t.Fatalf("TLS mapping %+v (want fingerprint %s and the 1 h default)", tm, f.fp)
	}
	f.waitListening(tm.ID, true)
	raw, err := op.dial(tm.PublicPort)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(f.cert)
	tc := tls.Client(raw, &tls.Config{RootCAs: roots, ServerName: "remote.test"})
	defer tc.Close()
	if g, err := readGreeting(tc); err != nil || g != greeting {
		t.Fatalf("greeting over TLS: %q %v", g, err)
	}
	if got := remoteaccess.Fingerprint(tc.ConnectionState().PeerCertificates[0].Raw); got != tm.TLSFingerprint {
		t.Fatalf("served certificate %s, API reports %s", got, tm.TLSFingerprint)
	}
	if src := <-seen; src.Addr() != remoteaccess.DefaultSource {
		t.Fatalf("TLS connection reached the device from %s", src)
	}
	io.WriteString(tc, "over tls\n")
	tc.SetReadDeadline(time.Now().Add(5 * time.Second))
	if line, err := bufio.NewReader(tc).ReadString('\n'); err != nil || line != "over tls\n" {
		t.Fatalf("TLS echo: %q %v", line, err)
	}

	// Deleting the mapping ends its connection and closes the port.
	if err := f.svc.DeleteMapping(ctx, f.admin, tm.ID); err != nil {
		t.Fatal(err)
	}
	tc.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.Copy(io.Discard, tc); err != nil && !isReset(err) {
		t.Fatalf("TLS connection after delete: %v", err)
	}
	f.waitListening(tm.ID, false)
	f.waitEvent(tm.ID, "mapping.close", func(e fleet.Event) bool { return e.Details["reason"] == "deleted" })

	// The whole trail, in order. (A connection's close and its mapping's
	// expiry are written by different goroutines: either may come first.)
	for _, c := range []struct {
		id   string
		want []string
	}{
		{m.ID, []string{"mapping.create", "mapping.connect", "mapping.deny", "mapping.close"}},
		{m.ID, []string{"mapping.create", "mapping.connect", "mapping.deny", "mapping.expire"}},
		{tm.ID, []string{"mapping.create", "mapping.connect", "mapping.delete", "mapping.close"}},
	} {
		var got []string
		for _, e := range f.events(c.id) {
			got = append(got, e.Action)
		}
		if !containsInOrder(got, c.want) {
			t.Errorf("trail of %s: %v, want %v in order", c.id, got, c.want)
		}
	}
}

func containsInOrder(got, want []string) bool {
	i := 0
	for _, g := range got {
		if i < len(want) && g == want[i] {
			i++
		}
	}
	return i == len(want)
}

func num(v any) float64 {
	f, _ := v.(float64)
	return f
}

func isCode(err error, code, field string) bool {
	var fe *fleet.Error
	return errors.As(err, &fe) && fe.Code == code && fe.Field == field
}

func isReset(err error) bool {
	return err != nil && (strings.Contains(err.Error(), "reset") || strings.Contains(err.Error(), "broken pipe"))
}

// errTimeout returns err itself when it is a timeout, so errors.Is matches
// only timeouts.
func errTimeout(err error) error {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return err
	}
	return errSentinel
}

var errSentinel = errors.New("not a timeout")
