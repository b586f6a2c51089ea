// SPDX-License-Identifier: Apache-2.0

package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wirefleet/wirefleet/keyproof"
	"github.com/wirefleet/wirefleet/keystore"
	"github.com/wirefleet/wirefleet/wgkey"
)

// Key-proof challenges are keyed by a secret derived from the settings key,
// not drawn per process: a challenge issued before a restart (or by
// another node sharing the key file) is answered after it.
func TestKeyProofSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	env := map[string]string{"WIREFLEET_API_LISTEN": "127.0.0.1:0"}
	base, _, _, stop := start(t, dir, env)
	b, _ := os.ReadFile(filepath.Join(dir, "admin.token"))
	token := strings.TrimSpace(string(b))
	post := func(base, path, body, auth string, out any) int {
		t.Helper()
		req, _ := http.NewRequest("POST", base+path, strings.NewReader(body))
		if auth != "" {
			req.Header.Set("Authorization", "Bearer "+auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if out != nil {
			json.NewDecoder(resp.Body).Decode(out)
		}
		return resp.StatusCode
	}
	var ak struct{ Secret string }
	if code := post(base, "/api/v1/authkeys", `{"maxUses": 5}`, token, &ak); code != 201 {
		t.Fatalf("auth key: %d", code)
	}
	ks, _ := keystore.GenerateMemory()
	first, _ := json.Marshal(map[string]any{"authKey": ak.Secret, "publicKey": ks.PublicKey().String()})
	if code := post(base, "/api/v1/bootstrap", string(first), "", nil); code != 200 {
		t.Fatalf("bootstrap: %d", code)
	}
	var ch struct {
		Nonce     []byte       `json:"nonce"`
		ServerKey wgkey.Public `json:"serverKey"`
	}
	if code := post(base, "/api/v1/key-proof/challenge", ``, "", &ch); code != 201 {
		t.Fatalf("challenge: %d", code)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	base, _, _, stop = start(t, dir, env)
	defer stop()
	proof, err := keyproof.Answer(context.Background(), ks, keyproof.Statement{Purpose: keyproof.Bootstrap, Nonce: ch.Nonce, ServerKey: ch.ServerKey})
	if err != nil {
		t.Fatal(err)
	}
	again, _ := json.Marshal(map[string]any{"authKey": ak.Secret, "publicKey": ks.PublicKey().String(),
		"keyProof": map[string]string{"nonce": base64.StdEncoding.EncodeToString(ch.Nonce), "proof": base64.StdEncoding.EncodeToString(proof)}})
	if code := post(base, "/api/v1/bootstrap", string(again), "", nil); code != 200 {
		t.Fatalf("re-bootstrap after a restart with a challenge from before it: %d", code)
	}
}
