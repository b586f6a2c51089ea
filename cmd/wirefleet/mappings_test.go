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

// TestMappingsCLI: create (table and --json), list, get, delete, the
// audit trail, and the usage errors for a missing port or source.
func TestMappingsCLI(t *testing.T) {
	ctx := context.Background()
	st, err := sqlitestore.Open(ctx, filepath.Join(t.TempDir(), "fleet.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	svc := controlplane.New(st, controlplane.Config{Logger: log, Remote: controlplane.RemotePolicy{Host: "remote.example", PortMin: 41000, PortMax: 41000, TLSFingerprint: "AA:BB"}})
	srv := httptest.NewServer(api.New(svc, api.Config{Logger: log}))
	defer srv.Close()
	admin, _, err := svc.EnsureAdminToken(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c := &cli{t: t, env: map[string]string{"WIREFLEET_URL": srv.URL, "WIREFLEET_TOKEN": admin}}
	var sim struct{ ID string }
	json.Unmarshal([]byte(c.ok("sims", "create", "--generate-key", "--json")), &sim)

	c.fails(exitUsage, "mappings", "create", sim.ID, "--allow", "192.0.2.1")
	c.fails(exitUsage, "mappings", "create", sim.ID, "--port", "22")
	c.fails(exitInvalid, "mappings", "create", sim.ID, "--port", "22", "--allow", "nope")
	c.fails(exitInvalid, "mappings", "create", sim.ID, "--port", "22", "--allow", "192.0.2.1", "--duration", "9h")

	out := c.ok("mappings", "create", sim.ID, "--port", "22", "--allow", "192.0.2.1", "--allow", "198.51.100.0/24", "--tls", "--duration", "30m")
	if !strings.Contains(out, "remote.example:41000") || !strings.Contains(out, "192.0.2.1/32,198.51.100.0/24") || !strings.Contains(out, "AA:BB") {
		t.Fatalf("create:\n%s", out)
	}
	c.fails(exitConflict, "mappings", "create", sim.ID, "--port", "80", "--allow", "192.0.2.1") // the one port is taken
	var list struct {
		Items []struct {
			ID         string
			PublicPort int
		}
	}
	if err := json.Unmarshal([]byte(c.ok("mappings", "list", "--sim", sim.ID, "--json")), &list); err != nil || len(list.Items) != 1 || list.Items[0].PublicPort != 41000 {
		t.Fatalf("list: %v %+v", err, list)
	}
	id := list.Items[0].ID
	if out := c.ok("mappings", "get", id); !strings.Contains(out, id) || !strings.Contains(out, "yes") {
		t.Fatalf("get:\n%s", out)
	}
	c.ok("mappings", "delete", id)
	c.fails(exitNotFound, "mappings", "get", id)
	if out := c.ok("events", "list", "--object", id); !strings.Contains(out, "mapping.create") || !strings.Contains(out, "mapping.delete") {
		t.Fatalf("events:\n%s", out)
	}
}
