// SPDX-License-Identifier: Apache-2.0

package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wirefleet/wirefleet/controlplane"
	"github.com/wirefleet/wirefleet/controlplane/api"
	"github.com/wirefleet/wirefleet/controlplane/store/sqlitestore"
)

// TestCapturesCLI: start (no gateway here: it stays REQUESTED), list,
// get, a stop refused (not capturing), a download refused (no file yet),
// delete; a bad duration is a usage-level refusal.
func TestCapturesCLI(t *testing.T) {
	ctx := context.Background()
	st, err := sqlitestore.Open(ctx, filepath.Join(t.TempDir(), "fleet.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	svc := controlplane.New(st, controlplane.Config{Logger: log})
	srv := httptest.NewServer(api.New(svc, api.Config{Logger: log, CaptureDir: t.TempDir()}))
	defer srv.Close()
	admin, _, err := svc.EnsureAdminToken(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c := &cli{t: t, env: map[string]string{"WIREFLEET_URL": srv.URL, "WIREFLEET_TOKEN": admin}}
	var sim struct{ ID string }
	json.Unmarshal([]byte(c.ok("sims", "create", "--generate-key", "--json")), &sim)
	c.fails(exitInvalid, "captures", "start", "--sim", sim.ID, "--duration", "5s")
	c.fails(exitNotFound, "captures", "start", "--sim", "sim_nope")
	var cp struct{ ID, Status string }
	if err := json.Unmarshal([]byte(c.ok("captures", "start", "--sim", sim.ID, "--duration", "2m", "--protocol", "tcp", "--json")), &cp); err != nil || cp.Status != "REQUESTED" {
		t.Fatalf("start: %+v %v", cp, err)
	}
	if out := c.ok("captures", "list"); !strings.Contains(out, cp.ID) || !strings.Contains(out, "REQUESTED") {
		t.Fatalf("list:\n%s", out)
	}
	if out := c.ok("captures", "get", cp.ID); !strings.Contains(out, sim.ID) {
		t.Fatalf("get:\n%s", out)
	}
	c.fails(exitInvalid, "captures", "stop", cp.ID)
	c.fails(exitConflict, "captures", "download", cp.ID, "-o", filepath.Join(t.TempDir(), "x"))
	c.ok("captures", "delete", cp.ID)
	c.fails(exitNotFound, "captures", "get", cp.ID)
}
