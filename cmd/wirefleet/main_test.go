// SPDX-License-Identifier: Apache-2.0

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/wirefleet/wirefleet/controlplane"
	"github.com/wirefleet/wirefleet/controlplane/api"
	"github.com/wirefleet/wirefleet/controlplane/store/sqlitestore"
	"github.com/wirefleet/wirefleet/fleet"
)

type cli struct {
	t   *testing.T
	env map[string]string
}

func (c *cli) run(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := run(args, func(k string) string { return c.env[k] }, &out, &errb)
	return code, out.String(), errb.String()
}

func (c *cli) ok(args ...string) string {
	c.t.Helper()
	code, out, errs := c.run(args...)
	if code != 0 {
		c.t.Fatalf("wirefleet %s: exit %d: %s", strings.Join(args, " "), code, errs)
	}
	return out
}

func (c *cli) fails(want int, args ...string) string {
	c.t.Helper()
	code, _, errs := c.run(args...)
	if code != want {
		c.t.Fatalf("wirefleet %s: exit %d, want %d: %s", strings.Join(args, " "), code, want, errs)
	}
	return errs
}

func TestCLI(t *testing.T) {
	ctx := context.Background()
	st, err := sqlitestore.Open(ctx, filepath.Join(t.TempDir(), "fleet.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	svc := controlplane.New(st, controlplane.Config{Endpoint: "127.0.0.1:51820", Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	srv := httptest.NewServer(api.New(svc, api.Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}))
	defer srv.Close()
	admin, _, err := svc.EnsureAdminToken(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c := &cli{t: t, env: map[string]string{"WIREFLEET_URL": srv.URL, "WIREFLEET_TOKEN": admin}}

	if out := c.ok("--help"); !strings.Contains(out, "Exit codes") {
		t.Fatalf("help: %s", out)
	}
	c.fails(exitUsage, "sims")
	c.fails(exitUsage, "bogus", "list")
	c.fails(exitUsage, "sims", "get")
	c.fails(exitUsage, "sims", "list", "--nope")

	out := c.ok("groups", "create", "plant-a", "--route", "192.168.7.0/24", "--d2d", "group", "--json")
	var g struct{ ID, Name string }
	if err := json.Unmarshal([]byte(out), &g); err != nil || g.Name != "plant-a" {
		t.Fatalf("group create --json: %v %s", err, out)
	}
	c.fails(exitInvalid, "groups", "create", "bad", "--route", "10.0.0.1/8")
	c.fails(exitConflict, "groups", "create", "plant-a")

	out = c.ok("sims", "create", "--name", "cam-1", "--group", g.ID, "--tag", "site=north", "--generate-key")
	if !strings.Contains(out, "IMSI") || !strings.Contains(out, "cam-1") || !strings.Contains(out, "site=north") || !strings.Contains(out, "private key (shown once") {
		t.Fatalf("sims create table:\n%s", out)
	}
	var p struct {
		Items []struct{ ID, Status string }
	}
	if err := json.Unmarshal([]byte(c.ok("sims", "list", "--json")), &p); err != nil || len(p.Items) != 1 {
		t.Fatalf("sims list --json: %v %+v", err, p)
	}
	id := p.Items[0].ID
	// Flags after positional arguments work too.
	if out := c.ok("sims", "suspend", id, "--json"); !strings.Contains(out, `"status": "suspended"`) {
		t.Fatalf("suspend: %s", out)
	}
	if out := c.ok("sims", "list", "--status", "suspended"); !strings.Contains(out, id) || !strings.HasPrefix(out, "ID") {
		t.Fatalf("list suspended:\n%s", out)
	}
	if out := c.ok("sims", "list", "--name", "cam-"); !strings.Contains(out, id) {
		t.Fatalf("list --name cam-:\n%s", out)
	}
	if out := c.ok("sims", "list", "--name", "Cam"); strings.Contains(out, id) {
		t.Fatalf("list --name Cam (case-sensitive) lists cam-1:\n%s", out)
	}
	if out := c.ok("nodes", "list"); !strings.HasPrefix(out, "NAME") {
		t.Fatalf("nodes list:\n%s", out)
	}
	c.ok("sims", "resume", id)
	if out := c.ok("sims", "require-rotation", id, "--within", "2h", "--json"); !strings.Contains(out, `"rotateBy"`) {
		t.Fatalf("require-rotation: %s", out)
	}
	if out := c.ok("config", id); !strings.Contains(out, "[Interface]") || !strings.Contains(out, controlplane.PrivateKeyPlaceholder) || !strings.Contains(out, "192.168.7.0/24") {
		t.Fatalf("config:\n%s", out)
	}
	out = c.ok("config", id, "--generate-key")
	if strings.Contains(out, controlplane.PrivateKeyPlaceholder) || !strings.Contains(out, "PrivateKey = ") {
		t.Fatalf("config --generate-key:\n%s", out)
	}
	c.ok("sims", "set-tags", id, "a=1", "b=2")
	if out := c.ok("sims", "list", "--tag", "a=1", "--tag", "b=2"); !strings.Contains(out, id) {
		t.Fatalf("list by tags:\n%s", out)
	}
	if out := c.ok("sims", "list", "--tag", "a=2"); strings.Contains(out, id) {
		t.Fatalf("list by wrong tag shows the SIM:\n%s", out)
	}
	c.ok("sims", "rename", id, "cam-one")
	if out := c.ok("sims", "get", id); !strings.Contains(out, "a=1,b=2") || !strings.Contains(out, "cam-one") {
		t.Fatalf("get after tags:\n%s", out)
	}
	c.fails(exitNotFound, "sims", "get", "sim_nope")
	c.ok("sims", "create", "--generate-key")
	c.ok("sims", "create", "--generate-key")
	var all struct {
		Items []struct{ ID string }
		Next  string
	}
	if err := json.Unmarshal([]byte(c.ok("sims", "list", "--limit", "1", "--all", "--json")), &all); err != nil || len(all.Items) != 3 || all.Next != "" {
		t.Fatalf("list --all: %v %+v", err, all)
	}
	if out := c.ok("sims", "list", "--limit", "1"); !strings.Contains(out, "(more: --cursor ") {
		t.Fatalf("list one page: no cursor hint:\n%s", out)
	}
	var got struct{ ID, IMSI, Address string }
	json.Unmarshal([]byte(c.ok("sims", "get", id, "--json")), &got)
	for _, ref := range []string{got.IMSI, got.Address} {
		if out := c.ok("sims", "get", ref); !strings.Contains(out, id) {
			t.Fatalf("sims get %s:\n%s", ref, out)
		}
	}
	c.fails(exitInvalid, "sims", "set-key", id, "--public-key", "nope")

	out = c.ok("authkeys", "create", "--group", g.ID, "--max-uses", "3", "--ttl", "1h")
	if !strings.Contains(out, "auth key (shown once): "+controlplane.AuthKeyPrefix) || !strings.Contains(out, "0/3") {
		t.Fatalf("authkeys create:\n%s", out)
	}
	out = c.ok("tokens", "create", "--role", "viewer", "--json")
	var tok struct {
		Item   struct{ ID string }
		Secret string
	}
	if err := json.Unmarshal([]byte(out), &tok); err != nil || tok.Secret == "" {
		t.Fatalf("tokens create: %v %s", err, out)
	}
	if out := c.ok("audit"); !strings.Contains(out, "SEVERITY") {
		t.Fatalf("audit table: %q", out)
	}
	if out := c.ok("events", "list", "--object", id); !strings.Contains(out, "sim.suspend") || !strings.Contains(out, "sim.create") {
		t.Fatalf("events:\n%s", out)
	}
	// The monitor's alerts: listed, acknowledged once.
	if err := svc.RecordDeviceEvent(ctx, id, controlplane.AlertAction, map[string]any{"kind": "cloned-key", "severity": "high", "detail": "endpoints taking turns"}); err != nil {
		t.Fatal(err)
	}
	var alerts struct {
		Items []fleet.Alert `json:"items"`
	}
	if err := json.Unmarshal([]byte(c.ok("alerts", "list", "--json")), &alerts); err != nil || len(alerts.Items) != 1 || alerts.Items[0].Ack != nil {
		t.Fatalf("alerts list --json: %+v %v", alerts, err)
	}
	if out := c.ok("alerts", "list"); !strings.Contains(out, "cloned-key") || !strings.Contains(out, "ACKNOWLEDGED") {
		t.Fatalf("alerts list:\n%s", out)
	}
	c.ok("alerts", "ack", strconv.FormatInt(alerts.Items[0].ID, 10))
	if out := c.ok("alerts", "list"); !strings.Contains(out, "token:") {
		t.Fatalf("after ack:\n%s", out)
	}
	c.fails(exitUsage, "alerts", "ack")

	// The viewer token, from a flag this time, may read but not write.
	c.ok("sims", "list", "--token", tok.Secret)
	c.fails(exitDenied, "sims", "suspend", id, "--token", tok.Secret)
	c.fails(exitDenied, "tokens", "list", "--token", tok.Secret)
	c.fails(exitDenied, "sims", "list", "--token", "wft_wrong")

	// A config file supplies the token when neither flag nor env does.
	cfg := filepath.Join(t.TempDir(), "config.json")
	os.WriteFile(cfg, []byte(`{"url":"`+srv.URL+`","token":"`+tok.Secret+`"}`), 0o600)
	c.env = map[string]string{}
	c.ok("sims", "list", "--config", cfg)
	c.fails(exitDenied, "groups", "delete", g.ID, "--config", cfg)

	// login checks and saves the pair, owner-only; a bad token is not saved.
	saved := filepath.Join(t.TempDir(), "sub", "config.json")
	c.fails(exitDenied, "login", "--url", srv.URL, "--token", "wft_bad", "--config", saved)
	if _, err := os.Stat(saved); err == nil {
		t.Fatal("login saved a token the server refused")
	}
	c.ok("login", "--url", srv.URL, "--token", tok.Secret, "--config", saved)
	if fi, err := os.Stat(saved); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("saved config: %v %v", fi, err)
	}
	c.ok("sims", "list", "--config", saved)

	// Unreachable server.
	c.env = map[string]string{"WIREFLEET_URL": "http://127.0.0.1:1", "WIREFLEET_TOKEN": admin}
	c.fails(exitUnavailable, "sims", "list")
}
