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
	"github.com/wirefleet/wirefleet/internal/seal"
)

// Forwarders are configured from the CLI with a settings file; what the
// CLI shows back says a secret is set, never what it is, and a file
// written back from `groups get --json` (no secrets) keeps them.
func TestCLIForwarders(t *testing.T) {
	ctx := context.Background()
	st, err := sqlitestore.Open(ctx, filepath.Join(t.TempDir(), "fleet.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	key, _ := seal.GenerateKey()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	svc := controlplane.New(st, controlplane.Config{Endpoint: "127.0.0.1:51820", Logger: log, Secrets: key})
	srv := httptest.NewServer(api.New(svc, api.Config{Logger: log}))
	defer srv.Close()
	admin, _, err := svc.EnsureAdminToken(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c := &cli{t: t, env: map[string]string{"WIREFLEET_URL": srv.URL, "WIREFLEET_TOKEN": admin}}
	const token = "cloud-token-from-a-file-0001"
	file := filepath.Join(t.TempDir(), "fwd.json")
	os.WriteFile(file, []byte(`{"forwarders":{"http":[{"pathPrefix":"/t","url":"https://cloud.example.test/in","secret":"signing-secret-000000001",
		"credential":{"type":"bearer","value":"`+token+`"}}]}}`), 0o600)
	out := c.ok("groups", "create", "fwd", "--settings", file, "--json")
	if strings.Contains(out, token) || !strings.Contains(out, `"valueSet": true`) {
		t.Fatalf("groups create: %s", out)
	}
	id := groupID(t, out)
	// Read back, write back unchanged: the stored secrets stay.
	got := c.ok("groups", "get", id, "--json")
	back := filepath.Join(t.TempDir(), "back.json")
	os.WriteFile(back, []byte(settingsOf(t, got)), 0o600)
	c.ok("groups", "update", id, "--settings", back)
	g, _ := svc.View().Group(ctx, id)
	if v, err := key.Open(g.Settings.Forwarders.HTTP[0].Credential.Value); err != nil || v != token {
		t.Fatalf("stored credential after a write-back: %q %v", v, err)
	}
	// A bad route is refused with its field.
	os.WriteFile(file, []byte(`{"forwarders":{"udp":{"url":"ftp://x.test/","secret":"signing-secret-000000001"}}}`), 0o600)
	if errs := c.fails(exitInvalid, "groups", "update", id, "--settings", file); !strings.Contains(errs, "settings.forwarders.udp.url") {
		t.Fatalf("bad route: %s", errs)
	}
}

func groupID(t *testing.T, out string) string {
	t.Helper()
	var g struct{ ID string }
	if err := json.Unmarshal([]byte(out), &g); err != nil || g.ID == "" {
		t.Fatalf("not a group: %v %s", err, out)
	}
	return g.ID
}

// settingsOf returns the settings object of a group's JSON.
func settingsOf(t *testing.T, out string) string {
	t.Helper()
	var g struct{ Settings json.RawMessage }
	if err := json.Unmarshal([]byte(out), &g); err != nil {
		t.Fatal(err)
	}
	return string(g.Settings)
}
