// SPDX-License-Identifier: Apache-2.0

package metadata

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"

	"github.com/wirefleet/wirefleet/controlplane/store"
	"github.com/wirefleet/wirefleet/fleet"
	"github.com/wirefleet/wirefleet/services/platform"
	"github.com/wirefleet/wirefleet/wgkey"
)

var (
	addrA = netip.MustParseAddr("10.128.0.2")
	addrB = netip.MustParseAddr("10.128.0.3")
)

// fakeHost knows the callers a (its group lets devices write tags) and b
// (its group does not).
type fakeHost struct{}

func (fakeHost) Listen(netip.Addr, []uint16, []uint16) ([]net.Listener, []net.PacketConn, error) {
	return nil, nil, nil
}
func (fakeHost) DialTCP(context.Context, netip.AddrPort) (net.Conn, error) { return nil, nil }
func (fakeHost) Online(string) bool                                        { return true }
func (fakeHost) Reachable(context.Context, fleet.SIM, string) (fleet.SIM, bool) {
	return fleet.SIM{}, false
}
func (fakeHost) Caller(_ context.Context, a netip.Addr) (platform.Caller, bool) {
	switch a {
	case addrA:
		return platform.Caller{SIM: fleet.SIM{ID: "sim_a", Address: addrA, GroupID: "g1"}, GroupName: "writers",
			Group: fleet.GroupSettings{DevicesMayWriteTags: true, UserData: "hello"}}, true
	case addrB:
		return platform.Caller{SIM: fleet.SIM{ID: "sim_b", Address: addrB, GroupID: "g2"}, GroupName: "readers"}, true
	}
	return platform.Caller{}, false
}

// fakeControl stores SIMs; the gateway's copy (fakeHost) never changes,
// so a read that sees a write proves the service reads the store.
type fakeControl struct {
	down     bool // the store is unreachable
	sims     map[string]fleet.SIM
	routes   map[string][]fleet.Route
	announce error
	agents   []string // ReportAgent calls, "sim agent"
}

func (c *fakeControl) ReportAgent(_ context.Context, id, agent string) error {
	c.agents = append(c.agents, id+" "+agent)
	sim := c.sims[id]
	sim.Agent = agent
	c.sims[id] = sim
	return nil
}

func (c *fakeControl) SIM(_ context.Context, id string) (fleet.SIM, error) {
	if c.down {
		return fleet.SIM{}, fmt.Errorf("%w: dial tcp: connection refused", store.ErrUnavailable)
	}
	sim, ok := c.sims[id]
	if !ok {
		return sim, fleet.Errorf(fleet.CodeNotFound, "", "no such SIM")
	}
	return sim, nil
}

func (c *fakeControl) SetTags(_ context.Context, id string, tags map[string]string) (fleet.SIM, error) {
	sim := c.sims[id]
	sim.Tags = tags
	c.sims[id] = sim
	return sim, nil
}

func (c *fakeControl) AllowedIPs(_ context.Context, id string) ([]string, error) {
	return []string{"100.127.0.0/16", "10.64.0.0/10"}, nil
}

func (c *fakeControl) Routes(_ context.Context, id string) ([]fleet.Route, error) {
	return c.routes[id], nil
}

// AdvertiseRoutes lets sim_a advertise (its group allows it), not sim_b.
func (c *fakeControl) AdvertiseRoutes(_ context.Context, id string, prefixes []netip.Prefix) ([]fleet.Route, error) {
	if id != "sim_a" {
		return nil, fleet.Errorf(fleet.CodeForbidden, "", "this SIM's group does not let devices advertise routes")
	}
	var rs []fleet.Route
	for _, p := range prefixes {
		rs = append(rs, fleet.Route{SIMID: id, Prefix: p, Status: fleet.RouteAdvertised, Source: fleet.RouteByDevice})
	}
	c.routes[id] = rs
	return rs, nil
}

func (c *fakeControl) AnnounceKey(_ context.Context, id string, key wgkey.Public) (fleet.SIM, error) {
	if c.announce != nil {
		return fleet.SIM{}, c.announce
	}
	sim := c.sims[id]
	sim.NextPublicKey = key
	c.sims[id] = sim
	return sim, nil
}

func newTestService() (*Service, *fakeControl) {
	cp := &fakeControl{routes: map[string][]fleet.Route{}, sims: map[string]fleet.SIM{
		"sim_a": {ID: "sim_a", Address: addrA, GroupID: "g1", Status: fleet.StatusActive, Tags: map[string]string{"site": "north"}},
		"sim_b": {ID: "sim_b", Address: addrB, GroupID: "g2", Status: fleet.StatusActive},
	}}
	s := New(Config{Addr: netip.MustParseAddr("100.127.100.127"), ControlPlane: cp})
	s.host = fakeHost{}
	return s, cp
}

func do(t *testing.T, s *Service, from netip.Addr, method, path, body string) (int, string) {
	t.Helper()
	return doAs(t, s, from, "", method, path, body)
}

// doAs is do with a User-Agent ("" sends none).
func doAs(t *testing.T, s *Service, from netip.Addr, ua, method, path, body string) (int, string) {
	t.Helper()
	r := httptest.NewRequest(method, path, strings.NewReader(body))
	r.Header.Del("User-Agent")
	if ua != "" {
		r.Header.Set("User-Agent", ua)
	}
	r.RemoteAddr = netip.AddrPortFrom(from, 40000).String()
	w := httptest.NewRecorder()
	s.handler().ServeHTTP(w, r)
	return w.Code, w.Body.String()
}

// Only a SIM's own tunnel address is a caller, and only while the stored
// record still has that address.
func TestUnknownCallerRefused(t *testing.T) {
	s, cp := newTestService()
	for _, path := range []string{"/v1/subscriber", "/v1/userdata"} {
		if code, _ := do(t, s, netip.MustParseAddr("10.128.0.9"), "GET", path, ""); code != http.StatusForbidden {
			t.Errorf("GET %s from an unknown address: %d, want 403", path, code)
		}
	}
	if code, _ := do(t, s, netip.MustParseAddr("10.128.0.9"), "PUT", "/v1/subscriber/tags", `{"a":"1"}`); code != http.StatusForbidden {
		t.Errorf("tag write from an unknown address: %d, want 403", code)
	}
	sim := cp.sims["sim_a"]
	sim.Address = netip.MustParseAddr("10.128.0.77") // re-addressed since the gateway's copy
	cp.sims["sim_a"] = sim
	if code, _ := do(t, s, addrA, "GET", "/v1/subscriber", ""); code != http.StatusForbidden {
		t.Errorf("caller whose stored address moved: %d, want 403", code)
	}
}

func TestSubscriberAndUserData(t *testing.T) {
	s, _ := newTestService()
	code, body := do(t, s, addrA, "GET", "/v1/subscriber", "")
	var sub Subscriber
	if code != 200 || json.Unmarshal([]byte(body), &sub) != nil {
		t.Fatalf("GET /v1/subscriber: %d %s", code, body)
	}
	if sub.ID != "sim_a" || sub.GroupName != "writers" || sub.IPAddress != addrA.String() || sub.Tags["site"] != "north" {
		t.Errorf("subscriber %+v", sub)
	}
	if code, body := do(t, s, addrA, "GET", "/v1/userdata", ""); code != 200 || body != "hello" {
		t.Errorf("userdata: %d %q", code, body)
	}
	if code, body := do(t, s, addrB, "GET", "/v1/subscriber", ""); code != 200 || !strings.Contains(body, `"tags":{}`) {
		t.Errorf("SIM without tags: %d %s, want an empty tags object", code, body)
	}
}

// A tag write needs the group's permission; it merges, and the next read
// sees it at once.
func TestTagWrite(t *testing.T) {
	s, cp := newTestService()
	if code, _ := do(t, s, addrB, "PUT", "/v1/subscriber/tags", `{"fw":"1"}`); code != http.StatusForbidden {
		t.Errorf("tag write where the group forbids it: %d, want 403", code)
	}
	if cp.sims["sim_b"].Tags != nil {
		t.Errorf("refused write changed tags: %v", cp.sims["sim_b"].Tags)
	}
	if code, body := do(t, s, addrA, "PUT", "/v1/subscriber/tags", `not json`); code != http.StatusBadRequest {
		t.Errorf("bad body: %d %s, want 400", code, body)
	}
	if code, body := do(t, s, addrA, "PUT", "/v1/subscriber/tags", `[{"tagName":"fw","tagValue":"1.2"}]`); code != 200 {
		t.Fatalf("tag write: %d %s", code, body)
	}
	_, body := do(t, s, addrA, "GET", "/v1/subscriber", "")
	if !strings.Contains(body, `"fw":"1.2"`) || !strings.Contains(body, `"site":"north"`) {
		t.Errorf("read after write: %s, want both tags", body)
	}
}

func newPublic(t *testing.T) wgkey.Public {
	t.Helper()
	k, err := wgkey.NewPrivate()
	if err != nil {
		t.Fatal(err)
	}
	return k.Public()
}

func TestKeyAnnounce(t *testing.T) {
	s, cp := newTestService()
	for _, body := range []string{``, `{}`, `{"publicKey":"x"}`, `{"publicKey":"` + newPublic(t).String() + `","extra":1}`} {
		if code, _ := do(t, s, addrA, "PUT", "/v1/subscriber/key", body); code != http.StatusBadRequest {
			t.Errorf("body %q: %d, want 400", body, code)
		}
	}
	next := newPublic(t)
	if code, body := do(t, s, addrA, "PUT", "/v1/subscriber/key", `{"publicKey":"`+next.String()+`"}`); code != 200 || cp.sims["sim_a"].NextPublicKey != next {
		t.Fatalf("announce: %d %s", code, body)
	}
	cp.announce = fleet.Errorf(fleet.CodeConflict, "publicKey", "key in use")
	if code, _ := do(t, s, addrA, "PUT", "/v1/subscriber/key", `{"publicKey":"`+next.String()+`"}`); code != http.StatusConflict {
		t.Errorf("conflict: %d, want 409", code)
	}
}

func TestParseTags(t *testing.T) {
	m, err := parseTags(strings.NewReader(`[{"tagName":"a","tagValue":"1"},{"tagName":"b","tagValue":""}]`))
	if err != nil || m["a"] != "1" || len(m) != 2 {
		t.Fatalf("Arc form: %v %v", m, err)
	}
	m, err = parseTags(strings.NewReader(`{"a":"2"}`))
	if err != nil || m["a"] != "2" {
		t.Fatalf("object form: %v %v", m, err)
	}
	if _, err := parseTags(strings.NewReader(`"a"`)); err == nil {
		t.Fatal("a string accepted")
	}
}

// A device advertises the LANs behind it; a refusal by its group is 403,
// a bad prefix 400; it reads back what it advertised.
func TestAdvertiseRoutes(t *testing.T) {
	s, cp := newTestService()
	if code, body := do(t, s, addrA, "PUT", "/v1/subscriber/routes", `{"prefixes":["192.168.1.0/24"]}`); code != 200 || !strings.Contains(body, `"status":"advertised"`) {
		t.Fatalf("advertise: %d %s", code, body)
	}
	if len(cp.routes["sim_a"]) != 1 {
		t.Fatalf("routes %+v", cp.routes)
	}
	if code, body := do(t, s, addrA, "GET", "/v1/subscriber/routes", ""); code != 200 || !strings.Contains(body, "192.168.1.0/24") {
		t.Errorf("read back: %d %s", code, body)
	}
	if code, _ := do(t, s, addrB, "PUT", "/v1/subscriber/routes", `{"prefixes":["192.168.1.0/24"]}`); code != http.StatusForbidden {
		t.Errorf("advertising where the group forbids it: %d, want 403", code)
	}
	for _, body := range []string{`{"prefixes":["192.168.1/24"]}`, `{"prefixes":"x"}`, `{"routes":[]}`, `[]`} {
		if code, _ := do(t, s, addrA, "PUT", "/v1/subscriber/routes", body); code != http.StatusBadRequest {
			t.Errorf("body %s: %d, want 400", body, code)
		}
	}
	if code, _ := do(t, s, netip.MustParseAddr("10.128.0.99"), "PUT", "/v1/subscriber/routes", `{"prefixes":[]}`); code != http.StatusForbidden {
		t.Errorf("unknown caller: %d, want 403", code)
	}
}

// A store outage is told to the device as one — 503 with Retry-After —
// not as "unknown caller", so it retries instead of giving up.
func TestStoreOutage(t *testing.T) {
	s, cp := newTestService()
	cp.down = true
	r := httptest.NewRequest("GET", "/v1/subscriber", nil)
	r.RemoteAddr = netip.AddrPortFrom(addrA, 40000).String()
	w := httptest.NewRecorder()
	s.handler().ServeHTTP(w, r)
	if w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") == "" {
		t.Fatalf("during an outage: %d %q %s", w.Code, w.Header().Get("Retry-After"), w.Body)
	}
}

// A device's agent is what it reports with PUT /v1/subscriber/agent: one
// product of printable ASCII, never for another SIM; other requests'
// User-Agent (a script on the device) changes nothing.
func TestAgentRecorded(t *testing.T) {
	s, cp := newTestService()
	if code, _ := doAs(t, s, addrA, "wirefleet-agent/v1.2.3", "PUT", "/v1/subscriber/agent", "wirefleet-agent/v1.2.3\n"); code != http.StatusNoContent {
		t.Fatalf("the agent's report: %d", code)
	}
	for _, path := range []string{"/v1/subscriber", "/v1/userdata", "/v1/subscriber/session"} {
		doAs(t, s, addrA, "curl/8.5.0", "GET", path, "")
	}
	doAs(t, s, addrA, "", "PUT", "/v1/subscriber/agent", "wirefleet-agent/v1.2.3") // the same again: nothing to record
	long := strings.Repeat("x", fleet.MaxAgentLen+1)
	for _, bad := range []string{"", "  ", "wirefleet-agent/v1 (linux)", "agent\x1b[31m/1", "é/1", long} {
		if code, body := do(t, s, addrA, "PUT", "/v1/subscriber/agent", bad); code != http.StatusBadRequest || !strings.Contains(body, "one product") {
			t.Errorf("a report of %q: %d %q, want 400", bad, code, body)
		}
	}
	if code, _ := do(t, s, netip.MustParseAddr("10.128.0.9"), "PUT", "/v1/subscriber/agent", "intruder/1"); code != http.StatusForbidden {
		t.Fatalf("an unknown caller: %d", code)
	}
	do(t, s, addrB, "PUT", "/v1/subscriber/agent", long[:fleet.MaxAgentLen])
	want := []string{"sim_a wirefleet-agent/v1.2.3", "sim_b " + long[:fleet.MaxAgentLen]}
	if strings.Join(cp.agents, "|") != strings.Join(want, "|") {
		t.Fatalf("reports %q, want %q", cp.agents, want)
	}
	cp.down = true
	if code, _ := do(t, s, addrA, "PUT", "/v1/subscriber/agent", "wirefleet-agent/v2"); code != http.StatusServiceUnavailable {
		t.Fatalf("a report while the store is down: %d, want 503", code)
	}
}
