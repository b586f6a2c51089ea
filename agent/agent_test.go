// SPDX-License-Identifier: Apache-2.0

package agent

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wirefleet/wirefleet/controlplane"
	"github.com/wirefleet/wirefleet/controlplane/api"
	"github.com/wirefleet/wirefleet/controlplane/arcapi"
	"github.com/wirefleet/wirefleet/controlplane/store/sqlitestore"
	"github.com/wirefleet/wirefleet/engine"
	"github.com/wirefleet/wirefleet/keystore"
	"github.com/wirefleet/wirefleet/wgkey"
	"golang.org/x/net/proxy"
	"golang.zx2c4.com/wireguard/conn"
	"golang.zx2c4.com/wireguard/tun/netstack"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// A real control plane API on SQLite; returns its URL and service.
func controlPlane(t *testing.T) (string, *controlplane.Service) {
	t.Helper()
	st, err := sqlitestore.Open(context.Background(), filepath.Join(t.TempDir(), "fleet.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	gw, _ := wgkey.NewPrivate()
	svc := controlplane.New(st, controlplane.Config{Endpoint: "127.0.0.1:51820", GatewayPublicKey: gw.Public, Logger: quiet})
	srv := httptest.NewServer(api.New(svc, api.Config{Logger: quiet}))
	t.Cleanup(srv.Close)
	return srv.URL, svc
}

func TestBootstrap(t *testing.T) {
	server, svc := controlPlane(t)
	_, secret, err := svc.CreateAuthKey(context.Background(), controlplane.System, controlplane.AuthKeySpec{MaxUses: 1})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "etc", "agent.json")
	c, err := Bootstrap(context.Background(), BootstrapOptions{Server: server, AuthKey: secret, ConfigPath: path})
	if err != nil {
		t.Fatal(err)
	}
	if len(c.IMSI) != 15 || !strings.HasPrefix(c.IMSI, "99999") || !c.Address.IsValid() || c.GatewayPublicKey.IsZero() {
		t.Fatalf("config %+v", c)
	}
	for _, f := range []string{path, filepath.Join(dir, "etc", "agent.key")} {
		fi, err := os.Stat(f)
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s: %v %v", f, fi.Mode(), err)
		}
	}
	// The platform only ever saw the public key; the config holds none.
	ks, _ := OpenKeyStore(c.KeyRef)
	sim, err := svc.View().SIMByPublicKey(context.Background(), ks.PublicKey())
	if err != nil || sim.ID != c.SIMID {
		t.Fatalf("SIM by key: %v %v", sim.ID, err)
	}
	raw, _ := os.ReadFile(path)
	priv, _ := os.ReadFile(filepath.Join(dir, "etc", "agent.key"))
	if bytes.Contains(raw, bytes.TrimSpace(priv)) {
		t.Fatal("the private key is in the config file")
	}
	loaded, err := LoadConfig(path)
	if err != nil || loaded.SIMID != c.SIMID {
		t.Fatalf("reload: %v", err)
	}
	// Again, with the one-time key already used: the same SIM comes back.
	again, err := Bootstrap(context.Background(), BootstrapOptions{Server: server, AuthKey: secret, ConfigPath: path})
	if err != nil || again.SIMID != c.SIMID {
		t.Fatalf("refresh: %v (SIM %s, want %s)", err, again.SIMID, c.SIMID)
	}
	// A wrong key is refused with the API's code.
	_, err = Bootstrap(context.Background(), BootstrapOptions{Server: server, AuthKey: "wfak_nope", ConfigPath: filepath.Join(dir, "x", "agent.json")})
	if err == nil || !strings.Contains(err.Error(), "unauthorized") {
		t.Fatalf("bad auth key: %v", err)
	}
}

// gatewayStandIn is our engine on a userspace stack at 100.127.100.127,
// serving HTTP there: enough of a gateway to test the agent's userspace
// mode without one.
type gatewayStandIn struct {
	eng  *engine.Engine
	net  *netstack.Net
	addr netip.AddrPort
}

var platformAddr = netip.MustParseAddr("100.127.100.127")

func newGatewayStandIn(t *testing.T, device keystore.Store, deviceAddr netip.Addr) *gatewayStandIn {
	t.Helper()
	dev, tnet, err := netstack.CreateNetTUN([]netip.Addr{platformAddr}, nil, 1420)
	if err != nil {
		t.Fatal(err)
	}
	ks, _ := keystore.GenerateMemory()
	e, err := engine.New(engine.Config{KeyStore: ks, Bind: conn.NewStdNetBind(), TUN: dev, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Up(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	if _, err := e.AddPeer(engine.PeerConfig{PublicKey: device.PublicKey(), AllowedIPs: []netip.Prefix{netip.PrefixFrom(deviceAddr, 32)}}); err != nil {
		t.Fatal(err)
	}
	ln, err := tnet.ListenTCPAddrPort(netip.AddrPortFrom(platformAddr, 80))
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello %s from the platform", r.RemoteAddr)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return &gatewayStandIn{eng: e, net: tnet, addr: netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), e.Port())}
}

func TestUserspaceTunnel(t *testing.T) {
	devKS, _ := keystore.GenerateMemory()
	devAddr := netip.MustParseAddr("10.128.0.5")
	gw := newGatewayStandIn(t, devKS, devAddr)

	// A local service on the device, exposed into the tunnel at port 8080.
	local := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "device service") }))
	defer local.Close()

	cfg := &Config{
		SIMID: "sim-test", IMSI: "999990000000001", Address: netip.PrefixFrom(devAddr, 32),
		GatewayEndpoint: gw.addr.String(), GatewayPublicKey: gw.eng.PublicKey(),
		AllowedIPs: []netip.Prefix{netip.MustParsePrefix("100.127.0.0/16")}, KeyRef: "memory",
	}
	statusPath := filepath.Join(t.TempDir(), "status.json")
	tn, err := Up(context.Background(), cfg, UpOptions{
		Userspace: true, KeyStore: devKS, Logger: quiet, StatusPath: statusPath,
		SOCKSListen: "127.0.0.1:0", HTTPListen: "127.0.0.1:0",
		Exposes: []Expose{{Port: 8080, Local: strings.TrimPrefix(local.URL, "http://")}},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer tn.Close()

	// Through the HTTP proxy.
	pu, _ := url.Parse("http://" + tn.HTTPProxyAddr().String())
	hc := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(pu)}, Timeout: 10 * time.Second}
	body := get(t, hc, "http://100.127.100.127/")
	if !strings.HasPrefix(body, "hello 10.128.0.5:") {
		t.Fatalf("through the HTTP proxy: %q", body)
	}
	// Through SOCKS5.
	d, err := proxy.SOCKS5("tcp", tn.SOCKSAddr().String(), nil, proxy.Direct)
	if err != nil {
		t.Fatal(err)
	}
	sc := &http.Client{Transport: &http.Transport{Dial: d.Dial}, Timeout: 10 * time.Second}
	if body := get(t, sc, "http://100.127.100.127/"); !strings.HasPrefix(body, "hello 10.128.0.5:") {
		t.Fatalf("through SOCKS5: %q", body)
	}
	// The exposed device service, reached from the platform side.
	pc := &http.Client{Transport: &http.Transport{DialContext: gw.net.DialContext}, Timeout: 10 * time.Second}
	if body := get(t, pc, "http://10.128.0.5:8080/"); body != "device service" {
		t.Fatalf("exposed service: %q", body)
	}
	st := tn.Status()
	if !st.Connected || st.RxBytes == 0 || st.TxBytes == 0 || st.LastHandshake.IsZero() {
		t.Fatalf("status %+v", st)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		if fs, err := ReadStatus(statusPath); err == nil && fs.Connected && fs.SIMID == "sim-test" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no status file")
		}
		time.Sleep(100 * time.Millisecond)
	}
	tn.Close()
	if _, err := os.Stat(statusPath); !os.IsNotExist(err) {
		t.Fatal("status file left behind after Close")
	}
}

func get(t *testing.T, c *http.Client, u string) string {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func TestParseForwardExpose(t *testing.T) {
	if f, err := ParseForward("127.0.0.1:8080=10.128.0.7:80"); err != nil || f.Remote.Port() != 80 {
		t.Fatalf("%+v %v", f, err)
	}
	if x, err := ParseExpose("22=127.0.0.1:22"); err != nil || x.Port != 22 {
		t.Fatalf("%+v %v", x, err)
	}
	for _, bad := range []string{"", "x", "=1.2.3.4:5", "127.0.0.1:1=nope"} {
		if _, err := ParseForward(bad); err == nil {
			t.Errorf("ParseForward(%q) accepted", bad)
		}
	}
	for _, bad := range []string{"", "0=127.0.0.1:1", "70000=127.0.0.1:1", "22=noport"} {
		if _, err := ParseExpose(bad); err == nil {
			t.Errorf("ParseExpose(%q) accepted", bad)
		}
	}
}

func TestSOCKSHandshake(t *testing.T) {
	req := []byte{5, 1, 0, 5, 1, 0, 3, 11}
	req = append(req, "example.sim"...)
	req = append(req, 0, 80)
	var out bytes.Buffer
	dst, err := socksHandshake(bytes.NewReader(req), &out)
	if err != nil || dst != "example.sim:80" || !bytes.Equal(out.Bytes(), []byte{5, 0}) {
		t.Fatalf("dst %q err %v reply % x", dst, err, out.Bytes())
	}
	out.Reset()
	// BIND is refused with "command not supported".
	if _, err := socksHandshake(bytes.NewReader([]byte{5, 1, 0, 5, 2, 0, 1, 1, 2, 3, 4, 0, 80}), &out); err == nil || out.Bytes()[3] != socksCommandUnsupported {
		t.Fatalf("BIND: %v % x", err, out.Bytes())
	}
	out.Reset()
	// A client that insists on authentication gets "no acceptable method".
	if _, err := socksHandshake(bytes.NewReader([]byte{5, 1, 2}), &out); err == nil || !bytes.Equal(out.Bytes(), []byte{5, 0xff}) {
		t.Fatalf("auth only: %v % x", err, out.Bytes())
	}
}

// FuzzSOCKSHandshake: arbitrary client bytes never panic, and a reported
// destination is always a valid host:port.
func FuzzSOCKSHandshake(f *testing.F) {
	f.Add([]byte{5, 1, 0, 5, 1, 0, 1, 10, 0, 0, 1, 0, 80})
	f.Add([]byte{5, 1, 0, 5, 1, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 187})
	f.Add([]byte{5, 1, 0, 5, 1, 0, 3, 3, 'a', 'b', 'c', 0, 22})
	f.Fuzz(func(t *testing.T, b []byte) {
		dst, err := socksHandshake(bytes.NewReader(b), io.Discard)
		if err != nil {
			return
		}
		if _, _, err := net.SplitHostPort(dst); err != nil {
			t.Fatalf("destination %q: %v", dst, err)
		}
	})
}

func TestBootstrapNetwork(t *testing.T) {
	st, err := sqlitestore.Open(context.Background(), filepath.Join(t.TempDir(), "fleet.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	gw, _ := wgkey.NewPrivate()
	svc := controlplane.New(st, controlplane.Config{Endpoint: "127.0.0.1:51820", GatewayPublicKey: gw.Public, Logger: quiet})
	for _, c := range []struct {
		trusted string
		ok      bool
	}{{"10.55.0.0/16", false}, {"127.0.0.0/8", true}} {
		srv := httptest.NewServer(arcapi.New(svc, arcapi.Config{Logger: quiet, TrustedNetworks: []arcapi.TrustedNetwork{{Prefix: netip.MustParsePrefix(c.trusted)}}}))
		dir := t.TempDir()
		path := filepath.Join(dir, "agent.json")
		cfg, err := BootstrapNetwork(context.Background(), BootstrapOptions{Server: srv.URL, ConfigPath: path})
		srv.Close()
		if !c.ok {
			if err == nil || !strings.Contains(err.Error(), "403") {
				t.Fatalf("untrusted source: %v", err)
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		ks, err := OpenKeyStore(cfg.KeyRef)
		if err != nil {
			t.Fatal(err)
		}
		sim, err := svc.View().SIMByPublicKey(context.Background(), ks.PublicKey())
		if err != nil || sim.Address != cfg.Address.Addr() {
			t.Fatalf("SIM for the delivered key: %+v %v", sim, err)
		}
	}
}
