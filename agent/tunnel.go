// SPDX-License-Identifier: Apache-2.0

package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"sync"
	"time"

	"github.com/wirefleet/wirefleet/engine"
	"github.com/wirefleet/wirefleet/keystore"
	"golang.zx2c4.com/wireguard/conn"
	"golang.zx2c4.com/wireguard/tun"
	"golang.zx2c4.com/wireguard/tun/netstack"
)

// PlatformDNS is the in-tunnel DNS service (see docs/gateway.md).
var PlatformDNS = []netip.Addr{netip.MustParseAddr("100.127.0.53"), netip.MustParseAddr("100.127.1.53")}

// UpOptions say how to bring the tunnel up.
type UpOptions struct {
	// Userspace runs the tunnel on a userspace network stack: no privilege,
	// no interface; reach the tunnel through the proxies, forwards and exposes.
	Userspace bool
	TUNName   string        // kernel mode interface name; default "wf0"
	MTU       int           // default 1420
	Keepalive time.Duration // persistent keepalive; default 25 s, negative: off
	// Userspace-mode entry points; empty: off.
	SOCKSListen string    // local SOCKS5 proxy into the tunnel, e.g. 127.0.0.1:1080
	HTTPListen  string    // local HTTP proxy into the tunnel, e.g. 127.0.0.1:3128
	Forwards    []Forward // local listeners forwarded to tunnel addresses
	Exposes     []Expose  // tunnel ports forwarded to local services
	// StatusPath receives the live status as JSON (0600); "" : none.
	StatusPath string
	// ConfigPath is where the config lives, rewritten when a rotation
	// changes the key reference (rotation by slot); "" : not rewritten.
	ConfigPath string
	Logger     *slog.Logger
	// KeyStore overrides the config's KeyRef (tests, hardware stores).
	KeyStore keystore.Store
	// Resolve turns the gateway's host:port into an address; default DNS
	// through the system resolver.
	Resolve func(ctx context.Context, hostport string) (netip.AddrPort, error)
	// Dial opens the agent's own connections into the tunnel in kernel
	// mode (metadata requests); default a net.Dialer. Tests that run the
	// agent in another network namespace than the process set it.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
}

// Forward is LOCAL=REMOTE: a local TCP listener whose connections go to a
// tunnel address.
type Forward struct {
	Local  string
	Remote netip.AddrPort
}

// Expose is REMOTE_PORT=LOCAL_ADDR: a TCP port on the device's tunnel
// address whose connections go to a local service.
type Expose struct {
	Port  uint16
	Local string
}

// Tunnel is a running tunnel.
type Tunnel struct {
	cfg     *Config
	opts    UpOptions
	log     *slog.Logger
	eng     *engine.Engine
	gateway *engine.Peer
	// cfgMu guards writes of cfg (rotation, route refresh) and its saving.
	cfgMu sync.Mutex
	net   *netstack.Net // userspace mode only
	ks    keystore.Store

	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	closers []io.Closer

	socksAddr, httpAddr net.Addr

	transportOnce sync.Once
	httpTransport *http.Transport // userspace HTTP proxy's way into the tunnel

	// lastInitiate is when the agent last asked for a handshake itself
	// (watch goroutine, after Up).
	lastInitiate time.Time
}

// Up brings the tunnel up and keeps it up until Close: persistent
// keepalive, the gateway's name resolved again when handshakes stop
// succeeding, handshakes retried forever.
func Up(ctx context.Context, cfg *Config, o UpOptions) (t *Tunnel, err error) {
	if o.TUNName == "" {
		o.TUNName = "wf0"
	}
	if o.MTU == 0 {
		o.MTU = 1420
	}
	if o.Keepalive == 0 {
		o.Keepalive = 25 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Resolve == nil {
		o.Resolve = resolve
	}
	t = &Tunnel{cfg: cfg, opts: o, log: o.Logger, ks: o.KeyStore}
	t.ctx, t.cancel = context.WithCancel(context.Background())
	defer func() {
		if err != nil {
			t.Close()
		}
	}()
	if t.ks == nil {
		if t.ks, err = OpenKeyStore(cfg.KeyRef); err != nil {
			return nil, err
		}
	}
	ep, err := o.Resolve(ctx, cfg.GatewayEndpoint)
	if err != nil {
		return nil, err
	}

	var dev tun.Device
	if o.Userspace {
		var addrs []netip.Addr
		for _, a := range cfg.Addresses() {
			addrs = append(addrs, a.Addr())
		}
		dev, t.net, err = netstack.CreateNetTUN(addrs, PlatformDNS, o.MTU)
		if err != nil {
			return nil, fmt.Errorf("agent: userspace network stack: %w", err)
		}
	} else {
		if dev, err = tun.CreateTUN(o.TUNName, o.MTU); err != nil {
			return nil, fmt.Errorf("agent: creating TUN %s (needs CAP_NET_ADMIN; try --userspace): %w", o.TUNName, err)
		}
	}
	t.eng, err = engine.New(engine.Config{
		KeyStore: t.ks,
		Bind:     conn.NewStdNetBind(),
		TUN:      dev,
		Logger:   o.Logger,
	})
	if err != nil {
		dev.Close()
		return nil, err
	}
	if err = t.eng.Up(); err != nil {
		return nil, err
	}
	if !o.Userspace {
		if err = configureInterface(o.TUNName, cfg.Addresses(), cfg.AllowedIPs, o.Logger); err != nil {
			return nil, err
		}
	}
	keepalive := o.Keepalive
	if keepalive < 0 {
		keepalive = 0
	}
	t.gateway, err = t.eng.AddPeer(engine.PeerConfig{
		PublicKey:           cfg.GatewayPublicKey,
		AllowedIPs:          cfg.AllowedIPs,
		Endpoint:            ep,
		PersistentKeepalive: keepalive,
	})
	if err != nil {
		return nil, err
	}
	t.eng.Initiate(t.gateway)
	t.lastInitiate = time.Now()
	if o.Userspace {
		if err = t.startUserspaceServices(); err != nil {
			return nil, err
		}
	}
	t.wg.Add(1)
	go t.watch()
	t.log.Info("tunnel up", "mode", map[bool]string{true: "userspace", false: "kernel"}[o.Userspace],
		"address", cfg.Address, "address6", cfg.Address6, "gateway", cfg.GatewayEndpoint, "sim", cfg.SIMID)
	return t, nil
}

func resolve(ctx context.Context, hostport string) (netip.AddrPort, error) {
	if ap, err := netip.ParseAddrPort(hostport); err == nil {
		return ap, nil
	}
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("agent: gateway endpoint %q: %w", hostport, err)
	}
	addrs, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	if err != nil || len(addrs) == 0 {
		return netip.AddrPort{}, fmt.Errorf("agent: resolving gateway %q: %w", host, err)
	}
	ap, err := netip.ParseAddrPort(net.JoinHostPort(addrs[0].Unmap().String(), port))
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("agent: gateway endpoint %q: %w", hostport, err)
	}
	return ap, nil
}

// unansweredHandshake is how long sent data may go unanswered before the
// agent starts a handshake of its own accord.
const unansweredHandshake = 4 * time.Second

// resolveEvery bounds how often the gateway's name is resolved again.
const resolveEvery = 5 * time.Second

// watch re-resolves the gateway when handshakes stop succeeding and writes
// the status file.
func (t *Tunnel) watch() {
	defer t.wg.Done()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	var lastResolve time.Time
	for {
		select {
		case <-t.ctx.Done():
			return
		case <-tick.C:
		}
		st := t.Status()
		// Data unanswered for a few seconds: the gateway may have lost our
		// session (a restart, a failover) or moved (a new address behind
		// its name). Resolve its name again and handshake now, well before
		// WireGuard's own 15 s timer would, and long before the session
		// would expire.
		ps := t.gateway.Stats()
		unanswered := !ps.UnansweredSince.IsZero() && time.Since(ps.UnansweredSince) > unansweredHandshake
		stale := st.LastHandshake.IsZero() || time.Since(st.LastHandshake) > engine.RejectAfterTime
		if (unanswered || stale) && time.Since(lastResolve) > resolveEvery {
			lastResolve = time.Now()
			if ap, err := t.opts.Resolve(t.ctx, t.cfg.GatewayEndpoint); err == nil {
				if ap != t.gateway.Endpoint() {
					t.log.Info("gateway address changed", "old", t.gateway.Endpoint(), "new", ap)
				}
				t.eng.SetEndpoint(t.gateway, ap)
			} else {
				t.log.Warn("re-resolving the gateway failed", "err", err)
			}
		}
		// At most one request per RekeyTimeout: with a slow key store a
		// request made while a handshake waits on the store would start a
		// second handshake the moment the first completes, and the gateway,
		// seeing that initiation before any data on the new session, would
		// replace the session the agent has just switched to.
		if (unanswered || stale) && time.Since(t.lastInitiate) >= engine.RekeyTimeout {
			t.lastInitiate = time.Now()
			t.eng.Initiate(t.gateway)
		}
		if t.opts.StatusPath != "" {
			if err := writeStatus(t.opts.StatusPath, st); err != nil {
				t.log.Warn("writing status failed", "err", err)
			}
		}
	}
}

// Status is the tunnel's live state.
type Status struct {
	SIMID         string         `json:"simId"`
	IMSI          string         `json:"imsi"`
	Address       netip.Prefix   `json:"address"`
	Address6      netip.Prefix   `json:"address6,omitzero"`
	Gateway       string         `json:"gateway"`
	Endpoint      netip.AddrPort `json:"endpoint"`
	Connected     bool           `json:"connected"`
	LastHandshake time.Time      `json:"lastHandshake"`
	RxBytes       uint64         `json:"rxBytes"`
	TxBytes       uint64         `json:"txBytes"`
	KeyStore      string         `json:"keyStore"`
	PublicKey     string         `json:"publicKey"`
	Mode          string         `json:"mode"`
	PID           int            `json:"pid"`
	Updated       time.Time      `json:"updated"`
}

// Status returns the tunnel's live state.
func (t *Tunnel) Status() Status {
	s := t.gateway.Stats()
	return Status{
		SIMID: t.cfg.SIMID, IMSI: t.cfg.IMSI, Address: t.cfg.Address, Address6: t.cfg.Address6,
		Gateway: t.cfg.GatewayEndpoint, Endpoint: s.Endpoint, Connected: s.HasSession,
		LastHandshake: s.LastHandshake, RxBytes: s.RxBytes, TxBytes: s.TxBytes,
		KeyStore: t.cfg.KeyRef, PublicKey: t.eng.PublicKey().String(), Mode: map[bool]string{true: "userspace", false: "kernel"}[t.opts.Userspace],
		PID: os.Getpid(), Updated: time.Now(),
	}
}

func writeStatus(path string, st Status) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// ReadStatus reads a status file written by a running agent.
func ReadStatus(path string) (Status, error) {
	var st Status
	b, err := os.ReadFile(path)
	if err != nil {
		return st, fmt.Errorf("agent: no status (is the agent up?): %w", err)
	}
	return st, json.Unmarshal(b, &st)
}

// Net returns the userspace network stack (nil in kernel mode): dial and
// listen inside the tunnel with it.
func (t *Tunnel) Net() *netstack.Net { return t.net }

// Engine returns the WireGuard engine (for status and tests).
func (t *Tunnel) Engine() *engine.Engine { return t.eng }

// Close takes the tunnel down and removes what Up added (the TUN interface
// and its routes go with it; the status file is removed).
func (t *Tunnel) Close() error {
	t.cancel()
	for i := len(t.closers) - 1; i >= 0; i-- {
		t.closers[i].Close()
	}
	t.wg.Wait()
	var err error
	if t.eng != nil {
		err = t.eng.Close()
	}
	if t.ks != nil && t.opts.KeyStore == nil {
		CloseKeyStore(t.ks) // ours to close: opened from the config
	}
	if t.opts.StatusPath != "" {
		if rerr := os.Remove(t.opts.StatusPath); rerr != nil && !errors.Is(rerr, os.ErrNotExist) && err == nil {
			err = rerr
		}
	}
	return err
}
