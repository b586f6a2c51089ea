// SPDX-License-Identifier: Apache-2.0

package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wirefleet/wirefleet/controlplane"
	"github.com/wirefleet/wirefleet/controlplane/api"
	"github.com/wirefleet/wirefleet/controlplane/store/sqlitestore"
)

// TestRoutesCLI: add mapped and unmapped, import the bulk shape, list,
// refusals with their exit codes, delete.
func TestRoutesCLI(t *testing.T) {
	c := cliWithServer(t)
	var a, b struct{ ID string }
	json.Unmarshal([]byte(c.ok("sims", "create", "--generate-key", "--json")), &a)
	json.Unmarshal([]byte(c.ok("sims", "create", "--generate-key", "--json")), &b)

	if out := c.ok("routes", "add", a.ID, "192.168.1.0/24", "--map"); !strings.Contains(out, "10.64.0.0/24") || !strings.Contains(out, "approved") {
		t.Fatalf("add --map:\n%s", out)
	}
	file := filepath.Join(t.TempDir(), "routes.json")
	os.WriteFile(file, []byte(`{"`+b.ID+`": "192.168.1.0/24"}`), 0o600)
	if out := c.ok("routes", "import", file, "--map"); !strings.Contains(out, "10.64.1.0/24") {
		t.Fatalf("import:\n%s", out)
	}
	c.fails(exitInvalid, "routes", "add", a.ID, "192.168.1.0/33")
	c.fails(exitInvalid, "routes", "add", a.ID, "10.128.0.0/24")                              // the SIM pool
	c.fails(exitConflict, "routes", "add", b.ID, "172.16.0.0/24", "--mapped", "10.64.0.0/24") // A's mapping
	c.fails(exitUsage, "routes", "add", a.ID)
	c.fails(exitNotFound, "routes", "approve", a.ID, "172.16.9.0/24")
	var list struct {
		Items []struct{ SIMID, MappedPrefix string }
	}
	if err := json.Unmarshal([]byte(c.ok("routes", "list", "--json")), &list); err != nil || len(list.Items) != 2 {
		t.Fatalf("list: %v %+v", err, list)
	}
	if out := c.ok("routes", "hosts", a.ID, "192.168.1.0/24", "plc1=192.168.1.10"); !strings.Contains(out, "plc1=192.168.1.10") {
		t.Fatalf("hosts:\n%s", out)
	}
	c.fails(exitUsage, "routes", "hosts", a.ID, "192.168.1.0/24", "plc1")
	c.fails(exitInvalid, "routes", "hosts", a.ID, "192.168.1.0/24", "plc1=10.0.0.1")
	c.ok("routes", "delete", a.ID, "192.168.1.0/24")
	if out := c.ok("routes", "list", "--sim", a.ID); strings.Contains(out, "192.168.1.0/24") {
		t.Fatalf("after delete:\n%s", out)
	}
	if out := c.ok("events", "list", "--object", a.ID); !strings.Contains(out, "sim.route.add") || !strings.Contains(out, "sim.route.delete") {
		t.Fatalf("events:\n%s", out)
	}
}

func TestGatePeersCLI(t *testing.T) {
	c := cliWithServer(t)
	out := c.ok("gate-peers", "add", "--outer", "192.0.2.10", "--vni", "10", "--name", "vpc")
	if !strings.Contains(out, "type vxlan id 10 local 192.0.2.10") || !strings.Contains(out, "10.128.0.2") {
		t.Fatalf("add:\n%s", out)
	}
	c.fails(exitUsage, "gate-peers", "add", "--outer", "192.0.2.11")
	c.fails(exitInvalid, "gate-peers", "add", "--outer", "10.128.0.9", "--vni", "3")
	c.fails(exitConflict, "gate-peers", "add", "--outer", "192.0.2.10", "--vni", "10")
	var list struct{ Items []struct{ ID string } }
	if err := json.Unmarshal([]byte(c.ok("gate-peers", "list", "--json")), &list); err != nil || len(list.Items) != 1 {
		t.Fatalf("list: %v %+v", err, list)
	}
	c.ok("gate-peers", "delete", list.Items[0].ID)
	c.fails(exitNotFound, "gate-peers", "get", list.Items[0].ID)
}

// cliWithServer is the CLI against a real API over a fresh SQLite store,
// as the admin.
func cliWithServer(t *testing.T) *cli {
	t.Helper()
	ctx := context.Background()
	st, err := sqlitestore.Open(ctx, filepath.Join(t.TempDir(), "fleet.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	svc := controlplane.New(st, controlplane.Config{Logger: log})
	srv := httptest.NewServer(api.New(svc, api.Config{Logger: log}))
	t.Cleanup(srv.Close)
	admin, _, err := svc.EnsureAdminToken(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return &cli{t: t, env: map[string]string{"WIREFLEET_URL": srv.URL, "WIREFLEET_TOKEN": admin}}
}
