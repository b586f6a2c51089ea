// SPDX-License-Identifier: Apache-2.0

package api_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/wirefleet/wirefleet/controlplane"
	"github.com/wirefleet/wirefleet/controlplane/api"
	"github.com/wirefleet/wirefleet/controlplane/store/sqlitestore"
	"github.com/wirefleet/wirefleet/fleet"
	"github.com/wirefleet/wirefleet/internal/ratelimit"
)

// TestBootstrapRateLimited: POST /api/v1/bootstrap answers 429 with
// Retry-After and a JSON error once a source spends its burst, whatever
// the auth key; behind a trusted proxy, per forwarded client. Operator
// routes (bearer token) are not limited by it.
func TestBootstrapRateLimited(t *testing.T) {
	ctx := context.Background()
	st, err := sqlitestore.Open(ctx, filepath.Join(t.TempDir(), "fleet.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	svc := controlplane.New(st, controlplane.Config{Endpoint: "127.0.0.1:51820", Logger: log})
	srv := httptest.NewServer(api.New(svc, api.Config{Logger: log, RateLimit: ratelimit.Config{PerSecond: 0.01, Burst: 3},
		TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}))
	t.Cleanup(srv.Close)
	admin, _, err := svc.EnsureAdminToken(ctx)
	if err != nil {
		t.Fatal(err)
	}
	post := func(xff string) *http.Response {
		req, _ := http.NewRequest("POST", srv.URL+"/api/v1/bootstrap", strings.NewReader(`{"authKey":"wrong","generateKey":true}`))
		req.Header.Set("X-Forwarded-For", xff)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		return resp
	}
	for i := 0; i < 3; i++ {
		if resp := post("203.0.113.5"); resp.StatusCode != 401 {
			t.Fatalf("attempt %d: %d, want 401 (wrong key, within the burst)", i, resp.StatusCode)
		}
	}
	resp := post("203.0.113.5")
	if resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("attempt beyond the burst: %d, want 429", resp.StatusCode)
	}
	if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err != nil || s < 1 {
		t.Fatalf("Retry-After %q", resp.Header.Get("Retry-After"))
	}
	var e fleet.Error
	if err := json.NewDecoder(resp.Body).Decode(&e); err != nil || e.Code != fleet.CodeRateLimited {
		t.Fatalf("429 body: %+v %v", e, err)
	}
	if resp := post("203.0.113.6"); resp.StatusCode != 401 {
		t.Fatalf("another client behind the proxy: %d, want 401", resp.StatusCode)
	}
	req, _ := http.NewRequest("GET", srv.URL+"/api/v1/sims", nil)
	req.Header.Set("Authorization", "Bearer "+admin)
	req.Header.Set("X-Forwarded-For", "203.0.113.5")
	r2, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	r2.Body.Close()
	if r2.StatusCode != 200 {
		t.Fatalf("operator route from a limited source: %d", r2.StatusCode)
	}
}
