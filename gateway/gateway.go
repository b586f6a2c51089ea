// SPDX-License-Identifier: Apache-2.0

// Package gateway joins the WireGuard engine to the control plane: every
// tunnel is a SIM. It resolves peers lazily from the SIM store (only active
// SIMs complete a handshake), drops sessions within a second of a SIM being
// suspended, terminated or re-keyed (store change notifications), routes
// inner packets (source check, device-to-device policy, platform services),
// and hosts the platform services — DNS and metadata — on a userspace
// network stack, so the whole gateway runs without root.
package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"golang.zx2c4.com/wireguard/conn"

	"github.com/wirefleet/wirefleet/controlplane"
	"github.com/wirefleet/wirefleet/controlplane/store"
	"github.com/wirefleet/wirefleet/engine"
	"github.com/wirefleet/wirefleet/fleet"
	"github.com/wirefleet/wirefleet/gateway/monitor"
	"github.com/wirefleet/wirefleet/gateway/monitor/response"
	"github.com/wirefleet/wirefleet/gateway/monitor/webhook"
	"github.com/wirefleet/wirefleet/internal/clock"
	"github.com/wirefleet/wirefleet/internal/egress"
	"github.com/wirefleet/wirefleet/internal/fairshare"
	"github.com/wirefleet/wirefleet/internal/ipfix"
	"github.com/wirefleet/wirefleet/internal/seal"
	"github.com/wirefleet/wirefleet/keystore"
	"github.com/wirefleet/wirefleet/services/platform"
	"github.com/wirefleet/wirefleet/wgkey"
)

// Well-known platform service addresses (the ones SORACOM Arc devices use).
var (
	DNSAddrs     = []netip.Addr{netip.MustParseAddr("100.127.0.53"), netip.MustParseAddr("100.127.1.53")}
	MetadataAddr = netip.MustParseAddr("100.127.100.127")
	// RouterAddr is the source of ICMP errors the gateway sends.
	RouterAddr = netip.MustParseAddr("100.127.0.1")
)

// DefaultZone is the DNS zone of platform names.
const DefaultZone = "wirefleet.internal"

// Config configures a Gateway.
type Config struct {
	// ControlPlane is the fleet's service layer. Required.
	ControlPlane *controlplane.Service
	// KeyStore holds the gateway's static key. Required.
	KeyStore keystore.Store
	// Bind is the UDP layer; default the engine's (udpbind.New()).
	Bind conn.Bind
	// ListenPort is the WireGuard UDP port (0: any free port).
	ListenPort uint16
	// Zone is the DNS zone of platform names; DefaultZone if empty.
	Zone string
	// Logger receives logs; default slog.Default().
	Logger *slog.Logger
	// EngineHooks, if set, is called after the gateway's own hooks (tests).
	EngineHooks engine.Hooks
	// Monitor tunes the security monitor's detectors (zero: defaults).
	Monitor monitor.Config
	// NoMonitor turns the security monitor off (to measure its cost).
	NoMonitor bool
	// ForceUnderLoad demands cookies from every initiator, as under a
	// flood (a gateway expecting attacks; tests).
	ForceUnderLoad bool
	// ID names this gateway in the presence records gateways sharing a
	// database keep (default hostname:port).
	ID string
	// SecondGatewayWindow is how long an older session is watched when
	// another gateway records a newer one of the same key (0: 20 s).
	SecondGatewayWindow time.Duration
	// MovedSilence is how long a session watched that way must have been
	// silent (no packet, keepalives included) before it is ended here, the
	// device taken to have moved (0: 30 s, longer than the usual 25 s
	// keepalive, so an idle device that keeps alive is never ended).
	MovedSilence time.Duration
	// VolumeInterval is how often SIMs' traffic volumes are read for the
	// volume detector (0: a minute; tests shorten it).
	VolumeInterval time.Duration
	// Services are further platform services on the in-tunnel stack.
	Services []platform.Service
	// ServiceShare is each SIM's share of every in-tunnel service
	// (connections, requests a second, bytes in flight; zero value: the
	// fairshare defaults), so one device cannot take another's.
	ServiceShare fairshare.Limits
	// Secrets opens the sealed secrets of group settings (the webhook
	// secret); without it, sealed webhook secrets cannot sign and such
	// alerts are not sent to the webhook.
	Secrets *seal.Key
	// Egress decides which addresses alert webhooks may reach (zero value:
	// no private, local or reserved ones; see internal/egress).
	Egress egress.Policy
	// Outside is how traffic beyond the fleet leaves this host (groups with
	// breakout, DNS upstream queries); zero: this host's network.
	Outside Outside
	// DNSUpstreams are the resolvers the in-tunnel DNS asks for names
	// beyond the zone, for devices whose group has breakout; empty: such
	// names are refused.
	DNSUpstreams []netip.AddrPort
	// MirrorPacketsPerSecond caps the copies sent to each mirror peer
	// (0: 20,000, about 230 Mbit/s of 1420-byte packets); copies beyond it
	// are dropped and counted.
	MirrorPacketsPerSecond int
	// Records stores groups' inspection records (the data store's
	// writer); nil: inspection measures and stores nothing.
	Records store.RecordWriter
	// RecordForwarder posts inspection records along a group's HTTP
	// forwarder route (inspection.forwardPath; the forwarder service);
	// nil: such records are not forwarded.
	RecordForwarder RecordForwarder
	// CaptureDir is where packet capture sessions' files are written
	// (CaptureFile); empty: sessions fail with that reason.
	CaptureDir string
	// VXLANListen, if set, is the UDP address ("host:port", e.g. ":4789")
	// VXLAN Gate peers send to; empty: no Gate peers.
	VXLANListen string
	// Mesh, if set, joins this node to the inter-node mesh (device to
	// device across nodes, mesh.go); nil: packets for devices whose
	// sessions are on other nodes are dropped as target-offline.
	Mesh *MeshConfig
}

// Gateway is a running gateway.
type Gateway struct {
	cfg       Config
	svc       *controlplane.Service
	st        store.View
	takeover  *takeover // devices whose session was on another node
	mesh      *mesh     // the inter-node mesh; nil without one
	log       *slog.Logger
	clk       clock.Clock // the control plane's: rotation deadlines and records on the fleet's time
	eng       *engine.Engine
	pool      netip.Prefix
	plat      netip.Prefix
	o6        fleet.Overlay6 // the fleet's IPv6 plan, read at Start
	zone      string
	router    *router
	stk       *stack
	events    *eventRecorder
	mon       *monitor.Monitor
	alerts    alertCounts
	webhooks  *webhook.Sender
	responder *response.Responder
	lans      lanTable       // every approved route behind a SIM
	lanNames  lanNames       // names of SIMs with named LAN hosts, for DNS
	vx        *vxlanEndpoint // nil without VXLANListen
	outside   Outside        // Config.Outside with its defaults
	bo        *breakout      // traffic beyond the fleet
	grants    grantTable     // addresses DNS answers granted (FQDN egress rules)
	egressDNS egressDNS
	shares    *fairshare.Metrics // the services' shares, collected with the gateway's metrics
	mirror    *mirror            // copies to groups' mirror peers
	caps      *captures          // packet capture sessions
	insp      *inspector         // nil without Config.Records
	// presence: session records to write (see presence.go).
	presence       *presenceQueue
	presenceChecks chan string

	// registry: the SIM states handed to the engine, by SIM id then key.
	regMu sync.Mutex
	reg   map[string][]*simState // by SIM: one state per key held (a SIM rotating has two)
	// rotating holds the registered states whose SIM has a required
	// rotation deadline: the rotation check looks at these only, not at
	// every held session (regMu).
	rotating map[*simState]struct{}

	policies policyCache
	// simGen counts SIM changes seen on the feed (see resolvePeer).
	simGen atomic.Uint64

	ctx       context.Context
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	closeOnce sync.Once
	closeErr  error
}

// simState is a peer's identity: the SIM behind a tunnel. The SIM record is
// replaced when it changes (tags, group); revoked is set when the key may no
// longer be used, before the engine has even finished adding the peer.
type simState struct {
	id       string
	key      wgkey.Public
	lastFlow atomic.Uint64 // the last flow reported to the monitor
	sim      atomic.Pointer[fleet.SIM]
	revoked  atomic.Bool
	online   atomic.Bool
	// onlineSince is when the SIM came online here (Unix nanoseconds).
	onlineSince atomic.Int64
	// stale is set when a change of the SIM could not be read: sim may
	// be out of date until the next one is.
	stale atomic.Bool
	// Counters at the last volume reading (the volume watcher's own).
	volBytes, volPackets uint64
	volSeen              bool
}

// SIM returns the current record of the SIM.
func (s *simState) SIM() *fleet.SIM { return s.sim.Load() }

// New builds a gateway; Start brings it up.
func New(cfg Config) (*Gateway, error) {
	if cfg.ControlPlane == nil || cfg.KeyStore == nil {
		return nil, errors.New("gateway: Config.ControlPlane and Config.KeyStore are required")
	}
	if cfg.Zone == "" {
		cfg.Zone = DefaultZone
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	g := &Gateway{shares: fairshare.NewMetrics(nil),
		cfg:      cfg,
		svc:      cfg.ControlPlane,
		st:       cfg.ControlPlane.View(),
		log:      cfg.Logger,
		clk:      cfg.ControlPlane.Config().Clock,
		pool:     cfg.ControlPlane.Config().Pool,
		plat:     cfg.ControlPlane.Config().PlatformRange,
		zone:     cfg.Zone,
		reg:      map[string][]*simState{},
		rotating: map[*simState]struct{}{},
	}
	g.policies.groups = map[string]*groupPolicy{}
	g.ctx, g.cancel = context.WithCancel(context.Background())
	g.events = newEventRecorder(g.ctx, g.svc, g.log)
	if !cfg.NoMonitor {
		g.mon = g.newMonitor(cfg.Monitor)
	}
	g.router = newRouter(&g.policies, &g.lans, g.mon, g.plat, g.pool)
	g.router.grants, g.router.clk = &g.grants, g.clk
	g.egressDNS.g = g
	g.outside = cfg.Outside.withDefaults()
	g.caps = &captures{g: g, dir: cfg.CaptureDir}
	if cfg.Records != nil {
		g.insp = &inspector{g: g, groups: map[statsKey]*groupStats{}, exporters: map[statsKey]*ipfix.Exporter{}, forwarding: make(chan struct{}, forwardsInFlight)}
		g.router.insp = g.insp
	}
	g.router.caps = g.caps
	g.mirror = newMirror(g)
	g.router.mirror = g.mirror
	g.policies.compileMirrors = func(m fleet.Mirroring) []*mirrorTarget { return mirrorTargets(m, g) }
	g.webhooks = webhook.New(cfg.Secrets, g.log, cfg.Egress)
	g.responder = response.New(response.Config{Actions: monitorActions{svc: g.svc, st: g.st}, Webhooks: g.webhooks, Logger: g.log})
	g.presence = newPresenceQueue()
	g.presenceChecks = make(chan string, 1024)
	hooks := engine.Hooks{
		HandshakeCompleted: g.onHandshake,
		HandshakeRejected:  g.onReject,
		EndpointChanged:    g.onEndpoint,
		SessionExpired:     g.onSessionEnd,
		PacketDropped:      g.onDrop,
	}
	g.takeover = newTakeover(g)
	hooks.UnplacedTransport = g.takeover.offer
	eng, err := engine.New(engine.Config{
		KeyStore:   cfg.KeyStore,
		Bind:       cfg.Bind,
		ListenPort: cfg.ListenPort,
		MTU:        tunnelMTU,
		Resolver:   engine.ResolverFunc(g.resolvePeer),
		Handler:    g.router,
		Hooks:      hooks,
		Logger:     cfg.Logger,

		ForceUnderLoad: cfg.ForceUnderLoad,
	})
	if err != nil {
		return nil, err
	}
	g.eng = eng
	g.router.eng = eng
	if cfg.Mesh != nil {
		if g.mesh, err = newMesh(g, *cfg.Mesh); err != nil {
			eng.Close()
			return nil, err
		}
		g.router.mesh = g.mesh
	}
	return g, nil
}

// MeshKey is this node's mesh key and MeshPort its mesh port (zero
// without a mesh), for the node registry.
func (g *Gateway) MeshKey() wgkey.Public {
	if g.mesh == nil {
		return wgkey.Public{}
	}
	return g.mesh.publicKey()
}

// MeshPort is the mesh's UDP port (after Start; 0 without a mesh).
func (g *Gateway) MeshPort() uint16 {
	if g.mesh == nil {
		return 0
	}
	return g.mesh.eng.Port()
}

// Engine returns the WireGuard engine (for tests and metrics).
func (g *Gateway) Engine() *engine.Engine { return g.eng }

// Port returns the WireGuard UDP port (after Start).
func (g *Gateway) Port() uint16 { return g.eng.Port() }

// Start brings up the platform services, subscribes to store changes and
// opens the WireGuard port.
func (g *Gateway) Start() error {
	// Subscribe before reading routes and Gate peers: a change committed
	// meanwhile waits in the feed and is applied after the read.
	o6, err := g.svc.Overlay6(g.ctx)
	if err != nil {
		return fmt.Errorf("gateway: %w", err)
	}
	g.o6, g.router.o6 = o6, o6
	changes, cancel := g.st.Subscribe()
	if err := g.loadRoutes(g.ctx); err != nil {
		cancel()
		return fmt.Errorf("gateway: reading the routes behind SIMs: %w", err)
	}
	stk, err := startStack(g)
	if err != nil {
		cancel()
		return err
	}
	if g.cfg.VXLANListen != "" {
		if g.vx, err = startVXLAN(g, g.cfg.VXLANListen); err != nil {
			cancel()
			stk.close()
			return err
		}
		g.router.gates = g.vx
	}
	g.stk = stk
	g.router.local = stk.inject
	if g.bo, err = startBreakout(g, g.outside); err != nil {
		cancel()
		g.Close()
		return err
	}
	g.router.breakout = g.bo
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		g.watch(changes, cancel)
	}()
	g.events.start(&g.wg)
	g.wg.Add(2)
	go func() {
		defer g.wg.Done()
		g.webhooks.Run(g.ctx)
	}()
	go g.enforceRotations()
	if g.mon != nil {
		every := g.cfg.VolumeInterval
		if every == 0 {
			every = volumeInterval
		}
		g.wg.Add(1)
		go g.watchVolumes(every)
	}
	g.caps.load(g.ctx)
	if err := g.eng.Up(); err != nil {
		g.Close()
		return err
	}
	if g.insp != nil {
		g.wg.Add(1)
		go g.insp.run(g.cfg.Records)
	}
	g.wg.Add(5 + takeoverWorkers)
	for range takeoverWorkers {
		go g.takeover.run()
	}
	go g.mirror.run(g.ctx)
	go g.sweepGrants()
	go g.writePresences() // after Up: the default id holds the port
	go g.checkPresences()
	go g.watchFlood()
	if g.mesh != nil {
		if err := g.mesh.start(); err != nil {
			g.Close()
			return err
		}
	}
	return nil
}

// Close stops the gateway; later calls return the first call's result.
func (g *Gateway) Close() error {
	g.closeOnce.Do(func() {
		g.cancel()
		// Services first, while the engine still carries their last
		// answers (a data-store write in flight is acknowledged).
		if g.bo != nil {
			g.bo.close()
		}
		if g.stk != nil {
			g.stk.close()
		}
		if g.vx != nil {
			g.vx.close()
		}
		g.closeErr = g.eng.Close()
		if g.mesh != nil {
			g.mesh.close()
		}
		g.wg.Wait()
		g.finalFlush()
	})
	return g.closeErr
}

// ---- peer resolution ----

// resolvePeer is the engine's Resolver: only active SIMs complete a
// handshake, with the SIM's overlay /32 and its approved LANs as allowed sources.
func (g *Gateway) resolvePeer(ctx context.Context, key wgkey.Public, remote netip.AddrPort) (engine.PeerConfig, error) {
	// A change committed while we read could reach the watcher before we
	// register, and be missed: the watcher bumps simGen before it looks, so
	// if it moved while we resolved, we read again once registered.
	gen := g.simGen.Load()
	st := &simState{key: key}
	sim, err := g.st.SIMByPublicKey(ctx, key)
	if errors.Is(err, store.ErrNotFound) {
		return engine.PeerConfig{}, fmt.Errorf("%w: no SIM has this key", engine.ErrUnknownPeer)
	}
	if err != nil {
		return engine.PeerConfig{}, fmt.Errorf("gateway: looking up key: %w", err)
	}
	st.id = sim.ID
	st = g.register(st)
	if g.simGen.Load() != gen {
		if sim, err = g.st.SIM(ctx, sim.ID); err != nil {
			g.unregister(st)
			return engine.PeerConfig{}, fmt.Errorf("gateway: reading SIM: %w", err)
		}
	}
	if sim.Status != fleet.StatusActive || !keyOf(sim, key, g.clk.Now()) {
		g.unregister(st)
		reason := string(sim.Status)
		switch {
		case sim.Status != fleet.StatusActive:
		case rotationOverdue(sim, g.clk.Now()) && sim.PublicKey == key:
			reason = "key-rotation-overdue"
		default:
			reason = "key-replaced" // the key changed while we resolved it
		}
		g.events.rejected(sim.ID, key, reason, remote)
		return engine.PeerConfig{}, &engine.DeniedError{Reason: "SIM " + reason}
	}
	if err := g.policies.ensure(ctx, g.st, sim.GroupID); err != nil {
		g.unregister(st)
		return engine.PeerConfig{}, err
	}
	// The state may be shared with a session already held, whose record
	// the change feed may have replaced with a newer one while we read.
	for {
		cur := st.sim.Load()
		if cur != nil && cur.Updated.After(sim.Updated) {
			break
		}
		if st.sim.CompareAndSwap(cur, &sim) {
			break
		}
	}
	g.trackRotation(st)
	return engine.PeerConfig{
		PublicKey:  key,
		AllowedIPs: g.allowedIPs(sim),
		Identity:   st,
	}, nil
}

// keyOf reports whether key may speak for sim now: its next key always,
// its current key unless a required rotation is overdue.
func keyOf(sim fleet.SIM, k wgkey.Public, now time.Time) bool {
	if !sim.NextPublicKey.IsZero() && sim.NextPublicKey == k {
		return true
	}
	return sim.PublicKey == k && !rotationOverdue(sim, now)
}

// register records st, or returns the live state already registered for
// the same key (two initiations resolved at once share one identity).
func (g *Gateway) register(st *simState) *simState {
	g.regMu.Lock()
	defer g.regMu.Unlock()
	states := g.reg[st.id]
	for i, old := range states {
		if old.key == st.key {
			if !old.revoked.Load() {
				return old
			}
			delete(g.rotating, old)
			states[i] = st
			return st
		}
	}
	g.reg[st.id] = append(states, st)
	return st
}

func (g *Gateway) unregister(st *simState) {
	g.regMu.Lock()
	defer g.regMu.Unlock()
	delete(g.rotating, st)
	states := g.reg[st.id]
	if i := slices.Index(states, st); i >= 0 {
		states = slices.Delete(states, i, i+1)
		if len(states) == 0 {
			delete(g.reg, st.id)
		} else {
			g.reg[st.id] = states
		}
	}
}

// trackRotation files st among the states the rotation check looks at
// when its SIM (as st now holds it) has a deadline; call it after every
// change of st.sim.
func (g *Gateway) trackRotation(st *simState) {
	g.regMu.Lock()
	defer g.regMu.Unlock()
	// Read under the lock: of two updates racing, the one that takes
	// the lock last sees the last record stored.
	sim := st.SIM()
	if sim == nil || sim.RotateBy.IsZero() || st.revoked.Load() {
		delete(g.rotating, st)
		return
	}
	if slices.Contains(g.reg[st.id], st) { // still registered
		g.rotating[st] = struct{}{}
	}
}

// rotatingStates returns the states with a rotation deadline.
func (g *Gateway) rotatingStates() []*simState {
	g.regMu.Lock()
	defer g.regMu.Unlock()
	out := make([]*simState, 0, len(g.rotating))
	for st := range g.rotating {
		out = append(out, st)
	}
	return out
}

// states returns the registered states of a SIM.
func (g *Gateway) states(simID string) []*simState {
	g.regMu.Lock()
	defer g.regMu.Unlock()
	var out []*simState
	for _, st := range g.reg[simID] {
		out = append(out, st)
	}
	return out
}

func (g *Gateway) allStates() []*simState {
	g.regMu.Lock()
	defer g.regMu.Unlock()
	var out []*simState
	for _, states := range g.reg {
		out = append(out, states...)
	}
	return out
}

// ---- engine hooks ----

func stateOf(p *engine.Peer) *simState {
	st, _ := p.Identity().(*simState)
	return st
}

func (g *Gateway) onHandshake(ev engine.HandshakeEvent) {
	st := stateOf(ev.Peer)
	if st == nil {
		return
	}
	if st.revoked.Load() {
		// Revoked while the handshake was in flight.
		go g.eng.RemovePeer(st.key)
		return
	}
	sim := st.SIM()
	if g.mon != nil {
		g.mon.ObserveEndpoint(st.id, ev.Endpoint)
	}
	// A route may have changed between resolving the peer and the engine
	// holding it, when the change could not reach it yet.
	if want := g.allowedIPs(*sim); !slices.Equal(want, ev.Peer.AllowedIPs()) {
		g.eng.SetAllowedIPs(ev.Peer, want)
	}
	g.router.setOnline(st.id, sim.Address, ev.Peer)
	if st.online.CompareAndSwap(false, true) {
		now := g.clk.Now()
		st.onlineSince.Store(now.UnixNano())
		g.events.record(st.id, "device.connected", map[string]any{"endpoint": ev.Endpoint.String()})
		g.recordPresence(presenceOp{set: true, sim: st.id, endpoint: endpointString(ev.Endpoint), since: now})
	}
	if sim.PublicKey != st.key {
		// First handshake with the announced next key: the rotation is done.
		id, key := st.id, st.key
		go func() {
			if _, err := g.svc.PromoteNextKey(g.ctx, id, key); err != nil {
				g.log.Warn("promoting next key", "sim", id, "err", err)
			}
		}()
	}
	if f := g.cfg.EngineHooks.HandshakeCompleted; f != nil {
		f(ev)
	}
}

func (g *Gateway) onReject(ev engine.RejectEvent) {
	switch ev.Reason {
	case engine.RejectUnknownKey:
		g.events.unknown(ev.Key, ev.Remote)
	case engine.RejectReplayedTimestamp:
		g.onReplay(ev)
	case engine.RejectResolverError:
		g.events.storeAway(ev.Key, ev.Remote, ev.Detail)
	}
	if f := g.cfg.EngineHooks.HandshakeRejected; f != nil {
		f(ev)
	}
}

func (g *Gateway) onEndpoint(ev engine.EndpointEvent) {
	if st := stateOf(ev.Peer); st != nil && g.mon != nil {
		g.mon.ObserveEndpoint(st.id, ev.New)
	}
	if st := stateOf(ev.Peer); st != nil && ev.Old.IsValid() {
		g.events.record(st.id, "device.endpoint_changed", map[string]any{"old": ev.Old.String(), "new": ev.New.String()})
	}
	if f := g.cfg.EngineHooks.EndpointChanged; f != nil {
		f(ev)
	}
}

func (g *Gateway) onSessionEnd(ev engine.SessionEvent) {
	st := stateOf(ev.Peer)
	if st != nil {
		if ev.Reason != "expired" {
			g.router.setOffline(st.id, st.SIM().Address, ev.Peer)
			g.unregister(st)
			if !g.simOnline(st.id) {
				g.grants.forget(st.id)
			}
		}
		if st.online.CompareAndSwap(true, false) {
			g.events.record(st.id, "device.disconnected", map[string]any{"reason": ev.Reason})
			if !g.simOnline(st.id) { // during a rotation the other key's session lives on
				g.recordPresence(presenceOp{sim: st.id})
			}
		}
	}
	if f := g.cfg.EngineHooks.SessionExpired; f != nil {
		f(ev)
	}
}

func (g *Gateway) onDrop(ev engine.DropEvent) {
	if f := g.cfg.EngineHooks.PacketDropped; f != nil {
		f(ev)
	}
}

// simOnline reports whether any key of the SIM holds a session here.
func (g *Gateway) simOnline(id string) bool {
	for _, st := range g.states(id) {
		if st.online.Load() {
			return true
		}
	}
	return false
}

// ---- change feed ----

// watch applies store changes: a SIM no longer active, or whose key
// changed, loses its session at once; group changes refresh the policy
// cache. When the feed closes (we fell behind) it resubscribes and
// re-checks every held SIM.
func (g *Gateway) watch(changes <-chan fleet.Change, cancel func()) {
	for {
		select {
		case <-g.ctx.Done():
			cancel()
			return
		case c, ok := <-changes:
			if !ok {
				g.log.Warn("store change feed closed; resynchronising")
				changes, cancel = g.st.Subscribe()
				g.simGen.Add(1)
				g.resync()
				if g.mesh != nil {
					g.mesh.forgetAll()
				}
				continue
			}
			switch c.Kind {
			case fleet.ChangeSIM:
				g.simGen.Add(1)
				g.recheckSIM(c.ID)
				g.refreshRoutes(c.ID)
				if g.mesh != nil {
					g.mesh.forget(c.ID) // its group or address may have changed
				}
			case fleet.ChangeGroup:
				g.policies.refresh(g.ctx, g.st, c.ID)
			case fleet.ChangePresence:
				g.queuePresenceCheck(c.ID)
				if g.mesh != nil {
					g.mesh.forget(c.ID)
				}
			case fleet.ChangeCapture:
				g.caps.changed(g.ctx, c.ID)
			case fleet.ChangeGatePeer:
				if g.vx != nil {
					g.vx.reload()
				}
			}
		}
	}
}

func (g *Gateway) resync() {
	seen := map[string]bool{}
	for _, st := range g.allStates() {
		if !seen[st.id] {
			seen[st.id] = true
			g.recheckSIM(st.id)
		}
	}
	g.policies.refreshAll(g.ctx, g.st)
	if err := g.loadRoutes(g.ctx); err != nil {
		g.log.Warn("re-reading the routes behind SIMs", "err", err)
	}
	if g.vx != nil {
		g.vx.reload()
	}
	for _, st := range g.allStates() {
		p := g.eng.Peer(st.key)
		if sim := st.SIM(); sim != nil && p != nil && stateOf(p) == st {
			g.eng.SetAllowedIPs(p, g.allowedIPs(*sim))
		}
	}
}

// recheckSIM re-reads a SIM and revokes the states (and removes the peers)
// whose key it no longer accepts.
func (g *Gateway) recheckSIM(id string) {
	states := g.states(id)
	if len(states) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(g.ctx, 5*time.Second)
	defer cancel()
	sim, err := g.st.SIM(ctx, id)
	gone := errors.Is(err, store.ErrNotFound)
	if err != nil && !gone {
		g.log.Warn("re-reading SIM after change", "sim", id, "err", err)
		// The held record may be out of date now: services read the
		// store for this SIM until a later change is applied.
		for _, st := range states {
			st.stale.Store(true)
		}
		return
	}
	if !gone && sim.GroupID != "" {
		if err := g.policies.ensure(ctx, g.st, sim.GroupID); err != nil {
			g.log.Warn("reading group after change", "group", sim.GroupID, "err", err)
		}
	}
	for _, st := range states {
		if gone || sim.Status != fleet.StatusActive || !keyOf(sim, st.key, g.clk.Now()) {
			if !gone && sim.Status == fleet.StatusActive && st.online.Load() && g.mon != nil && g.keyReplaced(st, sim) {
				g.wg.Add(1)
				go g.reportKeyReplaced(id, st.key, sim.PublicKey)
			}
			st.revoked.Store(true)
			g.unregister(st)
			if p := g.eng.Peer(st.key); p != nil && stateOf(p) == st {
				g.eng.RemovePeer(st.key)
			}
			g.log.Info("session revoked", "sim", id, "status", sim.Status)
			continue
		}
		if old := st.SIM(); old != nil && old.Address != sim.Address {
			// Addresses never change today; if they do, the allowed IPs
			// must follow: drop the session and let it re-resolve.
			st.revoked.Store(true)
			g.eng.RemovePeer(st.key)
			continue
		}
		s := sim
		st.sim.Store(&s)
		st.stale.Store(false)
		g.trackRotation(st)
	}
}

// keyReplaced reports whether the SIM's key changed under st's live
// session other than by the device's own rotation: st's key is neither
// current nor next any more, and the new current key is not the next key
// the device announced (as held before the change), nor one already
// online here.
func (g *Gateway) keyReplaced(st *simState, sim fleet.SIM) bool {
	if k := st.key; sim.PublicKey == k || sim.NextPublicKey == k {
		return false // still the SIM's key (a required rotation overdue, say)
	}
	if old := st.SIM(); old != nil && !old.NextPublicKey.IsZero() && old.NextPublicKey == sim.PublicKey {
		return false
	}
	for _, o := range g.states(st.id) {
		if o != st && o.key == sim.PublicKey && o.online.Load() {
			return false
		}
	}
	return true
}

// reportKeyReplaced raises key-replaced for a SIM whose key was replaced
// under its session here, unless the change was proved by the device (an
// Arc re-key with a key proof made with the old key): off the feed's
// goroutine, since it reads the audit trail. The actor goes in the
// evidence.
func (g *Gateway) reportKeyReplaced(simID string, old wgkey.Public, replacement wgkey.Public) {
	defer g.wg.Done()
	ctx, cancel := context.WithTimeout(g.ctx, 5*time.Second)
	defer cancel()
	actor := ""
	p, err := g.st.ListEvents(ctx, store.EventFilter{ObjectID: simID, Action: "sim.set_key", PageRequest: store.PageRequest{Limit: 1}})
	if err == nil && len(p.Items) == 1 {
		ev := p.Items[0]
		if ev.Details["publicKey"] == replacement.String() {
			if ev.Details["keyProof"] == true {
				return
			}
			actor = ev.Actor
		}
	}
	g.mon.ObserveKeyReplaced(simID, old.String(), replacement.String(), actor)
}

// Connection returns the live state of a SIM's tunnel on this gateway
// (api.ConnectionSource). During a key rotation the key with the latest
// handshake speaks for the SIM.
func (g *Gateway) Connection(simID string) fleet.Connection {
	var c fleet.Connection
	for _, st := range g.states(simID) {
		p := g.eng.Peer(st.key)
		if p == nil || stateOf(p) != st {
			continue
		}
		s := p.Stats()
		if !c.LastHandshake.IsZero() && s.LastHandshake.Before(c.LastHandshake) {
			continue
		}
		c = fleet.Connection{Online: s.HasSession && !st.revoked.Load(), LastHandshake: s.LastHandshake, RxBytes: s.RxBytes, TxBytes: s.TxBytes}
		if s.Endpoint.IsValid() {
			c.Endpoint = s.Endpoint.String()
		}
	}
	return c
}
