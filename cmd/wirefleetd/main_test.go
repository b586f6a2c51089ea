// SPDX-License-Identifier: Apache-2.0

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wirefleet/wirefleet/controlplane/store/pgstore/pgtest"
	"github.com/wirefleet/wirefleet/keystore"
)

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// start runs wirefleetd in-process on a loopback port; the returned stop
// waits for the graceful shutdown and reports run's error.
func start(t *testing.T, dataDir string, env map[string]string) (base string, stdout, stderr *syncBuf, stop func() error) {
	t.Helper()
	return startArgs(t, dataDir, env, "--endpoint", "127.0.0.1:51820", "--wg-listen", ":0")
}

// startArgs is start with other flags after --data.
func startArgs(t *testing.T, dataDir string, env map[string]string, args ...string) (base string, stdout, stderr *syncBuf, stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	stdout, stderr = &syncBuf{}, &syncBuf{}
	addrc := make(chan net.Addr, 1)
	errc := make(chan error, 1)
	go func() {
		errc <- run(ctx, append([]string{"--data", dataDir}, args...), func(k string) string { return env[k] }, stdout, stderr, func(a net.Addr) { addrc <- a })
	}()
	select {
	case a := <-addrc:
		base = "http://" + a.String()
	case err := <-errc:
		cancel()
		t.Fatalf("wirefleetd exited: %v\n%s", err, stderr)
	case <-time.After(20 * time.Second):
		cancel()
		t.Fatal("wirefleetd did not start")
	}
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case err = <-errc:
			case <-time.After(15 * time.Second):
				t.Error("wirefleetd did not shut down")
			}
		})
		return err
	}
	t.Cleanup(func() { stop() })
	return base, stdout, stderr, stop
}

func get(t *testing.T, url, token string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestFirstStartAndRestart(t *testing.T) {
	dir := t.TempDir()
	// The listen address comes from the environment, as WIREFLEET_<NAME>.
	env := map[string]string{"WIREFLEET_API_LISTEN": "127.0.0.1:0", "WIREFLEET_LOG_FORMAT": "json"}
	base, stdout, stderr, stop := start(t, dir, env)

	tokenPath := filepath.Join(dir, "admin.token")
	fi, err := os.Stat(tokenPath)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("admin.token mode %v, want 0600", fi.Mode().Perm())
	}
	b, _ := os.ReadFile(tokenPath)
	token := strings.TrimSpace(string(b))
	if !strings.Contains(stdout.String(), token) {
		t.Fatal("admin token not printed on first start")
	}
	gk, err := os.Stat(filepath.Join(dir, "gateway.key"))
	if err != nil || gk.Mode().Perm() != 0o600 {
		t.Fatalf("gateway.key: %v %v", gk, err)
	}

	if code, body := get(t, base+"/api/v1/sims", token); code != 200 || !strings.Contains(body, `"items"`) {
		t.Fatalf("sims: %d %s", code, body)
	}
	if code, _ := get(t, base+"/api/v1/sims", ""); code != 401 {
		t.Fatalf("no token: %d", code)
	}
	req, _ := http.NewRequest("POST", base+"/api/v1/sims", strings.NewReader(`{"generateKey": true}`))
	req.Header.Set("Authorization", "Bearer "+token)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 201 {
		t.Fatalf("create SIM: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	code, metrics := get(t, base+"/metrics", "")
	if code != 200 || !strings.Contains(metrics, `wirefleet_api_requests_total{code="200",route="GET /api/v1/sims"} 1`) || !strings.Contains(metrics, "go_goroutines") ||
		!strings.Contains(metrics, `wirefleet_sims{status="active"} 1`) ||
		!strings.Contains(metrics, "wirefleet_gateway_sessions 0") || !strings.Contains(metrics, `wirefleet_gateway_handshakes_total{result="ok"} 0`) ||
		!strings.Contains(metrics, `wirefleet_gateway_dropped_packets_total{reason="d2d-denied",where="router"} 0`) || !strings.Contains(metrics, "wirefleet_gateway_under_load 0") ||
		!strings.Contains(metrics, `wirefleet_audit_findings{severity="high"} 0`) ||
		!strings.Contains(metrics, `wirefleet_attest_bootstraps_total{outcome="bad_signature"} 0`) {
		t.Fatalf("metrics: %d\n%s", code, metrics)
	}
	// The Arc-compatible routes are mounted too.
	resp, err := http.Post(base+"/v1/auth", "application/json", strings.NewReader(`{"authKeyId":"keyId-nope","authKey":"secret-nope"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Fatalf("/v1/auth with unknown key: %d", resp.StatusCode)
	}
	if err := stop(); err != nil {
		t.Fatalf("graceful shutdown: %v", err)
	}
	if strings.Contains(stderr.String(), token) {
		t.Fatal("admin token appears in the log")
	}
	if !strings.Contains(stderr.String(), `"msg":"shutting down"`) {
		t.Fatalf("no structured shutdown log:\n%s", stderr)
	}

	// Second start: same database, no new token, the old one still works.
	base, stdout, _, stop = start(t, dir, env)
	if strings.Contains(stdout.String(), "admin token") {
		t.Fatalf("second start printed a token: %s", stdout)
	}
	if code, _ := get(t, base+"/api/v1/tokens", token); code != 200 {
		t.Fatalf("old admin token after restart: %d", code)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	k, err := keystore.LoadFile(filepath.Join(dir, "gateway.key"))
	if err != nil || k.PublicKey().IsZero() {
		t.Fatalf("gateway key reload: %v", err)
	}
}

func TestFlagsOverrideEnv(t *testing.T) {
	c, err := parseFlags([]string{"--api-listen", "127.0.0.1:9"}, func(k string) string {
		return map[string]string{"WIREFLEET_API_LISTEN": "127.0.0.1:8", "WIREFLEET_DATA": "/tmp/x"}[k]
	}, io.Discard)
	if err != nil || c.apiListen != "127.0.0.1:9" || c.dataDir != "/tmp/x" {
		t.Fatalf("%+v %v", c, err)
	}
	c, err = parseFlags([]string{"--arc-trusted-network", "10.200.0.0/16=apn", "--arc-trusted-network", "192.0.2.0/24"}, func(k string) string {
		return map[string]string{"WIREFLEET_TRUSTED_PROXY": "127.0.0.1/32,::1/128"}[k]
	}, io.Discard)
	if err != nil || c.trustedNetworks.String() != "10.200.0.0/16=apn,192.0.2.0/24" || len(c.trustedProxies.prefixes()) != 2 {
		t.Fatalf("trusted networks %q proxies %v: %v", c.trustedNetworks.String(), c.trustedProxies.prefixes(), err)
	}
	if _, err := parseFlags([]string{"--trusted-proxy", "10.0.0.0/8=x"}, func(string) string { return "" }, io.Discard); err == nil {
		t.Fatal("--trusted-proxy accepted a group")
	}
	if _, err := parseFlags(nil, func(k string) string {
		return map[string]string{"WIREFLEET_NOPE": "1", "WIREFLEET_LOG_LEVEL": "loud"}[k]
	}, io.Discard); err != nil {
		t.Fatalf("env parse: %v", err) // log level is checked later, in run
	}
}

func TestPostgresBackend(t *testing.T) {
	srv := pgtest.Start(t)
	dsn := srv.NewDatabase(t)
	dir := t.TempDir()
	base, _, stderr, stop := start(t, dir, map[string]string{"WIREFLEET_API_LISTEN": "127.0.0.1:0", "WIREFLEET_POSTGRES": dsn})
	b, err := os.ReadFile(filepath.Join(dir, "admin.token"))
	if err != nil {
		t.Fatal(err)
	}
	if code, body := get(t, base+"/api/v1/tokens", strings.TrimSpace(string(b))); code != 200 || !strings.Contains(body, "initial admin token") {
		t.Fatalf("tokens on postgres: %d %s", code, body)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(stderr.String(), "backend=postgres") {
		t.Fatalf("not on postgres:\n%s", stderr)
	}
	if _, err := os.Stat(filepath.Join(dir, "wirefleet.db")); err == nil {
		t.Fatal("an SQLite file was created although --postgres was given")
	}
}

func TestGatewayFlags(t *testing.T) {
	for in, want := range map[string]uint16{":51820": 51820, ":0": 0, "0.0.0.0:4500": 4500, "[::]:1": 1} {
		if got, err := parseWGListen(in); err != nil || got != want {
			t.Errorf("--wg-listen %q: %d %v", in, got, err)
		}
	}
	for _, in := range []string{"127.0.0.1:51820", "51820", ":x", ":70000"} {
		if _, err := parseWGListen(in); err == nil {
			t.Errorf("--wg-listen %q accepted", in)
		}
	}
	c, err := parseFlags(nil, func(k string) string {
		return map[string]string{"WIREFLEET_POSTGRES": "postgres://db/x", "WIREFLEET_WG_LISTEN": ":4500"}[k]
	}, io.Discard)
	if err != nil || c.store != "postgres://db/x" || c.wgListen != ":4500" {
		t.Fatalf("--postgres as an alias of --store: %+v %v", c, err)
	}
	c, err = parseFlags([]string{"--store", "sqlite:/tmp/x.db"}, func(string) string { return "" }, io.Discard)
	if err != nil || c.store != "sqlite:/tmp/x.db" {
		t.Fatalf("--store: %+v %v", c, err)
	}
}

// A lost admin token is recovered with --reset-admin-token (env
// WIREFLEET_RESET_ADMIN_TOKEN): a new admin token is printed and written,
// and it works.
func TestResetAdminToken(t *testing.T) {
	dir := t.TempDir()
	env := map[string]string{"WIREFLEET_API_LISTEN": "127.0.0.1:0"}
	_, _, _, stop := start(t, dir, env)
	stop()
	tokenPath := filepath.Join(dir, "admin.token")
	os.Remove(tokenPath) // lost

	env["WIREFLEET_RESET_ADMIN_TOKEN"] = "true"
	base, stdout, _, _ := start(t, dir, env)
	b, err := os.ReadFile(tokenPath)
	if err != nil {
		t.Fatalf("no new admin.token: %v", err)
	}
	token := strings.TrimSpace(string(b))
	if token == "" || !strings.Contains(stdout.String(), token) {
		t.Fatal("new admin token not printed")
	}
	if code, body := get(t, base+"/api/v1/tokens", token); code != 200 {
		t.Fatalf("new admin token refused: %d %s", code, body)
	}
}

// A SIM pool overlapping the platform range is refused before anything
// starts: SIMs would get the addresses of platform services.
func TestPoolOverlappingPlatformRefused(t *testing.T) {
	err := run(context.Background(), []string{"--data", t.TempDir(), "--pool", "100.64.0.0/10", "--wg-listen", ":0", "--api-listen", "127.0.0.1:0"},
		func(string) string { return "" }, io.Discard, io.Discard, func(net.Addr) {})
	if err == nil || !strings.Contains(err.Error(), "overlaps the platform range") {
		t.Fatalf("--pool 100.64.0.0/10: %v", err)
	}
}

// /metrics can require an operator token and move to a listener of its
// own: without a token it is 401, with one 200; with its own listener the
// API listener no longer serves it.
func TestMetricsAccess(t *testing.T) {
	pc, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	metricsAddr := pc.Addr().String()
	pc.Close()
	dir := t.TempDir()
	base, _, _, stop := start(t, dir, map[string]string{"WIREFLEET_METRICS_TOKEN": "true", "WIREFLEET_METRICS_LISTEN": metricsAddr})
	defer stop()
	b, _ := os.ReadFile(filepath.Join(dir, "admin.token"))
	token := strings.TrimSpace(string(b))
	if code, _ := get(t, base+"/metrics", token); code != 404 {
		t.Errorf("/metrics on the API listener: %d, want 404", code)
	}
	if code, _ := get(t, "http://"+metricsAddr+"/metrics", ""); code != 401 {
		t.Errorf("/metrics without a token: %d, want 401", code)
	}
	if code, _ := get(t, "http://"+metricsAddr+"/metrics", "wft_not-a-token"); code != 401 {
		t.Errorf("/metrics with an unknown token: %d, want 401", code)
	}
	if code, body := get(t, "http://"+metricsAddr+"/metrics", token); code != 200 || !strings.Contains(body, "wirefleet_gateway_sessions") {
		t.Errorf("/metrics with a token: %d", code)
	}
}

// A PostgreSQL outage is an outage, not "unknown": the API answers 503
// with Retry-After and the code store_unavailable (an authenticated call
// too: its token cannot be read either), /readyz is 503, /healthz stays
// 200 and says the store is unavailable.
func TestStoreOutage(t *testing.T) {
	srv := pgtest.Start(t)
	dsn := srv.NewDatabase(t)
	dir := t.TempDir()
	base, _, _, stop := start(t, dir, map[string]string{"WIREFLEET_API_LISTEN": "127.0.0.1:0", "WIREFLEET_POSTGRES": dsn})
	defer stop()
	b, _ := os.ReadFile(filepath.Join(dir, "admin.token"))
	token := strings.TrimSpace(string(b))
	if code, body := get(t, base+"/readyz", ""); code != 200 || !strings.Contains(body, "ready") {
		t.Fatalf("/readyz with the store up: %d %s", code, body)
	}
	// The node takes the cluster-wide jobs' leases just after it starts.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		code, body := get(t, base+"/healthz", "")
		if code == 200 && strings.HasPrefix(body, "ok\nnode ") && strings.Contains(body, "store ok") && strings.Contains(body, "jobs config-audit,datastore-retention") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/healthz with the store up: %d %q", code, body)
		}
	}
	srv.Stop()
	req, _ := http.NewRequest("GET", base+"/api/v1/sims", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" || !strings.Contains(string(body), `"store_unavailable"`) {
		t.Fatalf("API during the outage: %d %q %s", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
	if code, body := get(t, base+"/readyz", ""); code != 503 {
		t.Fatalf("/readyz during the outage: %d %s", code, body)
	}
	if code, body := get(t, base+"/healthz", ""); code != 200 || !strings.HasPrefix(body, "degraded\n") || !strings.Contains(body, "store unavailable") || !strings.Contains(body, "degraded: store unavailable") {
		t.Fatalf("/healthz during the outage: %d %s", code, body)
	}
	var h struct {
		Node     string
		Store    string
		Degraded []string
	}
	code, hj := get(t, base+"/healthz?format=json", "")
	if err := json.Unmarshal([]byte(hj), &h); code != 200 || err != nil || h.Node == "" || h.Store != "unavailable" || len(h.Degraded) == 0 || h.Degraded[0] != "store unavailable" {
		t.Fatalf("/healthz as JSON during the outage: %d %s", code, hj)
	}
}

// A ULA prefix that is not a /48 of fd00::/8, and a bad resolver list,
// stop wirefleetd at start with the reason.
func TestIPv6AndEgressFlagsRefused(t *testing.T) {
	for _, c := range []struct{ flag, value, says string }{
		{"--ula-prefix", "fd00:1::/64", "is a /64"},
		{"--ula-prefix", "2001:db8:1::/48", "not a unique local prefix"},
		{"--ula-prefix", "fd00:1:2:3::/48", "did you mean fd00:1:2::/48"},
		{"--dns-upstream", "resolver.example", "want auto, none"},
	} {
		err := run(context.Background(), []string{"--data", t.TempDir(), c.flag, c.value, "--wg-listen", ":0", "--api-listen", "127.0.0.1:0"},
			func(string) string { return "" }, io.Discard, io.Discard, func(net.Addr) {})
		if err == nil || !strings.Contains(err.Error(), c.says) {
			t.Errorf("%s %s: %v, want an error saying %q", c.flag, c.value, err, c.says)
		}
	}
	for in, want := range map[string]string{"none": "[]", "192.0.2.53": "[192.0.2.53:53]", "192.0.2.53:5353, [2001:db8::53]:53": "[192.0.2.53:5353 [2001:db8::53]:53]"} {
		got, err := dnsUpstreams(in)
		if err != nil || fmt.Sprint(got) != want {
			t.Errorf("--dns-upstream %q: %v %v, want %s", in, got, err, want)
		}
	}
	conf := filepath.Join(t.TempDir(), "resolv.conf")
	os.WriteFile(conf, []byte("# comment\nnameserver 127.0.0.53\nnameserver fe80::1%eth0\nsearch example\nnameserver 2001:db8::53\n"), 0o644)
	if got, err := readResolvConf(conf); err != nil || fmt.Sprint(got) != "[127.0.0.53:53 [2001:db8::53]:53]" {
		t.Errorf("resolv.conf: %v %v", got, err)
	}
}

func TestRedactDSN(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"postgres://wf:s3cret@db.example:5432/wf?sslmode=require", "postgres://wf:xxxxx@db.example:5432/wf?sslmode=require"},
		{"postgres://wf@db/wf?password=s3cret&sslmode=disable", "postgres://wf@db/wf?password=xxxxx&sslmode=disable"},
		{"host=db user=wf password=s3cret dbname=wf", "host=db user=wf password=xxxxx dbname=wf"},
		{"host=db password = 'a s3cret\\' here' dbname=wf", "host=db password = xxxxx dbname=wf"},
		{"postgres://wf@db/wf?sslpassword=s3cret", "postgres://wf@db/wf?sslpassword=xxxxx"},
		{"host=db sslpassword=s3cret dbname=wf", "host=db sslpassword=xxxxx dbname=wf"},
		{`host=db password=my\ s3cret dbname=wf`, "host=db password=xxxxx dbname=wf"},
		{"/var/lib/wirefleet/wirefleet.db", "/var/lib/wirefleet/wirefleet.db"},
	} {
		got := redactDSN(c.in)
		if got != c.want || strings.Contains(got, "s3cret") {
			t.Errorf("redactDSN(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestSettingsRedactTheStore(t *testing.T) {
	c, err := parseFlags([]string{"--store", "postgres://wf:s3cret@127.0.0.1/wf"}, func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, s := range c.settings {
		if strings.Contains(s.Value, "s3cret") {
			t.Errorf("--%s shows the password: %q", s.Name, s.Value)
		}
		found = found || s.Name == "api-listen"
	}
	if !found {
		t.Fatal("the settings lack --api-listen")
	}
}
