// SPDX-License-Identifier: Apache-2.0

// Package console serves the web console on wirefleetd's API listener:
// server-rendered HTML (html/template) that works as plain forms, made
// live by a vendored htmx and Server-Sent Events. Operators sign in with
// the operator tokens the API takes; a token becomes a server-side session
// (an HttpOnly, SameSite=Strict cookie), and every page and action goes
// through the control plane's service layer with that token's role, so
// the console can do exactly what the API lets the same token do, and
// leaves the same audit trail.
package console

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"encoding/base64"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"mime"
	"net/http"
	"net/netip"
	"net/url"
	"path"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/wirefleet/wirefleet/controlplane"
	"github.com/wirefleet/wirefleet/controlplane/store"
	"github.com/wirefleet/wirefleet/fleet"
	"github.com/wirefleet/wirefleet/internal/accesslog"
	"github.com/wirefleet/wirefleet/internal/ratelimit"
)

//go:embed assets templates
var files embed.FS

// The session cookie's names: with the __Host- prefix when it is Secure
// (HTTPS, directly or through a trusted proxy), so that no other host or
// path can set one for the console; without it on plain HTTP.
const (
	CookieName       = "wirefleet_session"
	SecureCookieName = "__Host-wirefleet_session"
)

// ContentSecurityPolicy is sent with every console answer: scripts and
// styles only from the console's own embedded files (no inline script, no
// eval), nothing framed, forms posted only to the console itself.
const ContentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; font-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// maxForm bounds a posted form (the largest is a bulk action on a page
// of SIMs); maxImport a file import: the API's bound on a SIM-card CSV
// (about 100,000 cards) with room for the form around it.
const (
	maxForm   = 64 << 10
	maxImport = fleet.MaxCardCSV + 64<<10
)

// MaxLiveStreams bounds the Server-Sent Events streams open at once, over
// all sessions: each costs a goroutine and a reading every few seconds.
const MaxLiveStreams = 256

// Gateway is what the console reads from the local gateway.
type Gateway interface {
	Connection(simID string) fleet.Connection
	Stats() fleet.GatewayStats
}

// Config configures a Handler.
type Config struct {
	Logger *slog.Logger
	// Gateway, if set, gives live tunnel states and traffic.
	Gateway Gateway
	// TrustedProxies are reverse proxies whose X-Forwarded-For names the
	// client for sign-in rate limiting.
	TrustedProxies []netip.Prefix
	// SignInLimit limits sign-in attempts per source address; the zero
	// value allows a burst of 10, then one every 6 s.
	SignInLimit ratelimit.Config
	// LiveInterval is how often live parts are refreshed; 0: 2 s.
	LiveInterval time.Duration
	// Settings are the node's flags, shown to admins on the settings
	// page; the caller removes secrets from them.
	Settings []Setting
}

// Handler serves the console.
type Handler struct {
	svc     *controlplane.Service
	log     *slog.Logger
	gw      Gateway
	proxies []netip.Prefix
	limit   *ratelimit.Limiter
	every   time.Duration
	mux     *http.ServeMux
	pages   map[string]*template.Template
	assets  http.Handler
	flags   []Setting

	streams      chan struct{} // a token per open live stream
	perSessionMu sync.Mutex
	perSession   map[string]int // open live streams by session
	done         chan struct{}  // closed by Shutdown: live streams end
	once         sync.Once
	stats        cached[fleet.GatewayStats]     // the gateway's totals, for a second
	counts       cached[map[fleet.Status]int64] // SIMs by status, for two seconds
	health       cached[fleetHealth]            // nodes and alerts, for two seconds
	sent         submitted                      // create forms answered with a secret
}

// New returns the console over svc.
func New(svc *controlplane.Service, c Config) (*Handler, error) {
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.SignInLimit == (ratelimit.Config{}) {
		c.SignInLimit = ratelimit.Config{PerSecond: 1.0 / 6, Burst: 10}
	}
	if c.LiveInterval <= 0 {
		c.LiveInterval = 2 * time.Second
	}
	h := &Handler{svc: svc, log: c.Logger, gw: c.Gateway, proxies: slices.Clone(c.TrustedProxies), limit: ratelimit.New(c.SignInLimit), every: c.LiveInterval,
		mux: http.NewServeMux(), streams: make(chan struct{}, MaxLiveStreams), perSession: map[string]int{}, done: make(chan struct{}), flags: slices.Clone(c.Settings)}
	h.stats.ttl, h.counts.ttl, h.health.ttl = time.Second, 2*time.Second, 2*time.Second
	if err := h.parseTemplates(); err != nil {
		return nil, err
	}
	assets, err := fs.Sub(files, "assets")
	if err != nil {
		return nil, err
	}
	h.assets = http.StripPrefix("/assets/", http.FileServerFS(assets))
	h.routes()
	return h, nil
}

// Shutdown ends the live streams, so that the HTTP server's graceful
// shutdown is not held up by them (http.Server.RegisterOnShutdown).
func (h *Handler) Shutdown() { h.once.Do(func() { close(h.done) }) }

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hd := w.Header()
	hd.Set("Content-Security-Policy", ContentSecurityPolicy)
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Referrer-Policy", "same-origin")
	hd.Set("X-Frame-Options", "DENY")
	if strings.HasPrefix(r.URL.Path, "/assets/") {
		h.mux.ServeHTTP(w, r)
		return
	}
	start := time.Now()
	sw := accesslog.NewRecorder(w)
	h.mux.ServeHTTP(sw, r)
	// The path only: queries may hold search terms, never secrets, but
	// they add nothing to an access log; bodies and cookies never.
	h.log.Info("console", "method", r.Method, "path", r.URL.Path, "status", sw.Code, "dur", time.Since(start).Round(time.Microsecond))
}

// page is what every page template gets.
type page struct {
	Title  string
	Nav    string // the nav entry to mark current
	Actor  controlplane.Actor
	CSRF   string
	Flash  string
	Error  string
	Data   any
	Signed bool
}

// CanOperate says whether the signed-in token may change things.
func (p page) CanOperate() bool { return controlplane.Require(p.Actor, fleet.RoleOperator) == nil }

// IsAdmin says whether the signed-in token is an admin's.
func (p page) IsAdmin() bool { return controlplane.Require(p.Actor, fleet.RoleAdmin) == nil }

// session is a signed-in request's actor and CSRF token.
type session struct {
	actor  controlplane.Actor
	secret string
	csrf   string
}

type sessionKey struct{}

func sessionOf(r *http.Request) session { s, _ := r.Context().Value(sessionKey{}).(session); return s }

// csrfToken derives the session's CSRF token from its secret, so any node
// sharing the store can check it without storing it.
func csrfToken(secret string) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte("wirefleet console csrf"))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// signedIn wraps a page: without a live session, GETs go to sign-in with
// the page remembered and everything else answers 401. State changes
// also need the CSRF token and a same-origin request.
func (h *Handler) signedIn(next http.HandlerFunc) http.HandlerFunc {
	return h.signedInUpTo(maxForm, "", next)
}

// signedInUpTo is signedIn for forms of up to limit bytes (file imports);
// a multipart form is read whole, within the limit. A role other than ""
// is checked before the body is read: a large upload is not read (nor
// spooled to disk) for an operator who may not make it.
func (h *Handler) signedInUpTo(limit int64, role fleet.Role, next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		secret := h.sessionCookie(r)
		a, err := h.svc.ConsoleActor(r.Context(), secret)
		if err != nil {
			if errors.Is(err, store.ErrUnavailable) {
				h.unavailable(w)
				return
			}
			h.toSignIn(w, r)
			return
		}
		s := session{actor: a, secret: secret, csrf: csrfToken(secret)}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			if role != "" {
				if err := controlplane.Require(a, role); err != nil {
					// The body is left unread: the connection closes
					// rather than draining a large upload.
					w.Header().Set("Connection", "close")
					http.Error(w, err.Error(), http.StatusForbidden)
					return
				}
			}
			r.Body = http.MaxBytesReader(w, r.Body, limit)
			var err error
			if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt == "multipart/form-data" {
				err = r.ParseMultipartForm(limit)
				if r.MultipartForm != nil {
					defer r.MultipartForm.RemoveAll()
				}
			} else {
				err = r.ParseForm()
			}
			var tooBig *http.MaxBytesError
			if errors.As(err, &tooBig) {
				http.Error(w, fmt.Sprintf("the form is larger than %d bytes: send it in parts", limit), http.StatusRequestEntityTooLarge)
				return
			}
			if err != nil {
				http.Error(w, "the form could not be read: "+err.Error(), http.StatusBadRequest)
				return
			}
			if !h.sameOrigin(r) {
				http.Error(w, "cross-site request refused", http.StatusForbidden)
				return
			}
			got := r.Header.Get("X-CSRF-Token")
			if got == "" {
				got = r.PostFormValue("csrf")
			}
			if subtle.ConstantTimeCompare([]byte(got), []byte(s.csrf)) != 1 {
				http.Error(w, "the form is out of date or was not sent by this console (CSRF token); reload the page and try again", http.StatusForbidden)
				return
			}
		}
		next(w, r.WithContext(context.WithValue(r.Context(), sessionKey{}, s)))
	}
}

// sameOrigin refuses requests a browser marks as cross-site; requests
// without the headers (scripts, old browsers) rely on the CSRF token.
// Behind a trusted proxy the origin may be the host it forwards for.
func (h *Handler) sameOrigin(r *http.Request) bool {
	switch r.Header.Get("Sec-Fetch-Site") {
	case "", "same-origin", "none":
	default:
		return false
	}
	o := r.Header.Get("Origin")
	if o == "" || o == "null" {
		return true
	}
	u, err := url.Parse(o)
	if err != nil {
		return false
	}
	if u.Host == r.Host {
		return true
	}
	fwd := r.Header.Get("X-Forwarded-Host")
	return fwd != "" && u.Host == fwd && h.fromTrustedProxy(r)
}

// fromTrustedProxy says whether the request's peer is a trusted proxy.
func (h *Handler) fromTrustedProxy(r *http.Request) bool {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return false
	}
	for _, p := range h.proxies {
		if p.Contains(ap.Addr().Unmap()) {
			return true
		}
	}
	return false
}

// secureRequest says whether the browser reached the console over HTTPS:
// directly, or through a trusted proxy that says so.
func (h *Handler) secureRequest(r *http.Request) bool {
	return r.TLS != nil || (strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https") && h.fromTrustedProxy(r))
}

// sessionCookie is the session secret the request carries ("" for none).
func (h *Handler) sessionCookie(r *http.Request) string {
	if h.secureRequest(r) {
		if c, err := r.Cookie(SecureCookieName); err == nil {
			return c.Value
		}
		return ""
	}
	if c, err := r.Cookie(CookieName); err == nil {
		return c.Value
	}
	return ""
}

// setSessionCookie sets (or, with maxAge < 0, clears) the session cookie.
func (h *Handler) setSessionCookie(w http.ResponseWriter, r *http.Request, value string, expires time.Time, maxAge int) {
	c := &http.Cookie{Name: CookieName, Value: value, Path: "/", Expires: expires, MaxAge: maxAge, HttpOnly: true, SameSite: http.SameSiteStrictMode}
	if h.secureRequest(r) {
		c.Name, c.Secure = SecureCookieName, true
	}
	http.SetCookie(w, c)
}

// toSignIn sends a request without a session to the sign-in page, with
// the page it asked for kept for afterwards.
func (h *Handler) toSignIn(w http.ResponseWriter, r *http.Request) {
	target := "/signin"
	if r.Method == http.MethodGet && r.URL.Path != "/" {
		target += "?next=" + url.QueryEscape(r.URL.RequestURI())
	}
	if r.Header.Get("HX-Request") != "" {
		w.Header().Set("HX-Redirect", target)
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	if r.Method != http.MethodGet {
		http.Error(w, "not signed in, or the session has ended", http.StatusUnauthorized)
		return
	}
	http.Redirect(w, r, target, http.StatusSeeOther)
}

// localPathRE is what a followed "next" may look like: a path on this
// console and a plain query; no backslash, no scheme, no host.
var localPathRE = regexp.MustCompile(`^/[A-Za-z0-9/_.~%-]*(\?[A-Za-z0-9/_.~%=&+,:@-]*)?$`)

// localPath is next if it is a path on this console, "/" otherwise: a
// sign-in link must not send the operator elsewhere.
func localPath(next string) string {
	if !localPathRE.MatchString(next) {
		return "/"
	}
	u, err := url.Parse(next)
	if err != nil || u.Host != "" || u.Scheme != "" || strings.HasPrefix(path.Clean(u.Path), "//") {
		return "/"
	}
	return next
}

func (h *Handler) unavailable(w http.ResponseWriter) {
	w.Header().Set("Retry-After", "5")
	http.Error(w, "the fleet database is unavailable; retry shortly", http.StatusServiceUnavailable)
}

// cached shares one reading among all viewers for ttl: the SIM counts (an
// aggregate over the SIMs table) and the gateway's totals (a walk over
// every held peer). The lock is held while reading, so viewers arriving
// meanwhile wait for that reading rather than making their own.
type cached[T any] struct {
	ttl  time.Duration
	mu   sync.Mutex
	at   time.Time
	ok   bool
	last T
}

func (c *cached[T]) get(read func() (T, error)) (T, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ok && time.Since(c.at) < c.ttl {
		return c.last, nil
	}
	v, err := read()
	if err != nil {
		var zero T
		return zero, err
	}
	c.last, c.at, c.ok = v, time.Now(), true
	return v, nil
}
