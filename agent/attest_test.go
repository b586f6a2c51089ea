// SPDX-License-Identifier: Apache-2.0

package agent

import (
	"bytes"
	"context"
	"encoding/base64"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wirefleet/wirefleet/attest"
	"github.com/wirefleet/wirefleet/controlplane"
	"github.com/wirefleet/wirefleet/fleet"
	"github.com/wirefleet/wirefleet/keystore/pkcs11store/softhsmtest"
)

// Attestation bootstrap end to end with nothing secret on the device but
// keys inside SoftHSM: manufacturing makes the identity key on the token
// and registers its public key in a batch; the agent answers the real
// control plane's challenge with it, gets its SIM for a WireGuard key also
// made on the token, and its tunnel comes up through the real gateway.
// Running bootstrap again keeps the SIM; no file the agent wrote holds a
// private key.
func TestAttestBootstrapHSM(t *testing.T) {
	tokCfg := softhsmtest.NewToken(t, "attest")
	dir := t.TempDir()
	pinFile := filepath.Join(dir, "pin")
	os.WriteFile(pinFile, []byte(softhsmtest.PIN), 0o600)
	ref := func(object string) string {
		return "pkcs11:token=" + url.PathEscape(tokCfg.Token) + ";object=" + object + "?module-path=" + tokCfg.Module + "&pin-source=" + pinFile
	}
	ctx := context.Background()
	p := newPlatform(t)
	grp, err := p.svc.CreateGroup(ctx, controlplane.System, "attested", fleet.GroupSettings{})
	if err != nil {
		t.Fatal(err)
	}

	// Manufacturing: the identity key is made on the token; only its
	// public key leaves, into a batch bound to the group.
	id, err := CreateIdentity(ref("identity"), attest.Ed25519)
	if err != nil {
		t.Fatal(err)
	}
	if ne, err := IdentityNonExtractable(id); err != nil || !ne {
		t.Fatalf("identity key non-extractable = %v, %v", ne, err)
	}
	idKey := id.Key
	id.Close()
	if _, err := p.svc.ImportIdentities(ctx, controlplane.System, controlplane.IdentityBatchSpec{Name: "lot 1", GroupID: grp.ID, Keys: []attest.PublicKey{idKey}}); err != nil {
		t.Fatal(err)
	}

	// The device, in the field.
	cfgDir := filepath.Join(dir, "etc")
	cfgPath := filepath.Join(cfgDir, "agent.json")
	o := BootstrapOptions{Server: p.api, ConfigPath: cfgPath, KeyRef: ref("wg"), Name: "field-1"}
	cfg, err := BootstrapAttest(ctx, o, ref("identity"))
	if err != nil {
		t.Fatal(err)
	}
	sim, err := p.svc.View().SIM(ctx, cfg.SIMID)
	if err != nil {
		t.Fatal(err)
	}
	ks, err := OpenKeyStore(cfg.KeyRef)
	if err != nil {
		t.Fatal(err)
	}
	wgPub := ks.PublicKey()
	CloseKeyStore(ks)
	if sim.GroupID != grp.ID || sim.PublicKey != wgPub || sim.Name != "field-1" {
		t.Fatalf("SIM %+v", sim)
	}
	if i, _ := p.svc.GetIdentity(ctx, controlplane.System, idKey.Fingerprint()); i.Status != fleet.IdentityUsed || i.SIMID != sim.ID {
		t.Fatalf("identity after bootstrap: %+v", i)
	}

	tn, err := Up(ctx, cfg, UpOptions{Userspace: true, Logger: quiet, ConfigPath: cfgPath})
	if err != nil {
		t.Fatal(err)
	}
	defer tn.Close()
	ping := pinger(t, tn)
	for deadline := time.Now().Add(15 * time.Second); !ping(1); {
		if time.Now().After(deadline) {
			t.Fatal("no answer through the gateway after attestation bootstrap")
		}
	}

	// A device that lost the answer asks again: same SIM, no second one.
	again, err := BootstrapAttest(ctx, o, ref("identity"))
	if err != nil || again.SIMID != cfg.SIMID {
		t.Fatalf("repeated bootstrap: %v, SIM %s want %s", err, again.SIMID, cfg.SIMID)
	}

	known := map[string]bool{wgPub.String(): true, cfg.GatewayPublicKey.String(): true}
	filepath.Walk(cfgDir, func(path string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() {
			return err
		}
		b, _ := os.ReadFile(path)
		if bytes.Contains(b, []byte("PRIVATE KEY")) {
			t.Errorf("%s holds a PEM private key", path)
		}
		for _, f := range bytes.FieldsFunc(b, func(r rune) bool { return strings.ContainsRune("\" ,:\n{}[]", r) }) {
			if raw, err := base64.StdEncoding.DecodeString(string(f)); err == nil && len(raw) == 32 && !known[string(f)] {
				t.Errorf("%s holds an unknown 32-byte secret %q", path, f)
			}
		}
		return nil
	})
}

// With a P-256 identity in a file (development): an unregistered identity
// is refused, a registered one bootstraps, a revoked one is refused again
// — the agent reports the server's uniform refusal.
func TestAttestBootstrapFileIdentity(t *testing.T) {
	ctx := context.Background()
	server, svc := controlPlane(t)
	dir := t.TempDir()
	idRef := "file:" + filepath.Join(dir, "identity.pem")
	id, err := CreateIdentity(idRef, attest.P256)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := CreateIdentity(idRef, attest.Ed25519); err == nil {
		t.Fatal("an existing P-256 identity was taken for an Ed25519 one")
	}
	o := BootstrapOptions{Server: server, ConfigPath: filepath.Join(dir, "agent.json")}
	if _, err := BootstrapAttest(ctx, o, idRef); err == nil || !strings.Contains(err.Error(), "attestation refused") {
		t.Fatalf("unregistered identity: %v", err)
	}
	if _, err := svc.ImportIdentities(ctx, controlplane.System, controlplane.IdentityBatchSpec{Name: "dev", Keys: []attest.PublicKey{id.Key}}); err != nil {
		t.Fatal(err)
	}
	cfg, err := BootstrapAttest(ctx, o, idRef)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.SIMID == "" || !strings.HasPrefix(cfg.KeyRef, "file:") {
		t.Fatalf("config %+v", cfg)
	}
	if err := svc.RevokeIdentity(ctx, controlplane.System, id.Key.Fingerprint()); err != nil {
		t.Fatal(err)
	}
	if _, err := BootstrapAttest(ctx, o, idRef); err == nil || !strings.Contains(err.Error(), "attestation refused") {
		t.Fatalf("revoked identity: %v", err)
	}
	if _, err := BootstrapAttest(ctx, o, "tpm:0"); err == nil {
		t.Fatal("unknown identity reference accepted")
	}
}
