// SPDX-License-Identifier: Apache-2.0

package agent

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"

	"github.com/wirefleet/wirefleet/controlplane"
	"github.com/wirefleet/wirefleet/controlplane/api"
	"github.com/wirefleet/wirefleet/controlplane/arcapi"
	"github.com/wirefleet/wirefleet/controlplane/store/sqlitestore"
	"github.com/wirefleet/wirefleet/engine"
	"github.com/wirefleet/wirefleet/gateway"
	"github.com/wirefleet/wirefleet/internal/seal"
	"github.com/wirefleet/wirefleet/keystore"
	"github.com/wirefleet/wirefleet/wgkey"
)

// platform is a real control plane and gateway on loopback, in this
// process (no privilege needed: the gateway's services are on a userspace
// stack, and so is the agent in these tests).
type platform struct {
	svc     *controlplane.Service
	api     string
	gw      *gateway.Gateway
	rejects chan engine.RejectEvent
	gwKS    keystore.Store
	port    int
}

func newPlatform(t *testing.T) *platform {
	t.Helper()
	ctx := context.Background()
	st, err := sqlitestore.Open(ctx, filepath.Join(t.TempDir(), "fleet.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	// A free UDP port for the gateway, known before the control plane
	// advertises it.
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := pc.LocalAddr().(*net.UDPAddr).Port
	pc.Close()
	gwKS, _ := keystore.GenerateMemory()
	gwPub := gwKS.PublicKey()
	secrets, _ := seal.GenerateKey() // SIM cards' keys are sealed with it
	svc := controlplane.New(st, controlplane.Config{Endpoint: fmt.Sprintf("127.0.0.1:%d", port), GatewayPublicKey: func() wgkey.Public { return gwPub }, Logger: quiet, Secrets: secrets})
	p := &platform{svc: svc, rejects: make(chan engine.RejectEvent, 64), gwKS: gwKS, port: port}
	p.startGateway(t)
	t.Cleanup(func() { p.gw.Close() })
	mux := http.NewServeMux()
	mux.Handle("/", api.New(svc, api.Config{Logger: quiet}))
	mux.Handle("/v1/", arcapi.New(svc, arcapi.Config{Logger: quiet})) // Krypton's keys API, for SIM cards
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	p.api = srv.URL
	return p
}

func (p *platform) startGateway(t *testing.T) {
	t.Helper()
	var err error
	p.gw, err = gateway.New(gateway.Config{ControlPlane: p.svc, KeyStore: p.gwKS, ListenPort: uint16(p.port), Logger: quiet,
		EngineHooks: engine.Hooks{HandshakeRejected: func(ev engine.RejectEvent) {
			select {
			case p.rejects <- ev:
			default:
			}
		}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.gw.Start(); err != nil {
		t.Fatal(err)
	}
}

// bootstrapAgent makes an auth key and bootstraps an agent config.
func (p *platform) bootstrapAgent(t *testing.T) (*Config, string) {
	t.Helper()
	_, secret, err := p.svc.CreateAuthKey(context.Background(), controlplane.System, controlplane.AuthKeySpec{MaxUses: 1})
	if err != nil {
		t.Fatal(err)
	}
	return p.bootstrapAgentWith(t, secret)
}

// bootstrapAgentWith bootstraps an agent config with the auth key secret.
func (p *platform) bootstrapAgentWith(t *testing.T, secret string) (*Config, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "agent.json")
	cfg, err := Bootstrap(context.Background(), BootstrapOptions{Server: p.api, AuthKey: secret, ConfigPath: path})
	if err != nil {
		t.Fatal(err)
	}
	return cfg, path
}

// Key rotation under continuous traffic, against the real gateway: DNS
// queries every 10 ms to the platform keep being answered across the switch (at most one
// handshake's worth lost), the SIM's key is the new one afterwards, the old
// key is refused, and the old key file is gone.
func TestRotateUnderTraffic(t *testing.T) {
	p := newPlatform(t)
	cfg, _ := p.bootstrapAgent(t)
	tn, err := Up(context.Background(), cfg, UpOptions{Userspace: true, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer tn.Close()
	keyPath := cfg.KeyRef[len("file:"):]
	oldPriv, _ := os.ReadFile(keyPath)
	oldKS := tn.ks

	ping := pinger(t, tn)
	deadline := time.Now().Add(10 * time.Second)
	for !ping(0) {
		if time.Now().After(deadline) {
			t.Fatal("no ping through the tunnel before rotation")
		}
	}

	const total = 300
	lost := 0
	rotated := make(chan RotateResult, 1)
	for i := 1; i <= total; i++ {
		if i == 100 {
			go func() {
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				defer cancel()
				res, err := tn.Rotate(ctx)
				if err != nil {
					t.Error(err)
				}
				rotated <- res
			}()
		}
		if !ping(i) {
			lost++
		}
		time.Sleep(10 * time.Millisecond)
	}
	res := <-rotated
	t.Logf("rotation: switch took %v; %d of %d pings lost", res.Switched, lost, total)
	if lost > 2 {
		t.Fatalf("%d pings lost across the rotation (want at most a handshake's worth)", lost)
	}
	sim, err := p.svc.View().SIM(context.Background(), cfg.SIMID)
	if err != nil {
		t.Fatal(err)
	}
	if sim.PublicKey.String() != res.NewKey || !sim.NextPublicKey.IsZero() {
		t.Fatalf("SIM keys after rotation: current %s next %s, want %s", sim.PublicKey, sim.NextPublicKey, res.NewKey)
	}
	if cur, _ := os.ReadFile(keyPath); string(cur) == string(oldPriv) {
		t.Fatal("the old key is still in the key file")
	}
	if _, err := os.Stat(keyPath + ".next"); !os.IsNotExist(err) {
		t.Fatal("the next-key file was left behind")
	}

	// The old key is refused now.
	dev, err := engine.New(engine.Config{KeyStore: oldKS, Handler: engine.HandlerFunc(func([]engine.InboundPacket) {}), Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	if err := dev.Up(); err != nil {
		t.Fatal(err)
	}
	defer dev.Close()
	ep, _ := netip.ParseAddrPort(cfg.GatewayEndpoint)
	gwp, _ := dev.AddPeer(engine.PeerConfig{PublicKey: cfg.GatewayPublicKey, AllowedIPs: cfg.AllowedIPs, Endpoint: ep})
	dev.Initiate(gwp)
	timeout := time.After(10 * time.Second)
	for {
		select {
		case ev := <-p.rejects:
			if ev.Key == oldKS.PublicKey() {
				if ev.Reason != engine.RejectUnknownKey && ev.Reason != engine.RejectDenied {
					t.Fatalf("old key rejected for %v", ev.Reason)
				}
				return
			}
		case <-timeout:
			t.Fatal("the old key was not refused after rotation")
		}
	}
}

// pinger returns a function that sends one DNS query to the platform's
// DNS service through the tunnel and reports whether the answer came back
// within 200 ms. (DNS over UDP rather than ICMP: the userspace stack's
// ping socket loses track of replies queued before a read, which would
// measure the test, not the tunnel.)
func pinger(t *testing.T, tn *Tunnel) func(seq int) bool {
	c, err := tn.Net().DialUDPAddrPort(netip.AddrPort{}, netip.MustParseAddrPort("100.127.0.53:53"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	name := dnsmessage.MustNewName("metadata." + gateway.DefaultZone + ".")
	return func(seq int) bool {
		id := uint16(seq)
		b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: id, RecursionDesired: true})
		b.StartQuestions()
		b.Question(dnsmessage.Question{Name: name, Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET})
		q, _ := b.Finish()
		c.SetDeadline(time.Now().Add(200 * time.Millisecond))
		if _, err := c.Write(q); err != nil {
			return false
		}
		buf := make([]byte, 1500)
		for {
			n, err := c.Read(buf)
			if err != nil {
				return false
			}
			var m dnsmessage.Message
			if m.Unpack(buf[:n]) == nil && m.ID == id && len(m.Answers) > 0 {
				return true
			}
		}
	}
}

// The gateway restarts (a new process: no sessions) while the agent
// sends: the agent is back within 10 s without help.
func TestGatewayRestart(t *testing.T) {
	p := newPlatform(t)
	cfg, _ := p.bootstrapAgent(t)
	tn, err := Up(context.Background(), cfg, UpOptions{Userspace: true, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer tn.Close()
	ping := pinger(t, tn)
	deadline := time.Now().Add(10 * time.Second)
	for !ping(0) {
		if time.Now().After(deadline) {
			t.Fatal("no ping before the restart")
		}
	}
	p.gw.Close()
	p.startGateway(t)
	restarted := time.Now()
	for seq := 1; ; seq++ {
		if ping(seq) {
			break
		}
		if time.Since(restarted) > 10*time.Second {
			t.Fatal("the agent was not back within 10 s of the gateway's restart")
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("back %v after the gateway restarted", time.Since(restarted).Round(10*time.Millisecond))
}

// The gateway moves (a new address behind its name) while the agent sends:
// the agent resolves the name again and is back within 10 s.
func TestGatewayAddressChange(t *testing.T) {
	p := newPlatform(t)
	cfg, _ := p.bootstrapAgent(t)
	cfg.GatewayEndpoint = "gateway.fleet.test:51820"
	var current atomic.Pointer[netip.AddrPort]
	first := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(p.port))
	current.Store(&first)
	resolve := func(_ context.Context, hostport string) (netip.AddrPort, error) {
		if hostport != cfg.GatewayEndpoint {
			return netip.AddrPort{}, fmt.Errorf("unexpected name %q", hostport)
		}
		return *current.Load(), nil
	}
	tn, err := Up(context.Background(), cfg, UpOptions{Userspace: true, Logger: quiet, Resolve: resolve})
	if err != nil {
		t.Fatal(err)
	}
	defer tn.Close()
	ping := pinger(t, tn)
	deadline := time.Now().Add(10 * time.Second)
	for !ping(0) {
		if time.Now().After(deadline) {
			t.Fatal("no answer before the move")
		}
	}
	// The gateway comes back elsewhere: another port on another loopback
	// address, and the name now points there.
	p.gw.Close()
	pc, err := net.ListenPacket("udp4", "127.0.0.2:0")
	if err != nil {
		t.Fatal(err)
	}
	p.port = pc.LocalAddr().(*net.UDPAddr).Port
	pc.Close()
	p.startGateway(t)
	moved := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.2"), uint16(p.port))
	current.Store(&moved)
	start := time.Now()
	for seq := 1; !ping(seq); seq++ {
		if time.Since(start) > 10*time.Second {
			t.Fatal("the agent did not follow the gateway's new address within 10 s")
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("back %v after the gateway moved to %v", time.Since(start).Round(10*time.Millisecond), moved)
	// The gateway answers from whichever loopback address the kernel picks
	// (it listens on all), and WireGuard follows the source of the latest
	// authenticated packet: the port tells it is the moved gateway.
	if tn.gateway.Endpoint().Port() != moved.Port() {
		t.Fatalf("endpoint %v, want the moved gateway's port %d", tn.gateway.Endpoint(), moved.Port())
	}
}

// The platform requires a rotation (an operator, or a group's "rotate"
// security action): the agent reads it from its metadata through the
// tunnel, and a rotation clears it.
func TestRotationRequired(t *testing.T) {
	p := newPlatform(t)
	cfg, _ := p.bootstrapAgent(t)
	tn, err := Up(context.Background(), cfg, UpOptions{Userspace: true, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer tn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if req, _, err := tn.RotationRequired(ctx); err != nil || req {
		t.Fatalf("before: required %v, %v", req, err)
	}
	if _, err := p.svc.RequireKeyRotation(ctx, controlplane.System, cfg.SIMID, time.Hour); err != nil {
		t.Fatal(err)
	}
	req, by, err := tn.RotationRequired(ctx)
	if err != nil || !req || time.Until(by) < 50*time.Minute {
		t.Fatalf("after requiring: required %v by %v, %v", req, by, err)
	}
	if _, err := tn.Rotate(ctx); err != nil {
		t.Fatal(err)
	}
	// The rotation completes when the gateway promotes the new key.
	deadline := time.Now().Add(10 * time.Second)
	for {
		req, _, err := tn.RotationRequired(ctx)
		if err == nil && !req {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("still required after the rotation: %v %v", req, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// The agent in userspace mode with both families, against the real
// gateway: the stack holds both addresses, and the platform answers over
// IPv6 as over IPv4, knowing the device (metadata, DNS AAAA).
func TestUserspaceDualStack(t *testing.T) {
	p := newPlatform(t)
	ctx := context.Background()
	cfg, _ := p.bootstrapAgent(t)
	o6, err := p.svc.Overlay6(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.Address6.IsValid() || cfg.Address6.Addr() != o6.Addr(cfg.Address.Addr()) {
		t.Fatalf("bootstrap gave address6 %v for %v", cfg.Address6, cfg.Address)
	}
	tn, err := Up(ctx, cfg, UpOptions{Userspace: true, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer tn.Close()
	meta6 := netip.AddrPortFrom(o6.Addr(gateway.MetadataAddr), 80)
	client := &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{DialContext: tn.Net().DialContext}}
	var body []byte
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := client.Get("http://" + meta6.String() + "/v1/subscriber")
		if err == nil {
			body, _ = io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("metadata over IPv6 from the userspace stack: %v %s", err, body)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if !strings.Contains(string(body), cfg.SIMID) {
		t.Fatalf("metadata over IPv6 answered for another caller: %s", body)
	}
	addrs, err := (&net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return tn.Net().DialContext(ctx, "udp", netip.AddrPortFrom(o6.Addr(gateway.DNSAddrs[0]), 53).String())
	}}).LookupNetIP(ctx, "ip6", cfg.SIMID+".sim."+gateway.DefaultZone)
	if err != nil || len(addrs) != 1 || addrs[0] != cfg.Address6.Addr() {
		t.Fatalf("AAAA for the device's own name over IPv6 DNS: %v %v, want %v", addrs, err, cfg.Address6.Addr())
	}
	if st := tn.Status(); st.Address6 != cfg.Address6 {
		t.Fatalf("status address6 %v, want %v", st.Address6, cfg.Address6)
	}
}
