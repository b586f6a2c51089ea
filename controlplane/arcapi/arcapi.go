// SPDX-License-Identifier: Apache-2.0

// Package arcapi serves the subset of the SORACOM API that SORACOM Arc
// clients (soratun, scripts) use, as an adapter over the control plane's
// service layer, so existing clients work unchanged against wirefleetd:
//
//	POST /v1/auth                         auth key → API key + token
//	POST /v1/sims                         create a virtual SIM (key generated)
//	GET  /v1/sims/{id}
//	POST /v1/sims/{id}/sessions/arc       the SIM's Arc session
//	PUT  /v1/sims/{id}/credentials/arc    re-key (given or generated key)
//	POST /v1/provisioning/soracom/arc/bootstrap   network-attested bootstrap
//
// Arc credentials are wirefleet auth keys written the SORACOM way: the
// auth key id is "keyId-<auth key id>" and the secret "secret-<secret>"
// (soratun insists on those prefixes). A session reaches only the SIMs
// created through its own auth key, and each SIM created through it uses
// one of the key's uses. Session tokens are MACed with a per-installation
// secret kept outside the database (Options.TokenSecret), and the
// unauthenticated routes are rate-limited per source (Options.RateLimit).
package arcapi

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/wirefleet/wirefleet/controlplane"
	"github.com/wirefleet/wirefleet/controlplane/api/apiv1"
	"github.com/wirefleet/wirefleet/controlplane/arcapi/arcwire"
	"github.com/wirefleet/wirefleet/controlplane/store"
	"github.com/wirefleet/wirefleet/fleet"
	"github.com/wirefleet/wirefleet/internal/clock"
	"github.com/wirefleet/wirefleet/internal/jsonbody"
	"github.com/wirefleet/wirefleet/internal/ratelimit"
	"github.com/wirefleet/wirefleet/internal/tokenbucket"
	"github.com/wirefleet/wirefleet/keyproof"
	"github.com/wirefleet/wirefleet/wgkey"
)

// Credential prefixes of the SORACOM API.
const (
	KeyIDPrefix  = "keyId-"
	SecretPrefix = "secret-"
	apiKeyPrefix = "api-"
)

// OperatorID is the operator id reported to clients: a wirefleet
// installation is one operator.
const OperatorID = "OP0000000000"

// Token lifetimes accepted by /v1/auth, as the SORACOM API does.
const (
	MinTokenTimeout     = 180
	MaxTokenTimeout     = 172800
	DefaultTokenTimeout = 86400
)

const maxBody = 16 << 10

// Config configures the handler.
type Config struct {
	Logger *slog.Logger
	// TrustedNetworks enables network-attested bootstrap from these
	// source networks (for example a private APN's range).
	TrustedNetworks []TrustedNetwork
	// TrustedProxies are reverse proxies whose X-Forwarded-For is
	// believed; without them the header is ignored.
	TrustedProxies []netip.Prefix
	// TokenSecret keys the MAC of session tokens: at least
	// MinTokenSecret random bytes, kept out of the database (see
	// LoadOrCreateTokenSecret); every wirefleetd serving one database
	// must use the same secret. When empty, New draws a random secret
	// for this process only: tokens then die with the process and are
	// not accepted by other instances.
	TokenSecret []byte
	// RateLimit limits /v1/auth and the attested bootstrap per source
	// address (behind TrustedProxies, the forwarded one); the zero value
	// is ratelimit's defaults.
	RateLimit ratelimit.Config
}

// TrustedNetwork is a source network whose addresses attest a device's
// identity, and the name of the group its SIMs join ("" for none).
type TrustedNetwork struct {
	Prefix netip.Prefix
	Group  string
}

// Handler serves the Arc-compatible routes.
type Handler struct {
	svc *controlplane.Service
	log *slog.Logger
	mux *http.ServeMux
	clk clock.Clock // the control plane's, so tokens expire on the fleet's time
	opt Config
	// imsiLimit bounds SIM-card challenges per IMSI (cardkeys.go).
	imsiLimit *tokenbucket.Set[string]
}

// New returns the handler; mount it at "/v1/". It panics when
// o.TokenSecret is set but shorter than MinTokenSecret.
func New(svc *controlplane.Service, o Config) *Handler {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	switch {
	case len(o.TokenSecret) == 0:
		o.TokenSecret = make([]byte, MinTokenSecret)
		if _, err := rand.Read(o.TokenSecret); err != nil {
			panic(err)
		}
		o.Logger.Warn("arc api: no token secret configured; session tokens will not survive a restart nor be shared between instances")
	case len(o.TokenSecret) < MinTokenSecret:
		panic(fmt.Sprintf("arcapi: token secret must be at least %d bytes", MinTokenSecret))
	default:
		o.TokenSecret = bytes.Clone(o.TokenSecret)
	}
	// The handler keeps its own copies: a caller changing its slices
	// later must not change what is trusted.
	o.TrustedNetworks = slices.Clone(o.TrustedNetworks)
	o.TrustedProxies = slices.Clone(o.TrustedProxies)
	h := &Handler{svc: svc, log: o.Logger, mux: http.NewServeMux(), clk: svc.Config().Clock, opt: o, imsiLimit: newIMSILimit()}
	lim := ratelimit.New(o.RateLimit)
	h.mux.Handle("POST /v1/auth", lim.Wrap(http.HandlerFunc(h.auth), o.TrustedProxies))
	h.mux.HandleFunc("POST /v1/sims", h.withKey(h.createSIM))
	h.mux.HandleFunc("GET /v1/sims/{id}", h.withKey(h.getSIM))
	h.mux.HandleFunc("POST /v1/sims/{id}/sessions/arc", h.withKey(h.session))
	h.mux.HandleFunc("PUT /v1/sims/{id}/credentials/arc", h.withKey(h.credentials))
	h.mux.Handle("POST /v1/provisioning/soracom/arc/bootstrap", lim.Wrap(http.HandlerFunc(h.attested), o.TrustedProxies))
	h.mux.Handle("POST /v1/provisioning/soracom/air/subscriber_metadata", lim.Wrap(http.HandlerFunc(h.cardSubscriberMetadata), o.TrustedProxies))
	h.mux.Handle("POST /v1/provisioning/soracom/air/userdata", lim.Wrap(http.HandlerFunc(h.cardUserData), o.TrustedProxies))
	h.mux.Handle("POST /v1/keys", lim.Wrap(http.HandlerFunc(h.keys), o.TrustedProxies))
	h.mux.Handle("POST /v1/keys/{keyId}/verify", lim.Wrap(http.HandlerFunc(h.verifyKey), o.TrustedProxies))
	h.mux.HandleFunc("/v1/", func(w http.ResponseWriter, r *http.Request) {
		writeErr(w, fleet.Errorf(fleet.CodeNotFound, "", "no such route: %s %s", r.Method, r.URL.Path))
	})
	return h
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxBody)
	h.mux.ServeHTTP(w, r)
}

// ---- session tokens ----

// MinTokenSecret is the shortest Options.TokenSecret accepted.
const MinTokenSecret = 32

// The token is stateless: "<base64 payload>.<mac>", the payload
// "<keyID>.<expiry unix>", the MAC an HMAC-SHA256 keyed by the
// installation's token secret, which is not in the database: a database
// dump (auth key hashes included) does not let anyone forge a token. The
// key id and the expiry are both in the MAC input. Every call also
// re-checks the auth key, so revoking it ends its sessions.
func (h *Handler) tokenMAC(payload string) string {
	m := hmac.New(sha256.New, h.opt.TokenSecret)
	m.Write([]byte("wirefleet arc session v2\x00"))
	m.Write([]byte(payload))
	return hex.EncodeToString(m.Sum(nil))
}

func (h *Handler) issueToken(k fleet.AuthKey, ttl time.Duration) string {
	payload := k.ID + "." + strconv.FormatInt(h.clk.Now().Add(ttl).Unix(), 10)
	return base64.RawURLEncoding.EncodeToString([]byte(payload)) + "." + h.tokenMAC(payload)
}

// checkToken authenticates a call. Every refusal is the same error, and
// the MAC is checked before the database is consulted, so that a caller
// without a valid token learns nothing about auth keys.
func (h *Handler) checkToken(ctx context.Context, apiKey, token string) (fleet.AuthKey, error) {
	deny := fleet.Errorf(fleet.CodeUnauthorized, "", "invalid API key or token")
	keyID, ok := strings.CutPrefix(apiKey, apiKeyPrefix)
	b64, mac, ok2 := strings.Cut(token, ".")
	if !ok || !ok2 {
		return fleet.AuthKey{}, deny
	}
	raw, err := base64.RawURLEncoding.DecodeString(b64)
	if err != nil {
		return fleet.AuthKey{}, deny
	}
	payload := string(raw)
	if !hmac.Equal([]byte(mac), []byte(h.tokenMAC(payload))) {
		return fleet.AuthKey{}, deny
	}
	i := strings.LastIndexByte(payload, '.')
	if i < 0 || payload[:i] != keyID {
		return fleet.AuthKey{}, deny
	}
	if e, err := strconv.ParseInt(payload[i+1:], 10, 64); err != nil || h.clk.Now().Unix() >= e {
		return fleet.AuthKey{}, deny
	}
	k, err := h.svc.UsableAuthKey(ctx, keyID)
	var fe *fleet.Error
	if errors.As(err, &fe) {
		return fleet.AuthKey{}, deny
	} else if err != nil {
		return fleet.AuthKey{}, err
	}
	return k, nil
}

func (h *Handler) withKey(fn func(w http.ResponseWriter, r *http.Request, k fleet.AuthKey)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		k, err := h.checkToken(r.Context(), r.Header.Get("X-Soracom-API-Key"), r.Header.Get("X-Soracom-Token"))
		if err != nil {
			h.fail(w, r, err)
			return
		}
		fn(w, r, k)
	}
}

// ---- JSON shapes of the SORACOM API ----

type simProfile struct {
	ICCID                   string `json:"iccid"`
	PrimaryIMSI             string `json:"primaryImsi"`
	ArcClientPeerPublicKey  string `json:"arcClientPeerPublicKey"`
	ArcClientPeerPrivateKey string `json:"arcClientPeerPrivateKey,omitempty"`
}

type virtualSIM struct {
	SIMID            string                `json:"simId"`
	OperatorID       string                `json:"operatorId"`
	Status           string                `json:"status"`
	ArcSessionStatus *arcwire.Session      `json:"arcSessionStatus,omitempty"`
	Profiles         map[string]simProfile `json:"profiles"`
	Tags             map[string]string     `json:"tags"`
}

// toSession is the Arc form of a session: IPv4 only. An Arc session has
// one client address, which soratun configures with a 4-byte mask (an IPv6
// one would be a /32), and soratun exits when an IPv6 route cannot be
// added (a TUN without IPv6, macOS where it adds routes without -inet6):
// an IPv6 allowed IP could take a working IPv4 tunnel down.
func toSession(sim fleet.SIM, s fleet.Session) *arcwire.Session {
	return &arcwire.Session{ServerEndpoint: s.Endpoint, ServerPublicKey: s.GatewayPublicKey.String(), ClientIPAddress: sim.Address.String(),
		ClientPublicKey: sim.PublicKey.String(), AllowedIPs: ipv4Only(s.AllowedIPs), ClientPrivateKey: s.PrivateKey.Base64()}
}

// ipv4Only keeps the IPv4 prefixes of a session's allowed IPs.
func ipv4Only(prefixes []string) []string {
	out := make([]string, 0, len(prefixes))
	for _, p := range prefixes {
		if pp, err := netip.ParsePrefix(p); err == nil && pp.Addr().Is4() {
			out = append(out, p)
		}
	}
	return out
}

// iccid derives a stable ICCID-shaped identifier from the IMSI: 89 (telecom),
// 999 (test country code), then the IMSI.
func iccid(imsi string) string { return "89999" + imsi }

func toVirtualSIM(sim fleet.SIM, s fleet.Session) virtualSIM {
	sess := toSession(sim, s)
	priv := sess.ClientPrivateKey
	sess.ClientPrivateKey = ""
	return virtualSIM{SIMID: sim.ID, OperatorID: OperatorID, Status: string(sim.Status), ArcSessionStatus: sess, Tags: sim.Tags,
		Profiles: map[string]simProfile{sim.ID: {ICCID: iccid(sim.IMSI), PrimaryIMSI: sim.IMSI, ArcClientPeerPublicKey: sim.PublicKey.String(), ArcClientPeerPrivateKey: priv}}}
}

// ---- handlers ----

func (h *Handler) auth(w http.ResponseWriter, r *http.Request) {
	var req struct {
		AuthKeyID           string `json:"authKeyId"`
		AuthKey             string `json:"authKey"`
		TokenTimeoutSeconds *int   `json:"tokenTimeoutSeconds"`
	}
	if err := decode(r, &req); err != nil {
		h.fail(w, r, err)
		return
	}
	ttl := DefaultTokenTimeout
	if req.TokenTimeoutSeconds != nil {
		ttl = *req.TokenTimeoutSeconds
	}
	if ttl < MinTokenTimeout || ttl > MaxTokenTimeout {
		h.fail(w, r, fleet.Errorf(fleet.CodeInvalid, "tokenTimeoutSeconds", "must be between %d and %d", MinTokenTimeout, MaxTokenTimeout))
		return
	}
	keyID := strings.TrimPrefix(req.AuthKeyID, KeyIDPrefix)
	secret := strings.TrimPrefix(req.AuthKey, SecretPrefix)
	k, err := h.svc.AuthenticateAuthKey(r.Context(), keyID, secret)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.log.Info("arc auth", "authkey", k.ID)
	writeJSON(w, http.StatusOK, map[string]string{"apiKey": apiKeyPrefix + k.ID, "token": h.issueToken(k, time.Duration(ttl)*time.Second), "operatorId": OperatorID})
}

func (h *Handler) createSIM(w http.ResponseWriter, r *http.Request, k fleet.AuthKey) {
	var req struct {
		Type         string `json:"type"`
		Subscription string `json:"subscription"`
	}
	if err := decode(r, &req); err != nil {
		h.fail(w, r, err)
		return
	}
	if req.Type != "" && req.Type != "virtual" {
		h.fail(w, r, fleet.Errorf(fleet.CodeInvalid, "type", "only \"virtual\" SIMs"))
		return
	}
	if req.Subscription != "" && req.Subscription != "planArc01" {
		h.fail(w, r, fleet.Errorf(fleet.CodeInvalid, "subscription", "only \"planArc01\""))
		return
	}
	sim, sess, err := h.svc.BootstrapWithKeyID(r.Context(), k.ID, controlplane.BootstrapRequest{GenerateKey: true})
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, toVirtualSIM(sim, sess))
}

func (h *Handler) getSIM(w http.ResponseWriter, r *http.Request, k fleet.AuthKey) {
	h.writeScoped(w, r, k, func(sim fleet.SIM, sess fleet.Session) any { return toVirtualSIM(sim, sess) })
}

// writeScoped answers with the path's SIM and its session, as the key's
// scope lets it see them, in the shape answer gives.
func (h *Handler) writeScoped(w http.ResponseWriter, r *http.Request, k fleet.AuthKey, answer func(fleet.SIM, fleet.Session) any) {
	sim, sess, err := h.svc.ScopedSession(r.Context(), k, r.PathValue("id"))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, answer(sim, sess))
}

func (h *Handler) session(w http.ResponseWriter, r *http.Request, k fleet.AuthKey) {
	var req struct{}
	if err := decodeOptional(r, &req); err != nil {
		h.fail(w, r, err)
		return
	}
	h.writeScoped(w, r, k, func(sim fleet.SIM, sess fleet.Session) any { return toSession(sim, sess) })
}

func (h *Handler) credentials(w http.ResponseWriter, r *http.Request, k fleet.AuthKey) {
	var req struct {
		ArcClientPeerPublicKey string `json:"arcClientPeerPublicKey"`
		// KeyProof is wirefleet's extension: a proof, made with the SIM's
		// current key, that the caller is the SIM's device (see
		// controlplane.ScopedRekey). Required unless the group allows
		// re-keying with the auth key alone.
		KeyProof *keyproof.Reply `json:"keyProof"`
	}
	if err := decodeOptional(r, &req); err != nil {
		h.fail(w, r, err)
		return
	}
	var pub wgkey.Public
	if req.ArcClientPeerPublicKey != "" {
		var err error
		if pub, err = wgkey.ParsePublic(req.ArcClientPeerPublicKey); err != nil {
			h.fail(w, r, fleet.Errorf(fleet.CodeInvalid, "arcClientPeerPublicKey", "not a base64 32-byte WireGuard key"))
			return
		}
	}
	sim, sess, err := h.svc.ScopedRekey(r.Context(), k, r.PathValue("id"), pub, req.KeyProof)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, toSession(sim, sess))
}

func (h *Handler) clientAddr(r *http.Request) (netip.Addr, bool) {
	return ratelimit.ClientAddr(r, h.opt.TrustedProxies)
}

func (h *Handler) attested(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get(headerSignature) != "" || r.Header.Get(apiv1.HeaderCardSignature) != "" {
		h.cardBootstrap(w, r) // signed with a SIM card's key (cardkeys.go)
		return
	}
	var req struct{}
	if err := decodeOptional(r, &req); err != nil {
		h.fail(w, r, err)
		return
	}
	addr, ok := h.clientAddr(r)
	var network *TrustedNetwork
	for i, n := range h.opt.TrustedNetworks {
		if ok && n.Prefix.Contains(addr) {
			network = &h.opt.TrustedNetworks[i]
			break
		}
	}
	if network == nil {
		h.log.Info("arc attested bootstrap refused: untrusted source", "source", addr.String())
		h.fail(w, r, fleet.Errorf(fleet.CodeForbidden, "", "source address is not in a trusted network"))
		return
	}
	sim, sess, err := h.svc.AttestedBootstrap(r.Context(), addr.String(), network.Group)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, toSession(sim, sess))
}

// ---- plumbing ----

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

var statusOf = map[string]int{
	fleet.CodeInvalid: 400, fleet.CodeRequired: 400, fleet.CodeBadJSON: 400, fleet.CodeUnknownField: 400, fleet.CodeTooLarge: 400,
	fleet.CodeNotFound: 404, fleet.CodeConflict: 409, fleet.CodeBadState: 409, fleet.CodeExhausted: 409,
	fleet.CodeUnauthorized: 401, fleet.CodeForbidden: 403, fleet.CodeKeyProof: 403,
}

func writeErr(w http.ResponseWriter, e *fleet.Error) { writeJSON(w, statusOf[e.Code], e) }

func (h *Handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	var fe *fleet.Error
	if errors.As(err, &fe) && statusOf[fe.Code] != 0 {
		writeErr(w, fe)
		return
	}
	if errors.Is(err, store.ErrUnavailable) {
		h.log.Warn("arc api: store unavailable", "method", r.Method, "path", r.URL.Path, "err", err)
		w.Header().Set("Retry-After", "5")
		writeJSON(w, http.StatusServiceUnavailable, fleet.Errorf(fleet.CodeUnavailable, "", "the fleet database is unavailable; retry shortly"))
		return
	}
	h.log.Error("arc api internal error", "method", r.Method, "path", r.URL.Path, "err", err)
	writeJSON(w, 500, fleet.Errorf(fleet.CodeInternal, "", "internal error"))
}

// decode reads one JSON object, strictly (jsonbody.Decode).
func decode(r *http.Request, dst any) error { return jsonbody.Decode(r.Body, dst, maxBody) }

// decodeOptional is decode, allowing an empty body.
func decodeOptional(r *http.Request, dst any) error {
	b, err := io.ReadAll(r.Body)
	if err != nil {
		var maxErr *http.MaxBytesError
		if errors.As(err, &maxErr) {
			return fleet.Errorf(fleet.CodeTooLarge, "", "body larger than %d bytes", maxBody)
		}
		return fleet.Errorf(fleet.CodeBadJSON, "", "%v", err)
	}
	if strings.TrimSpace(string(b)) == "" {
		return nil
	}
	r.Body = io.NopCloser(strings.NewReader(string(b)))
	return decode(r, dst)
}
