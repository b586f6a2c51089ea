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
	"time"

	"github.com/wirefleet/wirefleet/controlplane"
	"github.com/wirefleet/wirefleet/controlplane/api"
	"github.com/wirefleet/wirefleet/controlplane/store/sqlitestore"
	"github.com/wirefleet/wirefleet/fleet"
)

// TestDataList: wirefleet data list by SIM and by group, as a table and as
// JSON, with pages and filters, against a real API server.
func TestDataList(t *testing.T) {
	ctx := context.Background()
	st, err := sqlitestore.Open(ctx, filepath.Join(t.TempDir(), "fleet.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	svc := controlplane.New(st, controlplane.Config{Endpoint: "127.0.0.1:51820", Logger: quiet})
	srv := httptest.NewServer(api.New(svc, api.Config{Logger: quiet}))
	defer srv.Close()
	admin, _, err := svc.EnsureAdminToken(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c := &cli{t: t, env: map[string]string{"WIREFLEET_URL": srv.URL, "WIREFLEET_TOKEN": admin}}
	g, err := svc.CreateGroup(ctx, controlplane.System, "meters", fleet.GroupSettings{DataStore: fleet.DataStoreSettings{Enabled: true}})
	if err != nil {
		t.Fatal(err)
	}
	sim, _, err := svc.CreateSIM(ctx, controlplane.System, controlplane.SIMSpec{GroupID: g.ID, GenerateKey: true})
	if err != nil {
		t.Fatal(err)
	}
	base := time.Date(2026, 4, 1, 8, 0, 0, 0, time.UTC)
	if err := st.AppendRecords(ctx, []fleet.Record{
		{SIMID: sim.ID, GroupID: g.ID, Time: base, Received: base, Category: "default", ContentType: "application/json", Payload: []byte(`{"kwh": 12.5}`)},
		{SIMID: sim.ID, GroupID: g.ID, Time: base.Add(time.Minute), Received: base, Category: "default", ContentType: "text/plain", Payload: []byte("hello meter")},
		{SIMID: sim.ID, GroupID: g.ID, Time: base.Add(2 * time.Minute), Received: base, Category: "raw", ContentType: "application/octet-stream", Payload: []byte{0, 1, 2}},
	}); err != nil {
		t.Fatal(err)
	}
	out := c.ok("data", "list", "--sim", sim.ID)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 4 || !strings.Contains(lines[0], "PAYLOAD") || !strings.Contains(lines[1], "base64:AAEC") || !strings.Contains(lines[2], "hello meter") || !strings.Contains(lines[3], `{"kwh":12.5}`) {
		t.Fatalf("table:\n%s", out)
	}
	out = c.ok("data", "list", "--group", g.ID, "--category", "default", "--limit", "1", "--json")
	var p struct {
		Items []struct {
			Payload       json.RawMessage
			PayloadBase64 string
		}
		Next string
	}
	if err := json.Unmarshal([]byte(out), &p); err != nil || len(p.Items) != 1 || p.Next == "" || p.Items[0].PayloadBase64 == "" {
		t.Fatalf("json page: %v %s", err, out)
	}
	out = c.ok("data", "list", "--group", g.ID, "--category", "default", "--cursor", p.Next, "--json")
	p.Items, p.Next = nil, ""
	if err := json.Unmarshal([]byte(out), &p); err != nil || len(p.Items) != 1 || p.Next != "" || strings.Join(strings.Fields(string(p.Items[0].Payload)), "") != `{"kwh":12.5}` {
		t.Fatalf("second page: %v %s", err, out)
	}
	out = c.ok("data", "list", "--sim", sim.ID, "--from", base.Add(time.Minute).Format(time.RFC3339), "--to", base.Add(2*time.Minute).Format(time.RFC3339))
	if n := len(strings.Split(strings.TrimSpace(out), "\n")); n != 2 || !strings.Contains(out, "hello meter") {
		t.Fatalf("range:\n%s", out)
	}
	c.fails(exitUsage, "data", "list")
	c.fails(exitUsage, "data", "list", "--sim", sim.ID, "--group", g.ID)
	c.fails(exitNotFound, "data", "list", "--sim", "sim_nope")
	c.fails(exitInvalid, "data", "list", "--sim", sim.ID, "--from", "yesterday")
	if out := c.ok("--help"); !strings.Contains(out, "data list (--sim ID | --group ID)") {
		t.Fatal("help does not list data list")
	}
}
