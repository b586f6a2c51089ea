// SPDX-License-Identifier: Apache-2.0

package arcapi_test

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
	"github.com/wirefleet/wirefleet/controlplane/arcapi"
	"github.com/wirefleet/wirefleet/controlplane/store/sqlitestore"
)

// FuzzArcHandlers drives every Arc route with arbitrary bodies, with and
// without a valid session: decode → handler → answer. Whatever the body,
// the answer is a JSON object, never a 5xx; errors carry a code.
func FuzzArcHandlers(f *testing.F) {
	ctx := context.Background()
	st, err := sqlitestore.Open(ctx, filepath.Join(f.TempDir(), "fleet.db"))
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { st.Close() })
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	svc := controlplane.New(st, controlplane.Config{Endpoint: "127.0.0.1:51820", Logger: log})
	h := arcapi.New(svc, arcapi.Config{Logger: log, TokenSecret: testSecret})
	k, secret, err := svc.CreateAuthKey(ctx, controlplane.System, controlplane.AuthKeySpec{})
	if err != nil {
		f.Fatal(err)
	}
	serve := func(method, path, body string, hdr map[string]string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(method, path, strings.NewReader(body))
		req.RemoteAddr = "127.0.0.1:1" // one source: the rate limit is part of what is served
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		return w
	}
	b, _ := json.Marshal(map[string]any{"authKeyId": arcapi.KeyIDPrefix + k.ID, "authKey": arcapi.SecretPrefix + secret})
	var auth struct{ APIKey, Token string }
	if w := serve("POST", "/v1/auth", string(b), nil); w.Code != 200 || json.Unmarshal(w.Body.Bytes(), &auth) != nil {
		f.Fatalf("auth: %d %s", w.Code, w.Body)
	}
	w := serve("POST", "/v1/sims", `{}`, map[string]string{"X-Soracom-API-Key": auth.APIKey, "X-Soracom-Token": auth.Token})
	var vs struct{ SimID string }
	if w.Code != 201 || json.Unmarshal(w.Body.Bytes(), &vs) != nil {
		f.Fatalf("create: %d %s", w.Code, w.Body)
	}
	routes := []struct{ method, path string }{
		{"POST", "/v1/auth"}, {"POST", "/v1/sims"}, {"GET", "/v1/sims/" + vs.SimID},
		{"POST", "/v1/sims/" + vs.SimID + "/sessions/arc"}, {"PUT", "/v1/sims/" + vs.SimID + "/credentials/arc"},
		{"POST", "/v1/provisioning/soracom/arc/bootstrap"}, {"POST", "/v1/nope"},
	}
	for _, seed := range []string{``, `{}`, `null`, `[]`, `{"arcClientPeerPublicKey":"AAAA"}`, `{"keyProof":{"nonce":"AA==","proof":"AA=="}}`,
		`{"authKeyId":"keyId-x","authKey":"secret-y","tokenTimeoutSeconds":1e99}`, `{"type":"virtual"} x`, `{"a":` + strings.Repeat(`[`, 1000)} {
		for i := range routes {
			f.Add(uint8(i), true, seed)
			f.Add(uint8(i), false, seed)
		}
	}
	f.Fuzz(func(t *testing.T, route uint8, authed bool, body string) {
		r := routes[int(route)%len(routes)]
		hdr := map[string]string{"Content-Type": "application/json"}
		if authed {
			hdr["X-Soracom-API-Key"], hdr["X-Soracom-Token"] = auth.APIKey, auth.Token
		}
		w := serve(r.method, r.path, body, hdr)
		if w.Code >= 500 {
			t.Fatalf("%s %s %q: %d %s", r.method, r.path, body, w.Code, w.Body)
		}
		var out map[string]any
		if err := json.Unmarshal(w.Body.Bytes(), &out); err != nil {
			t.Fatalf("%s %s %q: %d, not a JSON object: %q", r.method, r.path, body, w.Code, w.Body)
		}
		if w.Code >= 400 && w.Code != http.StatusTooManyRequests && out["code"] == nil {
			t.Fatalf("%s %s %q: %d without a code: %s", r.method, r.path, body, w.Code, w.Body)
		}
	})
}
