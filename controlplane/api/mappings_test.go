// SPDX-License-Identifier: Apache-2.0

package api_test

import (
	"context"
	"log/slog"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/wirefleet/wirefleet/controlplane"
	"github.com/wirefleet/wirefleet/controlplane/api"
	"github.com/wirefleet/wirefleet/controlplane/store/sqlitestore"
	"github.com/wirefleet/wirefleet/fleet"
)

// newRemoteEnv is newEnv with remote access on (ports 40000-40001, at most
// 2 h, 8 connections per mapping).
func newRemoteEnv(t *testing.T) *env {
	t.Helper()
	ctx := context.Background()
	st, err := sqlitestore.Open(ctx, filepath.Join(t.TempDir(), "fleet.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	logs := &logBuf{}
	log := slog.New(slog.NewJSONHandler(logs, nil))
	svc := controlplane.New(st, controlplane.Config{Logger: log, Remote: controlplane.RemotePolicy{Host: "remote.example", PortMin: 40000, PortMax: 40001,
		MaxDuration: 2 * time.Hour, MaxConnections: 8, TLSFingerprint: "AB:CD"}})
	srv := httptest.NewServer(api.New(svc, api.Config{Logger: log}))
	t.Cleanup(srv.Close)
	e := &env{t: t, srv: srv, svc: svc, logs: logs, tokens: map[fleet.Role]string{}}
	secret, _, err := svc.EnsureAdminToken(ctx)
	if err != nil {
		t.Fatal(err)
	}
	e.tokens[fleet.RoleAdmin] = secret
	for _, r := range []fleet.Role{fleet.RoleOperator, fleet.RoleViewer} {
		var out struct{ Secret string }
		e.must("POST", "/api/v1/tokens", fleet.RoleAdmin, map[string]any{"role": r}, 201, &out)
		e.tokens[r] = out.Secret
	}
	return e
}

type mappingAnswer struct {
	ID             string    `json:"id"`
	SIMID          string    `json:"simId"`
	Port           int       `json:"port"`
	Host           string    `json:"host"`
	PublicPort     int       `json:"publicPort"`
	AllowedSources []string  `json:"allowedSources"`
	TLS            bool      `json:"tls"`
	MaxConnections int       `json:"maxConnections"`
	Expires        time.Time `json:"expires"`
	CreatedBy      string    `json:"createdBy"`
	TLSFingerprint string    `json:"tlsFingerprint"`
}

// TestMappings: create (defaults, host and port in the answer, TLS
// fingerprint), list by SIM, get, delete, the audit trail, every bad input
// with its field, the port range running out, and remote access off.
func TestMappings(t *testing.T) {
	e := newRemoteEnv(t)
	var sim fleet.SIM
	e.must("POST", "/api/v1/sims", fleet.RoleOperator, map[string]any{"name": "cam", "generateKey": true}, 201, &sim)

	var m mappingAnswer
	e.must("POST", "/api/v1/mappings", fleet.RoleOperator, map[string]any{"simId": sim.ID, "port": 22, "allowedSources": []string{"192.0.2.7", "2001:db8::/48"}, "tls": true}, 201, &m)
	if m.Host != "remote.example" || (m.PublicPort != 40000 && m.PublicPort != 40001) || m.Port != 22 || m.MaxConnections != 8 || !m.TLS || m.TLSFingerprint != "AB:CD" {
		t.Fatalf("answer %+v", m)
	}
	if len(m.AllowedSources) != 2 || m.AllowedSources[0] != "192.0.2.7/32" || m.AllowedSources[1] != "2001:db8::/48" {
		t.Fatalf("sources %v", m.AllowedSources)
	}
	if d := time.Until(m.Expires); d < 59*time.Minute || d > time.Hour {
		t.Fatalf("default duration: expires in %s, want 1 h", d)
	}
	var got mappingAnswer
	e.must("GET", "/api/v1/mappings/"+m.ID, fleet.RoleViewer, nil, 200, &got)
	if got.ID != m.ID || got.PublicPort != m.PublicPort || got.CreatedBy == "" {
		t.Fatalf("get %+v", got)
	}
	var list struct{ Items []mappingAnswer }
	e.must("GET", "/api/v1/mappings?simId="+sim.ID, fleet.RoleViewer, nil, 200, &list)
	if len(list.Items) != 1 || list.Items[0].ID != m.ID {
		t.Fatalf("list %+v", list)
	}
	e.must("GET", "/api/v1/mappings?simId=sim_other", fleet.RoleViewer, nil, 200, &list)
	if len(list.Items) != 0 {
		t.Fatalf("list of another SIM %+v", list)
	}

	// Bad input, each with its field.
	base := func(kv ...any) map[string]any {
		b := map[string]any{"simId": sim.ID, "port": 22, "allowedSources": []string{"192.0.2.0/24"}}
		for i := 0; i < len(kv); i += 2 {
			b[kv[i].(string)] = kv[i+1]
		}
		return b
	}
	for _, c := range []struct {
		body        map[string]any
		status      int
		code, field string
	}{
		{base("allowedSources", nil), 400, fleet.CodeRequired, "allowedSources"},
		{base("allowedSources", []string{}), 400, fleet.CodeRequired, "allowedSources"},
		{base("allowedSources", []string{"nope"}), 400, fleet.CodeInvalid, "allowedSources"},
		{base("allowedSources", "192.0.2.0/24"), 400, fleet.CodeInvalid, "allowedSources"},
		{base("port", 0), 400, fleet.CodeInvalid, "port"},
		{base("port", 70000), 400, fleet.CodeInvalid, "port"},
		{base("durationSeconds", 2*3600+1), 400, fleet.CodeInvalid, "durationSeconds"},
		{base("durationSeconds", -1), 400, fleet.CodeInvalid, "durationSeconds"},
		{base("maxConnections", 9), 400, fleet.CodeInvalid, "maxConnections"},
		{base("simId", ""), 400, fleet.CodeRequired, "simId"},
		{base("simId", "sim_nope"), 404, fleet.CodeNotFound, "simId"},
		{base("bogus", 1), 400, fleet.CodeUnknownField, "bogus"},
	} {
		e.wantError("POST", "/api/v1/mappings", fleet.RoleOperator, c.body, c.status, c.code, c.field)
	}
	// A suspended SIM gets no mapping.
	var other fleet.SIM
	e.must("POST", "/api/v1/sims", fleet.RoleOperator, map[string]any{"generateKey": true}, 201, &other)
	e.must("POST", "/api/v1/sims/"+other.ID+"/suspend", fleet.RoleOperator, nil, 200, nil)
	e.wantError("POST", "/api/v1/mappings", fleet.RoleOperator, base("simId", other.ID), 409, fleet.CodeBadState, "simId")

	// The range has two ports: the third live mapping finds none.
	var m2 mappingAnswer
	e.must("POST", "/api/v1/mappings", fleet.RoleOperator, base("durationSeconds", 7200, "allowedSources", []string{"0.0.0.0/0"}), 201, &m2)
	if m2.PublicPort == m.PublicPort {
		t.Fatal("one public port given twice")
	}
	e.wantError("POST", "/api/v1/mappings", fleet.RoleOperator, base(), 409, fleet.CodeExhausted, "publicPort")
	e.must("DELETE", "/api/v1/mappings/"+m.ID, fleet.RoleOperator, nil, 204, nil)
	e.wantError("GET", "/api/v1/mappings/"+m.ID, fleet.RoleViewer, nil, 404, fleet.CodeNotFound, "id")
	e.wantError("DELETE", "/api/v1/mappings/"+m.ID, fleet.RoleOperator, nil, 404, fleet.CodeNotFound, "id")
	var m3 mappingAnswer
	e.must("POST", "/api/v1/mappings", fleet.RoleOperator, base(), 201, &m3)
	if m3.PublicPort != m.PublicPort {
		t.Fatalf("the freed port %d was not given again (got %d)", m.PublicPort, m3.PublicPort)
	}

	// The trail names who did what.
	var ev struct{ Items []fleet.Event }
	e.must("GET", "/api/v1/events?objectId="+m.ID, fleet.RoleViewer, nil, 200, &ev)
	if len(ev.Items) != 2 || ev.Items[0].Action != "mapping.delete" || ev.Items[1].Action != "mapping.create" || ev.Items[1].Details["simId"] != sim.ID {
		t.Fatalf("events %+v", ev.Items)
	}
}

// TestMappingsOff: without --remote-ports a mapping cannot be created.
func TestMappingsOff(t *testing.T) {
	e := newEnv(t)
	var sim fleet.SIM
	e.must("POST", "/api/v1/sims", fleet.RoleOperator, map[string]any{"generateKey": true}, 201, &sim)
	e.wantError("POST", "/api/v1/mappings", fleet.RoleOperator, map[string]any{"simId": sim.ID, "port": 22, "allowedSources": []string{"192.0.2.1"}}, 409, fleet.CodeBadState, "")
}
