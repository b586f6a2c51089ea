// SPDX-License-Identifier: Apache-2.0

// Package forwarder is the platform's forwarder service at
// 100.127.127.100 on the gateway's in-tunnel stack: it routes what a device
// sends (HTTP on port 8888, TCP and UDP on 23080, MQTT on 1883) to the
// destinations its group names, adding who the device is (identity headers,
// signatures) and what the destination needs (credentials the device never
// holds). Routes live in fleet.GroupSettings.Forwarders; their secrets are
// stored sealed and opened here, per use, with the server's seal.Key.
package forwarder

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wirefleet/wirefleet/internal/clock"
	"github.com/wirefleet/wirefleet/internal/egress"
	"github.com/wirefleet/wirefleet/internal/fairshare"
	"github.com/wirefleet/wirefleet/internal/seal"
	"github.com/wirefleet/wirefleet/services/mqttbridge"
	"github.com/wirefleet/wirefleet/services/platform"
)

// Addr is the forwarders' address, the one Arc devices already use.
var Addr = netip.MustParseAddr("100.127.127.100")

// Entry ports.
const (
	HTTPPort   = 8888
	StreamPort = 23080 // TCP and UDP
	MQTTPort   = 1883
)

// Limits, documented in docs/services.md.
const (
	// MaxMessage bounds one TCP message (bytes arriving together) or UDP
	// datagram, and an answer sent back to the device as one.
	MaxMessage = 64 << 10
	// MaxHTTPBody bounds an HTTP request body (it is signed, so it is read
	// whole before forwarding).
	MaxHTTPBody = 1 << 20
	// MaxHTTPAnswer bounds the destination's answer relayed to the device.
	MaxHTTPAnswer = 8 << 20
	// MessageGap ends a TCP message: bytes separated by less are one
	// message (a message larger than the MTU arrives in several reads).
	MessageGap = 50 * time.Millisecond
	// StreamIdle closes a TCP connection nothing crossed for this long.
	StreamIdle = 5 * time.Minute
	// DefaultMaxConns bounds the device connections held at once (HTTP,
	// TCP and MQTT together); beyond it new ones are closed at once
	// ("busy").
	DefaultMaxConns = 4096
	// maxUDPInFlight bounds datagrams being forwarded at once, all SIMs.
	maxUDPInFlight = 1024
	// udpCharge is what one datagram in flight costs its SIM's share of
	// bytes in flight (fairshare): the largest datagram.
	udpCharge = MaxMessage
)

// Config configures a Service.
type Config struct {
	// Secrets opens the sealed secrets of forwarder settings (the key the
	// control plane seals them with).
	Secrets *seal.Key
	Logger  *slog.Logger
	// Registerer, if set, receives the forwarder's metrics.
	Registerer prometheus.Registerer
	// Timeout bounds one attempt at a destination (connect, send, answer
	// headers); 0 means 15 s. Exceeded: HTTP 504.
	Timeout time.Duration
	// Retries is how many more times a destination that refused or could
	// not be reached is tried (only when nothing was sent, so a request is
	// never delivered twice); 0 means 2, negative means none.
	Retries int
	// MaxConns bounds the device connections held at once (0:
	// DefaultMaxConns).
	MaxConns int
	// Egress decides which destinations may be reached; its zero value
	// refuses private, local and reserved addresses (egress.Denied) and
	// this host's own.
	Egress egress.Policy
	// Clock is the time of timestamps; default clock.Real.
	Clock clock.Clock
}

// Service is the forwarder platform service (a platform.Service).
type Service struct {
	cfg     Config
	log     *slog.Logger
	m       *metrics
	ctx     context.Context
	cancel  context.CancelFunc
	host    platform.Host
	httpSrv *http.Server
	lns     []net.Listener
	udp     net.PacketConn
	udpSem  chan struct{}
	wg      sync.WaitGroup
	// mqttStats counts the MQTT bridge's sessions and messages.
	mqttStats mqttbridge.Stats

	mu      sync.Mutex
	conns   map[net.Conn]struct{} // open TCP/MQTT connections, closed on Close
	clients map[[32]byte]*http.Client
	pools   map[[32]byte]*x509.CertPool
}

// New returns a forwarder service; pass it in gateway.Config.Services.
func New(cfg Config) *Service {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 15 * time.Second
	}
	if cfg.Retries == 0 {
		cfg.Retries = 2
	} else if cfg.Retries < 0 {
		cfg.Retries = 0
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.Real{}
	}
	if cfg.MaxConns <= 0 {
		cfg.MaxConns = DefaultMaxConns
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Service{cfg: cfg, log: cfg.Logger.With("service", "forwarder"), ctx: ctx, cancel: cancel,
		udpSem: make(chan struct{}, maxUDPInFlight), conns: map[net.Conn]struct{}{}, clients: map[[32]byte]*http.Client{}, pools: map[[32]byte]*x509.CertPool{}}
	s.m = newMetrics(cfg.Registerer, &s.mqttStats)
	return s
}

// Addrs implements platform.Service.
func (s *Service) Addrs() []netip.Addr { return []netip.Addr{Addr} }

// Start implements platform.Service: it listens on the stack and
// returns. (It runs wherever the gateway starts; the goroutines it starts
// dial destinations from the process's network namespace.)
func (s *Service) Start(host platform.Host) error {
	s.host = host
	tcp, udp, err := host.Listen(Addr, []uint16{HTTPPort, StreamPort, MQTTPort}, []uint16{StreamPort})
	if err != nil {
		return err
	}
	hl, tl, ml := tcp[0], tcp[1], tcp[2]
	s.lns = append(s.lns, tcp...)
	s.udp = udp[0]
	s.httpSrv = &http.Server{Handler: fairshare.Handler(http.HandlerFunc(s.serveHTTP)), ConnContext: fairshare.ConnContext, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 60 * time.Second,
		WriteTimeout: 2*s.cfg.Timeout*time.Duration(1+s.cfg.Retries) + 30*time.Second, IdleTimeout: 2 * time.Minute, MaxHeaderBytes: 64 << 10,
		ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelDebug), BaseContext: func(net.Listener) context.Context { return s.ctx }}
	s.wg.Add(4)
	go func() {
		defer s.wg.Done()
		s.httpSrv.Serve(httpListener{hl, s})
	}()
	go func() {
		defer s.wg.Done()
		s.acceptLoop(tl, kindTCPHTTP, s.serveTCP)
	}()
	go func() {
		defer s.wg.Done()
		s.acceptLoop(ml, kindMQTT, s.serveMQTT)
	}()
	go func() {
		defer s.wg.Done()
		s.serveUDP()
	}()
	s.log.Info("forwarder listening", "addr", Addr.String(), "http", HTTPPort, "tcp_udp", StreamPort, "mqtt", MQTTPort)
	return nil
}

// Close implements platform.Service: it stops listening, ends open
// connections and waits for its goroutines.
func (s *Service) Close() error {
	s.cancel()
	if s.httpSrv != nil {
		s.httpSrv.Close()
	}
	for _, l := range s.lns {
		l.Close()
	}
	if s.udp != nil {
		s.udp.Close()
	}
	s.mu.Lock()
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
	return nil
}

func (s *Service) acceptLoop(l net.Listener, kind string, serve func(net.Conn)) {
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		switch s.track(c) {
		case closing:
			c.Close()
			return
		case full:
			s.m.request(kind)
			s.m.fail(kind, "busy")
			c.Close()
			continue
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer s.untrack(c)
			serve(c)
		}()
	}
}

// Results of track.
const (
	tracked = iota
	full    // Config.MaxConns reached: the connection is refused
	closing // the service is closing
)

// track registers an open connection.
func (s *Service) track(c net.Conn) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ctx.Err() != nil {
		return closing
	}
	if len(s.conns) >= s.cfg.MaxConns {
		return full
	}
	s.conns[c] = struct{}{}
	return tracked
}

func (s *Service) untrack(c net.Conn) {
	c.Close()
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
}

// httpListener counts the HTTP entry point's connections against
// Config.MaxConns.
type httpListener struct {
	net.Listener
	s *Service
}

func (l httpListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		switch l.s.track(c) {
		case closing:
			c.Close()
			return nil, net.ErrClosed
		case full:
			l.s.m.request(kindHTTP)
			l.s.m.fail(kindHTTP, "busy")
			c.Close()
			continue
		}
		return &httpConn{Conn: c, s: l.s}, nil
	}
}

type httpConn struct {
	net.Conn
	s    *Service
	once sync.Once
}

// NetConn returns the connection inside (fairshare finds its account
// through it).
func (c *httpConn) NetConn() net.Conn { return c.Conn }

func (c *httpConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.s.untrack(c.Conn) })
	return err
}

// caller returns the device behind a connection's remote address.
func (s *Service) caller(ctx context.Context, remote string) (platform.Caller, Identity, bool) {
	ap, err := netip.ParseAddrPort(remote)
	if err != nil {
		return platform.Caller{}, Identity{}, false
	}
	c, ok := s.host.Caller(ctx, ap.Addr())
	if !ok {
		return platform.Caller{}, Identity{}, false
	}
	return c, Identity{SIMID: c.SIM.ID, IMSI: c.SIM.IMSI, Group: c.GroupName, IMEI: c.SIM.Tags["imei"], MSISDN: c.SIM.Tags["msisdn"]}, true
}

// open returns a stored secret in clear ("" stays "").
func (s *Service) open(sealed string) (string, error) {
	if sealed == "" {
		return "", nil
	}
	if s.cfg.Secrets == nil {
		return "", errors.New("no key to open stored secrets")
	}
	return s.cfg.Secrets.Open(sealed)
}

// certPool returns the pool of a route's CA PEM (nil: the system's roots).
func (s *Service) certPool(caPEM string) (*x509.CertPool, error) {
	if caPEM == "" {
		return nil, nil
	}
	k := sha256.Sum256([]byte(caPEM))
	s.mu.Lock()
	defer s.mu.Unlock()
	if p, ok := s.pools[k]; ok {
		return p, nil
	}
	p := x509.NewCertPool()
	if !p.AppendCertsFromPEM([]byte(caPEM)) {
		return nil, errors.New("the route's CA PEM holds no certificate")
	}
	if len(s.pools) >= 256 {
		clear(s.pools) // settings changed many times: start over
	}
	s.pools[k] = p
	return p, nil
}

// tlsConfig is the client TLS configuration for a destination.
func (s *Service) tlsConfig(serverName, caPEM string) (*tls.Config, error) {
	pool, err := s.certPool(caPEM)
	if err != nil {
		return nil, err
	}
	return &tls.Config{ServerName: serverName, RootCAs: pool, MinVersion: tls.VersionTLS12}, nil
}

// client returns the HTTP client for destinations trusting caPEM (one per
// CA, so connections to a destination are reused across devices).
func (s *Service) client(caPEM string) (*http.Client, error) {
	pool, err := s.certPool(caPEM)
	if err != nil {
		return nil, err
	}
	k := sha256.Sum256([]byte(caPEM))
	s.mu.Lock()
	defer s.mu.Unlock()
	if c, ok := s.clients[k]; ok {
		return c, nil
	}
	tr := &http.Transport{
		Proxy:                 nil, // destinations are dialled directly, whatever the environment says
		DialContext:           s.cfg.Egress.Dialer(net.Dialer{Timeout: s.cfg.Timeout, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:       &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout:   s.cfg.Timeout,
		ResponseHeaderTimeout: s.cfg.Timeout,
		MaxIdleConns:          1024,
		MaxIdleConnsPerHost:   256,
		IdleConnTimeout:       90 * time.Second,
		ForceAttemptHTTP2:     true,
	}
	c := &http.Client{Transport: tr, Timeout: 0, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	if len(s.clients) >= 256 {
		for _, old := range s.clients {
			old.CloseIdleConnections()
		}
		clear(s.clients)
	}
	s.clients[k] = c
	return c, nil
}

// failure is why forwarding failed: a metric reason, an HTTP status for
// the device and a message safe to show it.
type failure struct {
	reason string
	status int
	msg    string
}

func (f *failure) Error() string { return f.reason + ": " + f.msg }

// classify turns a destination error into a failure.
func classify(err error, timeout time.Duration) *failure {
	var ne net.Error
	var oe *net.OpError
	var ce *tls.CertificateVerificationError
	var re tls.RecordHeaderError
	var de *egress.DeniedError
	switch {
	case errors.As(err, &de):
		return &failure{"destination_forbidden", http.StatusForbidden, de.Error()}
	case errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()):
		return &failure{"timeout", http.StatusGatewayTimeout, fmt.Sprintf("the destination did not answer within %v", timeout)}
	case errors.As(err, &ce) || errors.As(err, &re):
		return &failure{"tls", http.StatusBadGateway, "TLS with the destination failed: " + err.Error()}
	case errors.As(err, &oe) && oe.Op == "dial":
		return &failure{"unreachable", http.StatusBadGateway, "the destination is unreachable: " + oe.Err.Error()}
	}
	return &failure{"destination_error", http.StatusBadGateway, "the destination failed: " + err.Error()}
}

// dialError reports whether err happened before anything was sent (so a
// retry cannot deliver twice).
func dialError(err error) bool {
	var oe *net.OpError
	var de *egress.DeniedError
	return errors.As(err, &oe) && oe.Op == "dial" && !errors.As(err, &de) // a refused destination stays refused
}

// backoff waits before retry number i (0-based), or returns false if ctx
// ends first.
func backoff(ctx context.Context, i int) bool {
	t := time.NewTimer(time.Duration(100<<i) * time.Millisecond)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
