// SPDX-License-Identifier: Apache-2.0

package api_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wirefleet/wirefleet/attest"
	"github.com/wirefleet/wirefleet/controlplane"
	"github.com/wirefleet/wirefleet/controlplane/api"
	"github.com/wirefleet/wirefleet/controlplane/store/sqlitestore"
	"github.com/wirefleet/wirefleet/fleet"
	"github.com/wirefleet/wirefleet/internal/ratelimit"
	"github.com/wirefleet/wirefleet/wgkey"
)

type identity struct {
	signer crypto.Signer
	id     attest.PublicKey
}

func newIdentity(t *testing.T) identity {
	t.Helper()
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	id, err := attest.FromCrypto(priv.Public())
	if err != nil {
		t.Fatal(err)
	}
	return identity{priv, id}
}

func newP256Identity(t *testing.T) identity {
	t.Helper()
	priv, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	id, err := attest.FromCrypto(priv.Public())
	if err != nil {
		t.Fatal(err)
	}
	return identity{priv, id}
}

// answer is the JSON body of POST /api/v1/attest/bootstrap answering nonce
// (base64) for the WireGuard key wg (base64).
func (d identity) answer(t *testing.T, nonce, wg string) map[string]any {
	t.Helper()
	n, err := base64.StdEncoding.DecodeString(nonce)
	if err != nil {
		t.Fatal(err)
	}
	k, err := wgkey.ParsePublic(wg)
	if err != nil {
		t.Fatal(err)
	}
	msg, err := attest.Message(n, d.id, k)
	if err != nil {
		t.Fatal(err)
	}
	sig, err := attest.Sign(d.signer, msg)
	if err != nil {
		t.Fatal(err)
	}
	return map[string]any{"identityKey": d.id.String(), "publicKey": wg, "nonce": nonce, "signature": base64.StdEncoding.EncodeToString(sig)}
}

func (e *env) challenge() string {
	e.t.Helper()
	var c struct{ Nonce string }
	e.must("POST", "/api/v1/attest/challenge", "", nil, 201, &c)
	return c.Nonce
}

// Over HTTP: manufacturing registers keys (PEM, hex, canonical), a device
// answers a challenge and gets its SIM; every refused proof gets the same
// 401 body, so a prober cannot tell an unknown key from a revoked one, a
// spent challenge or a bad signature.
func TestAttestOverHTTP(t *testing.T) {
	e := newEnv(t)
	var g fleet.Group
	e.must("POST", "/api/v1/groups", fleet.RoleOperator, map[string]any{"name": "field"}, 201, &g)
	ed, p := newIdentity(t), newP256Identity(t)
	var b fleet.IdentityBatch
	e.must("POST", "/api/v1/identity-batches", fleet.RoleOperator, map[string]any{"name": "lot 9", "groupId": g.ID,
		"publicKeys": []string{ed.id.PEM(), hex.EncodeToString(p.id.Bytes())}}, 201, &b)
	if b.Count != 2 || b.GroupID != g.ID {
		t.Fatalf("batch %+v", b)
	}
	wg := pubKey(t)
	var out struct {
		SIM     fleet.SIM
		Session fleet.Session
	}
	e.must("POST", "/api/v1/attest/bootstrap", "", ed.answer(t, e.challenge(), wg), 200, &out)
	if out.SIM.GroupID != g.ID || out.SIM.PublicKey.String() != wg || out.Session.Endpoint != "127.0.0.1:51820" {
		t.Fatalf("bootstrap answer %+v", out)
	}
	// P-256 with a raw r‖s signature (the PKCS#11 form).
	nonce := e.challenge()
	body := p.answer(t, nonce, pubKey(t))
	der, _ := base64.StdEncoding.DecodeString(body["signature"].(string))
	body["signature"] = base64.StdEncoding.EncodeToString(rawSig(t, der))
	e.must("POST", "/api/v1/attest/bootstrap", "", body, 200, nil)

	// Refusals, all alike.
	stranger := newIdentity(t)
	revoked := newIdentity(t)
	e.must("POST", "/api/v1/identity-batches/"+b.ID+"/identities", fleet.RoleOperator, map[string]any{"publicKeys": []string{revoked.id.String()}}, 201, nil)
	e.must("DELETE", "/api/v1/identities/"+revoked.id.Fingerprint(), fleet.RoleOperator, nil, 204, nil)
	replay := ed.answer(t, e.challenge(), pubKey(t))
	forged := ed.answer(t, e.challenge(), wg)
	forged["identityKey"] = p.id.String()
	spent := newIdentity(t)
	e.must("POST", "/api/v1/identity-batches/"+b.ID+"/identities", fleet.RoleOperator, map[string]any{"publicKeys": []string{spent.id.String()}}, 201, nil)
	spentBody := spent.answer(t, e.challenge(), pubKey(t))
	e.must("POST", "/api/v1/attest/bootstrap", "", spentBody, 200, nil)
	refusals := map[string]map[string]any{
		"unknown identity":           stranger.answer(t, e.challenge(), pubKey(t)),
		"revoked identity":           revoked.answer(t, e.challenge(), pubKey(t)),
		"used identity, another key": replay,
		"forged signature":           forged,
		"replayed proof":             spentBody,
		"nonce never issued":         ed.answer(t, base64.StdEncoding.EncodeToString(make([]byte, 32)), wg),
	}
	var first string
	for name, body := range refusals {
		code, resp := e.do("POST", "/api/v1/attest/bootstrap", "", body)
		if code != 401 {
			t.Fatalf("%s: %d %s", name, code, resp)
		}
		if first == "" {
			first = string(resp)
		} else if string(resp) != first {
			t.Fatalf("%s: answer %s differs from %s", name, resp, first)
		}
	}
	// The operator sees what happened.
	var ids struct{ Items []fleet.Identity }
	e.must("GET", "/api/v1/identities?batchId="+b.ID+"&status=used", fleet.RoleViewer, nil, 200, &ids)
	if len(ids.Items) != 3 {
		t.Fatalf("%d used identities, want 3", len(ids.Items))
	}
	e.must("DELETE", "/api/v1/identity-batches/"+b.ID, fleet.RoleOperator, nil, 204, nil)
	e.must("GET", "/api/v1/identity-batches/"+b.ID, fleet.RoleViewer, nil, 200, &b)
	if !b.Revoked {
		t.Fatal("batch not revoked")
	}
	if !strings.Contains(e.logs.String(), "attestation refused") {
		t.Fatal("refusals not logged")
	}
	// Nonces and signatures never reach the log.
	for _, body := range refusals {
		if strings.Contains(e.logs.String(), body["signature"].(string)) || strings.Contains(e.logs.String(), body["nonce"].(string)) {
			t.Fatal("a nonce or signature is in the log")
		}
	}
}

func rawSig(t *testing.T, der []byte) []byte {
	t.Helper()
	var sig struct{ R, S *bigInt }
	if _, err := asn1Unmarshal(der, &sig); err != nil {
		t.Fatal(err)
	}
	out := make([]byte, 64)
	sig.R.FillBytes(out[:32])
	sig.S.FillBytes(out[32:])
	return out
}

func TestIdentityBadInput(t *testing.T) {
	e := newEnv(t)
	good := newIdentity(t)
	op := fleet.RoleOperator
	for _, c := range []struct {
		name, method, path string
		body               any
		status             int
		code, field        string
	}{
		{"no name", "POST", "/api/v1/identity-batches", map[string]any{"publicKeys": []string{good.id.String()}}, 400, fleet.CodeRequired, "name"},
		{"bad key", "POST", "/api/v1/identity-batches", map[string]any{"name": "l", "publicKeys": []string{good.id.String(), "nope"}}, 400, fleet.CodeInvalid, "publicKeys[1]"},
		{"small-order key", "POST", "/api/v1/identity-batches", map[string]any{"name": "l", "publicKeys": []string{strings.Repeat("00", 32)}}, 400, fleet.CodeInvalid, "publicKeys[0]"},
		{"duplicate key", "POST", "/api/v1/identity-batches", map[string]any{"name": "l", "publicKeys": []string{good.id.String(), good.id.PEM()}}, 400, fleet.CodeInvalid, "publicKeys[1]"},
		{"keys not a list", "POST", "/api/v1/identity-batches", map[string]any{"name": "l", "publicKeys": "x"}, 400, fleet.CodeInvalid, "publicKeys"},
		{"unknown field", "POST", "/api/v1/identity-batches", map[string]any{"name": "l", "keys": []string{}}, 400, fleet.CodeUnknownField, "keys"},
		{"missing group", "POST", "/api/v1/identity-batches", map[string]any{"name": "l", "groupId": "grp_x", "publicKeys": []string{good.id.String()}}, 404, fleet.CodeNotFound, "groupId"},
		{"add to missing batch", "POST", "/api/v1/identity-batches/ib_x/identities", map[string]any{"publicKeys": []string{good.id.String()}}, 404, fleet.CodeNotFound, "id"},
		{"add nothing", "POST", "/api/v1/identity-batches/ib_x/identities", map[string]any{"publicKeys": []string{}}, 404, fleet.CodeNotFound, "id"},
		{"bad status", "GET", "/api/v1/identities?status=lost", nil, 400, fleet.CodeInvalid, "status"},
		{"missing identity", "GET", "/api/v1/identities/" + good.id.Fingerprint(), nil, 404, fleet.CodeNotFound, "id"},
		{"revoke missing", "DELETE", "/api/v1/identities/abc", nil, 404, fleet.CodeNotFound, "id"},
		{"revoke missing batch", "DELETE", "/api/v1/identity-batches/ib_x", nil, 404, fleet.CodeNotFound, "id"},
		{"attest: no identity", "POST", "/api/v1/attest/bootstrap", map[string]any{"publicKey": pubKey(t), "nonce": "AA==", "signature": "AA=="}, 400, fleet.CodeRequired, "identityKey"},
		{"attest: bad identity", "POST", "/api/v1/attest/bootstrap", map[string]any{"identityKey": "x", "publicKey": pubKey(t)}, 400, fleet.CodeInvalid, "identityKey"},
		{"attest: bad wg key", "POST", "/api/v1/attest/bootstrap", map[string]any{"identityKey": good.id.String(), "publicKey": "x"}, 400, fleet.CodeInvalid, "publicKey"},
		{"attest: no wg key", "POST", "/api/v1/attest/bootstrap", map[string]any{"identityKey": good.id.String(), "nonce": base64.StdEncoding.EncodeToString(make([]byte, 32)), "signature": "AA=="}, 400, fleet.CodeRequired, "publicKey"},
		{"attest: no nonce", "POST", "/api/v1/attest/bootstrap", map[string]any{"identityKey": good.id.String(), "publicKey": pubKey(t)}, 400, fleet.CodeRequired, "nonce"},
		{"attest: bad nonce", "POST", "/api/v1/attest/bootstrap", map[string]any{"identityKey": good.id.String(), "publicKey": pubKey(t), "nonce": "!!", "signature": "AA=="}, 400, fleet.CodeInvalid, "nonce"},
		{"attest: short nonce", "POST", "/api/v1/attest/bootstrap", map[string]any{"identityKey": good.id.String(), "publicKey": pubKey(t), "nonce": "AAAA", "signature": "AA=="}, 400, fleet.CodeInvalid, "nonce"},
		{"attest: bad signature encoding", "POST", "/api/v1/attest/bootstrap", map[string]any{"identityKey": good.id.String(), "publicKey": pubKey(t), "nonce": base64.StdEncoding.EncodeToString(make([]byte, 32)), "signature": "@"}, 400, fleet.CodeInvalid, "signature"},
		{"attest: huge signature", "POST", "/api/v1/attest/bootstrap", map[string]any{"identityKey": good.id.String(), "publicKey": pubKey(t), "nonce": base64.StdEncoding.EncodeToString(make([]byte, 32)), "signature": base64.StdEncoding.EncodeToString(make([]byte, 500))}, 400, fleet.CodeInvalid, "signature"},
		{"attest: unknown field", "POST", "/api/v1/attest/bootstrap", map[string]any{"authKey": "x"}, 400, fleet.CodeUnknownField, "authKey"},
		{"attest: not JSON", "POST", "/api/v1/attest/bootstrap", "{", 400, fleet.CodeBadJSON, ""},
	} {
		role := op
		if strings.HasPrefix(c.path, "/api/v1/attest") {
			role = ""
		}
		got, b := e.do(c.method, c.path, role, c.body)
		var fe fleet.Error
		if err := json.Unmarshal(b, &fe); err != nil || got != c.status || fe.Code != c.code || fe.Field != c.field {
			t.Errorf("%s: got %d %s, want %d {code:%s field:%s}", c.name, got, b, c.status, c.code, c.field)
		}
	}
}

// The attestation routes need no token and are rate-limited per source
// like the auth-key bootstrap: challenges cannot be farmed.
func TestAttestRateLimited(t *testing.T) {
	ctx := context.Background()
	st, err := sqlitestore.Open(ctx, filepath.Join(t.TempDir(), "fleet.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	svc := controlplane.New(st, controlplane.Config{Endpoint: "127.0.0.1:51820", Logger: log})
	srv := httptest.NewServer(api.New(svc, api.Config{Logger: log, RateLimit: ratelimit.Config{PerSecond: 0.01, Burst: 3}}))
	t.Cleanup(srv.Close)
	codes := []int{}
	for _, path := range []string{"/api/v1/attest/challenge", "/api/v1/attest/challenge", "/api/v1/attest/bootstrap", "/api/v1/attest/challenge", "/api/v1/attest/bootstrap"} {
		resp, err := http.Post(srv.URL+path, "application/json", strings.NewReader("{}"))
		if err != nil {
			t.Fatal(err)
		}
		var e fleet.Error
		json.NewDecoder(resp.Body).Decode(&e)
		resp.Body.Close()
		codes = append(codes, resp.StatusCode)
		if resp.StatusCode == 429 && e.Code != fleet.CodeRateLimited {
			t.Fatalf("429 body %+v", e)
		}
	}
	want := []int{201, 201, 400, 429, 429}
	for i := range want {
		if codes[i] != want[i] {
			t.Fatalf("status codes %v, want %v", codes, want)
		}
	}
}
