// SPDX-License-Identifier: Apache-2.0

// Command wirefleetd is the wirefleet platform in one process: the REST API
// (/api/v1), the SORACOM Arc-compatible routes, Prometheus metrics, and the
// WireGuard gateway with its in-tunnel platform services (package gateway),
// over an embedded SQLite database or PostgreSQL. It needs no root: the
// gateway's network stack is in userspace.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/wirefleet/wirefleet/controlplane"
	"github.com/wirefleet/wirefleet/controlplane/api"
	"github.com/wirefleet/wirefleet/controlplane/arcapi"
	"github.com/wirefleet/wirefleet/controlplane/audit"
	"github.com/wirefleet/wirefleet/controlplane/console"
	"github.com/wirefleet/wirefleet/controlplane/jobs"
	"github.com/wirefleet/wirefleet/controlplane/store"
	"github.com/wirefleet/wirefleet/controlplane/store/sqlitestore"
	"github.com/wirefleet/wirefleet/fleet"
	"github.com/wirefleet/wirefleet/gateway"
	"github.com/wirefleet/wirefleet/internal/buildinfo"
	"github.com/wirefleet/wirefleet/internal/egress"
	"github.com/wirefleet/wirefleet/internal/fairshare"
	"github.com/wirefleet/wirefleet/internal/seal"
	"github.com/wirefleet/wirefleet/keystore"
	"github.com/wirefleet/wirefleet/services/forwarder"
	"github.com/wirefleet/wirefleet/services/platform"
	"github.com/wirefleet/wirefleet/services/remoteaccess"
	"github.com/wirefleet/wirefleet/services/unified"
	"github.com/wirefleet/wirefleet/wgkey"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr, nil); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "wirefleetd:", err)
		os.Exit(1)
	}
}

// config is wirefleetd's configuration, from flags or WIREFLEET_<NAME>.
type config struct {
	apiListen     string
	dataDir       string
	endpoint      string
	pool          string
	lanPool       string
	ulaPrefix     string
	dnsUpstream   string
	mirrorPPS     int
	share         fairshare.Limits
	vxlan         string
	meshEndpoint  string
	meshListen    string
	store         string
	wgListen      string
	zone          string
	nodeName      string
	resetAdmin    bool
	auditEvery    time.Duration
	metricsListen string
	metricsToken  bool
	logLevel      string
	logFormat     string
	// settings are the flags for the console's settings page.
	settings []console.Setting

	// The data store (datastore.go).
	dataCommitters int
	dataSweepEvery time.Duration
	dataRate       float64
	dataBurst      int

	// Network-attested Arc bootstrap.
	trustedNetworks prefixList
	trustedProxies  prefixList
	egressAllow     prefixList
	remote          remoteFlags

	// Forwarders.
	forwardTimeout time.Duration
	forwardRetries int
}

// prefixList is a repeatable (or comma-separated) flag of CIDR[=value].
type prefixList struct {
	items  []arcapi.TrustedNetwork
	values bool // whether "=value" is allowed
}

func (p *prefixList) String() string {
	var s []string
	for _, it := range p.items {
		v := it.Prefix.String()
		if it.Group != "" {
			v += "=" + it.Group
		}
		s = append(s, v)
	}
	return strings.Join(s, ",")
}

func (p *prefixList) Set(v string) error {
	for _, part := range strings.Split(v, ",") {
		cidr, group, hasGroup := strings.Cut(strings.TrimSpace(part), "=")
		if hasGroup && !p.values {
			return fmt.Errorf("%q: want a CIDR", part)
		}
		pfx, err := netip.ParsePrefix(cidr)
		if err != nil {
			return fmt.Errorf("%q: not a CIDR", cidr)
		}
		p.items = append(p.items, arcapi.TrustedNetwork{Prefix: pfx.Masked(), Group: group})
	}
	return nil
}

func (p *prefixList) prefixes() []netip.Prefix {
	var out []netip.Prefix
	for _, it := range p.items {
		out = append(out, it.Prefix)
	}
	return out
}

func parseFlags(args []string, getenv func(string) string, stderr io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("wirefleetd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.apiListen, "api-listen", ":8080", "address of the REST API and /metrics")
	fs.StringVar(&c.dataDir, "data", "./wirefleet-data", "data directory (SQLite database, admin token, gateway key)")
	fs.StringVar(&c.endpoint, "endpoint", "", "gateway endpoint HOST:PORT handed to devices (default: this host's name and the --wg-listen port)")
	fs.StringVar(&c.pool, "pool", controlplane.DefaultPool.String(), "IPv4 prefix SIM overlay addresses come from")
	fs.StringVar(&c.lanPool, "lan-pool", controlplane.DefaultLANPool.String(), "IPv4 prefix the mapped prefixes of LANs behind SIMs come from (overlapping LANs)")
	fs.StringVar(&c.ulaPrefix, "ula-prefix", "", "the fleet's IPv6 prefix, a /48 of fd00::/8, for a new installation (empty: drawn at random once and kept in the store); every SIM's IPv6 address is in it")
	fs.StringVar(&c.dnsUpstream, "dns-upstream", "auto", "resolvers the in-tunnel DNS asks for names beyond its zone, for devices whose group has breakout: auto (this host's resolv.conf), none, or IP[:port],…")
	fs.IntVar(&c.share.Conns, "sim-service-conns", fairshare.DefaultConns, "connections each SIM may hold open to each in-tunnel service (data store, forwarders, metadata, unified endpoint); negative: no cap")
	fs.IntVar(&c.share.MaxConns, "service-max-conns", fairshare.DefaultMaxConns, "device connections each in-tunnel service holds in all; when full, a SIM holding fewer gets in by closing the oldest connection of the SIM holding most")
	fs.Float64Var(&c.share.PerSecond, "sim-service-rate", fairshare.DefaultPerSecond, "requests (connections, HTTP requests, stream messages, datagrams) a second each SIM may make of each in-tunnel service; negative: no limit")
	fs.IntVar(&c.share.Burst, "sim-service-burst", fairshare.DefaultBurst, "requests a SIM may make at once above its rate, per service")
	fs.Int64Var(&c.share.InFlight, "sim-service-inflight", fairshare.DefaultInFlight, "bytes of one SIM's requests each in-tunnel service may be handling at once; negative: no limit")
	fs.IntVar(&c.mirrorPPS, "mirror-pps", 20000, "packets per second at most copied to each mirror peer (groups' mirroring); the rest is dropped and counted")
	fs.StringVar(&c.vxlan, "vxlan-listen", "", "UDP address VXLAN Gate peers send to, e.g. :4789 (empty: no Gate peers)")
	fs.StringVar(&c.meshEndpoint, "mesh-endpoint", "", "this node's address for the other nodes of the inter-node mesh, HOST:PORT (device to device across nodes; its key is <data>/mesh.key); empty: no mesh")
	fs.StringVar(&c.meshListen, "mesh-listen", "", "the mesh's UDP address, :PORT (default: the port of --mesh-endpoint)")
	fs.StringVar(&c.store, "store", "", "store DSN: postgres://… for PostgreSQL, or an SQLite file path; empty uses wirefleet.db in the data directory")
	fs.StringVar(&c.store, "postgres", "", "alias of --store (PostgreSQL connection string)")
	fs.StringVar(&c.wgListen, "wg-listen", ":51820", "WireGuard UDP address, :PORT (every address, IPv4 and IPv6; :0 picks a free port)")
	fs.BoolVar(&c.resetAdmin, "reset-admin-token", false, "create a new admin token, print it once and write it to <data>/admin.token (recovery when the old one is lost); the old tokens stay valid until deleted")
	fs.StringVar(&c.metricsListen, "metrics-listen", "", "serve /metrics on this address of its own (e.g. 127.0.0.1:9090) instead of the API listener")
	fs.BoolVar(&c.metricsToken, "metrics-token", false, "require an operator token (any role, Authorization: Bearer) on /metrics")
	fs.DurationVar(&c.auditEvery, "audit-every", time.Hour, "run the configuration audit this often (findings in the log and the wirefleet_audit_findings metric; GET /api/v1/audit runs it on demand)")
	fs.StringVar(&c.nodeName, "node-name", "", "this node's name in the node registry and in presence records (default: this host's name and the WireGuard port)")
	fs.StringVar(&c.zone, "zone", gateway.DefaultZone, "DNS zone of in-tunnel names (<sim-id>.sim.<zone>, metadata.<zone>)")
	fs.DurationVar(&c.forwardTimeout, "forward-timeout", 15*time.Second, "forwarders: how long one attempt at a destination may take (connect, send, answer headers) before the device gets 504")
	fs.IntVar(&c.forwardRetries, "forward-retries", 2, "forwarders: further attempts at a destination that refused or could not be reached (never once a request was sent)")
	fs.IntVar(&c.dataCommitters, "datastore-committers", 0, "data-store transactions committing at once (0: 1 on SQLite, which has one writer; 4 on PostgreSQL)")
	fs.DurationVar(&c.dataSweepEvery, "datastore-retention-every", time.Minute, "how often records past their group's retention are deleted")
	fs.Float64Var(&c.dataRate, "datastore-rate", 100, "data-store messages a second each SIM may send (a batch is one message); negative: no limit")
	fs.IntVar(&c.dataBurst, "datastore-burst", 1000, "data-store messages a SIM may send at once above its rate")
	fs.StringVar(&c.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&c.logFormat, "log-format", "text", "text or json")
	c.trustedNetworks.values = true
	fs.Var(&c.trustedNetworks, "arc-trusted-network", "CIDR[=GROUP_NAME] whose source addresses may use Arc network-attested bootstrap (repeatable, or comma-separated)")
	c.remote.register(fs)
	fs.Var(&c.egressAllow, "egress-allow", "CIDR forwarders, MQTT upstreams, webhooks and groups with breakout may reach although private, local or reserved (refused by default: this host, private networks, the platform's ranges; repeatable, or comma-separated)")
	fs.Var(&c.trustedProxies, "trusted-proxy", "CIDR of reverse proxies whose X-Forwarded-For is believed (repeatable, or comma-separated)")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), `wirefleetd — the wirefleet platform: REST API, WireGuard gateway, platform services.

Usage: wirefleetd [flags]

Every flag can also be set in the environment as WIREFLEET_<NAME>, for
example WIREFLEET_API_LISTEN=127.0.0.1:8080; a flag on the command line wins.

`)
		fs.PrintDefaults()
	}
	// Environment first, so the command line overrides it.
	var envErr error
	fs.VisitAll(func(f *flag.Flag) {
		name := "WIREFLEET_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v := getenv(name); v != "" && envErr == nil {
			if err := fs.Set(f.Name, v); err != nil {
				envErr = fmt.Errorf("%s: %w", name, err)
			}
		}
	})
	if envErr != nil {
		return c, envErr
	}
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	// What the console's settings page shows admins: every flag as it is
	// now, with the one that can hold a password (the store DSN) redacted.
	fs.VisitAll(func(f *flag.Flag) {
		v := f.Value.String()
		if f.Name == "store" || f.Name == "postgres" {
			v = redactDSN(v)
		}
		c.settings = append(c.settings, console.Setting{Name: f.Name, Value: v, Default: f.DefValue, Usage: f.Usage})
	})
	return c, nil
}

// dsnPasswordRE finds a password in a key=value connection string: any
// key ending in "password" (password, sslpassword), its value quoted or
// with backslash escapes.
var dsnPasswordRE = regexp.MustCompile(`(?i)(\b[a-z_]*password\s*=\s*)('(?:[^'\\]|\\.)*'|(?:\\.|\S)+)`)

// redactDSN is a store DSN without its passwords: a URL's user password
// and every parameter whose name ends in "password", or a key=value
// string's.
func redactDSN(dsn string) string {
	if u, err := url.Parse(dsn); err == nil && u.Scheme != "" {
		q := u.Query()
		for k := range q {
			if strings.HasSuffix(strings.ToLower(k), "password") {
				q.Set(k, "xxxxx")
			}
		}
		u.RawQuery = q.Encode()
		return u.Redacted()
	}
	return dsnPasswordRE.ReplaceAllString(dsn, "${1}xxxxx")
}

func newLogger(c config, w io.Writer) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.logLevel)); err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	opts := &slog.HandlerOptions{Level: level}
	switch c.logFormat {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format: %q is not text or json", c.logFormat)
}

// run is the whole program; onListen (tests) learns the API's address.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer, onListen func(net.Addr)) error {
	c, err := parseFlags(args, getenv, stderr)
	if err != nil {
		return err
	}
	log, err := newLogger(c, stderr)
	if err != nil {
		return err
	}
	pool, err := netip.ParsePrefix(c.pool)
	if err != nil || !pool.Addr().Is4() || pool.Bits() > 30 {
		return fmt.Errorf("--pool %q: want an IPv4 prefix of /30 or larger", c.pool)
	}
	if pool.Overlaps(controlplane.DefaultPlatformRange) {
		return fmt.Errorf("--pool %s overlaps the platform range %s: SIMs would get platform services' addresses", pool, controlplane.DefaultPlatformRange)
	}
	lanPool, err := netip.ParsePrefix(c.lanPool)
	if err != nil || !lanPool.Addr().Is4() || lanPool != lanPool.Masked() {
		return fmt.Errorf("--lan-pool %q: want an IPv4 prefix without host bits", c.lanPool)
	}
	if lanPool.Overlaps(pool) || lanPool.Overlaps(controlplane.DefaultPlatformRange) {
		return fmt.Errorf("--lan-pool %s overlaps the SIM pool %s or the platform range %s", lanPool, pool, controlplane.DefaultPlatformRange)
	}
	var ula fleet.Overlay6
	if c.ulaPrefix != "" {
		if ula, err = fleet.ParseOverlay6("--ula-prefix", c.ulaPrefix); err != nil {
			return err
		}
	}
	if c.nodeName != "" {
		if err := controlplane.CheckNodeName(c.nodeName); err != nil {
			return fmt.Errorf("--node-name: %w", err)
		}
	}
	if err := os.MkdirAll(c.dataDir, 0o700); err != nil {
		return err
	}
	wgPort, err := parseWGListen(c.wgListen)
	if err != nil {
		return err
	}
	if c.endpoint == "" {
		host, err := os.Hostname()
		if err != nil {
			host = "localhost"
		}
		port := "51820"
		if wgPort != 0 {
			port = strconv.Itoa(int(wgPort))
		}
		c.endpoint = net.JoinHostPort(host, port)
	}
	if _, _, err := net.SplitHostPort(c.endpoint); err != nil {
		return fmt.Errorf("--endpoint %q: want HOST:PORT", c.endpoint)
	}

	st, backend, err := openStore(ctx, c, log)
	if err != nil {
		return err
	}
	defer st.Close()
	log.Info("store open", "backend", backend)

	gwKey, err := keystore.LoadOrCreateFile(filepath.Join(c.dataDir, "gateway.key"))
	if err != nil {
		return fmt.Errorf("gateway key: %w", err)
	}
	gwPub := gwKey.PublicKey()
	remotePolicy, remoteCfg, err := c.remote.setup(c.dataDir, c.endpoint, controlplane.DefaultPlatformRange, log)
	if err != nil {
		return err
	}
	// Forwarder credentials are sealed with a key kept next to the gateway's, not in the database.
	settingsKey, err := seal.LoadOrCreateKey(filepath.Join(c.dataDir, seal.KeyFile))
	if err != nil {
		return fmt.Errorf("settings secrets: %w", err)
	}
	svc := controlplane.New(st, controlplane.Config{Pool: pool, LANPool: lanPool, ULA: ula, Endpoint: c.endpoint, GatewayPublicKey: func() wgkey.Public { return gwPub }, Logger: log, Remote: remotePolicy, Secrets: settingsKey,
		// Key-proof challenges verify on every node sharing the key file, and across restarts.
		KeyProofSecret: settingsKey.Derive("key proof")})

	// Every node of an installation serves one WireGuard identity and opens
	// the secrets the others sealed: a node with other keys refuses to start.
	if err := svc.CheckNodeIdentity(ctx, gwPub, settingsKCV(settingsKey)); err != nil {
		return err
	}

	o6, err := svc.Overlay6(ctx)
	if err != nil {
		return err
	}
	log.Info("IPv6 overlay", "ula", o6.String(), "sims", o6.PrefixOf(pool).String(), "platform", o6.PrefixOf(controlplane.DefaultPlatformRange).String())

	secret, created, err := svc.EnsureAdminToken(ctx)
	if err != nil {
		return fmt.Errorf("admin token: %w", err)
	}
	if !created && c.resetAdmin {
		// The one way back in when the first token was lost (the process
		// died between storing it and writing the file, or the file went).
		if _, secret, err = svc.CreateToken(ctx, controlplane.System, fleet.RoleAdmin, "created by --reset-admin-token"); err != nil {
			return fmt.Errorf("admin token: %w", err)
		}
		created = true
	}
	if created {
		path := filepath.Join(c.dataDir, "admin.token")
		if err := os.WriteFile(path, []byte(secret+"\n"), 0o600); err != nil {
			// Still shown below, so it is not lost with the file.
			log.Error("writing the admin token file failed; copy the token from the output", "path", path, "err", err)
		}
		// Shown once on stdout (not in the log), and kept in the 0600 file.
		fmt.Fprintf(stdout, "Admin token (shown once; also saved in %s):\n%s\n", path, secret)
	}

	arcSecret, err := arcapi.LoadOrCreateTokenSecret(filepath.Join(c.dataDir, arcapi.TokenSecretFile))
	if err != nil {
		return fmt.Errorf("arc token secret: %w", err)
	}

	retries := c.forwardRetries
	if retries == 0 {
		retries = -1 // forwarder.Config: 0 is the default, negative none
	}
	reg := prometheus.NewRegistry()
	egressPolicy := egress.Policy{Allow: c.egressAllow.prefixes()}
	fwd := forwarder.New(forwarder.Config{Secrets: settingsKey, Logger: log, Timeout: c.forwardTimeout, Retries: retries, Egress: egressPolicy})
	// The cluster-wide jobs run on the node holding each one's lease
	// (package jobs); the leases are taken once the node has its name.
	var retentionLease atomic.Pointer[jobs.Lease]
	ds := newDataStore(c, st, backend, log, reg, func() bool { l := retentionLease.Load(); return l != nil && l.Held() })
	// The unified endpoint hands each message to the data store and the forwarders.
	uni := unified.New(unified.Config{DataStore: ds, Forwarder: fwd, Logger: log})
	reg.MustRegister(uni.Collector())
	services := []platform.Service{fwd, ds, uni}
	var remote *remoteaccess.Service
	if remoteCfg != nil {
		remoteCfg.ControlPlane = svc
		remote = remoteaccess.New(*remoteCfg)
		services = append(services, remote)
	}
	upstreams, err := dnsUpstreams(c.dnsUpstream)
	if err != nil {
		return err
	}
	var meshCfg *gateway.MeshConfig
	if c.meshEndpoint != "" {
		mc, err := meshConfig(c)
		if err != nil {
			return err
		}
		meshCfg = mc
	}
	gw, err := gateway.New(gateway.Config{ID: c.nodeName, Mesh: meshCfg, ControlPlane: svc, KeyStore: gwKey, ListenPort: wgPort, Zone: c.zone, Logger: log, Services: services, Secrets: settingsKey, VXLANListen: c.vxlan, Egress: egressPolicy,
		DNSUpstreams: upstreams, MirrorPacketsPerSecond: c.mirrorPPS, ServiceShare: c.share, Records: st, RecordForwarder: fwd, CaptureDir: filepath.Join(c.dataDir, "captures")})
	if err != nil {
		return err
	}
	if err := gw.Start(); err != nil {
		return fmt.Errorf("gateway: %w", err)
	}
	defer gw.Close()
	log.Info("gateway up", "wg_port", gw.Port(), "zone", c.zone, "dns_upstreams", fmt.Sprint(upstreams))

	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), newSIMCollector(st, log), gw.Collector())
	reg.MustRegister(fwd.Collector())
	if remote != nil {
		reg.MustRegister(remote.Collector())
	}
	reg.MustRegister(attestCounter(svc), cardCounter(svc))
	clusterJobs := jobs.New(jobs.Config{Leases: svc, Node: gw.ID(), Logger: log, Registerer: reg})
	defer clusterJobs.Close() // before the gateway and the store close: the leases are released for another node
	retentionLease.Store(clusterJobs.Hold(JobRetention))
	if c.auditEvery > 0 {
		auditLease := clusterJobs.Hold(JobAudit)
		var auditing sync.WaitGroup
		auditing.Add(1)
		go func() {
			defer auditing.Done()
			auditLease.Every(ctx, c.auditEvery, newAuditor(st, audit.Options{MaxMappingDuration: remotePolicy.MaxDuration}, log, reg).run)
		}()
		defer auditing.Wait() // before the store closes (deferred earlier, so it runs later)
	}
	mux := http.NewServeMux()
	mux.Handle("/api/v1/", api.New(svc, api.Config{Logger: log, Registerer: reg, Connections: gw, TrustedProxies: c.trustedProxies.prefixes(), CaptureDir: filepath.Join(c.dataDir, "captures")}))
	// SORACOM Arc-compatible routes, for soratun and other Arc clients.
	mux.Handle("/v1/", arcapi.New(svc, arcapi.Config{Logger: log, TrustedNetworks: c.trustedNetworks.items, TrustedProxies: c.trustedProxies.prefixes(), TokenSecret: arcSecret}))
	// The web console: every path the routes above leave.
	con, err := console.New(svc, console.Config{Logger: log, Gateway: gw, TrustedProxies: c.trustedProxies.prefixes(), Settings: c.settings})
	if err != nil {
		return fmt.Errorf("console: %w", err)
	}
	mux.Handle("/", con)
	var metrics http.Handler = promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
	if c.metricsToken {
		metrics = requireToken(svc, metrics)
	}
	var metricsSrv *http.Server
	if c.metricsListen == "" {
		mux.Handle("GET /metrics", metrics)
	} else {
		mln, err := net.Listen("tcp", c.metricsListen)
		if err != nil {
			return fmt.Errorf("--metrics-listen: %w", err)
		}
		mmux := http.NewServeMux()
		mmux.Handle("GET /metrics", metrics)
		metricsSrv = &http.Server{Handler: mmux, ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
		log.Info("metrics listening", "addr", mln.Addr().String(), "token", c.metricsToken)
		go metricsSrv.Serve(mln)
		defer metricsSrv.Close()
	}
	// Liveness: the process serves (200 even while the database is away,
	// so a supervisor does not restart it for an outage it cannot fix),
	// and says how the store is. Readiness: 503 while the store is away.
	storeState := func(r *http.Request) string {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if err := svc.Ping(ctx); err != nil {
			return "unavailable"
		}
		return "ok"
	}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		held, up := gw.MeshPeers()
		writeHealth(w, r, health{Node: gw.ID(), Store: storeState(r), Degraded: gw.Degraded(), MeshPeers: held, MeshUp: up, Mesh: c.meshEndpoint != "", Jobs: clusterJobs.Held()})
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if st := storeState(r); st != "ok" {
			w.Header().Set("Retry-After", api.RetryAfter)
			http.Error(w, "not ready: store "+st, http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "ready\n")
	})

	ln, err := net.Listen("tcp", c.apiListen)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second, WriteTimeout: 30 * time.Second, IdleTimeout: 2 * time.Minute,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	srv.RegisterOnShutdown(con.Shutdown) // live views end, so shutdown does not wait for them
	log.Info("api listening", "addr", ln.Addr().String(), "endpoint", c.endpoint, "gateway_public_key", gwPub.String(), "data", c.dataDir)
	stopHeartbeat := startHeartbeat(ctx, svc, fleet.Node{Name: gw.ID(), Endpoint: c.endpoint, API: ln.Addr().String(), Version: buildinfo.Version(),
		MeshKey: gw.MeshKey(), MeshEndpoint: c.meshEndpoint}, gw.Stats, gw.Degraded, log)
	defer stopHeartbeat() // before the gateway and the store close (deferred earlier, so they run later)
	if onListen != nil {
		onListen(ln.Addr())
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return err
	}
	<-errc
	return nil
}

// parseWGListen returns the port of --wg-listen. The engine listens on
// every address (IPv4 and IPv6); binding to one address is not supported.
func parseWGListen(v string) (uint16, error) {
	host, port, err := net.SplitHostPort(v)
	if err != nil {
		return 0, fmt.Errorf("--wg-listen %q: want :PORT", v)
	}
	if host != "" && host != "0.0.0.0" && host != "::" {
		return 0, fmt.Errorf("--wg-listen %q: the gateway listens on every address; give :PORT", v)
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return 0, fmt.Errorf("--wg-listen %q: bad port", v)
	}
	return uint16(p), nil
}

func openStore(ctx context.Context, c config, log *slog.Logger) (store.Store, string, error) {
	// PostgreSQL: a URL, or a key=value DSN ("host=… dbname=…").
	if strings.HasPrefix(c.store, "postgres://") || strings.HasPrefix(c.store, "postgresql://") || strings.Contains(c.store, "=") {
		return openPostgres(ctx, c.store, log)
	}
	path := strings.TrimPrefix(c.store, "sqlite:")
	if path == "" {
		path = filepath.Join(c.dataDir, "wirefleet.db")
	}
	st, err := sqlitestore.Open(ctx, path)
	return st, "sqlite " + path, err
}

// requireToken lets through requests bearing a valid operator token of
// any role (a Prometheus scrape job's bearer token), 401 otherwise.
func requireToken(svc *controlplane.Service, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		secret, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok {
			w.Header().Set("WWW-Authenticate", `Bearer realm="wirefleet metrics"`)
			http.Error(w, "an operator token is required (Authorization: Bearer)", http.StatusUnauthorized)
			return
		}
		if _, err := svc.Authenticate(r.Context(), secret); err != nil {
			http.Error(w, "unknown or expired token", http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r)
	})
}
