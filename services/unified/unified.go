// SPDX-License-Identifier: Apache-2.0

// Package unified is the unified endpoint at 100.127.69.42: one address
// where a device sends a message once and the platform hands it to every
// service its group enables — the data store and the forwarders — and
// answers with what each of them said. Devices configured for one place
// (SORACOM's unified endpoint is the model) keep working as a group's
// operator turns services on and off.
package unified

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wirefleet/wirefleet/internal/fairshare"
	"github.com/wirefleet/wirefleet/services/datastore"
	"github.com/wirefleet/wirefleet/services/forwarder"
	"github.com/wirefleet/wirefleet/services/platform"
)

// Addr is the unified endpoint's address; it serves HTTP on HTTPPort and
// TCP and UDP messages on MessagePort.
var Addr = netip.MustParseAddr("100.127.69.42")

// Ports.
const (
	HTTPPort    = 80
	MessagePort = 23080
)

// MaxMessage bounds one TCP or UDP message, as the forwarders do.
const MaxMessage = forwarder.MaxMessage

// MaxHTTPBody bounds an HTTP request body, as the forwarders do.
const MaxHTTPBody = forwarder.MaxHTTPBody

// Service names in answers.
const (
	ServiceDataStore = "dataStore"
	ServiceForwarder = "forwarder"
)

// Config configures the endpoint. Either service may be nil (not run by
// this wirefleetd); then it is never a target.
type Config struct {
	DataStore *datastore.Service
	Forwarder *forwarder.Service
	Logger    *slog.Logger
	// Timeout bounds one message's fan-out (default 30 s).
	Timeout time.Duration
}

// Service is the unified endpoint, a platform.Service.
type Service struct {
	cfg  Config
	log  *slog.Logger
	host platform.Host
	m    *metrics

	ctx    context.Context
	cancel context.CancelFunc
	httpS  *http.Server
	tcp    net.Listener
	udp    net.PacketConn
	wg     sync.WaitGroup

	mu    sync.Mutex
	conns map[net.Conn]struct{} // open TCP connections, cut short at Close
}

// MaxConns bounds the TCP connections the endpoint holds at once.
const MaxConns = 4096

// New returns the endpoint; the gateway starts it.
func New(cfg Config) *Service {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 30 * time.Second
	}
	s := &Service{cfg: cfg, log: cfg.Logger.With("service", "unified"), m: newMetrics(), conns: map[net.Conn]struct{}{}}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	return s
}

// Addrs implements platform.Service.
func (s *Service) Addrs() []netip.Addr { return []netip.Addr{Addr} }

// Start implements platform.Service.
func (s *Service) Start(host platform.Host) error {
	s.host = host
	tcp, udp, err := host.Listen(Addr, []uint16{HTTPPort, MessagePort}, []uint16{MessagePort})
	if err != nil {
		return err
	}
	hl := tcp[0]
	s.tcp, s.udp = tcp[1], udp[0]
	s.httpS = &http.Server{Handler: fairshare.Handler(http.HandlerFunc(s.serveHTTP)), ConnContext: fairshare.ConnContext, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: time.Minute, WriteTimeout: time.Minute}
	s.wg.Add(3)
	go func() { defer s.wg.Done(); s.httpS.Serve(hl) }()
	go func() { defer s.wg.Done(); s.serveTCP() }()
	go func() { defer s.wg.Done(); s.serveUDP() }()
	return nil
}

// Close implements platform.Service.
func (s *Service) Close() error {
	if s.httpS != nil {
		// Requests being answered finish (the services behind are still up).
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		if s.httpS.Shutdown(ctx) != nil {
			s.httpS.Close()
		}
		cancel()
	}
	if s.tcp != nil {
		s.tcp.Close()
	}
	s.mu.Lock()
	for c := range s.conns {
		c.SetReadDeadline(time.Now()) // a message still arriving is refused, never half-handled
	}
	s.mu.Unlock()
	if s.udp != nil {
		s.udp.SetReadDeadline(time.Now()) // stop reading; datagrams in flight are answered
	}
	s.wg.Wait()
	s.cancel()
	if s.udp != nil {
		s.udp.Close()
	}
	return nil
}

// Result is what one service said about a message.
type Result struct {
	Status int `json:"status"`
	// Stored is the number of records the data store wrote.
	Stored int `json:"stored,omitempty"`
	// Error and Message explain a refusal or a failure.
	Error   string `json:"error,omitempty"`
	Message string `json:"message,omitempty"`
	// ContentType and Body are the destination's answer (forwarder): JSON
	// answers inline, text as a string, anything else base64 in BodyBase64.
	ContentType string          `json:"contentType,omitempty"`
	Body        json.RawMessage `json:"body,omitempty"`
	BodyBase64  []byte          `json:"bodyBase64,omitempty"`
}

// Answer is the endpoint's answer: each enabled service's result.
type Answer map[string]Result

// Status is the HTTP status of a combined answer: 200 when every service
// succeeded, 207 when some did, and when none did the failure's own status
// if all are refusals of the device's message (4xx), else 502.
func (a Answer) Status() int {
	ok, client := 0, 0
	first := 0
	for _, name := range []string{ServiceDataStore, ServiceForwarder} {
		r, in := a[name]
		if !in {
			continue
		}
		switch {
		case r.Status/100 == 2:
			ok++
		case r.Status/100 == 4:
			client++
			if first == 0 {
				first = r.Status
			}
		}
	}
	switch {
	case ok == len(a):
		return http.StatusOK
	case ok > 0:
		return http.StatusMultiStatus
	case client == len(a):
		return first
	}
	return http.StatusBadGateway
}

func (s *Service) ctxTimeout() (context.Context, context.CancelFunc) {
	return context.WithTimeout(s.ctx, s.cfg.Timeout)
}

// errNoService is the answer when the group enables nothing for a message.
var errNoService = errors.New("this SIM's group enables neither the data store nor a forwarder route for this message")

// fanOut hands a message to the enabled services at once and collects
// their results.
func (s *Service) fanOut(transport string, dsOn, fwOn bool, ds func() Result, fw func() Result) (Answer, error) {
	if !dsOn && !fwOn {
		return nil, errNoService
	}
	var mu sync.Mutex
	a := Answer{}
	var wg sync.WaitGroup
	run := func(name string, on bool, fn func() Result) {
		if !on {
			return
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := fn()
			s.m.result(transport, name, r.Status)
			mu.Lock()
			a[name] = r
			mu.Unlock()
		}()
	}
	run(ServiceDataStore, dsOn, ds)
	run(ServiceForwarder, fwOn, fw)
	wg.Wait()
	return a, nil
}

// storeResult turns the data store's answer into a Result.
func storeResult(n int, err error) Result {
	if err == nil {
		return Result{Status: http.StatusCreated, Stored: n}
	}
	rj := datastore.AsReject(err)
	return Result{Status: rj.Status, Error: rj.Reason, Message: rj.Message}
}

// messageResult turns the forwarder's answer to a message into a Result.
func messageResult(answer []byte, err error) Result {
	if err != nil {
		var fe *forwarder.Error
		if errors.As(err, &fe) {
			return Result{Status: fe.Status, Error: fe.Reason, Message: fe.Message}
		}
		return Result{Status: http.StatusBadGateway, Error: "destination_error", Message: err.Error()}
	}
	r := Result{Status: http.StatusOK}
	setBody(&r, "", answer)
	return r
}

// setBody puts an answer's body in r as JSON, text or base64.
func setBody(r *Result, ctype string, b []byte) {
	r.ContentType = ctype
	if len(b) == 0 {
		return
	}
	switch {
	case json.Valid(b) && (ctype == "" || strings.Contains(ctype, "json")):
		r.Body = json.RawMessage(b)
	case isText(ctype, b):
		r.Body, _ = json.Marshal(string(b))
	default:
		r.BodyBase64 = b
	}
}

func isText(ctype string, b []byte) bool {
	if strings.HasPrefix(ctype, "text/") {
		return true
	}
	if ctype != "" {
		return false
	}
	return strings.ToValidUTF8(string(b), "\uFFFD") == string(b) && !bytes.ContainsRune(b, 0)
}

// ---- HTTP ----

// recorder is an http.ResponseWriter keeping what a service's handler wrote.
type recorder struct {
	h      http.Header
	status int
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header { return r.h }
func (r *recorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
}
func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	if r.body.Len() >= MaxHTTPBody {
		return len(b), nil // cut: the combined answer stays bounded
	}
	return r.body.Write(b[:min(len(b), MaxHTTPBody-r.body.Len())])
}

func (s *Service) serveHTTP(w http.ResponseWriter, r *http.Request) {
	s.m.request("http")
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	caller, ok := platform.Caller{}, false
	if err == nil {
		caller, ok = s.host.Caller(r.Context(), ap.Addr())
	}
	if !ok {
		writeError(w, http.StatusForbidden, "unknown_sim", "no active SIM sends from this address")
		return
	}
	if r.Method != http.MethodPost && r.Method != http.MethodPut {
		w.Header().Set("Allow", "POST, PUT")
		writeError(w, http.StatusMethodNotAllowed, "bad_method", "send with POST (or PUT)")
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxHTTPBody))
	if err != nil {
		writeError(w, http.StatusRequestEntityTooLarge, "too_large", "request bodies are limited to 1 MiB")
		return
	}
	dsOn := s.cfg.DataStore != nil && caller.Group.DataStore.Enabled
	fwOn := s.cfg.Forwarder != nil && forwarder.HasHTTPRoute(caller.Group.Forwarders.HTTP, r.URL.Path)
	a, err := s.fanOut("http", dsOn, fwOn,
		func() Result {
			ctx, cancel := s.ctxTimeout()
			defer cancel()
			return storeResult(s.cfg.DataStore.Write(ctx, "unified-http", ap.Addr(), r.Header.Get("Content-Type"), body))
		},
		func() Result {
			// The forwarder's own handler, on a copy of the request: the same
			// route matching, identity, signatures and credential stripping.
			req := r.Clone(r.Context())
			req.Body = io.NopCloser(bytes.NewReader(body))
			req.ContentLength = int64(len(body))
			rec := &recorder{h: http.Header{}}
			s.cfg.Forwarder.HTTPHandler().ServeHTTP(rec, req)
			res := Result{Status: rec.status}
			if reason := rec.h.Get(forwarder.HeaderError); reason != "" {
				// The forwarder's own refusal or failure; a destination's
				// error answer has no such header and is passed on as it is.
				var e struct{ Message string }
				json.Unmarshal(rec.body.Bytes(), &e)
				res.Error, res.Message = reason, e.Message
				return res
			}
			setBody(&res, rec.h.Get("Content-Type"), rec.body.Bytes())
			return res
		})
	if err != nil {
		writeError(w, http.StatusNotFound, "no_service", err.Error()+" ("+r.URL.Path+")")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(a.Status())
	json.NewEncoder(w).Encode(a)
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]string{"error": code, "message": msg})
}

// ---- TCP and UDP: one message, one combined answer ----

// message fans one TCP or UDP message out and returns the answer to send
// back: the combined answer as one JSON line.
func (s *Service) message(transport string, from netip.AddrPort, msg []byte) []byte {
	s.m.request(transport)
	ctx, cancel := s.ctxTimeout()
	defer cancel()
	caller, ok := s.host.Caller(ctx, from.Addr())
	if !ok {
		return errorLine(http.StatusForbidden, "unknown_sim", "no active SIM sends from this address")
	}
	dsOn := s.cfg.DataStore != nil && caller.Group.DataStore.Enabled
	fwOn := s.cfg.Forwarder != nil && forwarder.HasMessageRoute(caller.Group.Forwarders, transport)
	a, err := s.fanOut(transport, dsOn, fwOn,
		func() Result {
			return storeResult(s.cfg.DataStore.Write(ctx, "unified-"+transport, from.Addr(), "", msg))
		},
		func() Result {
			return messageResult(s.cfg.Forwarder.Message(ctx, transport, from, msg))
		})
	if err != nil {
		return errorLine(http.StatusNotFound, "no_service", err.Error())
	}
	b, _ := json.Marshal(struct {
		Status int `json:"status"`
		Answer
	}{a.Status(), a})
	return append(b, '\n')
}

func errorLine(status int, code, msg string) []byte {
	b, _ := json.Marshal(map[string]any{"status": status, "error": code, "message": msg})
	return append(b, '\n')
}

func (s *Service) serveUDP() {
	buf := make([]byte, MaxMessage+1)
	sem := make(chan struct{}, 256) // datagrams in flight
	for {
		n, from, err := s.udp.ReadFrom(buf)
		if err != nil {
			var ne net.Error
			if errors.Is(err, net.ErrClosed) || (errors.As(err, &ne) && ne.Timeout()) || s.ctx.Err() != nil {
				return // closing (Close sets a deadline in the past; gVisor's timeout is a net.Error)
			}
			continue
		}
		ap, err := netip.ParseAddrPort(from.String())
		if err != nil {
			continue
		}
		if n > MaxMessage {
			s.udp.WriteTo(errorLine(http.StatusRequestEntityTooLarge, "too_large", "datagrams are limited to 64 KiB"), from)
			continue
		}
		msg := append([]byte(nil), buf[:n]...)
		select {
		case sem <- struct{}{}:
		default:
			s.udp.WriteTo(errorLine(http.StatusServiceUnavailable, "busy", "too many datagrams in flight; retry"), from)
			continue
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer func() { <-sem }()
			s.udp.WriteTo(s.message("udp", ap, msg), from)
		}()
	}
}

// serveTCP takes one message per connection: what the device sends until
// it half-closes (as `nc -N` does), at most MaxMessage bytes. A device
// silent for 10 s without half-closing gets 408 and nothing is handed on:
// a message cut short is never stored or forwarded.
func (s *Service) serveTCP() {
	for {
		c, err := s.tcp.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		full := len(s.conns) >= MaxConns
		if !full {
			s.conns[c] = struct{}{}
		}
		s.mu.Unlock()
		if full {
			c.SetWriteDeadline(time.Now().Add(time.Second))
			c.Write(errorLine(http.StatusServiceUnavailable, "busy", "too many connections; retry"))
			c.Close()
			continue
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer func() {
				c.Close()
				s.mu.Lock()
				delete(s.conns, c)
				s.mu.Unlock()
			}()
			s.handleTCP(c)
		}()
	}
}

// idleRead is how long a TCP message may pause before it is abandoned.
const idleRead = 10 * time.Second

func (s *Service) handleTCP(c net.Conn) {
	ap, err := netip.ParseAddrPort(c.RemoteAddr().String())
	if err != nil {
		return
	}
	var msg []byte
	buf := make([]byte, 16<<10)
	for {
		c.SetReadDeadline(time.Now().Add(idleRead))
		n, err := c.Read(buf)
		msg = append(msg, buf[:n]...)
		if len(msg) > MaxMessage {
			c.Write(errorLine(http.StatusRequestEntityTooLarge, "too_large", "messages are limited to 64 KiB"))
			return
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			c.SetWriteDeadline(time.Now().Add(time.Second))
			c.Write(errorLine(http.StatusRequestTimeout, "incomplete", "send the message, then half-close the connection (nc -N); nothing was handed on"))
			return
		}
	}
	c.SetWriteDeadline(time.Now().Add(s.cfg.Timeout))
	c.Write(s.message("tcp", ap, msg))
}

// ---- metrics ----

type metrics struct {
	requests *prometheus.CounterVec
	results  *prometheus.CounterVec
}

func newMetrics() *metrics {
	return &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "wirefleet_unified_requests_total", Help: "Messages to the unified endpoint, by transport."}, []string{"transport"}),
		results:  prometheus.NewCounterVec(prometheus.CounterOpts{Name: "wirefleet_unified_results_total", Help: "What each service said about a unified-endpoint message, by transport, service and status class."}, []string{"transport", "service", "class"}),
	}
}

func (m *metrics) request(transport string) { m.requests.WithLabelValues(transport).Inc() }
func (m *metrics) result(transport, service string, status int) {
	m.results.WithLabelValues(transport, service, strconv.Itoa(status/100)+"xx").Inc()
}

// Collector returns the endpoint's metrics.
func (s *Service) Collector() prometheus.Collector { return collectors{s.m} }

type collectors struct{ m *metrics }

func (c collectors) Describe(ch chan<- *prometheus.Desc) {
	c.m.requests.Describe(ch)
	c.m.results.Describe(ch)
}

func (c collectors) Collect(ch chan<- prometheus.Metric) {
	c.m.requests.Collect(ch)
	c.m.results.Collect(ch)
}
