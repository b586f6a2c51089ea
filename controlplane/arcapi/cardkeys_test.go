// SPDX-License-Identifier: Apache-2.0

package arcapi_test

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wirefleet/wirefleet/controlplane"
	"github.com/wirefleet/wirefleet/controlplane/arcapi"
	"github.com/wirefleet/wirefleet/controlplane/store/sqlitestore"
	"github.com/wirefleet/wirefleet/internal/milenage"
	"github.com/wirefleet/wirefleet/internal/ratelimit"
	"github.com/wirefleet/wirefleet/internal/seal"
)

const cardCSV = "ICCID,IMSI,Ki,OPc\n898110000000000001,001010000000001,465b5ce8b199b49faa5f0a2ee238a6bc,cd63cb71954a9f4e48a5994e37a02baf\n"

func cardServer(t *testing.T) string {
	t.Helper()
	ctx := context.Background()
	st, err := sqlitestore.Open(ctx, filepath.Join(t.TempDir(), "fleet.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	key, _ := seal.GenerateKey()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	svc := controlplane.New(st, controlplane.Config{Endpoint: "127.0.0.1:51820", Logger: quiet, Secrets: key})
	if _, err := svc.ImportSIMCards(ctx, controlplane.System, strings.NewReader(cardCSV), ""); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(arcapi.New(svc, arcapi.Config{TokenSecret: testSecret, Logger: quiet, RateLimit: ratelimit.Config{PerSecond: -1}}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// Krypton's keys API with a software card: a challenge the card checks,
// its RES verifying the key; a wrong RES refused (401), malformed base64
// (400), an unknown IMSI (404), a flood of challenges for one IMSI (429).
func TestCardKeysAPI(t *testing.T) {
	base := cardServer(t)
	ki, _ := hex.DecodeString("465b5ce8b199b49faa5f0a2ee238a6bc")
	opc, _ := hex.DecodeString("cd63cb71954a9f4e48a5994e37a02baf")
	card, _ := milenage.New(ki, opc)
	challenge := func() (string, []byte, []byte) {
		code, body := raw(t, base, "POST", "/keys", "", "", `{"imsi":"001010000000001"}`)
		if code != 200 {
			t.Fatalf("challenge: %d %s", code, body)
		}
		var r struct{ KeyID, Rand, Autn string }
		json.Unmarshal([]byte(body), &r)
		rnd, _ := base64.StdEncoding.DecodeString(r.Rand)
		autn, _ := base64.StdEncoding.DecodeString(r.Autn)
		return r.KeyID, rnd, autn
	}
	id, rnd, autn := challenge()
	a, err := card.Authenticate(rnd, autn)
	if err != nil {
		t.Fatalf("the card refused the network: %v", err)
	}
	res := base64.StdEncoding.EncodeToString(a.RES)
	if code, body := raw(t, base, "POST", "/keys/"+id+"/verify", "", "", fmt.Sprintf(`{"res":%q}`, res)); code != 200 {
		t.Fatalf("verify: %d %s", code, body)
	}
	// A signed Arc bootstrap with the verified key: the card's virtual SIM
	// and its session; the same request again is a replay.
	if strings.ContainsAny(id, "_/?#%") {
		t.Fatalf("keyId %q: Krypton's key cache splits on '_', and it goes in a path", id)
	}
	body := fmt.Sprintf(`{"keyId":%q}`, id)
	ts := strconv.FormatInt(time.Now().UnixMilli(), 10)
	sum := sha256.Sum256(append(append([]byte(body), ts...), a.CK...))
	signedAt := func(path, ts, sig string) (int, string) {
		req, _ := http.NewRequest("POST", base+path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Soracom-Timestamp", ts)
		req.Header.Set("X-Soracom-Digest-Algorithm", "SHA-256")
		if sig != "" {
			req.Header.Set("X-Soracom-Signature", sig)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	signed := func(sig string) (int, string) { return signedAt("/v1/provisioning/soracom/arc/bootstrap", ts, sig) }
	// Krypton's client takes any status up to 400 as success: a refusal
	// is never 400.
	if code, b := signed("%%%"); code <= 400 {
		t.Fatalf("a malformed signature: %d %s", code, b)
	}
	if code, b := signedAt("/v1/provisioning/soracom/air/userdata", ts, ""); code != 401 {
		t.Fatalf("no signature: %d %s", code, b)
	}
	if code, b := signed(base64.StdEncoding.EncodeToString(make([]byte, 32))); code != 401 {
		t.Fatalf("a forged signature: %d %s", code, b)
	}
	code, b := signed(base64.StdEncoding.EncodeToString(sum[:]))
	if code != 200 || !strings.Contains(b, "arcClientPeerPrivateKey") || !strings.Contains(b, "arcClientPeerIpAddress") {
		t.Fatalf("signed bootstrap: %d %s", code, b)
	}
	if code, b := signed(base64.StdEncoding.EncodeToString(sum[:])); code != 401 || !strings.Contains(b, "replay") {
		t.Fatalf("a replay: %d %s", code, b)
	}
	// The key signs later calls too: the card's subscriber, its user data.
	sign := func(ts string) string {
		s := sha256.Sum256(append(append([]byte(body), ts...), a.CK...))
		return base64.StdEncoding.EncodeToString(s[:])
	}
	ts = strconv.FormatInt(time.Now().UnixMilli()+1, 10)
	if code, b := signedAt("/v1/provisioning/soracom/air/subscriber_metadata", ts, sign(ts)); code != 200 || !strings.Contains(b, `"imsi":"001010000000001"`) || !strings.Contains(b, `"simId":"sim`) {
		t.Fatalf("subscriber_metadata: %d %s", code, b)
	}
	ts = strconv.FormatInt(time.Now().UnixMilli()+2, 10)
	if code, b := signedAt("/v1/provisioning/soracom/air/userdata", ts, sign(ts)); code != 200 {
		t.Fatalf("userdata: %d %s", code, b)
	}

	id, _, _ = challenge()
	if code, body := raw(t, base, "POST", "/keys/"+id+"/verify", "", "", `{"res":"AAAAAAAAAAA="}`); code != 401 || !strings.Contains(body, "unauthorized") {
		t.Fatalf("wrong RES: %d %s", code, body)
	}
	if code, body := raw(t, base, "POST", "/keys/"+id+"/verify", "", "", `{"res":"%%%"}`); code != 400 {
		t.Fatalf("bad base64: %d %s", code, body)
	}
	if code, body := raw(t, base, "POST", "/keys", "", "", `{"imsi":"001019999999999"}`); code != 404 {
		t.Fatalf("unknown IMSI: %d %s", code, body)
	}
	if code, body := raw(t, base, "POST", "/keys", "", "", `{"imsi":"001010000000001","rand":"AAAA","auts":"AAAA"}`); code != 400 {
		t.Fatalf("short rand/auts: %d %s", code, body)
	}
	limited := false
	for i := 0; i < 20 && !limited; i++ {
		code, _ := raw(t, base, "POST", "/keys", "", "", `{"imsi":"001010000000001"}`)
		limited = code == 429
	}
	if !limited {
		t.Fatal("20 challenges for one IMSI at once were all answered")
	}
}
