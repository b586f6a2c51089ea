// SPDX-License-Identifier: Apache-2.0

package main

import (
	"context"
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

// wirefleet sim-cards against a real API server: import a vendor's CSV,
// list without keys, suspend, and a bad file refused with its line.
func TestSIMCardsCLI(t *testing.T) {
	ctx := context.Background()
	st, err := sqlitestore.Open(ctx, filepath.Join(t.TempDir(), "fleet.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	key, _ := seal.GenerateKey()
	svc := controlplane.New(st, controlplane.Config{Endpoint: "127.0.0.1:51820", Logger: quiet, Secrets: key})
	srv := httptest.NewServer(api.New(svc, api.Config{Logger: quiet}))
	defer srv.Close()
	admin, _, err := svc.EnsureAdminToken(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c := &cli{t: t, env: map[string]string{"WIREFLEET_URL": srv.URL, "WIREFLEET_TOKEN": admin}}
	dir := t.TempDir()
	good := filepath.Join(dir, "cards.csv")
	os.WriteFile(good, []byte("ICCID,IMSI,Ki,OPc\n898110000000000001,001010000000001,465b5ce8b199b49faa5f0a2ee238a6bc,cd63cb71954a9f4e48a5994e37a02baf\n"), 0o600)
	if out := c.ok("sim-cards", "import", good); !strings.Contains(out, "1 SIM cards imported") {
		t.Fatalf("import: %q", out)
	}
	out := c.ok("sim-cards", "list")
	if !strings.Contains(out, "898110000000000001") || strings.Contains(out, "465b5ce8") {
		t.Fatalf("list: %q", out)
	}
	if out := c.ok("sim-cards", "suspend", "898110000000000001"); !strings.Contains(out, "suspended") {
		t.Fatalf("suspend: %q", out)
	}
	bad := filepath.Join(dir, "bad.csv")
	os.WriteFile(bad, []byte("ICCID,IMSI,Ki,OPc\n898110000000000002,001010000000002,00,00\n"), 0o600)
	if errs := c.fails(exitInvalid, "sim-cards", "import", bad); !strings.Contains(errs, "line 2") {
		t.Fatalf("bad file: %q", errs)
	}
}
