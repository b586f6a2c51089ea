// SPDX-License-Identifier: Apache-2.0

// Command wirefleet-agent is the device side of wirefleet: it obtains the
// device's SIM, brings its WireGuard tunnel to the gateway up (kernel TUN
// with privilege, a userspace network stack without), and reports status.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/wirefleet/wirefleet/agent"
	"github.com/wirefleet/wirefleet/keystore/agentstore"
	"github.com/wirefleet/wirefleet/keystore/pkcs11store"
)

const usage = `wirefleet-agent — the device side of wirefleet.

Usage:
  wirefleet-agent bootstrap --server URL --authkey KEY [--config PATH] [--name NAME]
      Make a key pair on the device (only the public key leaves it), obtain
      the SIM and session, write the config (0600). Running it again
      refreshes the session and keeps the SIM.
  wirefleet-agent bootstrap --server URL --network
      Network-attested: from a trusted network (a private APN) the source
      address is the credential; the platform hands over a fresh key.
  wirefleet-agent bootstrap --server URL --attest REF [--key REF]
      Attestation: no auth key, no secret provisioned. The device signs the
      server's challenge with its identity key (REF: pkcs11:token=…;object=…
      on its secure element, or file:<path> for development), which
      manufacturing registered with 'wirefleet identities import'.
  wirefleet-agent bootstrap --server URL --sim-card REF [--key REF]
      By SIM card: no auth key. The platform, which holds the card's Ki and
      OPc, challenges the card (3GPP AKA); the card's answer signs the
      request. REF: at:/dev/ttyUSB2[?baud=115200] (a modem's AT+CSIM) or
      pcsc:[reader] (a PC/SC reader through pcscd).
  wirefleet-agent identity --attest REF [--generate ed25519|p256] [--format key|pem|fingerprint|json]
      Print the identity public key for manufacturing to register; with
      --generate, make it first (on the token: non-extractable).
  wirefleet-agent up [--config PATH] [--userspace] [flags]
      Bring the tunnel up and keep it up (persistent keepalive, the gateway
      re-resolved when handshakes stop, retried forever) until SIGINT/SIGTERM,
      then remove what was added. Kernel TUN needs CAP_NET_ADMIN; --userspace
      needs no privilege and offers --socks, --http-proxy, --forward, --expose.
  wirefleet-agent rotate [--config PATH]
      Rotate the WireGuard key of the running agent without downtime: a new
      key is made, announced over the tunnel (no API credential needed), the
      tunnel switches, the old key is deleted. 'up --rotate-every 720h' does
      it unattended; and 'up' rotates by itself when the platform requires
      it (asked every --check-rotation-every, 10m by default).
  wirefleet-agent keyd --socket PATH --module LIB --token LABEL --pin-file FILE [--allow-uid UID]...
      Hold keys on a PKCS#11 token for other processes, over a Unix socket
      (the key-agent protocol, docs/keystores.md): a vendor daemon's stand-in,
      or a way to keep the agent itself away from the token's PIN.
  wirefleet-agent status [--config PATH] [--json]
      The running tunnel: SIM, address, gateway, last handshake, bytes.
  wirefleet-agent config [--config PATH] [--with-private-key]
      The session as a wg-quick file (without the private key unless asked).
  wirefleet-agent version
      The agent's version (also sent as its User-Agent: the console and
      'wirefleet sims show' name it for each device).

Exit codes: 0 ok, 1 failure, 2 usage.
Run 'wirefleet-agent COMMAND --help' for a command's flags.
`

func main() {
	if len(os.Args) < 2 || os.Args[1] == "-h" || os.Args[1] == "--help" || os.Args[1] == "help" {
		fmt.Fprint(os.Stderr, usage)
		if len(os.Args) < 2 {
			os.Exit(2)
		}
		return
	}
	if os.Args[1] == "version" || os.Args[1] == "--version" {
		fmt.Println(agent.UserAgent())
		return
	}
	cmds := map[string]func([]string) error{"bootstrap": bootstrap, "up": up, "rotate": rotate, "status": status, "config": config, "keyd": keyd, "identity": identity}
	cmd, ok := cmds[os.Args[1]]
	if !ok {
		fmt.Fprintf(os.Stderr, "wirefleet-agent: unknown command %q\n\n%s", os.Args[1], usage)
		os.Exit(2)
	}
	if err := cmd(os.Args[2:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return
		}
		var ue usageError
		if errors.As(err, &ue) {
			fmt.Fprintln(os.Stderr, "wirefleet-agent:", err)
			os.Exit(2)
		}
		fmt.Fprintln(os.Stderr, "wirefleet-agent:", err)
		os.Exit(1)
	}
}

type usageError struct{ error }

func newFlags(name, summary string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "wirefleet-agent %s — %s\n\nFlags:\n", name, summary)
		fs.PrintDefaults()
	}
	return fs
}

func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("unexpected arguments: %v", fs.Args())}
	}
	return nil
}

func configFlag(fs *flag.FlagSet) *string {
	def := agent.DefaultConfigPath
	if v := os.Getenv("WIREFLEET_AGENT_CONFIG"); v != "" {
		def = v
	}
	return fs.String("config", def, "agent config file (env WIREFLEET_AGENT_CONFIG)")
}

func logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

func bootstrap(args []string) error {
	fs := newFlags("bootstrap", "obtain the SIM and session with an auth key")
	server := fs.String("server", os.Getenv("WIREFLEET_URL"), "wirefleetd API base URL (env WIREFLEET_URL)")
	authKey := fs.String("authkey", os.Getenv("WIREFLEET_AUTHKEY"), "auth key (env WIREFLEET_AUTHKEY; prefer the env var: arguments are visible to other users)")
	name := fs.String("name", "", "SIM name (optional)")
	keyRef := fs.String("key", "", "WireGuard key store reference: file:<path>, pkcs11:… or agent:… (default: file agent.key next to the config)")
	network := fs.Bool("network", false, "network-attested bootstrap: the source address (a trusted network such as a private APN) is the credential; no auth key")
	attestRef := fs.String("attest", "", "attestation bootstrap: sign the server's challenge with this identity key (pkcs11:… or file:…); no auth key")
	cardRef := fs.String("sim-card", "", "SIM-card bootstrap: the card answers the platform's challenge; at:<serial port>[?baud=N] (a modem's AT+CSIM) or pcsc:[reader]; no auth key")
	cfgPath := configFlag(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	if *server == "" || (*authKey == "" && !*network && *attestRef == "" && *cardRef == "") {
		return usageError{errors.New("bootstrap needs --server and --authkey (or --network, --attest, or --sim-card)")}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	o := agent.BootstrapOptions{Server: *server, AuthKey: *authKey, ConfigPath: *cfgPath, KeyRef: *keyRef, Name: *name}
	do := agent.Bootstrap
	switch {
	case *network:
		do = agent.BootstrapNetwork
	case *attestRef != "":
		do = func(ctx context.Context, o agent.BootstrapOptions) (*agent.Config, error) {
			return agent.BootstrapAttest(ctx, o, *attestRef)
		}
	case *cardRef != "":
		do = func(ctx context.Context, o agent.BootstrapOptions) (*agent.Config, error) {
			card, err := agent.OpenCard(*cardRef)
			if err != nil {
				return nil, err
			}
			defer card.Close()
			return agent.BootstrapCard(ctx, o, card)
		}
	}
	c, err := do(ctx, o)
	if err != nil {
		return err
	}
	fmt.Printf("SIM %s (IMSI %s), address %s, gateway %s; config written to %s\n", c.SIMID, c.IMSI, joinPrefixes(c.Addresses()), c.GatewayEndpoint, *cfgPath)
	return nil
}

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

func up(args []string) error {
	fs := newFlags("up", "bring the tunnel up and keep it up")
	cfgPath := configFlag(fs)
	userspace := fs.Bool("userspace", false, "no privilege: a userspace network stack with local proxies instead of a TUN interface")
	ifname := fs.String("interface", "wf0", "kernel TUN interface name")
	mtu := fs.Int("mtu", 1420, "tunnel MTU")
	keepalive := fs.Duration("keepalive", 25*time.Second, "persistent keepalive (0: off)")
	socks := fs.String("socks", "127.0.0.1:1080", "userspace: SOCKS5 proxy listen address (empty: off)")
	httpProxy := fs.String("http-proxy", "127.0.0.1:3128", "userspace: HTTP proxy listen address (empty: off)")
	rotateEvery := fs.Duration("rotate-every", 0, "rotate the key this often (e.g. 720h; 0: only on 'wirefleet-agent rotate')")
	checkRotation := fs.Duration("check-rotation-every", 10*time.Minute, "ask the platform this often whether it requires a key rotation, and rotate if so (0: never)")
	refreshRoutes := fs.Duration("refresh-routes-every", time.Minute, "ask the platform this often which destinations the session routes into the tunnel (LANs approved or removed since it came up) and apply a change without a reconnect (0: never)")
	advertise := fs.String("advertise-routes", "", "LAN prefixes behind this device, comma-separated (e.g. 192.168.1.0/24); routed once an operator approves them (the group must allow advertising; forward them yourself: ip_forward)")
	var forwards, exposes multiFlag
	fs.Var(&forwards, "forward", "userspace: LOCAL=REMOTE, a local TCP listener forwarded to a tunnel address (repeatable)")
	fs.Var(&exposes, "expose", "userspace: REMOTE_PORT=LOCAL_ADDR, a tunnel port forwarded to a local service (repeatable)")
	if err := parse(fs, args); err != nil {
		return err
	}
	advertised, err := agent.ParsePrefixes(*advertise)
	if err != nil {
		return usageError{err}
	}
	cfg, err := agent.LoadConfig(*cfgPath)
	if err != nil {
		return err
	}
	o := agent.UpOptions{Userspace: *userspace, TUNName: *ifname, MTU: *mtu, Keepalive: *keepalive, StatusPath: *cfgPath + ".status", ConfigPath: *cfgPath, Logger: logger()}
	if *keepalive == 0 {
		o.Keepalive = -1
	}
	if *userspace {
		o.SOCKSListen, o.HTTPListen = *socks, *httpProxy
		for _, f := range forwards {
			fw, err := agent.ParseForward(f)
			if err != nil {
				return usageError{err}
			}
			o.Forwards = append(o.Forwards, fw)
		}
		for _, x := range exposes {
			ex, err := agent.ParseExpose(x)
			if err != nil {
				return usageError{err}
			}
			o.Exposes = append(o.Exposes, ex)
		}
	} else if len(forwards)+len(exposes) > 0 {
		return usageError{errors.New("--forward and --expose need --userspace (with a TUN, use the tunnel addresses directly)")}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	t, err := agent.Up(ctx, cfg, o)
	if err != nil {
		return err
	}
	agent.Notify("READY=1")
	go func() {
		// The platform learns the agent's version from this (and any later)
		// request through the tunnel; a failure costs nothing but that.
		if err := t.CheckIn(ctx); err != nil && ctx.Err() == nil {
			o.Logger.Debug("checking in with the platform", "err", err)
		}
	}()
	if len(advertised) > 0 {
		go t.KeepAdvertising(ctx, advertised)
	}
	if *refreshRoutes > 0 {
		go every(ctx, *refreshRoutes, func() {
			if _, err := t.RefreshAllowedIPs(ctx); err != nil {
				o.Logger.Warn("refreshing the session's routes", "err", err)
			}
		})
	}
	if iv := agent.WatchdogInterval(); iv > 0 {
		go every(ctx, iv, func() { agent.Notify("WATCHDOG=1") })
	}
	rotateNow := make(chan os.Signal, 1)
	signal.Notify(rotateNow, syscall.SIGUSR1)
	defer signal.Stop(rotateNow)
	var every <-chan time.Time
	if *rotateEvery > 0 {
		tk := time.NewTicker(*rotateEvery)
		defer tk.Stop()
		every = tk.C
	}
	var check <-chan time.Time
	if *checkRotation > 0 {
		tk := time.NewTicker(*checkRotation)
		defer tk.Stop()
		check = tk.C
	}
	for ctx.Err() == nil {
		select {
		case <-ctx.Done():
		case <-rotateNow:
		case <-every:
		case <-check:
			qctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			required, by, err := t.RotationRequired(qctx)
			cancel()
			if err != nil {
				o.Logger.Warn("asking whether a key rotation is required", "err", err)
				continue
			}
			if !required {
				continue
			}
			o.Logger.Warn("the platform requires a key rotation", "deadline", by)
		}
		if ctx.Err() != nil {
			break
		}
		rctx, cancel := context.WithTimeout(ctx, time.Minute)
		if _, err := t.Rotate(rctx); err != nil {
			o.Logger.Error("key rotation failed; the old key stays in use", "err", err)
		}
		cancel()
	}
	agent.Notify("STOPPING=1")
	o.Logger.Info("shutting down")
	return t.Close()
}

// rotate asks the running agent (its PID is in the status file) to rotate
// its key, and waits for the status to show the new key.
func rotate(args []string) error {
	fs := newFlags("rotate", "rotate the running agent's key without downtime")
	cfgPath := configFlag(fs)
	wait := fs.Duration("wait", time.Minute, "how long to wait for the new key to be in use")
	if err := parse(fs, args); err != nil {
		return err
	}
	st, err := agent.ReadStatus(*cfgPath + ".status")
	if err != nil {
		return err
	}
	proc, err := os.FindProcess(st.PID)
	if err == nil {
		err = proc.Signal(syscall.SIGUSR1)
	}
	if err != nil {
		return fmt.Errorf("signalling the agent (PID %d): %w", st.PID, err)
	}
	deadline := time.Now().Add(*wait)
	for time.Now().Before(deadline) {
		time.Sleep(500 * time.Millisecond)
		if now, err := agent.ReadStatus(*cfgPath + ".status"); err == nil && now.PublicKey != st.PublicKey {
			fmt.Printf("key rotated: %s → %s\n", st.PublicKey, now.PublicKey)
			return nil
		}
	}
	return fmt.Errorf("the agent did not switch to a new key within %v (see its log)", *wait)
}

func status(args []string) error {
	fs := newFlags("status", "show the running tunnel")
	cfgPath := configFlag(fs)
	asJSON := fs.Bool("json", false, "JSON output for scripts")
	if err := parse(fs, args); err != nil {
		return err
	}
	st, err := agent.ReadStatus(*cfgPath + ".status")
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(st)
	}
	printStatus(os.Stdout, st)
	return nil
}

func printStatus(w io.Writer, st agent.Status) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	hs := "never"
	if !st.LastHandshake.IsZero() {
		hs = fmt.Sprintf("%s (%s ago)", st.LastHandshake.Format(time.RFC3339), time.Since(st.LastHandshake).Round(time.Second))
	}
	rows := [][2]string{
		{"SIM", st.SIMID}, {"IMSI", st.IMSI}, {"address", joinPrefixes(slices.DeleteFunc([]netip.Prefix{st.Address, st.Address6}, func(p netip.Prefix) bool { return !p.IsValid() }))},
		{"gateway", fmt.Sprintf("%s (%s)", st.Gateway, st.Endpoint)}, {"connected", fmt.Sprint(st.Connected)},
		{"last handshake", hs}, {"received", fmt.Sprintf("%d bytes", st.RxBytes)}, {"sent", fmt.Sprintf("%d bytes", st.TxBytes)},
		{"key store", st.KeyStore}, {"public key", st.PublicKey}, {"mode", st.Mode},
	}
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\n", r[0], r[1])
	}
	tw.Flush()
}

func config(args []string) error {
	fs := newFlags("config", "print the session as a wg-quick file")
	cfgPath := configFlag(fs)
	withKey := fs.Bool("with-private-key", false, "include the private key (file key stores only; hardware keys cannot be read)")
	if err := parse(fs, args); err != nil {
		return err
	}
	c, err := agent.LoadConfig(*cfgPath)
	if err != nil {
		return err
	}
	ks, err := agent.OpenKeyStore(c.KeyRef)
	if err != nil {
		return err
	}
	privLine := "PrivateKey = <your private key>"
	if *withKey {
		path, ok := strings.CutPrefix(c.KeyRef, "file:")
		if !ok {
			return fmt.Errorf("the key in %s cannot be read out", c.KeyRef)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		privLine = "PrivateKey = " + strings.TrimSpace(string(b))
	}
	ips := make([]string, len(c.AllowedIPs))
	for i, p := range c.AllowedIPs {
		ips[i] = p.String()
	}
	fmt.Printf(`# SIM %s (IMSI %s); public key %s
# Key store: %s.
[Interface]
%s
Address = %s

[Peer]
PublicKey = %s
Endpoint = %s
AllowedIPs = %s
PersistentKeepalive = 25
`, c.SIMID, c.IMSI, ks.PublicKey(), c.KeyRef, privLine, joinPrefixes(c.Addresses()), c.GatewayPublicKey, c.GatewayEndpoint, strings.Join(ips, ", "))
	return nil
}

type uidList []uint32

func (u *uidList) String() string { return fmt.Sprint(*u) }
func (u *uidList) Set(v string) error {
	n, err := strconv.ParseUint(v, 10, 32)
	if err != nil {
		return fmt.Errorf("not a UID: %q", v)
	}
	*u = append(*u, uint32(n))
	return nil
}

// keyd serves a PKCS#11 token's keys over the key-agent protocol.
func keyd(args []string) error {
	fs := newFlags("keyd", "hold keys on a PKCS#11 token for other processes")
	socket := fs.String("socket", "/run/wirefleet/keyd.sock", "Unix socket to listen on (created 0600)")
	module := fs.String("module", agent.DefaultPKCS11Module, "PKCS#11 module")
	token := fs.String("token", "", "token label")
	pinFile := fs.String("pin-file", "", "file holding the user PIN (0600 or stricter)")
	responder := fs.Bool("responder", false, "also answer responder-es DHs (default: initiator-only, so strangers' initiations cannot drive the token)")
	var uids uidList
	fs.Var(&uids, "allow-uid", "UID allowed to connect besides our own (repeatable); checked with SO_PEERCRED")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *token == "" || *pinFile == "" {
		return usageError{errors.New("keyd needs --token and --pin-file")}
	}
	u := pkcs11store.URI{Token: *token, Object: "-", ModulePath: *module, PINSource: *pinFile}
	cfg, err := u.Config(*module)
	if err != nil {
		return err
	}
	tok, err := pkcs11store.OpenToken(cfg)
	if err != nil {
		return err
	}
	defer tok.Close()
	log := logger()
	allowed := append(uidList{uint32(os.Getuid())}, uids...)
	srv := agentstore.NewServer(agentstore.BackendOf(tok), agentstore.Policy{AllowedUIDs: allowed, InitiatorOnly: !*responder, Logger: log})
	ln, err := agentstore.Listen(*socket)
	if err != nil {
		return err
	}
	if len(uids) > 0 {
		// Other users must be able to connect at all; who may use the keys
		// is decided per connection by the kernel-reported UID.
		if err := os.Chmod(*socket, 0o666); err != nil {
			return err
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() { <-ctx.Done(); srv.Close() }()
	log.Info("key agent serving", "socket", *socket, "token", *token, "initiator_only", !*responder)
	agent.Notify("READY=1")
	if err := srv.Serve(ln); err != nil && ctx.Err() == nil {
		return err
	}
	return nil
}

// joinPrefixes lists prefixes as wg-quick writes them.
func joinPrefixes(ps []netip.Prefix) string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.String()
	}
	return strings.Join(out, ", ")
}

// every calls fn every d until ctx ends.
func every(ctx context.Context, d time.Duration, fn func()) {
	tk := time.NewTicker(d)
	defer tk.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tk.C:
			fn()
		}
	}
}
