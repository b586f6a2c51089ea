// SPDX-License-Identifier: Apache-2.0

package arcapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/wirefleet/wirefleet/controlplane"
	"github.com/wirefleet/wirefleet/controlplane/arcapi"
	"github.com/wirefleet/wirefleet/controlplane/store/sqlitestore"
	"github.com/wirefleet/wirefleet/fleet"
	"github.com/wirefleet/wirefleet/wgkey"
)

type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) { l.mu.Lock(); defer l.mu.Unlock(); return l.b.Write(p) }
func (l *logBuf) String() string              { l.mu.Lock(); defer l.mu.Unlock(); return l.b.String() }

// arcClient speaks to the server the way soratun does: /v1 paths, JSON,
// X-Soracom-API-Key and X-Soracom-Token headers.
type arcClient struct {
	t             *testing.T
	base          string
	apiKey, token string
}

func (c *arcClient) call(method, path, body string, out any) int {
	c.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, _ := http.NewRequest(method, c.base+"/v1"+path, rd)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Soracom-Lang", "en")
	if c.apiKey != "" {
		req.Header.Set("X-Soracom-Api-Key", c.apiKey)
		req.Header.Set("X-Soracom-Token", c.token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil && resp.StatusCode < 300 {
		if err := json.Unmarshal(b, out); err != nil {
			c.t.Fatalf("%s %s: %v: %s", method, path, err, b)
		}
	}
	return resp.StatusCode
}

type session struct {
	ArcServerEndpoint       string   `json:"arcServerEndpoint"`
	ArcServerPeerPublicKey  string   `json:"arcServerPeerPublicKey"`
	ArcClientPeerIPAddress  string   `json:"arcClientPeerIpAddress"`
	ArcClientPeerPublicKey  string   `json:"arcClientPeerPublicKey"`
	ArcAllowedIPs           []string `json:"arcAllowedIPs"`
	ArcClientPeerPrivateKey string   `json:"arcClientPeerPrivateKey"`
}

type virtualSIM struct {
	SimID      string  `json:"simId"`
	OperatorID string  `json:"operatorId"`
	Status     string  `json:"status"`
	ArcSession session `json:"arcSessionStatus"`
	Profiles   map[string]struct {
		ICCID                   string `json:"iccid"`
		PrimaryIMSI             string `json:"primaryImsi"`
		ArcClientPeerPublicKey  string `json:"arcClientPeerPublicKey"`
		ArcClientPeerPrivateKey string `json:"arcClientPeerPrivateKey"`
	} `json:"profiles"`
}

func TestArcFlow(t *testing.T) {
	ctx := context.Background()
	st, err := sqlitestore.Open(ctx, filepath.Join(t.TempDir(), "fleet.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	logs := &logBuf{}
	log := slog.New(slog.NewTextHandler(logs, nil))
	gw, _ := wgkey.NewPrivate()
	svc := controlplane.New(st, controlplane.Config{Endpoint: "127.0.0.1:51820", GatewayPublicKey: gw.Public, Logger: log})
	srv := httptest.NewServer(arcapi.New(svc, arcapi.Config{Logger: log}))
	defer srv.Close()

	admin := controlplane.System
	g, _ := svc.CreateGroup(ctx, admin, "arc", fleet.GroupSettings{})
	other, _ := svc.CreateGroup(ctx, admin, "other", fleet.GroupSettings{})
	k, secret, err := svc.CreateAuthKey(ctx, admin, controlplane.AuthKeySpec{GroupID: g.ID, MaxUses: 2})
	if err != nil {
		t.Fatal(err)
	}

	c := &arcClient{t: t, base: srv.URL}
	authBody := func(id, sec string, timeout int) string {
		b, _ := json.Marshal(map[string]any{"authKeyId": id, "authKey": sec, "tokenTimeoutSeconds": timeout})
		return string(b)
	}
	if code := c.call("POST", "/auth", authBody(arcapi.KeyIDPrefix+k.ID, arcapi.SecretPrefix+secret+"x", 300), nil); code != 401 {
		t.Fatalf("wrong secret: %d", code)
	}
	if code := c.call("POST", "/auth", authBody(arcapi.KeyIDPrefix+k.ID, arcapi.SecretPrefix+secret, 10), nil); code != 400 {
		t.Fatalf("timeout 10s: %d", code)
	}
	for body, want := range map[string]int{
		`{"authKeyId": "x", "authKey": "y", "extra": 1}`: 400, // unknown field
		`{"authKeyId": 5}`:  400, // wrong type
		`{"authKeyId": "x"`: 400, // malformed
		`{"authKeyId": "` + strings.Repeat("a", 20000) + `", "authKey": "y"}`: 400, // oversized
	} {
		if code := c.call("POST", "/auth", body, nil); code != want {
			t.Fatalf("auth body %.40q: %d, want %d", body, code, want)
		}
	}
	var auth struct{ APIKey, Token, OperatorID string }
	if code := c.call("POST", "/auth", authBody(arcapi.KeyIDPrefix+k.ID, arcapi.SecretPrefix+secret, 300), &auth); code != 200 || auth.APIKey == "" || auth.Token == "" || auth.OperatorID != arcapi.OperatorID {
		t.Fatalf("auth: %d %+v", code, auth)
	}
	if code := c.call("POST", "/sims", `{"type":"virtual","subscription":"planArc01"}`, nil); code != 401 {
		t.Fatalf("no token: %d", code)
	}
	c.apiKey, c.token = auth.APIKey, auth.Token

	var vs virtualSIM
	if code := c.call("POST", "/sims", `{"type":"virtual","subscription":"planArc01"}`, &vs); code != 201 {
		t.Fatalf("create: %d", code)
	}
	prof := vs.Profiles[vs.SimID]
	priv, err := wgkey.ParsePrivate(prof.ArcClientPeerPrivateKey)
	if err != nil || priv.Public().String() != prof.ArcClientPeerPublicKey || !fleet.ValidIMSI(prof.PrimaryIMSI) || vs.Status != "active" || vs.OperatorID != arcapi.OperatorID {
		t.Fatalf("virtual SIM %+v (%v)", vs, err)
	}
	if vs.ArcSession.ArcServerEndpoint != "127.0.0.1:51820" || vs.ArcSession.ArcClientPeerPrivateKey != "" {
		t.Fatalf("create's session %+v", vs.ArcSession)
	}
	sim, err := svc.View().SIM(ctx, vs.SimID)
	if err != nil || sim.GroupID != g.ID || sim.PublicKey != priv.Public() {
		t.Fatalf("stored SIM %+v %v", sim, err)
	}

	var s session
	if code := c.call("POST", "/sims/"+vs.SimID+"/sessions/arc", `{}`, &s); code != 200 {
		t.Fatalf("session: %d", code)
	}
	if s.ArcServerPeerPublicKey != gw.Public().String() || s.ArcClientPeerIPAddress != sim.Address.String() || s.ArcClientPeerPublicKey != prof.ArcClientPeerPublicKey ||
		len(s.ArcAllowedIPs) == 0 || s.ArcAllowedIPs[0] != "100.127.0.0/16" || s.ArcClientPeerPrivateKey != "" {
		t.Fatalf("session %+v", s)
	}
	if code := c.call("GET", "/sims/"+vs.SimID, "", &vs); code != 200 || vs.Profiles[vs.SimID].ArcClientPeerPrivateKey != "" {
		t.Fatalf("get: %d %+v", code, vs)
	}

	// Re-key with a client key, then with a generated one, each with a
	// proof made by the current key (without one, the auth key alone is
	// refused: TestSharedAuthKeyCannotTakeOverSIM).
	np, _ := wgkey.NewPrivate()
	if code := c.call("PUT", "/sims/"+vs.SimID+"/credentials/arc", rekeyBody(t, svc, priv, vs.SimID, np.Public()), &s); code != 200 || s.ArcClientPeerPublicKey != np.Public().String() || s.ArcClientPeerPrivateKey != "" {
		t.Fatalf("rekey given: %+v", s)
	}
	if code := c.call("PUT", "/sims/"+vs.SimID+"/credentials/arc", rekeyBody(t, svc, np, vs.SimID, wgkey.Public{}), &s); code != 200 {
		t.Fatalf("rekey generated: %d", code)
	}
	gp, err := wgkey.ParsePrivate(s.ArcClientPeerPrivateKey)
	if err != nil || gp.Public().String() != s.ArcClientPeerPublicKey {
		t.Fatalf("generated rekey %+v", s)
	}
	if code := c.call("PUT", "/sims/"+vs.SimID+"/credentials/arc", `{"arcClientPeerPublicKey":"zz"}`, nil); code != 400 {
		t.Fatalf("bad key: %d", code)
	}
	if code := c.call("POST", "/sims/"+vs.SimID+"/sessions/arc", `{"x":1}`, nil); code != 400 {
		t.Fatalf("unknown field: %d", code)
	}

	// A SIM of another group is invisible to this key.
	foreign, _, _ := svc.CreateSIM(ctx, admin, controlplane.SIMSpec{GroupID: other.ID, GenerateKey: true})
	for _, p := range []string{"/sims/" + foreign.ID + "/sessions/arc"} {
		if code := c.call("POST", p, `{}`, nil); code != 404 {
			t.Fatalf("foreign SIM session: %d", code)
		}
	}
	if code := c.call("PUT", "/sims/"+foreign.ID+"/credentials/arc", `{}`, nil); code != 404 {
		t.Fatalf("foreign SIM rekey: %d", code)
	}

	// The key allowed 2 SIMs.
	if code := c.call("POST", "/sims", `{"type":"virtual","subscription":"planArc01"}`, nil); code != 201 {
		t.Fatalf("second SIM: %d", code)
	}
	if code := c.call("POST", "/sims", `{"type":"virtual","subscription":"planArc01"}`, nil); code != 401 {
		t.Fatalf("third SIM beyond maxUses: %d", code)
	}

	// A tampered token fails; revoking the key ends the session.
	good := c.token
	c.token = good[:len(good)-1] + map[bool]string{true: "0", false: "1"}[good[len(good)-1] != '0']
	if code := c.call("GET", "/sims/"+vs.SimID, "", nil); code != 401 {
		t.Fatalf("tampered token: %d", code)
	}
	c.token = good
	if err := svc.RevokeAuthKey(ctx, admin, k.ID); err != nil {
		t.Fatal(err)
	}
	if code := c.call("GET", "/sims/"+vs.SimID, "", nil); code != 401 {
		t.Fatalf("after revoke: %d", code)
	}
	for _, sec := range []string{secret, prof.ArcClientPeerPrivateKey, s.ArcClientPeerPrivateKey, good} {
		if strings.Contains(logs.String(), sec) {
			t.Fatalf("secret %q in logs", sec)
		}
	}
}
