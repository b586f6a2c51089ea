// SPDX-License-Identifier: Apache-2.0

// Package engine is wirefleet's WireGuard implementation: wire-compatible
// with every standard WireGuard peer, built for a gateway that serves very
// many devices.
//
// What sets it apart from golang.zx2c4.com/wireguard/device:
//   - the static key is reached only through a keystore.Store (PublicKey and
//     DH with a purpose), so it can live in a secure element;
//   - peers may be resolved lazily at handshake time through a Resolver,
//     once the initiator's static key is known, and are evicted when idle:
//     memory follows active sessions, not registered ones;
//   - typed event hooks (handshake done or rejected, roaming, expiry, drops);
//   - no goroutine per peer: a fixed set of goroutines (UDP readers, crypto
//     workers, handshake workers, one ordered writer per direction and source,
//     one timer sweeper) serves every peer.
//
// It reuses the I/O layers of golang.zx2c4.com/wireguard: conn (batched UDP)
// and tun.
package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wirefleet/wirefleet/engine/udpbind"
	"golang.zx2c4.com/wireguard/conn"
	"golang.zx2c4.com/wireguard/ratelimiter"
	"golang.zx2c4.com/wireguard/tun"

	"github.com/wirefleet/wirefleet/engine/cookie"
	"github.com/wirefleet/wirefleet/engine/tai64n"
	"github.com/wirefleet/wirefleet/internal/clock"
	"github.com/wirefleet/wirefleet/internal/packet"
	"github.com/wirefleet/wirefleet/internal/tokenbucket"
	"github.com/wirefleet/wirefleet/keystore"
	"github.com/wirefleet/wirefleet/wgkey"
)

// Resolver finds the configuration of a peer the engine does not hold, at
// the moment its initiation arrives. It is called from handshake workers;
// it may block (a database lookup) but should be fast.
type Resolver interface {
	// ResolvePeer returns the peer with static key key. It returns an error
	// wrapping ErrUnknownPeer for a key it does not know, or a *DeniedError
	// for a key it knows but refuses (a suspended device).
	ResolvePeer(ctx context.Context, key wgkey.Public, remote netip.AddrPort) (PeerConfig, error)
}

// ResolverFunc adapts a function to Resolver.
type ResolverFunc func(ctx context.Context, key wgkey.Public, remote netip.AddrPort) (PeerConfig, error)

// ResolvePeer implements Resolver.
func (f ResolverFunc) ResolvePeer(ctx context.Context, key wgkey.Public, remote netip.AddrPort) (PeerConfig, error) {
	return f(ctx, key, remote)
}

// ErrUnknownPeer is what a Resolver returns for a key it does not know.
var ErrUnknownPeer = errors.New("engine: unknown peer")

// DeniedError is what a Resolver returns for a known peer it refuses.
type DeniedError struct{ Reason string }

func (e *DeniedError) Error() string { return "engine: peer denied: " + e.Reason }

// InboundPacket is one decrypted inner packet from an authenticated peer
// whose source address its allowed IPs permit.
type InboundPacket struct {
	Peer *Peer
	// Data is the packet, without the padding of the tunnel.
	Data []byte
	// IP is Data decoded, once, by the engine's source check: handlers
	// read it instead of parsing again.
	IP packet.Parsed
}

// Handler receives inner packets. The batch and its data are valid only
// during the call. To answer, or to forward to another peer, call
// Engine.Send (which copies).
type Handler interface {
	HandleInbound(batch []InboundPacket)
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(batch []InboundPacket)

// HandleInbound implements Handler.
func (f HandlerFunc) HandleInbound(b []InboundPacket) { f(b) }

// Config configures an Engine.
type Config struct {
	// KeyStore holds our static key. Required.
	KeyStore keystore.Store
	// Bind is the UDP layer; default udpbind.New() (replies from the
	// address each peer sent to).
	Bind conn.Bind
	// ListenPort is the UDP port (0: any free port).
	ListenPort uint16
	// Resolver, if set, is asked for peers that initiate and are not held.
	Resolver Resolver
	// Exactly one of Handler and TUN receives inner packets. With TUN, the
	// engine also reads outgoing packets from it and routes them by the
	// peers' allowed IPs.
	Handler Handler
	TUN     tun.Device
	// Hooks receive events; any may be nil.
	Hooks Hooks
	// Clock drives every timer decision; default the real clock.
	Clock clock.Clock
	// TimerInterval is the timer wheel's tick: how late at most a timer
	// fires (default 100 ms); negative stops the timer loop (tests then
	// call RunTimers, the wheel ticking at the default).
	TimerInterval time.Duration
	// Workers is the number of crypto workers (default GOMAXPROCS).
	Workers int
	// HandshakeWorkers is the number of handshake workers (default GOMAXPROCS).
	HandshakeWorkers int
	// ForceUnderLoad makes the engine demand cookies from every initiator
	// (for tests and for operators who want it).
	ForceUnderLoad bool
	// MTU caps padding of inner packets (default: the TUN's MTU, else none).
	MTU int
	// Logger receives operational logs; default slog.Default().
	Logger *slog.Logger
	// EvictedTimestamps bounds how many evicted peers' newest handshake
	// timestamps the engine remembers for replay protection (default
	// 262,144; negative: none). A Resolver that implements TimestampKeeper
	// makes this unnecessary.
	EvictedTimestamps int
}

// Counters is a snapshot of engine-wide counters.
type Counters struct {
	HandshakesCompleted uint64
	HandshakesRejected  map[string]uint64
	Dropped             map[string]uint64
	ActivePeers         int64
	UnderLoad           bool
}

// Engine is one WireGuard interface.
type Engine struct {
	id       atomic.Pointer[identity]
	bind     conn.Bind
	port     uint16
	resolver Resolver
	handler  Handler
	tun      tun.Device
	hooks    Hooks
	clk      clock.Clock
	log      *slog.Logger
	cfg      Config

	peers *peerTable
	wheel *timerWheel // each peer at its next timer deadline

	timerMu  sync.Mutex // one RunTimers at a time
	timerBuf []*Peer    // RunTimers' due peers, reused
	// timerEvals counts peers whose timers were evaluated (idle peers
	// should add nothing).
	timerEvals atomic.Uint64
	indices    *indexTable
	evicted    *evictedTimestamps
	routes     routeTable
	limiter    ratelimiter.Ratelimiter
	// Under load: handshake messages per source before any cryptography,
	// and cookie replies in all (constants.go).
	sources *tokenbucket.Set[netip.Addr]
	cookies cookieBudget

	cryptoQ chan cryptoJob
	hsQ     chan *hsJob
	initQ   chan *Peer
	outQ    chan *outBatch

	mtu            int
	underLoadUntil atomic.Int64
	forceUnderLoad bool

	handshakesOK atomic.Uint64
	rejects      [numRejectReasons]atomic.Uint64
	drops        [len(dropNames)]atomic.Uint64

	ctx    context.Context
	cancel context.CancelFunc
	// producers feed the crypto queue; consumers (workers, ordered writers)
	// drain it. Close stops producers first so no batch is left half done.
	producers  sync.WaitGroup
	consumers  sync.WaitGroup
	dispatchMu sync.RWMutex // held (read) while queueing crypto jobs
	closed     atomic.Bool
	upOnce     sync.Once
}

// New builds an engine; Up starts it.
func New(cfg Config) (*Engine, error) {
	if cfg.KeyStore == nil {
		return nil, errors.New("engine: Config.KeyStore is required")
	}
	if (cfg.Handler == nil) == (cfg.TUN == nil) {
		return nil, errors.New("engine: set exactly one of Config.Handler and Config.TUN")
	}
	if cfg.Bind == nil {
		cfg.Bind = udpbind.New()
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.Real{}
	}
	if cfg.TimerInterval == 0 {
		cfg.TimerInterval = 100 * time.Millisecond
	}
	if cfg.Workers <= 0 {
		cfg.Workers = runtime.GOMAXPROCS(0)
	}
	if cfg.HandshakeWorkers <= 0 {
		cfg.HandshakeWorkers = runtime.GOMAXPROCS(0)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.EvictedTimestamps == 0 {
		cfg.EvictedTimestamps = 1 << 18
	}
	e := &Engine{
		bind:           cfg.Bind,
		resolver:       cfg.Resolver,
		handler:        cfg.Handler,
		tun:            cfg.TUN,
		hooks:          cfg.Hooks,
		clk:            cfg.Clock,
		log:            cfg.Logger,
		cfg:            cfg,
		peers:          newPeerTable(),
		wheel:          newTimerWheel(wheelTick(cfg.TimerInterval), cfg.Clock.Now().UnixNano()),
		evicted:        newEvictedTimestamps(cfg.EvictedTimestamps),
		indices:        newIndexTable(),
		cryptoQ:        make(chan cryptoJob, 1024),
		hsQ:            make(chan *hsJob, defaultHandshakeQueue),
		sources:        tokenbucket.NewSet[netip.Addr](sourceHandshakeRate, sourceHandshakeBurst, maxSources),
		initQ:          make(chan *Peer, defaultHandshakeQueue),
		outQ:           make(chan *outBatch, 256),
		forceUnderLoad: cfg.ForceUnderLoad,
	}
	e.sources.SetClock(e.clk)
	e.id.Store(newIdentity(cfg.KeyStore, e.clk))
	e.mtu = cfg.MTU
	if e.mtu == 0 && cfg.TUN != nil {
		if m, err := cfg.TUN.MTU(); err == nil {
			e.mtu = m
		}
	}
	e.ctx, e.cancel = context.WithCancel(context.Background())
	return e, nil
}

// identity is the engine's static key: its store, public key, and the
// cookie checker keyed by it. SetKeyStore swaps it whole.
type identity struct {
	ks      keystore.Store
	pub     wgkey.Public
	checker *cookie.Checker
}

func newIdentity(ks keystore.Store, clk clock.Clock) *identity {
	pub := ks.PublicKey()
	return &identity{ks: ks, pub: pub, checker: cookie.NewChecker(pub, clk)}
}

// PublicKey returns the engine's static public key.
func (e *Engine) PublicKey() wgkey.Public { return e.id.Load().pub }

// SetKeyStore replaces the engine's static key (key rotation). Sessions in
// use carry on; a handshake with the new key starts at once with every peer
// that has an endpoint, and traffic moves to its session when it completes,
// so nothing is lost. Initiations under way with the old key finish with it.
func (e *Engine) SetKeyStore(ks keystore.Store) {
	e.id.Store(newIdentity(ks, e.clk))
	e.log.Info("static key replaced", "public_key", ks.PublicKey().String())
	e.peers.each(func(p *Peer) { e.requestHandshake(p, true) })
}

// Port returns the UDP port the engine listens on (after Up).
func (e *Engine) Port() uint16 { return e.port }

func (e *Engine) now() time.Time { return e.clk.Now() }
func (e *Engine) nanos() int64   { return e.clk.Now().UnixNano() }

// Up opens the UDP socket(s) and starts the engine's goroutines.
func (e *Engine) Up() error {
	var err error
	e.upOnce.Do(func() {
		var fns []conn.ReceiveFunc
		fns, e.port, err = e.bind.Open(e.cfg.ListenPort)
		if err != nil {
			err = fmt.Errorf("engine: opening UDP port %d: %w", e.cfg.ListenPort, err)
			return
		}
		e.limiter.Init()
		for i := 0; i < e.cfg.Workers; i++ {
			goRun(&e.consumers, e.cryptoWorker)
		}
		for i := 0; i < e.cfg.HandshakeWorkers; i++ {
			goRun(&e.producers, e.handshakeWorker)
		}
		goRun(&e.producers, e.initiationWorker)
		goRun(&e.consumers, e.outboundWriter)
		for _, fn := range fns {
			e.startReceiver(fn)
		}
		if e.tun != nil {
			goRun(&e.producers, e.tunReader)
		}
		if e.cfg.TimerInterval > 0 {
			goRun(&e.producers, e.timerLoop)
		}
		e.log.Info("wireguard engine up", "port", e.port, "public_key", e.PublicKey().String())
	})
	return err
}

func goRun(wg *sync.WaitGroup, fn func()) {
	wg.Add(1)
	go func() {
		defer wg.Done()
		fn()
	}()
}

// Close stops the engine and closes its socket (and TUN, if any).
func (e *Engine) Close() error {
	if !e.closed.CompareAndSwap(false, true) {
		return nil
	}
	e.cancel()
	err := e.bind.Close()
	if e.tun != nil {
		e.tun.Close()
	}
	e.producers.Wait()
	e.dispatchMu.Lock()
	close(e.cryptoQ)
	e.dispatchMu.Unlock()
	e.consumers.Wait()
	e.limiter.Close()
	return err
}

// AddPeer adds a static peer (one the engine keeps until RemovePeer).
func (e *Engine) AddPeer(pc PeerConfig) (*Peer, error) {
	p, err := e.newPeer(e.id.Load(), pc, false, netip.AddrPort{})
	if err != nil {
		return nil, err
	}
	if got := e.peers.insert(p); got != p {
		return nil, fmt.Errorf("engine: peer %s already present", pc.PublicKey.Short())
	}
	e.routes.add(p)
	e.wheel.arm(p, e.nanos()) // its timers (a persistent keepalive) start now
	return p, nil
}

func (e *Engine) newPeer(id *identity, pc PeerConfig, lazy bool, remote netip.AddrPort) (*Peer, error) {
	if pc.PublicKey.IsZero() {
		return nil, errors.New("engine: peer has no public key")
	}
	p := &Peer{
		e: e, key: pc.PublicKey, psk: pc.PresharedKey, identity: pc.Identity,
		keepalive: pc.PersistentKeepalive, lazy: lazy, lastTS: pc.LastTimestamp, fixed: pc.FixedEndpoint,
	}
	p.allowed.Store(maskedPrefixes(pc.AllowedIPs))
	if err := p.computeStaticStaticLocked(id, remote); err != nil {
		return nil, err
	}
	p.cookies.Init(pc.PublicKey)
	if pc.Endpoint.IsValid() {
		ep, err := e.bind.ParseEndpoint(pc.Endpoint.String())
		if err != nil {
			return nil, fmt.Errorf("engine: endpoint %v: %w", pc.Endpoint, err)
		}
		p.endpoint.Store(&endpointBox{ep: ep, addr: pc.Endpoint})
	}
	p.lastActivity.Store(e.nanos())
	return p, nil
}

// maskedPrefixes copies prefixes with their host bits cleared.
func maskedPrefixes(prefixes []netip.Prefix) *[]netip.Prefix {
	out := make([]netip.Prefix, len(prefixes))
	for i, a := range prefixes {
		out[i] = a.Masked()
	}
	return &out
}

// SetAllowedIPs replaces a peer's allowed IPs while its sessions go on (a
// route added behind a device): packets from the new prefixes are accepted
// from the next one on, packets from removed ones refused.
func (e *Engine) SetAllowedIPs(p *Peer, prefixes []netip.Prefix) {
	e.routes.mu.Lock()
	defer e.routes.mu.Unlock()
	e.routes.removeLocked(p) // harmless when the peer is gone meanwhile
	p.allowed.Store(maskedPrefixes(prefixes))
	if e.peers.get(p.key) == p {
		e.routes.addLocked(p)
	}
}

// RemovePeer drops a peer and all its sessions at once; packets on them are
// refused from then on. It reports whether the peer was held.
func (e *Engine) RemovePeer(key wgkey.Public) bool {
	p := e.peers.get(key)
	if p == nil {
		return false
	}
	return e.dropPeer(p, "removed")
}

func (e *Engine) dropPeer(p *Peer, reason string) bool {
	if !e.peers.remove(p) {
		return false
	}
	e.routes.remove(p)
	p.mu.Lock()
	p.removed = true
	had := p.current.Load() != nil
	p.zeroKeysLocked()
	lastTS := p.lastTS
	p.mu.Unlock()
	if p.lazy && lastTS != (tai64n.Timestamp{}) {
		e.evicted.put(p.key, lastTS)
		if k, ok := e.resolver.(TimestampKeeper); ok {
			k.KeepTimestamp(p.key, lastTS)
		}
	}
	if had && e.hooks.SessionExpired != nil {
		e.hooks.SessionExpired(SessionEvent{Peer: p, Reason: reason, Time: e.now()})
	}
	return true
}

// Peer returns the held peer with key, or nil.
func (e *Engine) Peer(key wgkey.Public) *Peer { return e.peers.get(key) }

// PeerCount returns how many peers are held (static and lazily resolved).
func (e *Engine) PeerCount() int { return int(e.peers.count.Load()) }

// EachPeer calls fn for every held peer.
func (e *Engine) EachPeer(fn func(*Peer)) { e.peers.each(fn) }

// UnderLoad reports whether the engine is demanding cookies.
func (e *Engine) UnderLoad() bool {
	return e.forceUnderLoad || e.nanos() < e.underLoadUntil.Load()
}

// Counters returns a snapshot of the engine's counters.
func (e *Engine) Counters() Counters {
	c := Counters{
		HandshakesCompleted: e.handshakesOK.Load(),
		HandshakesRejected:  map[string]uint64{},
		Dropped:             map[string]uint64{},
		ActivePeers:         e.peers.count.Load(),
		UnderLoad:           e.UnderLoad(),
	}
	for i := range e.rejects {
		if v := e.rejects[i].Load(); v > 0 {
			c.HandshakesRejected[RejectReason(i).String()] = v
		}
	}
	for i := range e.drops {
		if v := e.drops[i].Load(); v > 0 {
			c.Dropped[DropReason(i).String()] = v
		}
	}
	return c
}

// unknownKey names the initiator of a handshake rejected before its static
// key was decrypted (a bad MAC1, a flood, a cookie demand).
var unknownKey wgkey.Public

func (e *Engine) reject(r RejectReason, key wgkey.Public, remote netip.AddrPort, detail string) {
	e.rejects[r].Add(1)
	if e.hooks.HandshakeRejected != nil {
		e.hooks.HandshakeRejected(RejectEvent{Reason: r, Key: key, Remote: remote, Detail: detail, Time: e.now()})
	}
}

// rejectReplay reports an authenticated initiation whose timestamp is not
// newer than the peer's last: with the timestamp, so a monitor can tell a
// capture replayed (the same timestamp again) from a second device whose
// clock is behind (timestamps that advance).
func (e *Engine) rejectReplay(key wgkey.Public, remote netip.AddrPort, ts tai64n.Timestamp) {
	e.rejects[RejectReplayedTimestamp].Add(1)
	if e.hooks.HandshakeRejected != nil {
		e.hooks.HandshakeRejected(RejectEvent{Reason: RejectReplayedTimestamp, Key: key, Remote: remote, Time: e.now(), Timestamp: ts})
	}
}

func (e *Engine) drop(p *Peer, r DropReason, src netip.Addr) {
	e.drops[r].Add(1)
	if p != nil && e.hooks.PacketDropped != nil {
		e.hooks.PacketDropped(DropEvent{Peer: p, Reason: r, Source: src, Time: e.now()})
	}
}

// SetEndpoint points p at a new outer address, for example after the
// gateway's host name was resolved again. An authenticated packet from
// another address still moves it (roaming).
func (e *Engine) SetEndpoint(p *Peer, ap netip.AddrPort) error {
	if old := p.endpoint.Load(); old != nil && old.addr == ap {
		return nil
	}
	ep, err := e.bind.ParseEndpoint(ap.String())
	if err != nil {
		return fmt.Errorf("engine: endpoint %v: %w", ap, err)
	}
	p.endpoint.Store(&endpointBox{ep: ep, addr: ap})
	return nil
}
