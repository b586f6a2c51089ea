// SPDX-License-Identifier: Apache-2.0

// Package datastore is the platform's data store: a service on the
// gateway's in-tunnel stack at 100.127.111.111 where devices write data —
// HTTP POST / on port 80, TCP and UDP on port 8514 — stored with the
// sending SIM, a timestamp and a category, and read back by operators
// through the API. A write is acknowledged (HTTP 201, "201 …" on TCP and
// UDP) only after its transaction is durably committed; writes of many
// devices are committed together (group commit).
package datastore

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
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wirefleet/wirefleet/controlplane/store"
	"github.com/wirefleet/wirefleet/internal/clock"
	"github.com/wirefleet/wirefleet/internal/fairshare"
	"github.com/wirefleet/wirefleet/internal/ratelimit"
	"github.com/wirefleet/wirefleet/services/platform"
)

// Well-known address and ports (those Arc devices use for Harvest Data).
var Addr = netip.MustParseAddr("100.127.111.111")

const (
	HTTPPort = 80
	// Port is the TCP and UDP port.
	Port = 8514
)

// Limits of the transports.
const (
	// MaxUDP is the largest UDP payload read; a group limit above it
	// cannot be reached over UDP.
	MaxUDP = 65507
	// tcpTimeout bounds a TCP connection: the whole message and answer.
	tcpTimeout = 30 * time.Second
	// udpWorkers bounds the UDP messages in flight; more wait in the stack.
	udpWorkers = 256
)

// Config configures the data store.
type Config struct {
	// Store keeps the records. Required.
	Store store.Store
	// Logger receives the service's logs (default slog.Default()).
	Logger *slog.Logger
	// Registerer, if set, gets the service's metrics.
	Registerer prometheus.Registerer
	// Clock stamps records and drives retention (default: the real clock).
	Clock clock.Clock
	// Committers is how many group-commit workers write at once (default
	// 1: SQLite has one writer anyway; PostgreSQL gains from a few).
	Committers int
	// MaxBatchRecords and MaxBatchBytes bound one commit (defaults 1000
	// records, 4 MiB), and so how long it holds an SQLite writer.
	MaxBatchRecords, MaxBatchBytes int
	// RetentionEvery is how often expired records are deleted (default a
	// minute; negative: never, for tests calling Sweep).
	RetentionEvery time.Duration
	// RetentionHeld, if set, says whether this node runs the retention
	// sweep now (it holds the cluster-wide job's lease): of several nodes
	// on one store, one sweeps.
	RetentionHeld func() bool
	// Rate bounds each SIM's messages (a batch is one message): PerSecond
	// 0 means DefaultRate, Burst 0 DefaultBurst; PerSecond negative turns
	// the limit off. Messages over it are refused with 429.
	Rate ratelimit.Config
}

// Default per-SIM message rate: far above what a sensor sends, low enough
// that one device cannot monopolise the committer.
const (
	DefaultRate  = 100
	DefaultBurst = 1000
)

// Service is the data store. It implements platform.Service.
type Service struct {
	cfg   Config
	log   *slog.Logger
	com   *committer
	m     *metrics
	host  platform.Host      // who is calling
	limit *ratelimit.Limiter // per SIM (its overlay address); nil: none

	mu       sync.Mutex
	closers  []io.Closer
	udpConn  net.PacketConn        // closed only after its workers answered
	tcpConns map[net.Conn]struct{} // open device connections, cut short at Close
	http     *http.Server
	wg       sync.WaitGroup
	stop     chan struct{}
	closed   bool
	started  bool
}

var _ platform.Service = (*Service)(nil)

// New returns a data store; the gateway starts it.
func New(cfg Config) *Service {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.Real{}
	}
	if cfg.Committers <= 0 {
		cfg.Committers = 1
	}
	if cfg.MaxBatchRecords <= 0 {
		cfg.MaxBatchRecords = 1000
	}
	if cfg.MaxBatchBytes <= 0 {
		cfg.MaxBatchBytes = 4 << 20
	}
	if cfg.RetentionEvery == 0 {
		cfg.RetentionEvery = time.Minute
	}
	if cfg.Rate.PerSecond == 0 {
		cfg.Rate.PerSecond = DefaultRate
	}
	if cfg.Rate.Burst == 0 {
		cfg.Rate.Burst = DefaultBurst
	}
	s := &Service{cfg: cfg, log: cfg.Logger.With("service", "datastore"), m: newMetrics(cfg.Registerer), stop: make(chan struct{}), limit: ratelimit.New(cfg.Rate)}
	s.com = newCommitter(cfg.Store, cfg.Committers, cfg.MaxBatchRecords, cfg.MaxBatchBytes, s.m.observeCommit)
	return s
}

// Addrs implements platform.Service.
func (s *Service) Addrs() []netip.Addr { return []netip.Addr{Addr} }

// Start implements platform.Service: HTTP, TCP and UDP listeners on
// the in-tunnel stack, and the retention sweeper.
func (s *Service) Start(host platform.Host) error {
	tcp, udp, err := host.Listen(Addr, []uint16{HTTPPort, Port}, []uint16{Port})
	if err != nil {
		return err
	}
	httpL, tcpL, udpC := tcp[0], tcp[1], udp[0]
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || s.started {
		httpL.Close()
		tcpL.Close()
		udpC.Close()
		return errors.New("datastore: already started or closed")
	}
	s.started = true
	s.host = host
	s.http = &http.Server{Handler: fairshare.Handler(s.Handler()), ConnContext: fairshare.ConnContext, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 60 * time.Second, WriteTimeout: 60 * time.Second,
		ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelDebug)}
	s.closers = append(s.closers, tcpL)
	s.udpConn = udpC
	s.tcpConns = map[net.Conn]struct{}{}
	s.wg.Add(3)
	go func() {
		defer s.wg.Done()
		s.http.Serve(httpL)
	}()
	go func() {
		defer s.wg.Done()
		s.serveTCP(tcpL)
	}()
	go func() {
		defer s.wg.Done()
		s.serveUDP(udpC)
	}()
	if s.cfg.RetentionEvery > 0 {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.sweepEvery(s.cfg.RetentionEvery)
		}()
	}
	s.log.Info("data store up", "addr", Addr.String(), "http_port", HTTPPort, "port", Port, "committers", s.cfg.Committers)
	return nil
}

// Close implements platform.Service: listeners close, writes being
// committed finish, then the workers stop.
func (s *Service) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	close(s.stop)
	for _, c := range s.closers {
		c.Close()
	}
	// A connection still sending (or idle) ends now: its message is
	// refused, never acknowledged. Messages already read finish their
	// commit and get their answers.
	for c := range s.tcpConns {
		c.SetReadDeadline(time.Now())
	}
	// UDP: stop reading, answer what is in flight, then close.
	if s.udpConn != nil {
		s.udpConn.SetReadDeadline(time.Now())
	}
	hs := s.http
	s.mu.Unlock()
	if hs != nil {
		// Writes being received or committed get their answers (a
		// commit takes milliseconds; connections that never sent a
		// request would hold Shutdown for 5 s).
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		if hs.Shutdown(ctx) != nil {
			hs.Close()
		}
		cancel()
	}
	s.wg.Wait()
	if s.udpConn != nil {
		s.udpConn.Close()
	}
	s.com.close()
	return nil
}

// store identifies the device at addr, turns its message into records and
// commits them; it returns how many were stored.
func (s *Service) store(ctx context.Context, transport string, addr netip.Addr, contentType string, read func(limit int) ([]byte, error)) (int, error) {
	c, ok := s.host.Caller(ctx, addr.Unmap())
	if !ok {
		return 0, s.refuse(transport, addr, reject(http.StatusForbidden, ReasonUnknownCaller, "no active SIM sends from %s", addr))
	}
	set := c.Group.DataStore
	if c.SIM.GroupID == "" || !set.Enabled {
		return 0, s.refuse(transport, addr, reject(http.StatusForbidden, ReasonDisabled, "the data store is off for this SIM's group"))
	}
	if ok, wait := s.limit.Allow(c.SIM.Address); !ok {
		return 0, s.refuse(transport, addr, reject(http.StatusTooManyRequests, ReasonRateLimited, "more than %g messages a second from this SIM; retry in %v", s.cfg.Rate.PerSecond, wait.Round(time.Millisecond)))
	}
	body, err := read(set.Limit())
	if err != nil {
		var rj *Reject
		if errors.As(err, &rj) {
			return 0, s.refuse(transport, addr, rj)
		}
		return 0, err
	}
	recs, err := Records(set, c.SIM, contentType, body, s.cfg.Clock.Now().UTC())
	if err != nil {
		var rj *Reject
		if errors.As(err, &rj) {
			return 0, s.refuse(transport, addr, rj)
		}
		return 0, err
	}
	if err := s.com.write(ctx, recs); err != nil {
		s.m.rejected.WithLabelValues(ReasonStore).Inc()
		s.log.Warn("data store write failed; not acknowledged", "sim", c.SIM.ID, "transport", transport, "records", len(recs), "err", err)
		return 0, reject(http.StatusServiceUnavailable, ReasonStore, "not stored: %v", err)
	}
	s.m.records.WithLabelValues(transport).Add(float64(len(recs)))
	s.m.bytes.WithLabelValues(transport).Add(float64(len(body)))
	s.log.Debug("stored", "sim", c.SIM.ID, "transport", transport, "records", len(recs), "bytes", len(body))
	return len(recs), nil
}

func (s *Service) refuse(transport string, addr netip.Addr, rj *Reject) error {
	s.m.rejected.WithLabelValues(rj.Reason).Inc()
	s.log.Debug("refused", "from", addr.String(), "transport", transport, "reason", rj.Reason, "message", rj.Message)
	return rj
}

// tooLarge is the rejection of a message over the group's limit.
func tooLarge(limit int) *Reject {
	return reject(http.StatusRequestEntityTooLarge, ReasonTooLarge, "payload larger than the group's limit of %d bytes", limit)
}

// ---- HTTP ----

// Handler is the HTTP side: POST / with any body; the Content-Type is kept
// (none: JSON objects and arrays are recognised, the rest is binary).
func (s *Service) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ap, err := netip.ParseAddrPort(r.RemoteAddr)
		if err != nil {
			writeHTTP(w, 0, reject(http.StatusForbidden, ReasonUnknownCaller, "unknown caller"))
			return
		}
		if r.URL.Path != "/" {
			writeHTTP(w, 0, reject(http.StatusNotFound, "not_found", "write to POST /"))
			return
		}
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", "POST")
			s.m.rejected.WithLabelValues(ReasonMethod).Inc()
			writeHTTP(w, 0, reject(http.StatusMethodNotAllowed, ReasonMethod, "write with POST /"))
			return
		}
		n, err := s.store(r.Context(), "http", ap.Addr(), r.Header.Get("Content-Type"), func(limit int) ([]byte, error) {
			if r.ContentLength > int64(limit) {
				return nil, tooLarge(limit)
			}
			b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, int64(limit)))
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				return nil, tooLarge(limit)
			}
			if err != nil {
				return nil, reject(http.StatusBadRequest, "bad_request", "reading the body: %v", err)
			}
			return b, nil
		})
		writeHTTP(w, n, err)
	})
}

type answer struct {
	Stored  int    `json:"stored"`
	Error   string `json:"error,omitempty"` // the reason code
	Message string `json:"message,omitempty"`
}

func writeHTTP(w http.ResponseWriter, n int, err error) {
	w.Header().Set("Content-Type", "application/json")
	if err == nil {
		w.WriteHeader(http.StatusCreated)
		json.NewEncoder(w).Encode(answer{Stored: n})
		return
	}
	rj := asReject(err)
	if rj.Status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "5") // nothing was stored: send again shortly
	}
	w.WriteHeader(rj.Status)
	json.NewEncoder(w).Encode(answer{Error: rj.Reason, Message: rj.Message})
}

func asReject(err error) *Reject {
	var rj *Reject
	if errors.As(err, &rj) {
		return rj
	}
	return reject(http.StatusInternalServerError, "internal", "%v", err)
}

// lineAnswer is the TCP and UDP answer: "201 stored N" or "<status>
// <reason>: <message>", one line.
func lineAnswer(n int, err error) []byte {
	if err == nil {
		return []byte("201 stored " + strconv.Itoa(n) + "\n")
	}
	rj := asReject(err)
	return []byte(fmt.Sprintf("%d %s: %s\n", rj.Status, rj.Reason, rj.Message))
}

// ---- TCP: one message per connection ----

func (s *Service) serveTCP(ln net.Listener) {
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			c.Close()
			continue
		}
		s.tcpConns[c] = struct{}{}
		s.mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.handleTCP(c)
			s.mu.Lock()
			delete(s.tcpConns, c)
			s.mu.Unlock()
		}()
	}
}

// handleTCP reads one message — everything the device sends until it
// closes its side — stores it and answers one line.
func (s *Service) handleTCP(c net.Conn) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(tcpTimeout))
	ap, err := netip.ParseAddrPort(c.RemoteAddr().String())
	if err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), tcpTimeout)
	defer cancel()
	n, err := s.store(ctx, "tcp", ap.Addr(), "", func(limit int) ([]byte, error) {
		b, err := io.ReadAll(io.LimitReader(c, int64(limit)+1))
		if err != nil {
			return nil, reject(http.StatusBadRequest, "bad_request", "reading: %v", err)
		}
		if len(b) > limit {
			return nil, tooLarge(limit)
		}
		return b, nil
	})
	c.Write(lineAnswer(n, err))
	// Refused early, the device may still be sending: read a bounded
	// rest so closing does not reset the connection before it reads the
	// answer.
	if err != nil {
		if cw, ok := c.(interface{ CloseWrite() error }); ok {
			cw.CloseWrite()
		}
		c.SetReadDeadline(time.Now().Add(2 * time.Second))
		io.Copy(io.Discard, io.LimitReader(c, 4<<20))
	}
}

// ---- UDP: one message per datagram ----

func (s *Service) serveUDP(pc net.PacketConn) {
	sem := make(chan struct{}, udpWorkers)
	var wg sync.WaitGroup
	defer wg.Wait()
	buf := make([]byte, MaxUDP+1)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			return
		}
		msg := append([]byte(nil), buf[:n]...)
		ap, err := netip.ParseAddrPort(from.String())
		if err != nil {
			continue
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			ctx, cancel := context.WithTimeout(context.Background(), tcpTimeout)
			defer cancel()
			stored, err := s.store(ctx, "udp", ap.Addr(), "", func(limit int) ([]byte, error) {
				if len(msg) > limit {
					return nil, tooLarge(limit)
				}
				return msg, nil
			})
			pc.WriteTo(lineAnswer(stored, err), from)
		}()
	}
}

// Write stores one message of the device at addr as its group's settings
// say — for the unified endpoint, which hands over messages it has read
// itself. It returns how many records were stored, or a *Reject.
func (s *Service) Write(ctx context.Context, transport string, addr netip.Addr, contentType string, body []byte) (int, error) {
	return s.store(ctx, transport, addr, contentType, func(limit int) ([]byte, error) {
		if len(body) > limit {
			return nil, tooLarge(limit)
		}
		return body, nil
	})
}

// AsReject returns err as the data store's refusal (a store failure or an
// unexpected error is a 5xx one).
func AsReject(err error) *Reject { return asReject(err) }
