// SPDX-License-Identifier: Apache-2.0

package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wirefleet/wirefleet/agent"
	"github.com/wirefleet/wirefleet/attest"
	"github.com/wirefleet/wirefleet/controlplane"
	"github.com/wirefleet/wirefleet/controlplane/api"
	"github.com/wirefleet/wirefleet/controlplane/store/sqlitestore"
	"github.com/wirefleet/wirefleet/fleet"
	"github.com/wirefleet/wirefleet/keystore/pkcs11store/softhsmtest"
	"github.com/wirefleet/wirefleet/wgkey"
)

// The manufacturing and field steps with the real binary: `identity
// --generate` makes the identity key on a SoftHSM token and prints it;
// the control plane registers the printed key; `bootstrap --attest` gets
// the SIM with a WireGuard key on the same token.
func TestIdentityAndAttestBootstrapCommands(t *testing.T) {
	tok := softhsmtest.NewToken(t, "cli-attest")
	dir := t.TempDir()
	bin := filepath.Join(dir, "wirefleet-agent")
	if b, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, b)
	}
	pin := filepath.Join(dir, "pin")
	os.WriteFile(pin, []byte(softhsmtest.PIN), 0o600)
	ref := func(object string) string {
		return "pkcs11:token=" + url.PathEscape(tok.Token) + ";object=" + object + "?module-path=" + tok.Module + "&pin-source=" + pin
	}
	run := func(args ...string) (string, int) {
		cmd := exec.Command(bin, args...)
		cmd.Env = append(os.Environ(), "WIREFLEET_AGENT_IDENTITY=")
		out, err := cmd.Output()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return string(out) + string(ee.Stderr), ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return string(out), 0
	}

	out, code := run("identity", "--attest", ref("identity"), "--generate", "p256", "--format", "json")
	if code != 0 {
		t.Fatalf("identity --generate: %d %s", code, out)
	}
	var printed struct {
		PublicKey, Fingerprint, PEM string
		NonExtractable              bool
	}
	if err := json.Unmarshal([]byte(out), &printed); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	key, err := attest.ParsePublicKey(printed.PublicKey)
	if err != nil || key.Algorithm() != attest.P256 || key.Fingerprint() != printed.Fingerprint || !printed.NonExtractable {
		t.Fatalf("printed %+v (%v)", printed, err)
	}
	// Idempotent for manufacturing scripts; the other algorithm is refused.
	if out, code := run("identity", "--attest", ref("identity"), "--generate", "p256"); code != 0 || strings.TrimSpace(out) != key.String() {
		t.Fatalf("second --generate: %d %s", code, out)
	}
	if out, code := run("identity", "--attest", ref("identity"), "--generate", "ed25519"); code != 1 || !strings.Contains(out, "already holds a p256") {
		t.Fatalf("--generate of another algorithm: %d %s", code, out)
	}
	if out, code := run("identity", "--attest", ref("identity"), "--format", "pem"); code != 0 || !strings.HasPrefix(out, "-----BEGIN PUBLIC KEY-----") {
		t.Fatalf("pem: %d %s", code, out)
	}
	if _, code := run("identity"); code != 2 {
		t.Fatalf("identity without --attest: exit %d, want 2", code)
	}
	if _, code := run("identity", "--attest", ref("identity"), "--format", "xml"); code != 2 {
		t.Fatalf("bad --format: exit %d, want 2", code)
	}

	ctx := context.Background()
	st, err := sqlitestore.Open(ctx, filepath.Join(dir, "fleet.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	gw, _ := wgkey.NewPrivate()
	svc := controlplane.New(st, controlplane.Config{Endpoint: "127.0.0.1:51820", GatewayPublicKey: gw.Public, Logger: quiet})
	srv := httptest.NewServer(api.New(svc, api.Config{Logger: quiet}))
	defer srv.Close()
	cfgPath := filepath.Join(dir, "etc", "agent.json")
	args := []string{"bootstrap", "--server", srv.URL, "--attest", ref("identity"), "--key", ref("wg"), "--config", cfgPath}
	if out, code := run(args...); code != 1 || !strings.Contains(out, "attestation refused") {
		t.Fatalf("unregistered identity: %d %s", code, out)
	}
	if _, err := svc.ImportIdentities(ctx, controlplane.System, controlplane.IdentityBatchSpec{Name: "lot", Keys: []attest.PublicKey{key}}); err != nil {
		t.Fatal(err)
	}
	if out, code := run(args...); code != 0 || !strings.Contains(out, "SIM sim_") {
		t.Fatalf("bootstrap --attest: %d %s", code, out)
	}
	cfg, err := agent.LoadConfig(cfgPath)
	if err != nil || cfg.KeyRef != ref("wg") {
		t.Fatalf("config %+v %v", cfg, err)
	}
	if i, _ := svc.GetIdentity(ctx, controlplane.System, key.Fingerprint()); i.Status != fleet.IdentityUsed || i.SIMID != cfg.SIMID {
		t.Fatalf("identity %+v", i)
	}
}
