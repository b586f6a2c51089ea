// SPDX-License-Identifier: Apache-2.0

// Package metadata is the platform's metadata service on the gateway's
// in-tunnel stack (the SORACOM Arc shape, at 100.127.100.127:80): a device
// reads its own SIM record and its group's user data, writes its own tags
// when its group allows, and announces its next WireGuard key — with the
// tunnel as its only credential. The caller is the SIM whose tunnel the
// connection came through (the gateway has checked the source address).
//
//	GET /v1/subscriber       the caller's SIM (Subscriber)
//	GET /v1/userdata         the group's user data, text/plain
//	PUT /v1/subscriber/tags  merge tags: [{"tagName","tagValue"}] or {"name":"value"}
//	PUT /v1/subscriber/key   {"publicKey"}: announce the next key
//	GET /v1/subscriber/session {"allowedIPs"}: what the device routes into its
//	                          tunnel now (LANs approved since it connected)
//	GET /v1/subscriber/routes the LAN routes behind the SIM, approved or waiting
//	PUT /v1/subscriber/routes {"prefixes": [CIDR…]}: advertise the LANs behind
//	                          the device (they wait for an operator's approval)
//	PUT /v1/subscriber/agent  the software the device runs, one product as text
//	                          ("wirefleet-agent/v1.4.0"), shown to operators
package metadata

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/wirefleet/wirefleet/controlplane/store"
	"github.com/wirefleet/wirefleet/fleet"
	"github.com/wirefleet/wirefleet/internal/fairshare"
	"github.com/wirefleet/wirefleet/services/platform"
	"github.com/wirefleet/wirefleet/wgkey"
)

// ControlPlane is what the service asks of the control plane, always about
// the calling device's own SIM and acting as that device.
type ControlPlane interface {
	// SIM reads a SIM's stored record. It is read per request, not taken
	// from the gateway's copy, so that a device reading right after its
	// own tag write sees the write.
	SIM(ctx context.Context, id string) (fleet.SIM, error)
	// SetTags replaces the SIM's tags.
	SetTags(ctx context.Context, simID string, tags map[string]string) (fleet.SIM, error)
	// AnnounceKey makes key the SIM's next key (rotation): both keys are
	// accepted until the first handshake with the next one.
	AnnounceKey(ctx context.Context, simID string, key wgkey.Public) (fleet.SIM, error)
	// AllowedIPs are the destinations the SIM's session names now.
	AllowedIPs(ctx context.Context, simID string) ([]string, error)
	// Routes lists the SIM's LAN routes.
	Routes(ctx context.Context, simID string) ([]fleet.Route, error)
	// AdvertiseRoutes records the prefixes the device says are behind it;
	// the SIM's group must allow it.
	AdvertiseRoutes(ctx context.Context, simID string, prefixes []netip.Prefix) ([]fleet.Route, error)
	// ReportAgent records the software the device says it runs (SIM.Agent).
	ReportAgent(ctx context.Context, simID, agent string) error
}

// Config configures the metadata service.
type Config struct {
	// Addr is the service's address; it serves HTTP on TCP port 80.
	Addr netip.Addr
	// ControlPlane reads and changes the caller's SIM. Required.
	ControlPlane ControlPlane
	// Logger receives logs; default slog.Default().
	Logger *slog.Logger
}

// Subscriber is what GET /v1/subscriber returns: the calling SIM's record.
type Subscriber struct {
	ID        string            `json:"id"`
	IMSI      string            `json:"imsi"`
	Name      string            `json:"name"`
	IPAddress string            `json:"ipAddress"`
	GroupID   string            `json:"groupId,omitempty"`
	GroupName string            `json:"groupName,omitempty"`
	Tags      map[string]string `json:"tags"`
	Status    fleet.Status      `json:"status"`
	// KeyRotationRequired tells the device to replace its key before
	// RotateBy (the agent does, by announcing a next key).
	KeyRotationRequired bool      `json:"keyRotationRequired,omitempty"`
	RotateBy            time.Time `json:"rotateBy,omitzero"`
}

// Service is the metadata platform service.
type Service struct {
	cfg  Config
	host platform.Host
	srv  *http.Server
	wg   sync.WaitGroup
}

var _ platform.Service = (*Service)(nil)

// New returns the metadata service; the gateway starts it.
func New(cfg Config) *Service {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Service{cfg: cfg}
}

// Addrs implements platform.Service.
func (s *Service) Addrs() []netip.Addr { return []netip.Addr{s.cfg.Addr} }

// Start implements platform.Service.
func (s *Service) Start(host platform.Host) error {
	if s.cfg.ControlPlane == nil {
		return errors.New("metadata: no control plane")
	}
	lns, _, err := host.Listen(s.cfg.Addr, []uint16{80}, nil)
	if err != nil {
		return fmt.Errorf("metadata: %w", err)
	}
	s.host = host
	s.srv = &http.Server{
		Handler:           fairshare.Handler(s.handler()),
		ConnContext:       fairshare.ConnContext,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		ErrorLog:          slog.NewLogLogger(s.cfg.Logger.Handler(), slog.LevelDebug),
	}
	s.wg.Add(1)
	go func(ln net.Listener) {
		defer s.wg.Done()
		s.srv.Serve(ln)
	}(lns[0])
	return nil
}

// Close implements platform.Service.
func (s *Service) Close() error {
	if s.srv == nil {
		return nil
	}
	err := s.srv.Close()
	s.wg.Wait()
	return err
}

// caller is the device behind a request: its stored SIM and its group.
type caller struct {
	sim       fleet.SIM
	groupName string
	group     fleet.GroupSettings
	inGroup   bool
}

func (s *Service) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/subscriber", s.with(s.getSubscriber))
	mux.HandleFunc("GET /v1/userdata", s.with(s.getUserData))
	mux.HandleFunc("PUT /v1/subscriber/tags", s.with(s.putTags))
	mux.HandleFunc("PUT /v1/subscriber/key", s.with(s.putKey))
	mux.HandleFunc("GET /v1/subscriber/session", s.with(s.getSession))
	mux.HandleFunc("PUT /v1/subscriber/agent", s.with(s.putAgent))
	mux.HandleFunc("GET /v1/subscriber/routes", s.with(s.getRoutes))
	mux.HandleFunc("PUT /v1/subscriber/routes", s.with(s.putRoutes))
	return mux
}

// with resolves the caller and refuses requests from anything but a SIM's
// own, checked, tunnel address.
func (s *Service) with(fn func(w http.ResponseWriter, r *http.Request, c caller)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ap, err := netip.ParseAddrPort(r.RemoteAddr)
		if err != nil {
			http.Error(w, "unknown caller", http.StatusForbidden)
			return
		}
		addr := ap.Addr().Unmap()
		pc, ok := s.host.Caller(r.Context(), addr)
		if !ok {
			http.Error(w, "unknown caller", http.StatusForbidden)
			return
		}
		// The stored record: tags may have changed since the gateway's copy.
		sim, err := s.cfg.ControlPlane.SIM(r.Context(), pc.SIM.ID)
		if errors.Is(err, store.ErrUnavailable) {
			unavailable(w) // an outage, not an unknown device: it should retry
			return
		}
		if err != nil || sim.Address != pc.SIM.Address { // the caller's IPv4 address, or the one its IPv6 address twins
			http.Error(w, "unknown caller", http.StatusForbidden)
			return
		}
		fn(w, r, caller{sim: sim, groupName: pc.GroupName, group: pc.Group, inGroup: sim.GroupID != ""})
	}
}

// putAgent records the software the device says it runs: the body is one
// product ("wirefleet-agent/v1.4.0"), printable ASCII without spaces, at
// most fleet.MaxAgentLen bytes. Only this explicit report is recorded (not
// every request's User-Agent), so a script on the device calling the
// metadata service does not overwrite what its agent reported.
func (s *Service) putAgent(w http.ResponseWriter, r *http.Request, c caller) {
	b, err := io.ReadAll(io.LimitReader(r.Body, fleet.MaxAgentLen+2))
	if err != nil {
		http.Error(w, "the report could not be read", http.StatusBadRequest)
		return
	}
	a := strings.TrimSpace(string(b))
	if !validAgent(a) {
		http.Error(w, fmt.Sprintf("the agent is one product, e.g. wirefleet-agent/v1.4.0: printable ASCII without spaces, 1 to %d bytes", fleet.MaxAgentLen), http.StatusBadRequest)
		return
	}
	if a != c.sim.Agent {
		if err := s.cfg.ControlPlane.ReportAgent(r.Context(), c.sim.ID, a); errors.Is(err, store.ErrUnavailable) {
			unavailable(w)
			return
		} else if err != nil {
			http.Error(w, "the report was not recorded: "+err.Error(), http.StatusBadRequest)
			return
		}
	}
	w.WriteHeader(http.StatusNoContent)
}

// validAgent says whether a is one product, as putAgent takes it.
func validAgent(a string) bool {
	if a == "" || len(a) > fleet.MaxAgentLen {
		return false
	}
	for i := 0; i < len(a); i++ {
		if a[i] < 0x21 || a[i] > 0x7e {
			return false
		}
	}
	return true
}

func (s *Service) getSubscriber(w http.ResponseWriter, r *http.Request, c caller) {
	writeSubscriber(w, c, c.sim)
}

func (s *Service) getUserData(w http.ResponseWriter, r *http.Request, c caller) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if c.inGroup {
		io.WriteString(w, c.group.UserData)
	}
}

func (s *Service) putTags(w http.ResponseWriter, r *http.Request, c caller) {
	if !c.inGroup || !c.group.DevicesMayWriteTags {
		http.Error(w, "this SIM's group does not let devices write tags", http.StatusForbidden)
		return
	}
	set, err := parseTags(io.LimitReader(r.Body, 64<<10))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	tags := maps.Clone(c.sim.Tags)
	if tags == nil {
		tags = map[string]string{}
	}
	maps.Copy(tags, set)
	updated, err := s.cfg.ControlPlane.SetTags(r.Context(), c.sim.ID, tags)
	if s.failed(w, err) {
		return
	}
	writeSubscriber(w, c, updated)
}

// putKey is key rotation over the tunnel: the device announces its next
// key, authenticated by the session of its current one (no API credential
// on the device).
func (s *Service) putKey(w http.ResponseWriter, r *http.Request, c caller) {
	var body struct {
		PublicKey wgkey.Public `json:"publicKey"`
	}
	dec := json.NewDecoder(io.LimitReader(r.Body, 4<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil || body.PublicKey.IsZero() {
		http.Error(w, `want {"publicKey": "<base64 WireGuard public key>"}`, http.StatusBadRequest)
		return
	}
	updated, err := s.cfg.ControlPlane.AnnounceKey(r.Context(), c.sim.ID, body.PublicKey)
	if s.failed(w, err) {
		return
	}
	writeSubscriber(w, c, updated)
}

// Session is what GET /v1/subscriber/session answers.
type Session struct {
	AllowedIPs []string `json:"allowedIPs"`
}

func (s *Service) getSession(w http.ResponseWriter, r *http.Request, c caller) {
	a, err := s.cfg.ControlPlane.AllowedIPs(r.Context(), c.sim.ID)
	if s.failed(w, err) {
		return
	}
	if a == nil {
		a = []string{}
	}
	writeJSON(w, Session{AllowedIPs: a})
}

// Routes is what the routes endpoints answer.
type Routes struct {
	Routes []fleet.Route `json:"routes"`
}

func (s *Service) getRoutes(w http.ResponseWriter, r *http.Request, c caller) {
	rs, err := s.cfg.ControlPlane.Routes(r.Context(), c.sim.ID)
	if s.failed(w, err) {
		return
	}
	writeJSON(w, Routes{Routes: nonNil(rs)})
}

// putRoutes is a device advertising the LANs behind it.
func (s *Service) putRoutes(w http.ResponseWriter, r *http.Request, c caller) {
	var body struct {
		Prefixes []string `json:"prefixes"`
	}
	dec := json.NewDecoder(io.LimitReader(r.Body, 16<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil {
		http.Error(w, `want {"prefixes": ["192.168.1.0/24", …]}`, http.StatusBadRequest)
		return
	}
	prefixes := make([]netip.Prefix, 0, len(body.Prefixes))
	for _, p := range body.Prefixes {
		pfx, err := netip.ParsePrefix(p)
		if err != nil {
			http.Error(w, fmt.Sprintf("%q is not a CIDR prefix", p), http.StatusBadRequest)
			return
		}
		prefixes = append(prefixes, pfx)
	}
	rs, err := s.cfg.ControlPlane.AdvertiseRoutes(r.Context(), c.sim.ID, prefixes)
	if s.failed(w, err) {
		return
	}
	writeJSON(w, Routes{Routes: nonNil(rs)})
}

func nonNil(rs []fleet.Route) []fleet.Route {
	if rs == nil {
		return []fleet.Route{}
	}
	return rs
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}

// failed answers err, if any: a fleet error is the device's fault (409
// for a conflict), anything else is ours and is logged, not shown.
func (s *Service) failed(w http.ResponseWriter, err error) bool {
	if err == nil {
		return false
	}
	var fe *fleet.Error
	if errors.As(err, &fe) {
		code := http.StatusBadRequest
		switch fe.Code {
		case fleet.CodeConflict:
			code = http.StatusConflict
		case fleet.CodeForbidden:
			code = http.StatusForbidden
		}
		http.Error(w, fe.Error(), code)
		return true
	}
	if errors.Is(err, store.ErrUnavailable) {
		unavailable(w)
		return true
	}
	s.cfg.Logger.Error("metadata: control plane", "err", err)
	http.Error(w, "internal error", http.StatusInternalServerError)
	return true
}

// unavailable answers a store outage: 503, retry in a few seconds.
func unavailable(w http.ResponseWriter) {
	w.Header().Set("Retry-After", "5")
	http.Error(w, "the fleet database is unavailable; retry shortly", http.StatusServiceUnavailable)
}

func writeSubscriber(w http.ResponseWriter, c caller, sim fleet.SIM) {
	sub := Subscriber{ID: sim.ID, IMSI: sim.IMSI, Name: sim.Name, IPAddress: sim.Address.String(), GroupID: sim.GroupID, Tags: sim.Tags, Status: sim.Status,
		KeyRotationRequired: !sim.RotateBy.IsZero(), RotateBy: sim.RotateBy}
	if c.inGroup {
		sub.GroupName = c.groupName
	}
	if sub.Tags == nil {
		sub.Tags = map[string]string{}
	}
	writeJSON(w, sub)
}

// parseTags reads the Arc form [{"tagName":…,"tagValue":…}] or an object.
func parseTags(r io.Reader) (map[string]string, error) {
	b, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	var list []struct {
		Name  string `json:"tagName"`
		Value string `json:"tagValue"`
	}
	if err := json.Unmarshal(b, &list); err == nil {
		m := map[string]string{}
		for _, t := range list {
			m[t.Name] = t.Value
		}
		return m, nil
	}
	var m map[string]string
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, errors.New("want [{\"tagName\":…,\"tagValue\":…}] or {\"name\":\"value\"}")
	}
	return m, nil
}
