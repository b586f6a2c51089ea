// SPDX-License-Identifier: Apache-2.0

package agent

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"io/fs"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wirefleet/wirefleet/controlplane"
	"github.com/wirefleet/wirefleet/keystore"
	"github.com/wirefleet/wirefleet/keystore/pkcs11store"
	"github.com/wirefleet/wirefleet/keystore/pkcs11store/softhsmtest"
)

func TestMain(m *testing.M) { softhsmtest.Main(m) }

// The agent's key lives in SoftHSM (a PKCS#11 token): bootstrap makes it
// on the token, the tunnel comes up with it (initiator-only), status says
// it cannot be extracted, and no file the agent wrote holds a private key.
func TestHardwareKey(t *testing.T) {
	tokCfg := softhsmtest.NewToken(t, "agent")
	dir := t.TempDir()
	pinFile := filepath.Join(dir, "pin")
	os.WriteFile(pinFile, []byte(softhsmtest.PIN), 0o600)
	ref := "pkcs11:token=" + url.PathEscape(tokCfg.Token) + ";object=wg?module-path=" + tokCfg.Module + "&pin-source=" + pinFile

	server, svc := controlPlane(t)
	_, secret, _ := svc.CreateAuthKey(context.Background(), controlplane.System, controlplane.AuthKeySpec{MaxUses: 1})
	cfgDir := filepath.Join(dir, "etc")
	cfgPath := filepath.Join(cfgDir, "agent.json")
	cfg, err := Bootstrap(context.Background(), BootstrapOptions{Server: server, AuthKey: secret, ConfigPath: cfgPath, KeyRef: ref})
	if err != nil {
		t.Fatal(err)
	}
	ks, err := OpenKeyStore(cfg.KeyRef)
	if err != nil {
		t.Fatal(err)
	}
	defer CloseKeyStore(ks)
	if _, err := ks.DH(context.Background(), keystore.DHRequest{Purpose: keystore.ResponderES, Peer: ks.PublicKey()}); !errors.Is(err, keystore.ErrRefused) {
		t.Fatalf("hardware key store %T answers responder-es: %v", ks, err)
	}
	if ne, err := NonExtractable(ks); err != nil || !ne {
		t.Fatalf("non-extractable = %v, %v", ne, err)
	}

	// Up, through a stand-in gateway that knows the token's public key.
	gw := newGatewayStandIn(t, ks, cfg.Address.Addr())
	cfg.GatewayEndpoint, cfg.GatewayPublicKey = gw.addr.String(), gw.eng.PublicKey()
	cfg.AllowedIPs = []netip.Prefix{netip.MustParsePrefix("100.127.0.0/16")}
	if err := cfg.Save(cfgPath); err != nil {
		t.Fatal(err)
	}
	tn, err := Up(context.Background(), cfg, UpOptions{Userspace: true, Logger: quiet, HTTPListen: "127.0.0.1:0", StatusPath: cfgPath + ".status"})
	if err != nil {
		t.Fatal(err)
	}
	defer tn.Close()
	pu, _ := url.Parse("http://" + tn.HTTPProxyAddr().String())
	hc := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(pu)}}
	if body := get(t, hc, "http://100.127.100.127/"); !strings.HasPrefix(body, "hello "+cfg.Address.Addr().String()) {
		t.Fatalf("through the tunnel with a token key: %q", body)
	}
	// No private key in any file the agent wrote: the only 32-byte base64
	// values there may be the two public keys.
	known := map[string]bool{ks.PublicKey().String(): true, gw.eng.PublicKey().String(): true}
	filepath.Walk(cfgDir, func(path string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() {
			return err
		}
		b, _ := os.ReadFile(path)
		for _, f := range bytes.FieldsFunc(b, func(r rune) bool { return strings.ContainsRune("\" ,:\n{}[]", r) }) {
			if raw, err := base64.StdEncoding.DecodeString(string(f)); err == nil && len(raw) == 32 && !known[string(f)] {
				t.Errorf("%s holds an unknown 32-byte secret %q", path, f)
			}
		}
		return nil
	})
}

// Rotation by slot: with the key on a PKCS#11 token, a new object is made
// on the token, announced and switched to under traffic; then the old
// object is deleted and the config names the new one.
func TestRotateBySlot(t *testing.T) {
	tokCfg := softhsmtest.NewToken(t, "slots")
	dir := t.TempDir()
	pinFile := filepath.Join(dir, "pin")
	os.WriteFile(pinFile, []byte(softhsmtest.PIN), 0o600)
	ref := "pkcs11:token=" + url.PathEscape(tokCfg.Token) + ";object=wg?module-path=" + tokCfg.Module + "&pin-source=" + pinFile

	p := newPlatform(t)
	_, secret, _ := p.svc.CreateAuthKey(context.Background(), controlplane.System, controlplane.AuthKeySpec{MaxUses: 1})
	cfgPath := filepath.Join(dir, "agent.json")
	cfg, err := Bootstrap(context.Background(), BootstrapOptions{Server: p.api, AuthKey: secret, ConfigPath: cfgPath, KeyRef: ref})
	if err != nil {
		t.Fatal(err)
	}
	tn, err := Up(context.Background(), cfg, UpOptions{Userspace: true, Logger: quiet, ConfigPath: cfgPath})
	if err != nil {
		t.Fatal(err)
	}
	defer tn.Close()
	ping := pinger(t, tn)
	deadline := time.Now().Add(10 * time.Second)
	for !ping(0) {
		if time.Now().After(deadline) {
			t.Fatal("no answer before rotation")
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	res, err := tn.Rotate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for seq := 1; seq <= 20; seq++ {
		if !ping(seq) {
			t.Fatalf("query %d after the rotation unanswered", seq)
		}
	}
	saved, err := LoadConfig(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(saved.KeyRef, "object=wg.1") {
		t.Fatalf("config key reference %q does not name the new slot", saved.KeyRef)
	}
	tok, err := pkcs11store.OpenToken(tokCfg)
	if err != nil {
		t.Fatal(err)
	}
	defer tok.Close()
	if _, err := tok.Open("wg"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("old slot still on the token: %v", err)
	}
	k, err := tok.Open("wg.1")
	if err != nil || k.PublicKey().String() != res.NewKey {
		t.Fatalf("new slot: %v", err)
	}
	sim, _ := p.svc.View().SIM(context.Background(), cfg.SIMID)
	if sim.PublicKey.String() != res.NewKey {
		t.Fatalf("SIM key %s, want %s", sim.PublicKey, res.NewKey)
	}
	t.Logf("rotated by slot in %v", res.Switched)
}
