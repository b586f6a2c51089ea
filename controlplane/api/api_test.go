// SPDX-License-Identifier: Apache-2.0

package api_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/wirefleet/wirefleet/controlplane"
	"github.com/wirefleet/wirefleet/controlplane/api"
	"github.com/wirefleet/wirefleet/controlplane/store"
	"github.com/wirefleet/wirefleet/controlplane/store/sqlitestore"
	"github.com/wirefleet/wirefleet/fleet"
	"github.com/wirefleet/wirefleet/internal/seal"
	"github.com/wirefleet/wirefleet/keyproof"
	"github.com/wirefleet/wirefleet/keystore"
	"github.com/wirefleet/wirefleet/wgkey"
)

type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

type env struct {
	t       *testing.T
	srv     *httptest.Server
	svc     *controlplane.Service
	st      store.Store // the service's, for arranging what no API call makes
	logs    *logBuf
	tokens  map[fleet.Role]string
	secrets *seal.Key
}

func newEnv(t *testing.T) *env {
	t.Helper()
	return newEnvSealing(t, true)
}

// newEnvSealing is newEnv, with or without a key to seal settings'
// secrets.
func newEnvSealing(t *testing.T, withKey bool) *env {
	t.Helper()
	ctx := context.Background()
	st, err := sqlitestore.Open(ctx, filepath.Join(t.TempDir(), "fleet.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	logs := &logBuf{}
	log := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	gw, _ := wgkey.NewPrivate()
	secrets, err := seal.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	cfg := controlplane.Config{Endpoint: "127.0.0.1:51820", GatewayPublicKey: gw.Public, Logger: log}
	if withKey {
		cfg.Secrets = secrets
	}
	svc := controlplane.New(st, cfg)
	srv := httptest.NewServer(api.New(svc, api.Config{Logger: log}))
	t.Cleanup(srv.Close)
	e := &env{t: t, srv: srv, svc: svc, st: st, logs: logs, tokens: map[fleet.Role]string{}, secrets: secrets}
	adminSecret, ok, err := svc.EnsureAdminToken(ctx)
	if err != nil || !ok {
		t.Fatalf("admin token: %v %v", ok, err)
	}
	e.tokens[fleet.RoleAdmin] = adminSecret
	for _, r := range []fleet.Role{fleet.RoleOperator, fleet.RoleViewer} {
		var out struct{ Secret string }
		e.must("POST", "/api/v1/tokens", fleet.RoleAdmin, map[string]any{"role": r}, 201, &out)
		e.tokens[r] = out.Secret
	}
	return e
}

// do sends a request with the token of role ("" for none) and returns
// the status and body.
func (e *env) do(method, path string, role fleet.Role, body any) (int, []byte) {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, _ := json.Marshal(b)
		rd = bytes.NewReader(j)
	}
	req, _ := http.NewRequest(method, e.srv.URL+path, rd)
	if role != "" {
		req.Header.Set("Authorization", "Bearer "+e.tokens[role])
	}
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func (e *env) must(method, path string, role fleet.Role, body any, want int, out any) []byte {
	e.t.Helper()
	code, b := e.do(method, path, role, body)
	if code != want {
		e.t.Fatalf("%s %s: status %d, want %d: %s", method, path, code, want, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			e.t.Fatalf("%s %s: %v: %s", method, path, err, b)
		}
	}
	return b
}

func (e *env) wantError(method, path string, role fleet.Role, body any, status int, code, field string) {
	e.t.Helper()
	got, b := e.do(method, path, role, body)
	var fe fleet.Error
	if err := json.Unmarshal(b, &fe); err != nil || got != status || fe.Code != code || fe.Field != field {
		e.t.Fatalf("%s %s: got %d %s, want %d {code:%s field:%s}", method, path, got, b, status, code, field)
	}
}

func pubKey(t *testing.T) string {
	p, _ := wgkey.NewPrivate()
	return p.Public().String()
}

func TestBootstrapFlowAndConfig(t *testing.T) {
	e := newEnv(t)
	var g fleet.Group
	e.must("POST", "/api/v1/groups", fleet.RoleOperator, map[string]any{"name": "meters", "settings": map[string]any{"routes": []string{"192.168.50.0/24"}}}, 201, &g)
	var ak struct {
		Item   fleet.AuthKey
		Secret string
	}
	e.must("POST", "/api/v1/authkeys", fleet.RoleOperator, map[string]any{"groupId": g.ID, "maxUses": 2, "ttlSeconds": 600}, 201, &ak)
	if !strings.HasPrefix(ak.Secret, controlplane.AuthKeyPrefix) || ak.Item.MaxUses != 2 {
		t.Fatalf("auth key %+v", ak)
	}
	key := pubKey(t)
	var bs struct {
		SIM     fleet.SIM
		Session fleet.Session
	}
	e.must("POST", "/api/v1/bootstrap", "", map[string]any{"authKey": ak.Secret, "publicKey": key, "name": "m1"}, 200, &bs)
	if bs.SIM.PublicKey.String() != key || bs.SIM.GroupID != g.ID || bs.Session.Endpoint != "127.0.0.1:51820" || bs.Session.Address != bs.SIM.Address.String()+"/32" {
		t.Fatalf("bootstrap %+v", bs)
	}
	var raw map[string]any
	e.must("POST", "/api/v1/bootstrap", "", map[string]any{"authKey": ak.Secret, "generateKey": true}, 200, &raw)
	priv := raw["session"].(map[string]any)["privateKey"].(string)
	if priv == "" {
		t.Fatal("generateKey: no private key returned")
	}
	e.wantError("POST", "/api/v1/bootstrap", "", map[string]any{"authKey": ak.Secret, "generateKey": true}, 401, fleet.CodeUnauthorized, "authKey")

	conf := string(e.must("GET", "/api/v1/sims/"+bs.SIM.ID+"/wireguard-config", fleet.RoleViewer, nil, 200, nil))
	for _, want := range []string{"PrivateKey = " + controlplane.PrivateKeyPlaceholder, "Address = " + bs.Session.Address, "Endpoint = 127.0.0.1:51820", "AllowedIPs = 100.127.0.0/16, 192.168.50.0/24", "PublicKey = " + bs.Session.GatewayPublicKey.String()} {
		if !strings.Contains(conf, want) {
			t.Fatalf("config lacks %q:\n%s", want, conf)
		}
	}
	conf = string(e.must("POST", "/api/v1/sims/"+bs.SIM.ID+"/wireguard-config", fleet.RoleOperator, map[string]any{"generateKey": true}, 200, nil))
	var sim fleet.SIM
	e.must("GET", "/api/v1/sims/"+bs.SIM.ID, fleet.RoleViewer, nil, 200, &sim)
	line := conf[strings.Index(conf, "PrivateKey = ")+len("PrivateKey = "):]
	line = line[:strings.Index(line, "\n")]
	pk, err := wgkey.ParsePrivate(line)
	if err != nil || pk.Public() != sim.PublicKey {
		t.Fatalf("generated config key %q does not match the SIM's new public key (%v)", line, err)
	}

	// Find by IMSI, address, key.
	for _, ref := range []string{sim.IMSI, sim.Address.String(), url.QueryEscape(sim.PublicKey.String())} {
		var found fleet.SIM
		e.must("GET", "/api/v1/sims/find?ref="+ref, fleet.RoleViewer, nil, 200, &found)
		if found.ID != sim.ID {
			t.Fatalf("find %s: %s", ref, found.ID)
		}
	}
	e.wantError("GET", "/api/v1/sims/find?ref=999990000009999", fleet.RoleViewer, nil, 404, fleet.CodeNotFound, "ref")
	e.wantError("GET", "/api/v1/sims/find?ref=bogus", fleet.RoleViewer, nil, 400, fleet.CodeInvalid, "ref")

	// Actions, listing, events.
	e.must("POST", "/api/v1/sims/"+sim.ID+"/suspend", fleet.RoleOperator, nil, 200, &sim)
	if sim.Status != fleet.StatusSuspended {
		t.Fatalf("status %s", sim.Status)
	}
	var page struct {
		Items []fleet.SIM
		Next  string
	}
	e.must("GET", "/api/v1/sims?status=suspended", fleet.RoleViewer, nil, 200, &page)
	if len(page.Items) != 1 || page.Items[0].ID != sim.ID {
		t.Fatalf("suspended list %+v", page)
	}
	e.must("PUT", "/api/v1/sims/"+sim.ID+"/tags", fleet.RoleOperator, map[string]any{"tags": map[string]string{"site": "north", "rack": "7"}}, 200, nil)
	e.must("GET", "/api/v1/sims?tag=site=north&tag=rack=7", fleet.RoleViewer, nil, 200, &page)
	if len(page.Items) != 1 || page.Items[0].ID != sim.ID {
		t.Fatalf("tag filter %+v", page)
	}
	e.must("GET", "/api/v1/sims?tag=site=south", fleet.RoleViewer, nil, 200, &page)
	if len(page.Items) != 0 {
		t.Fatalf("tag filter site=south %+v", page)
	}
	e.must("GET", "/api/v1/sims?limit=1", fleet.RoleViewer, nil, 200, &page)
	if len(page.Items) != 1 || page.Next == "" {
		t.Fatalf("page 1 %+v", page)
	}
	cursor := page.Next
	page.Next = ""
	e.must("GET", "/api/v1/sims?limit=1&cursor="+cursor, fleet.RoleViewer, nil, 200, &page)
	if len(page.Items) != 1 || page.Next != "" {
		t.Fatalf("page 2 %+v", page)
	}
	var events struct{ Items []fleet.Event }
	e.must("GET", "/api/v1/events?objectId="+sim.ID, fleet.RoleViewer, nil, 200, &events)
	if len(events.Items) != 4 || events.Items[0].Action != "sim.set_tags" || events.Items[1].Action != "sim.suspend" || events.Items[2].Action != "sim.set_key" || events.Items[3].Action != "sim.bootstrap" {
		t.Fatalf("events %+v", events.Items)
	}

	// Secrets never reach the logs.
	logs := e.logs.String()
	for name, secret := range map[string]string{"admin token": e.tokens[fleet.RoleAdmin], "operator token": e.tokens[fleet.RoleOperator], "auth key": ak.Secret, "generated private key": priv, "config private key": line} {
		if strings.Contains(logs, secret) {
			t.Errorf("%s appears in logs", name)
		}
	}
	if !strings.Contains(logs, "sim bootstrapped") {
		t.Fatal("log capture is not working: expected entries missing")
	}
}

// TestRoleDenials checks every protected route refuses roles below its own,
// and requests without or with a wrong token.
func TestRoleDenials(t *testing.T) {
	e := newEnv(t)
	cases := []struct {
		method, path string
		body         any
		min          fleet.Role
	}{
		{"GET", "/api/v1/sims", nil, fleet.RoleViewer},
		{"GET", "/api/v1/captures", nil, fleet.RoleViewer},
		{"GET", "/api/v1/captures/x", nil, fleet.RoleViewer},
		{"GET", "/api/v1/captures/x/file", nil, fleet.RoleViewer},
		{"POST", "/api/v1/captures/x/url", nil, fleet.RoleViewer},
		{"POST", "/api/v1/captures", map[string]any{"duration": 60}, fleet.RoleOperator},
		{"POST", "/api/v1/captures/x/stop", nil, fleet.RoleOperator},
		{"DELETE", "/api/v1/captures/x", nil, fleet.RoleOperator},
		{"GET", "/api/v1/sims/find?ref=x", nil, fleet.RoleViewer},
		{"GET", "/api/v1/sims/x", nil, fleet.RoleViewer},
		{"GET", "/api/v1/sims/x/wireguard-config", nil, fleet.RoleViewer},
		{"GET", "/api/v1/groups/x", nil, fleet.RoleViewer},
		{"GET", "/api/v1/authkeys/x", nil, fleet.RoleViewer},
		{"POST", "/api/v1/sims", map[string]any{"generateKey": true}, fleet.RoleOperator},
		{"POST", "/api/v1/sims/x/suspend", nil, fleet.RoleOperator},
		{"POST", "/api/v1/sims/x/resume", nil, fleet.RoleOperator},
		{"POST", "/api/v1/sims/x/terminate", nil, fleet.RoleOperator},
		{"PATCH", "/api/v1/sims/x", map[string]any{"name": "n"}, fleet.RoleOperator},
		{"PUT", "/api/v1/sims/x/group", map[string]any{"groupId": ""}, fleet.RoleOperator},
		{"PUT", "/api/v1/sims/x/tags", map[string]any{"tags": map[string]string{}}, fleet.RoleOperator},
		{"PUT", "/api/v1/sims/x/key", map[string]any{"generateKey": true}, fleet.RoleOperator},
		{"POST", "/api/v1/sims/x/require-rotation", map[string]any{"within": "24h"}, fleet.RoleOperator},
		{"POST", "/api/v1/sims/x/wireguard-config", map[string]any{"generateKey": true}, fleet.RoleOperator},
		{"POST", "/api/v1/groups", map[string]any{"name": "g"}, fleet.RoleOperator},
		{"PATCH", "/api/v1/groups/x", map[string]any{"name": "g"}, fleet.RoleOperator},
		{"DELETE", "/api/v1/groups/x", nil, fleet.RoleOperator},
		{"POST", "/api/v1/authkeys", map[string]any{}, fleet.RoleOperator},
		{"DELETE", "/api/v1/authkeys/x", nil, fleet.RoleOperator},
		{"GET", "/api/v1/tokens", nil, fleet.RoleAdmin},
		{"POST", "/api/v1/tokens", map[string]any{"role": "viewer"}, fleet.RoleAdmin},
		{"DELETE", "/api/v1/tokens/x", nil, fleet.RoleAdmin},
		{"GET", "/api/v1/events", nil, fleet.RoleViewer},
		{"GET", "/api/v1/alerts", nil, fleet.RoleViewer},
		{"POST", "/api/v1/alerts/x/acknowledge", nil, fleet.RoleOperator},
		{"GET", "/api/v1/audit", nil, fleet.RoleViewer},
		{"GET", "/api/v1/groups", nil, fleet.RoleViewer},
		{"GET", "/api/v1/authkeys", nil, fleet.RoleViewer},
		{"GET", "/api/v1/identity-batches", nil, fleet.RoleViewer},
		{"GET", "/api/v1/identity-batches/x", nil, fleet.RoleViewer},
		{"GET", "/api/v1/identities", nil, fleet.RoleViewer},
		{"GET", "/api/v1/identities/x", nil, fleet.RoleViewer},
		{"POST", "/api/v1/identity-batches", map[string]any{"name": "lot"}, fleet.RoleOperator},
		{"POST", "/api/v1/identity-batches/x/identities", map[string]any{"publicKeys": []string{}}, fleet.RoleOperator},
		{"DELETE", "/api/v1/identity-batches/x", nil, fleet.RoleOperator},
		{"DELETE", "/api/v1/identities/x", nil, fleet.RoleOperator},
		{"GET", "/api/v1/mappings", nil, fleet.RoleViewer},
		{"GET", "/api/v1/mappings/x", nil, fleet.RoleViewer},
		{"POST", "/api/v1/mappings", map[string]any{"simId": "x", "port": 22, "allowedSources": []string{"192.0.2.1/32"}}, fleet.RoleOperator},
		{"DELETE", "/api/v1/mappings/x", nil, fleet.RoleOperator},
		{"GET", "/api/v1/sims/x/data", nil, fleet.RoleViewer},
		{"GET", "/api/v1/groups/x/data", nil, fleet.RoleViewer},
		{"GET", "/api/v1/routes", nil, fleet.RoleViewer},
		{"PUT", "/api/v1/routes", map[string]any{"x": "192.168.1.0/24"}, fleet.RoleOperator},
		{"GET", "/api/v1/sims/x/routes", nil, fleet.RoleViewer},
		{"POST", "/api/v1/sims/x/routes", map[string]any{"prefix": "192.168.1.0/24"}, fleet.RoleOperator},
		{"POST", "/api/v1/sims/x/routes/approve", map[string]any{"prefix": "192.168.1.0/24"}, fleet.RoleOperator},
		{"DELETE", "/api/v1/sims/x/routes?prefix=192.168.1.0/24", nil, fleet.RoleOperator},
		{"PUT", "/api/v1/sims/x/routes/hosts", map[string]any{"prefix": "192.168.1.0/24", "hosts": map[string]string{}}, fleet.RoleOperator},
		{"GET", "/api/v1/gate-peers", nil, fleet.RoleViewer},
		{"GET", "/api/v1/gate-peers/x", nil, fleet.RoleViewer},
		{"POST", "/api/v1/gate-peers", map[string]any{"outerAddress": "192.0.2.10", "vni": 10}, fleet.RoleOperator},
		{"DELETE", "/api/v1/gate-peers/x", nil, fleet.RoleOperator},
		{"GET", "/api/v1/sim-cards", nil, fleet.RoleViewer},
		{"GET", "/api/v1/sim-cards/x", nil, fleet.RoleViewer},
		{"POST", "/api/v1/sim-cards/import", nil, fleet.RoleAdmin},
		{"PATCH", "/api/v1/sim-cards/x", map[string]any{"status": "suspended"}, fleet.RoleOperator},
		{"DELETE", "/api/v1/sim-cards/x", nil, fleet.RoleAdmin},
		{"GET", "/api/v1/nodes", nil, fleet.RoleViewer},
		{"DELETE", "/api/v1/nodes/x", nil, fleet.RoleAdmin},
	}
	below := map[fleet.Role][]fleet.Role{fleet.RoleViewer: nil, fleet.RoleOperator: {fleet.RoleViewer}, fleet.RoleAdmin: {fleet.RoleViewer, fleet.RoleOperator}}
	for _, c := range cases {
		for _, r := range below[c.min] {
			e.wantError(c.method, c.path, r, c.body, 403, fleet.CodeForbidden, "")
		}
		e.wantError(c.method, c.path, "", c.body, 401, fleet.CodeUnauthorized, "")
		req, _ := http.NewRequest(c.method, e.srv.URL+c.path, nil)
		req.Header.Set("Authorization", "Bearer wft_not-a-real-token")
		resp, err := e.srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 401 {
			t.Fatalf("%s %s with unknown token: %d", c.method, c.path, resp.StatusCode)
		}
		// The minimum role passes the check (it may then fail on the
		// made-up id, but not with 401/403).
		if code, b := e.do(c.method, c.path, c.min, c.body); code == 401 || code == 403 {
			t.Fatalf("%s %s as %s: %d %s", c.method, c.path, c.min, code, b)
		}
	}
	// Every protected operation of the OpenAPI document has a case above.
	var doc struct {
		Paths map[string]map[string]struct {
			Security *[]any `json:"security"`
		}
	}
	e.must("GET", "/api/v1/openapi.json", "", nil, 200, &doc)
	covered := map[string]bool{}
	for _, c := range cases {
		covered[c.method+" "+strings.SplitN(c.path, "?", 2)[0]] = true
	}
	for path, ops := range doc.Paths {
		for method, op := range ops {
			if op.Security != nil && len(*op.Security) == 0 {
				continue // public: bootstrap
			}
			key := strings.ToUpper(method) + " " + strings.ReplaceAll(path, "{id}", "x")
			if !covered[key] {
				t.Errorf("no role-denial case for %s", key)
			}
		}
	}

	// The scheme is case-insensitive; other schemes are refused.
	for auth, want := range map[string]int{"bearer " + e.tokens[fleet.RoleViewer]: 200, "BEARER " + e.tokens[fleet.RoleViewer]: 200, "Basic " + e.tokens[fleet.RoleViewer]: 401, e.tokens[fleet.RoleViewer]: 401} {
		req, _ := http.NewRequest("GET", e.srv.URL+"/api/v1/sims", nil)
		req.Header.Set("Authorization", auth)
		resp, err := e.srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Fatalf("Authorization %.12q…: %d, want %d", auth, resp.StatusCode, want)
		}
	}
	// A deleted token stops working at once.
	var tok struct {
		Item   fleet.Token
		Secret string
	}
	e.must("POST", "/api/v1/tokens", fleet.RoleAdmin, map[string]any{"role": "viewer"}, 201, &tok)
	e.tokens["tmp"] = tok.Secret
	e.must("GET", "/api/v1/sims", "tmp", nil, 200, nil)
	e.must("DELETE", "/api/v1/tokens/"+tok.Item.ID, fleet.RoleAdmin, nil, 204, nil)
	e.wantError("GET", "/api/v1/sims", "tmp", nil, 401, fleet.CodeUnauthorized, "")

	// The last admin token cannot be deleted; with a second one it can.
	var tokens struct{ Items []fleet.Token }
	e.must("GET", "/api/v1/tokens", fleet.RoleAdmin, nil, 200, &tokens)
	var adminID string
	for _, tk := range tokens.Items {
		if tk.Role == fleet.RoleAdmin {
			adminID = tk.ID
		}
	}
	e.wantError("DELETE", "/api/v1/tokens/"+adminID, fleet.RoleAdmin, nil, 409, fleet.CodeBadState, "id")
	e.must("POST", "/api/v1/tokens", fleet.RoleAdmin, map[string]any{"role": "admin"}, 201, nil)
	e.must("DELETE", "/api/v1/tokens/"+adminID, fleet.RoleAdmin, nil, 204, nil)
	e.wantError("GET", "/api/v1/sims", fleet.RoleAdmin, nil, 401, fleet.CodeUnauthorized, "")
}

func TestBadInput(t *testing.T) {
	e := newEnv(t)
	var g fleet.Group
	e.must("POST", "/api/v1/groups", fleet.RoleOperator, map[string]any{"name": "base"}, 201, &g)
	var sim fleet.SIM
	e.must("POST", "/api/v1/sims", fleet.RoleOperator, map[string]any{"name": "orig", "publicKey": pubKey(t)}, 201, &sim)
	op := fleet.RoleOperator
	cases := []struct {
		name, method, path string
		body               any
		status             int
		code, field        string
	}{
		{"malformed", "POST", "/api/v1/groups", `{"name": "x"`, 400, fleet.CodeBadJSON, ""},
		{"not an object", "POST", "/api/v1/groups", `[1,2]`, 400, fleet.CodeBadJSON, ""},
		{"empty", "POST", "/api/v1/groups", ``, 400, fleet.CodeBadJSON, ""},
		{"trailing", "POST", "/api/v1/groups", `{"name":"a"} {"name":"b"}`, 400, fleet.CodeBadJSON, ""},
		{"trailing brace", "POST", "/api/v1/groups", `{"name":"a"}}`, 400, fleet.CodeBadJSON, ""},
		// A JSON null decoded as {} before (issue 14, item 10): an
		// operation with every field at its default.
		{"null", "PATCH", "/api/v1/groups/x", `null`, 400, fleet.CodeBadJSON, ""},
		{"null bootstrap", "POST", "/api/v1/bootstrap", `null`, 400, fleet.CodeBadJSON, ""},
		{"wrong type", "POST", "/api/v1/groups", `{"name": 5}`, 400, fleet.CodeInvalid, "name"},
		{"wrong nested type", "POST", "/api/v1/groups", `{"name": "a", "settings": {"routes": "10.0.0.0/8"}}`, 400, fleet.CodeInvalid, "settings.routes"},
		{"unknown field", "POST", "/api/v1/groups", `{"name": "a", "bogus": 1}`, 400, fleet.CodeUnknownField, "bogus"},
		{"unknown nested field", "POST", "/api/v1/groups", `{"name": "a", "settings": {"rutes": []}}`, 400, fleet.CodeUnknownField, "rutes"},
		{"oversized", "POST", "/api/v1/groups", `{"name": "a", "settings": {"userData": "` + strings.Repeat("x", api.MaxBody) + `"}}`, 400, fleet.CodeTooLarge, ""},
		{"user data too big", "POST", "/api/v1/groups", map[string]any{"name": "a", "settings": map[string]any{"userData": strings.Repeat("x", fleet.MaxUserData+1)}}, 400, fleet.CodeInvalid, "settings.userData"},
		{"bad CIDR", "POST", "/api/v1/groups", map[string]any{"name": "a", "settings": map[string]any{"routes": []string{"10.0.0.0/8", "300.1.0.0/16"}}}, 400, fleet.CodeInvalid, "settings.routes[1]"},
		{"host bits", "POST", "/api/v1/groups", map[string]any{"name": "a", "settings": map[string]any{"routes": []string{"10.0.0.1/8"}}}, 400, fleet.CodeInvalid, "settings.routes[0]"},
		{"bad d2d mode", "POST", "/api/v1/groups", map[string]any{"name": "a", "settings": map[string]any{"deviceToDevice": map[string]any{"mode": "all"}}}, 400, fleet.CodeInvalid, "settings.deviceToDevice.mode"},
		{"bad port", "POST", "/api/v1/groups", map[string]any{"name": "a", "settings": map[string]any{"deviceToDevice": map[string]any{"mode": "group", "ports": []int{70000}}}}, 400, fleet.CodeInvalid, "settings.deviceToDevice.ports"},
		{"bad group name", "POST", "/api/v1/groups", map[string]any{"name": "a b"}, 400, fleet.CodeInvalid, "name"},
		{"duplicate group", "POST", "/api/v1/groups", map[string]any{"name": "base"}, 409, fleet.CodeConflict, "name"},
		{"bad key", "POST", "/api/v1/sims", map[string]any{"publicKey": "abc"}, 400, fleet.CodeInvalid, "publicKey"},
		{"key and generate", "POST", "/api/v1/sims", map[string]any{"publicKey": pubKey(t), "generateKey": true}, 400, fleet.CodeInvalid, "generateKey"},
		{"bad address", "POST", "/api/v1/sims", map[string]any{"address": "10.128.0.999"}, 400, fleet.CodeInvalid, "address"},
		{"address outside pool", "POST", "/api/v1/sims", map[string]any{"address": "192.168.0.10"}, 400, fleet.CodeInvalid, "address"},
		{"taken address", "POST", "/api/v1/sims", map[string]any{"address": sim.Address.String()}, 409, fleet.CodeConflict, "address"},
		{"taken key", "POST", "/api/v1/sims", map[string]any{"publicKey": sim.PublicKey.String()}, 409, fleet.CodeConflict, "publicKey"},
		{"unknown group", "POST", "/api/v1/sims", map[string]any{"groupId": "grp_nope"}, 404, fleet.CodeNotFound, "groupId"},
		{"bad tag key", "PUT", "/api/v1/sims/" + sim.ID + "/tags", map[string]any{"tags": map[string]string{"bad key": "v"}}, 400, fleet.CodeInvalid, "tags.bad key"},
		{"patch half-bad", "PATCH", "/api/v1/sims/" + sim.ID, map[string]any{"name": "changed", "groupId": "grp_nope"}, 404, fleet.CodeNotFound, "groupId"},
		{"unknown SIM", "GET", "/api/v1/sims/sim_nope", nil, 404, fleet.CodeNotFound, "id"},
		{"bad status filter", "GET", "/api/v1/sims?status=gone", nil, 400, fleet.CodeInvalid, "status"},
		{"bad tag filter", "GET", "/api/v1/sims?tag=novalue", nil, 400, fleet.CodeInvalid, "tag"},
		{"bad limit", "GET", "/api/v1/sims?limit=abc", nil, 400, fleet.CodeInvalid, "limit"},
		{"big limit", "GET", "/api/v1/sims?limit=100000", nil, 400, fleet.CodeInvalid, "limit"},
		{"bad since", "GET", "/api/v1/events?since=yesterday", nil, 400, fleet.CodeInvalid, "since"},
		{"bad event cursor", "GET", "/api/v1/events?cursor=zz", nil, 400, fleet.CodeInvalid, "cursor"},
		{"bad role", "POST", "/api/v1/tokens", map[string]any{"role": "root"}, 400, fleet.CodeInvalid, "role"},
		{"bad ttl", "POST", "/api/v1/authkeys", map[string]any{"ttlSeconds": -1}, 400, fleet.CodeInvalid, "ttlSeconds"},
		{"negative uses", "POST", "/api/v1/authkeys", map[string]any{"maxUses": -1}, 400, fleet.CodeInvalid, "maxUses"},
		{"bootstrap bad key", "POST", "/api/v1/bootstrap", map[string]any{"authKey": "wfak_x", "publicKey": "!!"}, 400, fleet.CodeInvalid, "publicKey"},
		{"bootstrap unknown field", "POST", "/api/v1/bootstrap", map[string]any{"authKey": "wfak_x", "privateKey": "x"}, 400, fleet.CodeUnknownField, "privateKey"},
		{"unknown route", "GET", "/api/v1/nope", nil, 404, fleet.CodeNotFound, ""},
		{"wrong method", "DELETE", "/api/v1/sims", nil, 405, fleet.CodeMethodNotAllowed, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e.t = t
			role := op
			if c.path == "/api/v1/tokens" {
				role = fleet.RoleAdmin
			}
			e.wantError(c.method, c.path, role, c.body, c.status, c.code, c.field)
		})
	}
	e.t = t
	// Nothing half-written: only the first group exists, the SIM kept its name.
	var groups struct{ Items []fleet.Group }
	e.must("GET", "/api/v1/groups", fleet.RoleViewer, nil, 200, &groups)
	if len(groups.Items) != 1 {
		t.Fatalf("%d groups after rejected creates, want 1", len(groups.Items))
	}
	e.must("GET", "/api/v1/sims/"+sim.ID, fleet.RoleViewer, nil, 200, &sim)
	if sim.Name != "orig" {
		t.Fatalf("rejected PATCH changed the name to %q", sim.Name)
	}
	var sims struct{ Items []fleet.SIM }
	e.must("GET", "/api/v1/sims", fleet.RoleViewer, nil, 200, &sims)
	if len(sims.Items) != 1 {
		t.Fatalf("%d SIMs after rejected creates, want 1", len(sims.Items))
	}
}

func TestOpenAPIDocument(t *testing.T) {
	e := newEnv(t)
	var doc struct {
		OpenAPI string
		Paths   map[string]map[string]any
	}
	e.must("GET", "/api/v1/openapi.json", "", nil, 200, &doc)
	if !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Fatalf("openapi %q", doc.OpenAPI)
	}
	for path, methods := range map[string][]string{"/api/v1/sims": {"get", "post"}, "/api/v1/sims/{id}/wireguard-config": {"get", "post"}, "/api/v1/bootstrap": {"post"}, "/api/v1/tokens/{id}": {"delete"}} {
		for _, m := range methods {
			if doc.Paths[path][m] == nil {
				t.Errorf("document lacks %s %s", m, path)
			}
		}
	}
}

// TestJSONShapes checks absent keys are omitted, not sent as "".
func TestJSONShapes(t *testing.T) {
	e := newEnv(t)
	b := e.must("POST", "/api/v1/sims", fleet.RoleOperator, map[string]any{"publicKey": pubKey(t)}, 201, nil)
	for _, absent := range []string{`"privateKey"`, `"nextPublicKey"`} {
		if strings.Contains(string(b), absent) {
			t.Fatalf("%s present in %s", absent, b)
		}
	}
	b = e.must("POST", "/api/v1/sims", fleet.RoleOperator, map[string]any{"generateKey": true}, 201, nil)
	if !strings.Contains(string(b), `"privateKey"`) {
		t.Fatalf("generated private key missing: %s", b)
	}
}

// TestResponsesMatchOpenAPI checks real responses against the served
// document: every field a response has is declared by its schema, and
// every required field is present.
func TestResponsesMatchOpenAPI(t *testing.T) {
	e := newEnv(t)
	var doc struct {
		Components struct{ Schemas map[string]any }
	}
	e.must("GET", "/api/v1/openapi.json", "", nil, 200, &doc)
	var check func(path string, schema map[string]any, v any)
	check = func(path string, schema map[string]any, v any) {
		if ref, ok := schema["$ref"].(string); ok {
			name := strings.TrimPrefix(ref, "#/components/schemas/")
			s, ok := doc.Components.Schemas[name].(map[string]any)
			if !ok {
				t.Fatalf("%s: dangling %s", path, ref)
			}
			check(path, s, v)
			return
		}
		switch schema["type"] {
		case "object":
			obj, ok := v.(map[string]any)
			if !ok {
				t.Fatalf("%s: got %T, want object", path, v)
			}
			props, _ := schema["properties"].(map[string]any)
			for k, fv := range obj {
				if props == nil {
					if ap, ok := schema["additionalProperties"].(map[string]any); ok {
						check(path+"."+k, ap, fv)
					}
					continue
				}
				ps, ok := props[k].(map[string]any)
				if !ok {
					t.Errorf("%s.%s: not declared in the document", path, k)
					continue
				}
				check(path+"."+k, ps, fv)
			}
			req, _ := schema["required"].([]any)
			for _, r := range req {
				if _, ok := obj[r.(string)]; !ok {
					t.Errorf("%s: required %s missing", path, r)
				}
			}
		case "array":
			items, _ := schema["items"].(map[string]any)
			for i, x := range v.([]any) {
				check(fmt.Sprintf("%s[%d]", path, i), items, x)
			}
		}
	}
	get := func(method, path string, role fleet.Role, body any, code int, schema string) any {
		var v any
		e.must(method, path, role, body, code, &v)
		check(method+" "+path, map[string]any{"$ref": "#/components/schemas/" + schema}, v)
		return v
	}
	g := get("POST", "/api/v1/groups", fleet.RoleOperator, map[string]any{"name": "g", "settings": map[string]any{"routes": []string{"10.1.0.0/16"}, "deviceToDevice": map[string]any{"mode": "groups", "groups": []string{"x"}, "ports": []int{22}}, "userData": "u"}}, 201, "Group")
	gid := g.(map[string]any)["id"].(string)
	ak := get("POST", "/api/v1/authkeys", fleet.RoleOperator, map[string]any{"groupId": gid, "tags": map[string]string{"a": "b"}}, 201, "AuthKeySecret")
	get("POST", "/api/v1/tokens", fleet.RoleAdmin, map[string]any{"role": "viewer", "description": "d"}, 201, "TokenSecret")
	bs := get("POST", "/api/v1/bootstrap", "", map[string]any{"authKey": ak.(map[string]any)["secret"], "generateKey": true}, 200, "BootstrapResponse")
	simID := bs.(map[string]any)["sim"].(map[string]any)["id"].(string)
	// A device re-bootstraps with its own key: the challenge, then a proof
	// (without it, 403 key_proof_required).
	devPriv, _ := wgkey.NewPrivate()
	ak2 := get("POST", "/api/v1/authkeys", fleet.RoleOperator, map[string]any{"groupId": gid, "maxUses": 5}, 201, "AuthKeySecret")
	first := map[string]any{"authKey": ak2.(map[string]any)["secret"], "publicKey": devPriv.Public().String()}
	get("POST", "/api/v1/bootstrap", "", first, 200, "BootstrapResponse")
	e.wantError("POST", "/api/v1/bootstrap", "", first, 403, fleet.CodeKeyProof, "keyProof")
	kc := get("POST", "/api/v1/key-proof/challenge", "", nil, 201, "KeyChallenge").(map[string]any)
	nonce, _ := base64.StdEncoding.DecodeString(kc["nonce"].(string))
	server, _ := wgkey.ParsePublic(kc["serverKey"].(string))
	proof, err := keyproof.Answer(context.Background(), keystore.NewMemory(devPriv), keyproof.Statement{Purpose: keyproof.Bootstrap, Nonce: nonce, ServerKey: server})
	if err != nil {
		t.Fatal(err)
	}
	first["keyProof"] = map[string]any{"nonce": kc["nonce"], "proof": base64.StdEncoding.EncodeToString(proof)}
	get("POST", "/api/v1/bootstrap", "", first, 200, "BootstrapResponse")
	e.wantError("POST", "/api/v1/bootstrap", "", first, 403, fleet.CodeKeyProof, "keyProof") // spent
	get("PUT", "/api/v1/sims/"+simID+"/key", fleet.RoleOperator, map[string]any{"publicKey": pubKey(t), "next": true}, 200, "SIMWithKey")
	get("POST", "/api/v1/sims", fleet.RoleOperator, map[string]any{"generateKey": true, "tags": map[string]string{"x": "y"}}, 201, "SIMWithKey")
	get("GET", "/api/v1/sims", fleet.RoleViewer, nil, 200, "SIMPage")
	get("GET", "/api/v1/groups", fleet.RoleViewer, nil, 200, "GroupPage")
	get("GET", "/api/v1/authkeys", fleet.RoleViewer, nil, 200, "AuthKeyPage")
	get("GET", "/api/v1/tokens", fleet.RoleAdmin, nil, 200, "TokenPage")
	get("GET", "/api/v1/events?limit=2", fleet.RoleViewer, nil, 200, "EventPage")
	get("GET", "/api/v1/sims/nope", fleet.RoleViewer, nil, 404, "Error")
	// Attestation bootstrap and identities (helpers in identities_test.go).
	dev := newIdentity(t)
	batch := get("POST", "/api/v1/identity-batches", fleet.RoleOperator, map[string]any{"name": "lot", "groupId": gid, "tags": map[string]string{"a": "b"}, "publicKeys": []string{dev.id.PEM()}}, 201, "IdentityBatch")
	bid := batch.(map[string]any)["id"].(string)
	get("POST", "/api/v1/identity-batches/"+bid+"/identities", fleet.RoleOperator, map[string]any{"publicKeys": []string{newIdentity(t).id.String()}}, 201, "IdentityBatch")
	ch := get("POST", "/api/v1/attest/challenge", "", nil, 201, "AttestChallenge")
	get("POST", "/api/v1/attest/bootstrap", "", dev.answer(t, ch.(map[string]any)["nonce"].(string), pubKey(t)), 200, "BootstrapResponse")
	get("GET", "/api/v1/identity-batches", fleet.RoleViewer, nil, 200, "IdentityBatchPage")
	get("GET", "/api/v1/identity-batches/"+bid, fleet.RoleViewer, nil, 200, "IdentityBatch")
	get("GET", "/api/v1/identities?status=used", fleet.RoleViewer, nil, 200, "IdentityPage")
	get("GET", "/api/v1/identities/"+dev.id.Fingerprint(), fleet.RoleViewer, nil, 200, "Identity")
}

// A group's webhook secret is write-only: never in an answer, kept when
// settings read from the API are written back.
func TestWebhookSecretWriteOnly(t *testing.T) {
	e := newEnv(t)
	const secret = "very-secret-webhook-key"
	settings := map[string]any{"security": map[string]any{"action": "alert", "webhookUrl": "https://hooks.example.test/in", "webhookSecret": secret}}
	var raw json.RawMessage
	e.must("POST", "/api/v1/groups", fleet.RoleOperator, map[string]any{"name": "watched", "settings": settings}, 201, &raw)
	if strings.Contains(string(raw), secret) {
		t.Fatalf("create answer holds the secret: %s", raw)
	}
	var g fleet.Group
	json.Unmarshal(raw, &g)
	if !g.Settings.Security.WebhookSecretSet {
		t.Fatalf("answer does not say a secret is set: %s", raw)
	}
	e.must("GET", "/api/v1/groups/"+g.ID, fleet.RoleViewer, nil, 200, &raw)
	if strings.Contains(string(raw), secret) {
		t.Fatalf("GET answer holds the secret: %s", raw)
	}
	// Write back what GET gave (no secret): the stored secret stays.
	json.Unmarshal(raw, &g)
	e.must("PATCH", "/api/v1/groups/"+g.ID, fleet.RoleOperator, map[string]any{"settings": g.Settings}, 200, &raw)
	// At rest it is sealed (issue 14, item 6: it was stored in clear):
	// a database dump does not reveal it, the settings key opens it.
	stored, err := e.svc.View().Group(context.Background(), g.ID)
	if err != nil {
		t.Fatal(err)
	}
	at := stored.Settings.Security.WebhookSecret
	if opened, oerr := e.secrets.Open(at); strings.Contains(at, secret) || oerr != nil || opened != secret {
		t.Fatalf("stored secret after a write-back: %q (opens to %q, %v)", at, opened, oerr)
	}
	// A webhook without a secret is refused.
	e.wantError("POST", "/api/v1/groups", fleet.RoleOperator, map[string]any{"name": "nosecret", "settings": map[string]any{"security": map[string]any{"webhookUrl": "https://x.test/"}}}, 400, fleet.CodeInvalid, "settings.security.webhookSecret")
}
