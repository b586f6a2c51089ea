// SPDX-License-Identifier: Apache-2.0

package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wirefleet/wirefleet/attest"
	"github.com/wirefleet/wirefleet/controlplane"
	"github.com/wirefleet/wirefleet/controlplane/api"
	"github.com/wirefleet/wirefleet/controlplane/api/apiv1"
	"github.com/wirefleet/wirefleet/controlplane/store/sqlitestore"
	"github.com/wirefleet/wirefleet/fleet"
)

func newKey(t *testing.T) attest.PublicKey {
	t.Helper()
	pub, _, _ := ed25519.GenerateKey(rand.Reader)
	k, err := attest.FromCrypto(pub)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// wirefleet identities against a real API server: import from PEM and
// line files (a large batch in parts), list, get by key or id, revoke,
// and clear exit codes for bad files, duplicates and wrong flags.
func TestIdentitiesCLI(t *testing.T) {
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
	dir := t.TempDir()
	var g struct{ ID string }
	json.Unmarshal([]byte(c.ok("groups", "create", "meters", "--json")), &g)

	// A PEM file of three keys.
	k1, k2, k3 := newKey(t), newKey(t), newKey(t)
	pemFile := filepath.Join(dir, "lot1.pem")
	os.WriteFile(pemFile, []byte(k1.PEM()+k2.PEM()+k3.PEM()), 0o644)
	var b fleet.IdentityBatch
	if err := json.Unmarshal([]byte(c.ok("identities", "import", pemFile, "--name", "lot 1", "--group", g.ID, "--tag", "site=north", "--json")), &b); err != nil {
		t.Fatal(err)
	}
	if b.Count != 3 || b.GroupID != g.ID || b.Tags["site"] != "north" || b.Name != "lot 1" {
		t.Fatalf("imported batch %+v", b)
	}
	// A large list of hex keys, one per line: sent in parts, one batch.
	var lines strings.Builder
	lines.WriteString("# lot 2, hex\n")
	const n = 2*importChunk + 17
	for range n {
		lines.WriteString(hex.EncodeToString(newKey(t).Bytes()) + "\n")
	}
	big := filepath.Join(dir, "lot2.txt")
	os.WriteFile(big, []byte(lines.String()), 0o644)
	out := c.ok("identities", "import", big, "--name", "lot 2")
	if !strings.Contains(out, "lot 2") || !strings.Contains(out, "817 keys registered") {
		t.Fatalf("large import: %s", out)
	}
	var batches apiv1.Page[fleet.IdentityBatch]
	json.Unmarshal([]byte(c.ok("identities", "batches", "--json")), &batches)
	if len(batches.Items) != 2 || batches.Items[1].Count != n {
		t.Fatalf("batches %+v", batches.Items)
	}
	// More keys into batch 1, as JSON.
	k4 := newKey(t)
	jsonFile := filepath.Join(dir, "more.json")
	os.WriteFile(jsonFile, []byte(`[{"serial":"A-4","publicKey":"`+k4.String()+`"}]`), 0o644)
	c.ok("identities", "import", jsonFile, "--batch", b.ID)
	if out := c.ok("identities", "batch", b.ID); !strings.Contains(out, "lot 1") || !strings.Contains(out, " 4 ") {
		t.Fatalf("batch after adding: %s", out)
	}

	// Get by canonical key and by id; list by batch; revoke.
	var i fleet.Identity
	json.Unmarshal([]byte(c.ok("identities", "get", k2.String(), "--json")), &i)
	if i.ID != k2.Fingerprint() || i.Status != "active" || i.BatchID != b.ID {
		t.Fatalf("identity %+v", i)
	}
	if out := c.ok("identities", "get", hex.EncodeToString(k2.Bytes())); !strings.Contains(out, k2.Fingerprint()) {
		t.Fatalf("get by hex key: %s", out)
	}
	c.ok("identities", "revoke", k2.Fingerprint())
	var list apiv1.Page[fleet.Identity]
	json.Unmarshal([]byte(c.ok("identities", "list", "--batch", b.ID, "--status", "revoked", "--json")), &list)
	if len(list.Items) != 1 || list.Items[0].ID != k2.Fingerprint() {
		t.Fatalf("revoked list %+v", list.Items)
	}
	c.ok("identities", "revoke-batch", b.ID)
	json.Unmarshal([]byte(c.ok("identities", "list", "--batch", b.ID, "--status", "active", "--json")), &list)
	if len(list.Items) != 0 {
		t.Fatalf("%d active identities in a revoked batch", len(list.Items))
	}

	// Failures, with their exit codes.
	bad := filepath.Join(dir, "bad.txt")
	os.WriteFile(bad, []byte(k3.String()+"\nnot-a-key\n"), 0o644)
	if errs := c.fails(exitInvalid, "identities", "import", bad, "--name", "x"); !strings.Contains(errs, "line 2") {
		t.Fatalf("bad file: %s", errs)
	}
	c.fails(exitConflict, "identities", "import", pemFile, "--name", "again")
	c.fails(exitConflict, "identities", "import", jsonFile, "--batch", b.ID) // revoked batch
	c.fails(exitUsage, "identities", "import", pemFile)
	c.fails(exitUsage, "identities", "import", pemFile, "--batch", b.ID, "--name", "x")
	c.fails(exitUsage, "identities", "import", filepath.Join(dir, "missing"), "--name", "x")
	c.fails(exitNotFound, "identities", "get", newKey(t).String())
	c.fails(exitInvalid, "identities", "list", "--status", "lost")
	viewer := struct{ Secret string }{}
	json.Unmarshal([]byte(c.ok("tokens", "create", "--role", "viewer", "--json")), &viewer)
	c.env["WIREFLEET_TOKEN"] = viewer.Secret
	c.fails(exitDenied, "identities", "import", pemFile, "--name", "x")
	c.ok("identities", "batches")
}
