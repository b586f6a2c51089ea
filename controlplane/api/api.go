// SPDX-License-Identifier: Apache-2.0

// Package api serves the control plane's REST API under /api/v1: JSON in
// and out, bearer tokens with roles, errors as {code, field, message}, and
// its own OpenAPI 3 document at /api/v1/openapi.json, generated from the
// same route table that registers the handlers so the two cannot drift.
package api

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wirefleet/wirefleet/controlplane"
	"github.com/wirefleet/wirefleet/controlplane/api/apiv1"
	"github.com/wirefleet/wirefleet/controlplane/store"
	"github.com/wirefleet/wirefleet/fleet"
	"github.com/wirefleet/wirefleet/internal/accesslog"
	"github.com/wirefleet/wirefleet/internal/jsonbody"
	"github.com/wirefleet/wirefleet/internal/ratelimit"
	"github.com/wirefleet/wirefleet/wgkey"
)

// MaxBody bounds request bodies; the largest legitimate one (a group with
// 8 KB of user data and its routes) is far below it.
const MaxBody = 64 << 10

// Config configures a Handler.
type Config struct {
	Logger *slog.Logger
	// Registerer receives the API's metrics; nil registers none.
	Registerer prometheus.Registerer
	// RateLimit limits the routes that need no bearer token (device
	// bootstrap) per source address; the zero value is ratelimit's
	// defaults.
	RateLimit ratelimit.Config
	// TrustedProxies are reverse proxies whose X-Forwarded-For names the
	// source address for rate limiting; without them the header is
	// ignored.
	TrustedProxies []netip.Prefix
	// Connections, if set, adds each SIM's live tunnel state ("connection")
	// to the SIM answers of GET /api/v1/sims, /sims/{id} and /sims/find.
	Connections ConnectionSource
	// CaptureDir is where the gateway writes capture sessions' files
	// (gateway.CaptureFile); empty: downloads are refused.
	CaptureDir string
}

// ConnectionSource reports the live state of SIMs' tunnels (the gateway).
type ConnectionSource interface {
	Connection(simID string) fleet.Connection
}

// view is sim with its IPv6 address and its live connection state, when
// known.
func (h *Handler) view(ctx context.Context, sim fleet.SIM) apiv1.SIM {
	v := apiv1.SIM{SIM: sim}
	if o6, err := h.svc.Overlay6(ctx); err == nil {
		v.Address6 = o6.Addr(sim.Address)
	}
	if h.conns != nil {
		c := h.conns.Connection(sim.ID)
		v.Connection = &c
	}
	return v
}

// Handler serves the API.
type Handler struct {
	svc      *controlplane.Service
	log      *slog.Logger
	mux      *http.ServeMux
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	limit    *ratelimit.Limiter
	proxies  []netip.Prefix
	conns    ConnectionSource
	// captureDir holds capture sessions' files (Config.CaptureDir).
	captureDir string
}

// New returns the API handler over svc.
func New(svc *controlplane.Service, o Config) *Handler {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	h := &Handler{svc: svc, log: o.Logger, mux: http.NewServeMux(), limit: ratelimit.New(o.RateLimit), proxies: slices.Clone(o.TrustedProxies), conns: o.Connections, captureDir: o.CaptureDir,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "wirefleet_api_requests_total", Help: "API requests by route and status code."}, []string{"route", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "wirefleet_api_request_seconds", Help: "API request latency by route.", Buckets: prometheus.DefBuckets}, []string{"route"}),
	}
	if o.Registerer != nil {
		o.Registerer.MustRegister(h.requests, h.duration)
	}
	for _, rt := range h.routes() {
		h.mux.Handle(rt.method+" "+rt.path, h.wrap(rt))
	}
	doc := openAPI(h.routes())
	h.mux.HandleFunc("GET /api/v1/openapi.json", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(doc)
	})
	return h
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if _, pattern := h.mux.Handler(r); pattern == "" {
		// No route: let the mux tell 404 from 405 (and set Allow), but
		// answer in the API's JSON error format.
		rec := &codeRecorder{header: w.Header()}
		h.mux.ServeHTTP(rec, r)
		if rec.code == http.StatusMethodNotAllowed {
			writeError(w, rec.code, fleet.Errorf(fleet.CodeMethodNotAllowed, "", "%s is not allowed on %s (allowed: %s)", r.Method, r.URL.Path, w.Header().Get("Allow")))
			return
		}
		writeError(w, http.StatusNotFound, fleet.Errorf(fleet.CodeNotFound, "", "no such API route: %s %s", r.Method, r.URL.Path))
		return
	}
	h.mux.ServeHTTP(w, r)
}

// codeRecorder keeps only the status code of a response.
type codeRecorder struct {
	header http.Header
	code   int
}

func (c *codeRecorder) Header() http.Header         { return c.header }
func (c *codeRecorder) Write(b []byte) (int, error) { return len(b), nil }
func (c *codeRecorder) WriteHeader(code int)        { c.code = code }

// route is one API operation. The same table builds the mux and the
// OpenAPI document.
type route struct {
	method, path string
	summary      string
	role         fleet.Role // "" : no bearer token (bootstrap)
	request      string     // OpenAPI schema name of the body, "" for none
	response     string     // schema name of the 2xx body
	query        []string   // query parameters
	handle       handler
	maxBody      int64 // the body's bound when larger than MaxBody (a bulk import)
}

func (h *Handler) wrap(rt route) http.Handler {
	label := rt.method + " " + rt.path
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := accesslog.NewRecorder(w)
		var a controlplane.Actor
		defer func() {
			h.requests.WithLabelValues(label, strconv.Itoa(sw.Code)).Inc()
			h.duration.WithLabelValues(label).Observe(time.Since(start).Seconds())
			// Never the body nor the Authorization header: they carry secrets.
			h.log.Info("api", "method", r.Method, "route", rt.path, "status", sw.Code, "actor", a.String(), "dur", time.Since(start).Round(time.Microsecond))
		}()
		r.Body = http.MaxBytesReader(sw, r.Body, max(MaxBody, rt.maxBody))
		if rt.role == "" && h.limit != nil {
			// Unauthenticated: limited per source before any work.
			src, ok := ratelimit.ClientAddr(r, h.proxies)
			wait := time.Second
			if ok {
				ok, wait = h.limit.Allow(src)
			}
			if !ok {
				ratelimit.TooMany(sw, wait)
				return
			}
		}
		if rt.role != "" {
			// The scheme name is case-insensitive (RFC 9110).
			scheme, secret, ok := strings.Cut(r.Header.Get("Authorization"), " ")
			ok = ok && strings.EqualFold(scheme, "Bearer")
			if !ok {
				sw.Header().Set("WWW-Authenticate", `Bearer realm="wirefleet"`)
				writeError(sw, http.StatusUnauthorized, fleet.Errorf(fleet.CodeUnauthorized, "", "missing bearer token"))
				return
			}
			var err error
			if a, err = h.svc.Authenticate(r.Context(), strings.TrimSpace(secret)); err != nil {
				h.fail(sw, r, err)
				return
			}
			// The service checks roles too; checking here first means a
			// denied caller learns nothing (not even whether an id exists).
			if err := controlplane.Require(a, rt.role); err != nil {
				h.fail(sw, r, err)
				return
			}
		}
		out, err := rt.handle(r.Context(), a, r)
		if err != nil {
			h.fail(sw, r, err)
			return
		}
		switch v := out.(type) {
		case nil:
			sw.WriteHeader(http.StatusNoContent)
		case text:
			sw.Header().Set("Content-Type", "text/plain; charset=utf-8")
			io.WriteString(sw, string(v))
		case fileBody:
			v.serve(sw, r)
		case created:
			writeJSON(sw, http.StatusCreated, v.v)
		default:
			writeJSON(sw, http.StatusOK, v)
		}
	})
}

// text is a plain-text response body.
type text string

// fileBody is a file as the response body (ranges and conditional
// requests honoured), offered for download.
type fileBody struct{ path, name, contentType string }

func (f fileBody) serve(w http.ResponseWriter, r *http.Request) {
	fh, err := os.Open(f.path)
	if err != nil {
		writeError(w, http.StatusNotFound, fleet.Errorf(fleet.CodeNotFound, "id", "the file is gone"))
		return
	}
	defer fh.Close()
	st, err := fh.Stat()
	if err != nil {
		writeError(w, http.StatusInternalServerError, fleet.Errorf(fleet.CodeInternal, "", "reading the file"))
		return
	}
	w.Header().Set("Content-Type", f.contentType)
	w.Header().Set("Content-Disposition", `attachment; filename="`+f.name+`"`)
	http.ServeContent(w, r, f.name, st.ModTime(), fh)
}

// created wraps a 201 response body.
type created struct{ v any }

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

func writeError(w http.ResponseWriter, code int, e *fleet.Error) { writeJSON(w, code, e) }

var statusOf = map[string]int{
	fleet.CodeInvalid: 400, fleet.CodeRequired: 400, fleet.CodeBadJSON: 400, fleet.CodeUnknownField: 400, fleet.CodeTooLarge: 400,
	fleet.CodeNotFound: 404, fleet.CodeConflict: 409, fleet.CodeBadState: 409, fleet.CodeExhausted: 409,
	fleet.CodeUnauthorized: 401, fleet.CodeForbidden: 403, fleet.CodeKeyProof: 403,
}

// RetryAfter is what a 503 for an unreachable store tells clients to wait,
// in seconds.
const RetryAfter = "5"

func (h *Handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	var fe *fleet.Error
	if errors.As(err, &fe) {
		if code, ok := statusOf[fe.Code]; ok {
			writeError(w, code, fe)
			return
		}
	}
	if errors.Is(err, store.ErrUnavailable) {
		// Not the caller's fault and not "not found": a database outage.
		h.log.Warn("api: store unavailable", "method", r.Method, "path", r.URL.Path, "err", err)
		w.Header().Set("Retry-After", RetryAfter)
		writeError(w, http.StatusServiceUnavailable, fleet.Errorf(fleet.CodeUnavailable, "", "the fleet database is unavailable; retry shortly"))
		return
	}
	h.log.Error("api internal error", "method", r.Method, "path", r.URL.Path, "err", err)
	writeError(w, http.StatusInternalServerError, fleet.Errorf(fleet.CodeInternal, "", "internal error"))
}

// decode reads exactly one JSON object into dst (jsonbody.Decode).
func decode(r *http.Request, dst any) error { return jsonbody.Decode(r.Body, dst, MaxBody) }

// parseKey parses an optional base64 key field.
func parseKey(field, s string) (wgkey.Public, error) {
	if s == "" {
		return wgkey.Public{}, nil
	}
	k, err := wgkey.ParsePublic(s)
	if err != nil {
		return k, fleet.Errorf(fleet.CodeInvalid, field, "not a base64 32-byte WireGuard public key")
	}
	return k, nil
}

func queryInt(r *http.Request, name string) (int, error) {
	s := r.URL.Query().Get(name)
	if s == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return 0, fleet.Errorf(fleet.CodeInvalid, name, "must be a non-negative integer")
	}
	return n, nil
}

func errorf(code, field, format string, args ...any) error {
	return fleet.Errorf(code, field, format, args...)
}
