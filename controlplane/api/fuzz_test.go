// SPDX-License-Identifier: Apache-2.0

package api_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wirefleet/wirefleet/controlplane"
	"github.com/wirefleet/wirefleet/controlplane/api"
	"github.com/wirefleet/wirefleet/controlplane/store/sqlitestore"
	"github.com/wirefleet/wirefleet/fleet"
)

// FuzzAPIHandlers drives every route that reads a body with arbitrary
// bodies, as an admin: decode → handler → answer. Whatever the body, the
// answer is JSON, never a 5xx, and an error names its code.
func FuzzAPIHandlers(f *testing.F) {
	ctx := context.Background()
	st, err := sqlitestore.Open(ctx, filepath.Join(f.TempDir(), "fleet.db"))
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { st.Close() })
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	svc := controlplane.New(st, controlplane.Config{Endpoint: "127.0.0.1:51820", Logger: log})
	h := api.New(svc, api.Config{Logger: log})
	admin, _, err := svc.EnsureAdminToken(ctx)
	if err != nil {
		f.Fatal(err)
	}
	g, err := svc.CreateGroup(ctx, controlplane.System, "g", fleet.GroupSettings{})
	if err != nil {
		f.Fatal(err)
	}
	sim, _, err := svc.CreateSIM(ctx, controlplane.System, controlplane.SIMSpec{GroupID: g.ID, GenerateKey: true})
	if err != nil {
		f.Fatal(err)
	}
	routes := []struct{ method, path string }{
		{"POST", "/api/v1/bootstrap"}, {"POST", "/api/v1/attest/bootstrap"}, {"POST", "/api/v1/key-proof/challenge"},
		{"POST", "/api/v1/identity-batches"}, {"POST", "/api/v1/mappings"},
		{"POST", "/api/v1/sims"}, {"PATCH", "/api/v1/sims/" + sim.ID}, {"PUT", "/api/v1/sims/" + sim.ID + "/group"},
		{"PUT", "/api/v1/sims/" + sim.ID + "/tags"}, {"PUT", "/api/v1/sims/" + sim.ID + "/key"},
		{"POST", "/api/v1/sims/" + sim.ID + "/require-rotation"}, {"POST", "/api/v1/sims/" + sim.ID + "/wireguard-config"},
		{"POST", "/api/v1/groups"}, {"PATCH", "/api/v1/groups/" + g.ID}, {"POST", "/api/v1/authkeys"}, {"POST", "/api/v1/tokens"},
	}
	for _, seed := range []string{``, `{}`, `null`, `[]`, `{"name":"x\u001b]0;t\u0007"}`, `{"publicKey":"AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}`,
		`{"settings":{"routes":["10.0.0.0/8"],"deviceToDevice":{"mode":"groups","groups":[]}}}`, `{"tags":{"a":"b"}} }`,
		`{"keyProof":{"nonce":"","proof":"!"}}`, `{"within":-1}`, `{"name":"a","settings":{"userData":1}}`} {
		for i := range routes {
			f.Add(uint8(i), seed)
		}
	}
	f.Fuzz(func(t *testing.T, route uint8, body string) {
		r := routes[int(route)%len(routes)]
		req := httptest.NewRequest(r.method, r.path, strings.NewReader(body))
		req.RemoteAddr = "127.0.0.1:1"
		req.Header.Set("Authorization", "Bearer "+admin)
		req.Header.Set("Content-Type", "application/json")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code >= 500 {
			t.Fatalf("%s %s %q: %d %s", r.method, r.path, body, w.Code, w.Body)
		}
		if w.Code == http.StatusNoContent {
			return
		}
		var out any
		if err := json.Unmarshal(w.Body.Bytes(), &out); err != nil {
			if strings.HasPrefix(w.Header().Get("Content-Type"), "text/plain") && w.Code < 300 {
				return // the wg-quick file
			}
			t.Fatalf("%s %s %q: %d, not JSON: %q", r.method, r.path, body, w.Code, w.Body)
		}
		if m, ok := out.(map[string]any); w.Code >= 400 && w.Code != http.StatusTooManyRequests && (!ok || m["code"] == nil) {
			t.Fatalf("%s %s %q: %d without a code: %s", r.method, r.path, body, w.Code, w.Body)
		}
	})
}
