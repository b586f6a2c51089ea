// SPDX-License-Identifier: Apache-2.0

// Package remoteaccess carries operators' TCP connections into devices:
// for each live port mapping it listens on a public port, accepts only
// the allowed sources until the mapping expires, optionally terminates TLS,
// and dials the device's port through the gateway's in-tunnel network
// stack, so the device never listens on the Internet and sees every such
// connection come from one platform address (DefaultSource).
//
// Every wirefleetd sharing a store listens on every live mapping (they
// learn of them through the store's change feed); a connection is carried
// by the one whose gateway holds the SIM's session, the others refuse it
// as "sim-offline".
package remoteaccess

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wirefleet/wirefleet/controlplane/store"
	"github.com/wirefleet/wirefleet/fleet"
	"github.com/wirefleet/wirefleet/internal/clock"
	"github.com/wirefleet/wirefleet/services/platform"
)

// DefaultSource is the platform address devices see remote-access
// connections come from.
var DefaultSource = netip.MustParseAddr("100.127.10.17")

// Reasons a connection is refused (metric label and event detail).
const (
	DenySource    = "source-not-allowed"
	DenyExpired   = "expired"
	DenyOffline   = "sim-offline"
	DenyTooMany   = "too-many-connections"
	DenyUnreached = "device-unreachable" // the device refused or did not answer
	DenyTLS       = "tls-handshake-failed"
)

var denyReasons = []string{DenySource, DenyExpired, DenyOffline, DenyTooMany, DenyUnreached, DenyTLS}

// Config configures a Service.
type Config struct {
	// ListenHost is the address public ports are opened on ("" : every
	// address).
	ListenHost string
	// Source is the in-tunnel address connections to devices come from;
	// DefaultSource when zero. It must be in the platform range.
	Source netip.Addr
	// TLS is served on mappings with TLS on; without it they are refused.
	TLS *tls.Config
	// Listen opens a public listener; net.Listen when nil (tests open
	// them inside a network namespace).
	Listen func(network, addr string) (net.Listener, error)
	// DialTimeout bounds connecting to the device (10 s when zero);
	// HandshakeTimeout bounds a client's TLS handshake (10 s when zero).
	DialTimeout, HandshakeTimeout time.Duration
	// Resync is how often the live mappings are re-read in full, besides
	// the change feed (30 s when zero).
	Resync time.Duration
	// Clock decides whether a mapping is live; default clock.Real.
	Clock  clock.Clock
	Logger *slog.Logger
	// ControlPlane is the fleet the mappings come from (required; a
	// *controlplane.Service).
	ControlPlane ControlPlane
}

// ControlPlane is what remote access needs of the fleet: the mappings and
// the SIMs they reach, the change feed, a mapping's expiry and its audit
// events. controlplane.Service implements it.
type ControlPlane interface {
	Changes() (<-chan fleet.Change, func())
	MappingsPage(ctx context.Context, cursor string) (store.Page[fleet.Mapping], error)
	MappingRecord(ctx context.Context, id string) (fleet.Mapping, error)
	SIMRecord(ctx context.Context, id string) (fleet.SIM, error)
	ExpireMapping(ctx context.Context, id string) (expired bool, err error)
	RecordMappingEvent(ctx context.Context, mappingID, source, action string, details map[string]any) error
}

// Service is the remote-access platform service; hand it to the gateway
// in gateway.Config.Services.
type Service struct {
	cfg     Config
	log     *slog.Logger
	metrics *metrics
	events  *eventQueue

	host platform.Host
	svc  ControlPlane

	mu        sync.Mutex
	listeners map[string]*portListener // by mapping id
	retry     map[string]bool          // mappings whose port could not be opened yet
	closed    bool

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

var _ platform.Dialer = (*Service)(nil)

// New returns a Service; the gateway starts it.
func New(cfg Config) *Service {
	if !cfg.Source.IsValid() {
		cfg.Source = DefaultSource
	}
	if cfg.Listen == nil {
		cfg.Listen = net.Listen
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = 10 * time.Second
	}
	if cfg.HandshakeTimeout <= 0 {
		cfg.HandshakeTimeout = 10 * time.Second
	}
	if cfg.Resync <= 0 {
		cfg.Resync = 30 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.Real{}
	}
	s := &Service{cfg: cfg, log: cfg.Logger, metrics: newMetrics(), listeners: map[string]*portListener{}, retry: map[string]bool{}}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	return s
}

// Collector returns the service's Prometheus metrics.
func (s *Service) Collector() prometheus.Collector { return s.metrics }

// Addrs implements platform.Service.
func (s *Service) Addrs() []netip.Addr { return []netip.Addr{s.cfg.Source} }

// DialSource implements platform.Dialer.
func (s *Service) DialSource() netip.Addr { return s.cfg.Source }

// Start implements platform.Service: it follows the store's
// mappings and opens their listeners.
func (s *Service) Start(host platform.Host) error {
	if s.cfg.ControlPlane == nil {
		return errors.New("remoteaccess: no control plane in Config")
	}
	s.host = host
	s.svc = s.cfg.ControlPlane
	s.events = newEventQueue(s.svc, s.log, s.metrics)
	s.wg.Add(2)
	go func() {
		defer s.wg.Done()
		s.events.run(s.ctx)
	}()
	go func() {
		defer s.wg.Done()
		s.follow()
	}()
	return nil
}

// Close implements platform.Service: listeners and connections
// close; pending audit events are written (for up to 5 s).
func (s *Service) Close() error {
	s.mu.Lock()
	s.closed = true
	ls := s.listeners
	s.listeners = map[string]*portListener{}
	s.mu.Unlock()
	for _, l := range ls {
		l.close("shutdown")
	}
	for _, l := range ls {
		l.wait()
	}
	s.cancel()
	s.wg.Wait()
	if s.events != nil {
		s.events.drain(5 * time.Second)
	}
	return nil
}

// follow keeps the listeners in line with the store: the change feed for
// promptness, a full re-read now and then for anything missed (a feed
// closed and reopened, a listener that could not open).
func (s *Service) follow() {
	changes, cancel := s.svc.Changes()
	defer func() { cancel() }()
	s.resync()
	tick := time.NewTicker(s.cfg.Resync)
	defer tick.Stop()
	// A port that could not be opened (still bound by a connection being
	// torn down, or by another program) is tried again every second.
	retry := time.NewTicker(time.Second)
	defer retry.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-tick.C:
			s.resync()
		case <-retry.C:
			s.mu.Lock()
			ids := make([]string, 0, len(s.retry))
			for id := range s.retry {
				ids = append(ids, id)
			}
			s.mu.Unlock()
			for _, id := range ids {
				s.refresh(id)
			}
		case c, ok := <-changes:
			if !ok {
				cancel()
				changes, cancel = s.svc.Changes()
				s.resync()
				continue
			}
			switch c.Kind {
			case fleet.ChangeMapping:
				s.refresh(c.ID)
			case fleet.ChangeSIM:
				s.simChanged(c.ID)
			}
		}
	}
}

// resync re-reads every mapping.
func (s *Service) resync() {
	ctx, cancel := context.WithTimeout(s.ctx, 30*time.Second)
	defer cancel()
	seen := map[string]bool{}
	var cursor string
	for {
		p, err := s.svc.MappingsPage(ctx, cursor)
		if err != nil {
			if ctx.Err() == nil {
				s.log.Warn("remote access: listing mappings", "err", err)
			}
			return
		}
		for _, m := range p.Items {
			seen[m.ID] = true
			s.apply(m)
		}
		if p.Next == "" {
			break
		}
		cursor = p.Next
	}
	s.mu.Lock()
	var gone []*portListener
	for id, l := range s.listeners {
		if !seen[id] {
			gone = append(gone, l)
		}
	}
	s.mu.Unlock()
	for _, l := range gone {
		s.remove(l, goneReason(l))
	}
}

// simChanged ends the open connections into a SIM that is no longer
// active: its tunnel is cut, and they would otherwise linger until TCP
// gives up. New ones are refused as sim-offline.
func (s *Service) simChanged(id string) {
	s.mu.Lock()
	var ls []*portListener
	for _, l := range s.listeners {
		if l.m.SIMID == id {
			ls = append(ls, l)
		}
	}
	s.mu.Unlock()
	if len(ls) == 0 {
		return
	}
	sim, err := s.svc.SIMRecord(s.ctx, id)
	if err != nil || sim.Status == fleet.StatusActive {
		return
	}
	for _, l := range ls {
		l.killAll("sim-" + string(sim.Status))
	}
}

// goneReason says why a mapping left the store: expired (another
// wirefleetd recorded it first) or deleted.
func goneReason(l *portListener) string {
	if !l.m.Live(l.s.cfg.Clock.Now()) {
		return "expired"
	}
	return "deleted"
}

// refresh re-reads one mapping after a change.
func (s *Service) refresh(id string) {
	m, err := s.svc.MappingRecord(s.ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		s.mu.Lock()
		l := s.listeners[id]
		delete(s.retry, id)
		s.mu.Unlock()
		if l != nil {
			s.remove(l, goneReason(l))
		}
		return
	} else if err != nil {
		s.log.Warn("remote access: reading mapping", "mapping", id, "err", err)
		return
	}
	s.apply(m)
}

// apply opens the listener of a live mapping, or expires a dead one.
func (s *Service) apply(m fleet.Mapping) {
	if !m.Live(s.cfg.Clock.Now()) {
		s.expire(m.ID)
		return
	}
	s.mu.Lock()
	if s.closed || s.listeners[m.ID] != nil {
		s.mu.Unlock()
		return
	}
	s.mu.Unlock()
	l, err := s.open(m)
	s.mu.Lock()
	failedBefore := s.retry[m.ID]
	if err != nil {
		s.retry[m.ID] = true
	} else {
		delete(s.retry, m.ID)
	}
	s.mu.Unlock()
	if err != nil {
		if !failedBefore {
			s.log.Error("remote access: cannot open the public port (trying again every second)", "mapping", m.ID, "public_port", m.PublicPort, "err", err)
		}
		return
	}
	s.mu.Lock()
	if s.closed || s.listeners[m.ID] != nil {
		s.mu.Unlock()
		l.close("duplicate")
		return
	}
	s.listeners[m.ID] = l
	s.mu.Unlock()
	s.metrics.listeners.Inc()
	l.start()
	s.log.Info("remote access: listening", "mapping", m.ID, "sim", m.SIMID, "port", m.Port, "public_port", m.PublicPort, "tls", m.TLS, "expires", m.Expires)
}

// expire closes a mapping's listener and records its expiry (once across
// every wirefleetd sharing the store).
func (s *Service) expire(id string) {
	s.mu.Lock()
	l := s.listeners[id]
	delete(s.retry, id)
	s.mu.Unlock()
	if l != nil {
		s.remove(l, "expired")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := s.svc.ExpireMapping(ctx, id); err != nil {
		s.log.Warn("remote access: recording expiry", "mapping", id, "err", err)
	}
}

// remove closes l and forgets it. The port is closed before l leaves the
// map, so Listening never reports a port as free while it is still bound.
func (s *Service) remove(l *portListener, reason string) {
	s.mu.Lock()
	held := s.listeners[l.m.ID] == l
	s.mu.Unlock()
	if !held {
		return
	}
	l.close(reason)
	s.mu.Lock()
	held = s.listeners[l.m.ID] == l
	if held {
		delete(s.listeners, l.m.ID)
	}
	s.mu.Unlock()
	if !held {
		return // removed meanwhile by another caller
	}
	s.metrics.listeners.Dec()
	s.metrics.mappingsClosed.WithLabelValues(reason).Inc()
	s.log.Info("remote access: mapping closed", "mapping", l.m.ID, "reason", reason)
}

// open resolves the mapping's SIM and opens its public port.
func (s *Service) open(m fleet.Mapping) (*portListener, error) {
	if m.TLS && s.cfg.TLS == nil {
		return nil, errors.New("the mapping wants TLS and no certificate is configured")
	}
	sim, err := s.svc.SIMRecord(s.ctx, m.SIMID)
	if err != nil {
		return nil, fmt.Errorf("SIM %s: %w", m.SIMID, err)
	}
	ln, err := s.cfg.Listen("tcp", net.JoinHostPort(s.cfg.ListenHost, fmt.Sprint(m.PublicPort)))
	if err != nil {
		return nil, err
	}
	target := sim.Address
	if m.Target.IsValid() {
		target = m.Target // a host on the SIM's LAN; the gateway routes and translates
	}
	return newPortListener(s, m, target, ln), nil
}

// Listening returns the mapping ids with an open listener (tests, status).
func (s *Service) Listening() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var ids []string
	for id := range s.listeners {
		ids = append(ids, id)
	}
	return ids
}
