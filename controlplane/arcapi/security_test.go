// SPDX-License-Identifier: Apache-2.0

package arcapi_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wirefleet/wirefleet/controlplane"
	"github.com/wirefleet/wirefleet/controlplane/arcapi"
	"github.com/wirefleet/wirefleet/controlplane/store/sqlitestore"
	"github.com/wirefleet/wirefleet/fleet"
	"github.com/wirefleet/wirefleet/internal/ratelimit"
	"github.com/wirefleet/wirefleet/wgkey"
)

var testSecret = []byte("0123456789abcdef0123456789abcdef")

func arcServer(t *testing.T, o arcapi.Config) (*controlplane.Service, string) {
	t.Helper()
	st, err := sqlitestore.Open(context.Background(), filepath.Join(t.TempDir(), "fleet.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	svc := controlplane.New(st, controlplane.Config{Endpoint: "127.0.0.1:51820", Logger: o.Logger})
	srv := httptest.NewServer(arcapi.New(svc, o))
	t.Cleanup(srv.Close)
	return svc, srv.URL
}

// raw makes one Arc call and returns the status and body.
func raw(t *testing.T, base, method, path, apiKey, token, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, base+"/v1"+path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if apiKey != "" {
		req.Header.Set("X-Soracom-API-Key", apiKey)
		req.Header.Set("X-Soracom-Token", token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// login runs /v1/auth; it returns the status and the API key and token.
func login(t *testing.T, base, keyID, secret string) (int, *arcClient) {
	t.Helper()
	b, _ := json.Marshal(map[string]any{"authKeyId": arcapi.KeyIDPrefix + keyID, "authKey": arcapi.SecretPrefix + secret, "tokenTimeoutSeconds": 300})
	c := &arcClient{t: t, base: base}
	var auth struct{ APIKey, Token string }
	code := c.call("POST", "/auth", string(b), &auth)
	c.apiKey, c.token = auth.APIKey, auth.Token
	return code, c
}

func newKey(t *testing.T, svc *controlplane.Service, group string, maxUses int) (fleet.AuthKey, string) {
	t.Helper()
	k, secret, err := svc.CreateAuthKey(context.Background(), controlplane.System, controlplane.AuthKeySpec{GroupID: group, MaxUses: maxUses})
	if err != nil {
		t.Fatal(err)
	}
	return k, secret
}

// TestTokenNotForgeableFromDatabase: whoever holds a database dump knows
// every auth key's stored hash. A token MACed with that hash (the former
// construction), or with the hash as the secret, is refused; only the
// installation's token secret makes valid tokens.
func TestTokenNotForgeableFromDatabase(t *testing.T) {
	svc, base := arcServer(t, arcapi.Config{TokenSecret: testSecret})
	k, secret := newKey(t, svc, "", 0)
	code, c := login(t, base, k.ID, secret)
	if code != 200 {
		t.Fatalf("auth: %d", code)
	}
	var vs virtualSIM
	if code := c.call("POST", "/sims", `{}`, &vs); code != 201 {
		t.Fatalf("create with a genuine token: %d", code)
	}
	stored, err := svc.View().AuthKey(context.Background(), k.ID)
	if err != nil {
		t.Fatal(err)
	}
	payload := k.ID + "." + strconv.FormatInt(time.Now().Add(time.Hour).Unix(), 10)
	forge := func(key []byte, prefix string) string {
		m := hmac.New(sha256.New, key)
		m.Write([]byte(prefix + payload))
		return base64.RawURLEncoding.EncodeToString([]byte(payload)) + "." + hex.EncodeToString(m.Sum(nil))
	}
	for name, tok := range map[string]string{
		"hash-keyed (former construction)": forge([]byte("wirefleet arc session\x00"+stored.Hash), ""),
		"hash as secret":                   forge([]byte(stored.Hash), "wirefleet arc session v2\x00"),
	} {
		if code, _ := raw(t, base, "GET", "/sims/"+vs.SimID, "api-"+k.ID, tok, ""); code != 401 {
			t.Fatalf("token forged from the database (%s): %d, want 401", name, code)
		}
	}
	// A genuine token of another installation (another secret) is refused.
	_, base2 := arcServer(t, arcapi.Config{TokenSecret: []byte(strings.Repeat("z", 32))})
	if code, _ := raw(t, base2, "GET", "/sims/"+vs.SimID, c.apiKey, c.token, ""); code != 401 {
		t.Fatalf("token of another secret: %d", code)
	}
	// The key id is bound: the token does not work with another API key.
	k2, _ := newKey(t, svc, "", 0)
	if code, _ := raw(t, base, "GET", "/sims/"+vs.SimID, "api-"+k2.ID, c.token, ""); code != 401 {
		t.Fatalf("token under another key id: %d", code)
	}
	// The expiry is bound: changing it breaks the MAC.
	p, mac, _ := strings.Cut(c.token, ".")
	rp, _ := base64.RawURLEncoding.DecodeString(p)
	i := strings.LastIndexByte(string(rp), '.')
	longer := base64.RawURLEncoding.EncodeToString([]byte(string(rp[:i]) + ".99999999999"))
	if code, _ := raw(t, base, "GET", "/sims/"+vs.SimID, c.apiKey, longer+"."+mac, ""); code != 401 {
		t.Fatalf("token with extended expiry: %d", code)
	}
}

func TestLoadOrCreateTokenSecret(t *testing.T) {
	path := filepath.Join(t.TempDir(), arcapi.TokenSecretFile)
	a, err := arcapi.LoadOrCreateTokenSecret(path)
	if err != nil || len(a) < arcapi.MinTokenSecret {
		t.Fatalf("create: %d bytes, %v", len(a), err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v %v, want 0600", fi.Mode().Perm(), err)
	}
	b, err := arcapi.LoadOrCreateTokenSecret(path)
	if err != nil || string(a) != string(b) {
		t.Fatalf("reload gave another secret (%v)", err)
	}
	os.Chmod(path, 0o644)
	if _, err := arcapi.LoadOrCreateTokenSecret(path); err == nil {
		t.Fatal("a world-readable secret file was accepted")
	}
	short := filepath.Join(t.TempDir(), "short.key")
	os.WriteFile(short, []byte("short"), 0o600)
	if _, err := arcapi.LoadOrCreateTokenSecret(short); err == nil {
		t.Fatal("a short secret was accepted")
	}
}

// TestArcScopedToCreatingKey: an Arc session reaches only the SIMs
// bootstrapped with its own auth key.
func TestArcScopedToCreatingKey(t *testing.T) {
	ctx := context.Background()
	svc, base := arcServer(t, arcapi.Config{TokenSecret: testSecret})
	g, err := svc.CreateGroup(ctx, controlplane.System, "fleet", fleet.GroupSettings{})
	if err != nil {
		t.Fatal(err)
	}
	k1, s1 := newKey(t, svc, g.ID, 0)
	k2, s2 := newKey(t, svc, g.ID, 0)
	_, c1 := login(t, base, k1.ID, s1)
	_, c2 := login(t, base, k2.ID, s2)
	var mine virtualSIM
	if code := c1.call("POST", "/sims", `{}`, &mine); code != 201 {
		t.Fatalf("create: %d", code)
	}
	opSIM, _, err := svc.CreateSIM(ctx, controlplane.System, controlplane.SIMSpec{GroupID: g.ID, GenerateKey: true})
	if err != nil {
		t.Fatal(err)
	}
	np, _ := wgkey.NewPrivate()
	rekey := `{"arcClientPeerPublicKey":"` + np.Public().String() + `"}`
	denied := func(c *arcClient, simID, what string) {
		t.Helper()
		for _, call := range [][3]string{{"GET", "/sims/" + simID, ""}, {"POST", "/sims/" + simID + "/sessions/arc", "{}"}, {"PUT", "/sims/" + simID + "/credentials/arc", rekey}} {
			if code := c.call(call[0], call[1], call[2], nil); code != 404 {
				t.Fatalf("%s: %s %s: %d, want 404", what, call[0], call[1], code)
			}
		}
		sim, err := svc.View().SIM(ctx, simID)
		if err != nil || sim.PublicKey == np.Public() {
			t.Fatalf("%s: SIM re-keyed by a foreign key: %+v %v", what, sim, err)
		}
	}
	denied(c2, mine.SimID, "another key of the same group")
	denied(c1, opSIM.ID, "an operator's SIM of the key's group")

	// A key without a group cannot reach ungrouped SIMs it did not create.
	k3, s3 := newKey(t, svc, "", 0)
	_, c3 := login(t, base, k3.ID, s3)
	ungrouped, _, err := svc.CreateSIM(ctx, controlplane.System, controlplane.SIMSpec{GenerateKey: true})
	if err != nil {
		t.Fatal(err)
	}
	denied(c3, ungrouped.ID, "an ungrouped operator SIM")

	// The owner still can (proving it holds the SIM's key).
	mineKey, err := wgkey.ParsePrivate(mine.Profiles[mine.SimID].ArcClientPeerPrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	if code := c1.call("PUT", "/sims/"+mine.SimID+"/credentials/arc", rekeyBody(t, svc, mineKey, mine.SimID, np.Public()), nil); code != 200 {
		t.Fatalf("owner rekey: %d", code)
	}
	// But not once the operator suspended the SIM: re-keying would let the
	// device replace the key the operator cut off.
	if _, err := svc.SetSIMStatus(ctx, controlplane.System, mine.SimID, fleet.StatusSuspended); err != nil {
		t.Fatal(err)
	}
	other, _ := wgkey.NewPrivate()
	if code := c1.call("PUT", "/sims/"+mine.SimID+"/credentials/arc", rekeyBody(t, svc, np, mine.SimID, other.Public()), nil); code != 409 {
		t.Fatalf("rekey of a suspended SIM: %d, want 409", code)
	}
	if sim, _ := svc.View().SIM(ctx, mine.SimID); sim.PublicKey != np.Public() {
		t.Fatalf("suspended SIM was re-keyed to %s", sim.PublicKey)
	}
}

// TestArcExhaustedKeyOpensNoSession: a one-time key that has bootstrapped
// its SIM no longer authenticates /v1/auth (its earlier token still reads
// its own SIM).
func TestArcExhaustedKeyOpensNoSession(t *testing.T) {
	svc, base := arcServer(t, arcapi.Config{TokenSecret: testSecret})
	k, secret := newKey(t, svc, "", 1)
	code, c := login(t, base, k.ID, secret)
	if code != 200 {
		t.Fatalf("auth: %d", code)
	}
	var vs virtualSIM
	if code := c.call("POST", "/sims", `{}`, &vs); code != 201 {
		t.Fatalf("create: %d", code)
	}
	if code, _ := login(t, base, k.ID, secret); code != 401 {
		t.Fatalf("auth with a spent one-time key: %d, want 401", code)
	}
	if code := c.call("GET", "/sims/"+vs.SimID, "", nil); code != 200 {
		t.Fatalf("own SIM with the earlier token: %d", code)
	}
}

// TestArcUniformDeny: without valid credentials, an unknown, a revoked and
// an expired auth key all get the same answer, at /v1/auth and with a
// token.
func TestArcUniformDeny(t *testing.T) {
	ctx := context.Background()
	svc, base := arcServer(t, arcapi.Config{TokenSecret: testSecret})
	revoked, rs := newKey(t, svc, "", 0)
	if err := svc.RevokeAuthKey(ctx, controlplane.System, revoked.ID); err != nil {
		t.Fatal(err)
	}
	live, ls := newKey(t, svc, "", 0)
	// A garbage token that names the key in its payload.
	tok := func(id string) string {
		return base64.RawURLEncoding.EncodeToString([]byte(id+"."+strconv.FormatInt(time.Now().Add(time.Hour).Unix(), 10))) + "." + strings.Repeat("0", 64)
	}
	var answers []string
	for _, id := range []string{"ak_unknown", revoked.ID, live.ID} {
		code, body := raw(t, base, "GET", "/sims/sim_x", "api-"+id, tok(id), "")
		answers = append(answers, strconv.Itoa(code)+" "+body)
	}
	for _, a := range answers[1:] {
		if a != answers[0] {
			t.Fatalf("token denials differ:\n%s", strings.Join(answers, "\n"))
		}
	}
	if !strings.HasPrefix(answers[0], "401 ") {
		t.Fatalf("token denial: %s", answers[0])
	}
	answers = nil
	for _, cred := range [][2]string{{"ak_unknown", "x"}, {revoked.ID, rs}, {revoked.ID, "wrong"}, {live.ID, "wrong"}} {
		b, _ := json.Marshal(map[string]any{"authKeyId": arcapi.KeyIDPrefix + cred[0], "authKey": arcapi.SecretPrefix + cred[1]})
		code, body := raw(t, base, "POST", "/auth", "", "", string(b))
		answers = append(answers, strconv.Itoa(code)+" "+body)
	}
	for _, a := range answers[1:] {
		if a != answers[0] {
			t.Fatalf("auth denials differ:\n%s", strings.Join(answers, "\n"))
		}
	}
	if code, _ := login(t, base, live.ID, ls); code != 200 {
		t.Fatalf("live key: %d", code)
	}
}

// TestArcRateLimited: /v1/auth and the attested bootstrap answer 429 with
// Retry-After once a source spends its burst.
func TestArcRateLimited(t *testing.T) {
	_, base := arcServer(t, arcapi.Config{TokenSecret: testSecret, RateLimit: ratelimit.Config{PerSecond: 0.01, Burst: 2}})
	check := func(path, body string, first int) {
		t.Helper()
		for i := 0; i < 2; i++ {
			if code, b := raw(t, base, "POST", path, "", "", body); code != first {
				t.Fatalf("%s attempt %d: %d %s, want %d", path, i, code, b, first)
			}
		}
		req, _ := http.NewRequest("POST", base+"/v1"+path, strings.NewReader(body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var e fleet.Error
		json.NewDecoder(resp.Body).Decode(&e)
		if resp.StatusCode != 429 || resp.Header.Get("Retry-After") == "" || e.Code != fleet.CodeRateLimited {
			t.Fatalf("%s beyond the burst: %d Retry-After=%q %+v", path, resp.StatusCode, resp.Header.Get("Retry-After"), e)
		}
	}
	check("/auth", `{"authKeyId":"keyId-ak_x","authKey":"secret-y"}`, 401)
	// One bucket per source across the limited routes: this source is
	// already out of tokens.
	if code, _ := raw(t, base, "POST", "/provisioning/soracom/arc/bootstrap", "", "", "{}"); code != 429 {
		t.Fatalf("attested bootstrap from a limited source: %d", code)
	}
}
