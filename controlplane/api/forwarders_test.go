// SPDX-License-Identifier: Apache-2.0

package api_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wirefleet/wirefleet/controlplane"
	"github.com/wirefleet/wirefleet/controlplane/api"
	"github.com/wirefleet/wirefleet/controlplane/store/sqlitestore"
	"github.com/wirefleet/wirefleet/fleet"
	"github.com/wirefleet/wirefleet/internal/seal"
	"github.com/wirefleet/wirefleet/wgkey"
)

// newSealingEnv is newEnv with a key to seal settings' secrets.
func newSealingEnv(t *testing.T) (*env, *seal.Key) {
	t.Helper()
	ctx := context.Background()
	st, err := sqlitestore.Open(ctx, filepath.Join(t.TempDir(), "fleet.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	key, err := seal.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	logs := &logBuf{}
	log := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	gw, _ := wgkey.NewPrivate()
	svc := controlplane.New(st, controlplane.Config{Endpoint: "127.0.0.1:51820", GatewayPublicKey: gw.Public, Logger: log, Secrets: key})
	srv := httptest.NewServer(api.New(svc, api.Config{Logger: log}))
	t.Cleanup(srv.Close)
	e := &env{t: t, srv: srv, svc: svc, logs: logs, tokens: map[fleet.Role]string{}}
	adminSecret, _, err := svc.EnsureAdminToken(ctx)
	if err != nil {
		t.Fatal(err)
	}
	e.tokens[fleet.RoleAdmin] = adminSecret
	var out struct{ Secret string }
	e.must("POST", "/api/v1/tokens", fleet.RoleAdmin, map[string]any{"role": fleet.RoleOperator}, 201, &out)
	e.tokens[fleet.RoleOperator] = out.Secret
	e.must("POST", "/api/v1/tokens", fleet.RoleAdmin, map[string]any{"role": fleet.RoleViewer}, 201, &out)
	e.tokens[fleet.RoleViewer] = out.Secret
	return e, key
}

// Forwarder secrets are write-only: sealed at rest, never in an answer or
// a log, kept by an update that omits them (same destination), required
// again when the destination changes.
func TestForwarderSecretsWriteOnly(t *testing.T) {
	e, key := newSealingEnv(t)
	secrets := []string{"sign-secret-0123456789", "beam-psk-abcdefgh", "cloud-bearer-token-XYZ", "tcp-sign-secret-0123456", "udp-sign-secret-0123456", "mqtt-broker-password"}
	settings := map[string]any{"forwarders": map[string]any{
		"http": []any{map[string]any{"pathPrefix": "/t", "url": "https://cloud.example.test/in", "secret": secrets[0],
			"beamSignature": map[string]any{"fields": []string{"imei", "imsi"}, "secret": secrets[1]},
			"credential":    map[string]any{"type": "bearer", "value": secrets[2]}}},
		"tcp":  map[string]any{"url": "tls://cloud.example.test:9000", "secret": secrets[3], "firstLineIdentity": true},
		"udp":  map[string]any{"url": "https://cloud.example.test/udp", "secret": secrets[4]},
		"mqtt": map[string]any{"broker": "broker.example.test:8883", "tls": true, "username": "fleet", "password": secrets[5], "topicTemplate": "devices/{imsi}/{topic}"},
	}}
	var raw json.RawMessage
	e.must("POST", "/api/v1/groups", fleet.RoleOperator, map[string]any{"name": "fwd", "settings": settings}, 201, &raw)
	var g fleet.Group
	json.Unmarshal(raw, &g)
	e.must("GET", "/api/v1/groups/"+g.ID, fleet.RoleViewer, nil, 200, &raw)
	var list json.RawMessage
	e.must("GET", "/api/v1/groups", fleet.RoleViewer, nil, 200, &list)
	for _, s := range secrets {
		for _, where := range []string{string(raw), string(list), e.logs.String()} {
			if strings.Contains(where, s) {
				t.Fatalf("secret %q visible: %s", s, where)
			}
		}
	}
	json.Unmarshal(raw, &g)
	f := g.Settings.Forwarders
	if !f.HTTP[0].SecretSet || !f.HTTP[0].BeamSignature.SecretSet || !f.HTTP[0].Credential.ValueSet || !f.TCP.SecretSet || !f.UDP.SecretSet || !f.MQTT.PasswordSet {
		t.Fatalf("answer does not flag every secret as set: %s", raw)
	}
	stored, _ := e.svc.View().Group(context.Background(), g.ID)
	sf := stored.Settings.Forwarders
	storedVals := []string{sf.HTTP[0].Secret, sf.HTTP[0].BeamSignature.Secret, sf.HTTP[0].Credential.Value, sf.TCP.Secret, sf.UDP.Secret, sf.MQTT.Password}
	for i, v := range storedVals {
		if !seal.IsSealed(v) {
			t.Fatalf("secret %d stored in clear: %q", i, v)
		}
		if pt, err := key.Open(v); err != nil || pt != secrets[i] {
			t.Fatalf("secret %d opens to %q, %v", i, pt, err)
		}
	}
	// Write back what GET gave (no secrets): every stored one stays.
	e.must("PATCH", "/api/v1/groups/"+g.ID, fleet.RoleOperator, map[string]any{"settings": g.Settings}, 200, nil)
	stored, _ = e.svc.View().Group(context.Background(), g.ID)
	if stored.Settings.Forwarders.HTTP[0].Credential.Value != sf.HTTP[0].Credential.Value || stored.Settings.Forwarders.MQTT.Password != sf.MQTT.Password {
		t.Fatal("a write-back without secrets lost the stored ones")
	}
	// A new destination does not inherit the old one's credential.
	g.Settings.Forwarders.HTTP[0].URL = "https://elsewhere.example.test/in"
	e.wantError("PATCH", "/api/v1/groups/"+g.ID, fleet.RoleOperator, map[string]any{"settings": g.Settings}, 400, fleet.CodeRequired, "settings.forwarders.http[0].secret")
	// A viewer cannot change forwarders.
	e.wantError("PATCH", "/api/v1/groups/"+g.ID, fleet.RoleViewer, map[string]any{"settings": g.Settings}, 403, fleet.CodeForbidden, "")
}

func TestForwarderSettingsBadInput(t *testing.T) {
	e, _ := newSealingEnv(t)
	good := func() map[string]any {
		return map[string]any{"pathPrefix": "/t", "url": "https://cloud.example.test/in", "secret": "sign-secret-0123456789"}
	}
	with := func(k string, v any) map[string]any { h := good(); h[k] = v; return h }
	cases := []struct {
		fwd   map[string]any
		code  string
		field string
	}{
		{map[string]any{"http": []any{with("url", "ftp://x.test/")}}, fleet.CodeInvalid, "settings.forwarders.http[0].url"},
		{map[string]any{"http": []any{with("pathPrefix", "/../x")}}, fleet.CodeInvalid, "settings.forwarders.http[0].pathPrefix"},
		{map[string]any{"http": []any{good(), good()}}, fleet.CodeInvalid, "settings.forwarders.http[1].pathPrefix"},
		{map[string]any{"http": []any{with("secret", "short")}}, fleet.CodeInvalid, "settings.forwarders.http[0].secret"},
		{map[string]any{"http": []any{with("secret", "")}}, fleet.CodeRequired, "settings.forwarders.http[0].secret"},
		{map[string]any{"http": []any{with("caPem", "not pem")}}, fleet.CodeInvalid, "settings.forwarders.http[0].caPem"},
		{map[string]any{"http": []any{with("credential", map[string]any{"type": "header", "header": "X-Wirefleet-IMSI", "value": "v"})}}, fleet.CodeInvalid, "settings.forwarders.http[0].credential.header"},
		{map[string]any{"http": []any{with("credential", map[string]any{"type": "basic", "value": "v"})}}, fleet.CodeInvalid, "settings.forwarders.http[0].credential.username"},
		{map[string]any{"http": []any{with("credential", map[string]any{"type": "magic", "value": "v"})}}, fleet.CodeInvalid, "settings.forwarders.http[0].credential.type"},
		{map[string]any{"http": []any{with("credential", map[string]any{"type": "bearer"})}}, fleet.CodeRequired, "settings.forwarders.http[0].credential.value"},
		{map[string]any{"http": []any{with("beamSignature", map[string]any{"fields": []string{"iccid"}, "secret": "x"})}}, fleet.CodeInvalid, "settings.forwarders.http[0].beamSignature.fields[0]"},
		{map[string]any{"http": []any{with("beamSignature", map[string]any{"fields": []string{"imsi"}})}}, fleet.CodeRequired, "settings.forwarders.http[0].beamSignature.secret"},
		{map[string]any{"tcp": map[string]any{"url": "tls://host.test", "secret": "sign-secret-0123456789"}}, fleet.CodeInvalid, "settings.forwarders.tcp.url"},
		{map[string]any{"tcp": map[string]any{"url": "https://host.test/x", "secret": "sign-secret-0123456789", "firstLineIdentity": true}}, fleet.CodeInvalid, "settings.forwarders.tcp.firstLineIdentity"},
		{map[string]any{"udp": map[string]any{"url": "tls://host.test:1", "secret": "sign-secret-0123456789"}}, fleet.CodeInvalid, "settings.forwarders.udp.url"},
		{map[string]any{"mqtt": map[string]any{"broker": "nohost"}}, fleet.CodeInvalid, "settings.forwarders.mqtt.broker"},
		{map[string]any{"mqtt": map[string]any{"broker": "b.test:1883", "topicTemplate": "devices/{imsi}"}}, fleet.CodeInvalid, "settings.forwarders.mqtt.topicTemplate"},
		{map[string]any{"mqtt": map[string]any{"broker": "b.test:1883", "clientId": "{topic}"}}, fleet.CodeInvalid, "settings.forwarders.mqtt.clientId"},
		{map[string]any{"mqtt": map[string]any{"broker": "b.test:1883", "caPem": "x"}}, fleet.CodeInvalid, "settings.forwarders.mqtt.caPem"},
	}
	for i, c := range cases {
		e.wantError("POST", "/api/v1/groups", fleet.RoleOperator, map[string]any{"name": "bad" + string(rune('a'+i)), "settings": map[string]any{"forwarders": c.fwd}}, 400, c.code, c.field)
	}
	// Unknown fields are refused like everywhere else.
	code, _ := e.do("POST", "/api/v1/groups", fleet.RoleOperator, map[string]any{"name": "unk", "settings": map[string]any{"forwarders": map[string]any{"smtp": 1}}})
	if code != 400 {
		t.Fatalf("unknown forwarder kind: %d", code)
	}
}

// Without a sealing key, a server refuses to store forwarder and webhook
// secrets rather than keep them in clear.
func TestForwarderSecretsNeedKey(t *testing.T) {
	e := newEnvSealing(t, false)
	e.wantError("POST", "/api/v1/groups", fleet.RoleOperator, map[string]any{"name": "nokey", "settings": map[string]any{"forwarders": map[string]any{
		"udp": map[string]any{"url": "https://x.test/", "secret": "sign-secret-0123456789"}}}}, 400, fleet.CodeInvalid, "settings.forwarders.udp.secret")
	e.wantError("POST", "/api/v1/groups", fleet.RoleOperator, map[string]any{"name": "nokey", "settings": map[string]any{"security": map[string]any{
		"webhookUrl": "https://x.test/", "webhookSecret": "sign-secret-0123456789"}}}, 400, fleet.CodeInvalid, "settings.security.webhookSecret")
}

// Every field of a forwarders answer is declared in the OpenAPI document
// (whose schemas refuse additional properties).
func TestForwardersMatchOpenAPI(t *testing.T) {
	e, _ := newSealingEnv(t)
	var doc struct {
		Components struct{ Schemas map[string]any }
	}
	e.must("GET", "/api/v1/openapi.json", "", nil, 200, &doc)
	schema := doc.Components.Schemas["GroupSettings"].(map[string]any)["properties"].(map[string]any)["forwarders"].(map[string]any)
	full := fleet.Forwarders{
		HTTP: []fleet.HTTPForward{{PathPrefix: "/t", URL: "https://h/x", Secret: "sign-secret-0123456789", CAPEM: "",
			BeamSignature: fleet.BeamSignature{Fields: []string{"imsi"}, Secret: "psk"},
			Credential:    fleet.Credential{Type: "basic", Username: "u", Value: "p"}}},
		TCP:  fleet.TCPForward{URL: "tls://h:1", Secret: "sign-secret-0123456789", FirstLineIdentity: true},
		UDP:  fleet.UDPForward{URL: "https://h/u", Secret: "sign-secret-0123456789", Credential: fleet.Credential{Type: "header", Header: "X-Key", Value: "v"}},
		MQTT: fleet.MQTTForward{Broker: "b:1883", Username: "u", Password: "p", ClientID: "{imsi}", TopicTemplate: "d/{imsi}/{topic}"},
	}
	var g fleet.Group
	e.must("POST", "/api/v1/groups", fleet.RoleOperator, map[string]any{"name": "full", "settings": map[string]any{"forwarders": full}}, 201, &g)
	var raw map[string]any
	e.must("GET", "/api/v1/groups/"+g.ID, fleet.RoleViewer, nil, 200, &raw)
	answer := raw["settings"].(map[string]any)["forwarders"]
	var walk func(path string, s map[string]any, v any)
	walk = func(path string, s map[string]any, v any) {
		switch x := v.(type) {
		case map[string]any:
			props, _ := s["properties"].(map[string]any)
			for k, fv := range x {
				ps, ok := props[k].(map[string]any)
				if !ok {
					t.Errorf("%s.%s is not declared", path, k)
					continue
				}
				walk(path+"."+k, ps, fv)
			}
		case []any:
			for _, it := range x {
				walk(path+"[]", s["items"].(map[string]any), it)
			}
		}
	}
	walk("forwarders", schema, answer)
}
