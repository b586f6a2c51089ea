package datastore

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wirefleet/wirefleet/api"
	"github.com/wirefleet/wirefleet/controlplane"
	"github.com/wirefleet/wirefleet/fleet"
	"github.com/wirefleet/wirefleet/gateway"
	"github.com/wirefleet/wirefleet/internal/netns"
	"github.com/wirefleet/wirefleet/keystore"
	"github.com/wirefleet/wirefleet/store/sqlitestore"
)

func init() {
	// The device-side tools of the end-to-end test.
	netns.Tools = append(netns.Tools, "curl", "nc")
}

var gwAddr = netip.MustParseAddr("10.231.0.1")

const gwPort = 51820 // the gateway has a namespace of its own

// e2e is a gateway with the data store in its own network namespace over a
// real SQLite store, the REST API on loopback, and devices made of Debian
// wireguard-go in namespaces of their own, configured from the API's
// wg-quick export (as in gateway/e2e_test.go).
type e2e struct {
	t      *testing.T
	env    *netns.Env
	gwNS   *netns.NS
	bridge string
	svc    *controlplane.Service
	api    *httptest.Server
	token  string
	nDev   int
}

func newE2E(t *testing.T) *e2e {
	env := netns.New(t)
	f := &e2e{t: t, env: env, gwNS: env.NewNS("gw")}
	f.bridge = env.Name("br")
	f.gwNS.MustExec("ip", "link", "add", f.bridge, "address", "02:00:0a:e7:00:01", "type", "bridge")
	f.gwNS.MustExec("ip", "addr", "add", netip.PrefixFrom(gwAddr, 16).String(), "dev", f.bridge)
	f.gwNS.MustExec("ip", "link", "set", f.bridge, "up")
	ctx := context.Background()
	st, err := sqlitestore.Open(ctx, filepath.Join(t.TempDir(), "wirefleet.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	ks, err := keystore.GenerateMemory()
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
	f.svc = controlplane.New(st, controlplane.Config{
		Endpoint:         netip.AddrPortFrom(gwAddr, gwPort).String(),
		GatewayPublicKey: func() fleet.Key { return fleet.Key(ks.PublicKey()) },
		Log:              log,
	})
	ds := New(Config{Store: st, Log: log})
	gw, err := gateway.New(gateway.Config{Service: f.svc, KeyStore: ks, ListenPort: gwPort, Logger: log, Services: []gateway.PlatformService{ds}})
	if err != nil {
		t.Fatal(err)
	}
	f.gwNS.MustDo(gw.Start)
	t.Cleanup(func() { gw.Close() })
	if f.token, _, err = f.svc.EnsureAdminToken(ctx); err != nil {
		t.Fatal(err)
	}
	f.api = httptest.NewServer(api.New(f.svc, api.Options{Log: log, Connections: gw}))
	t.Cleanup(f.api.Close)
	return f
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// call is an API request as admin; out receives the JSON answer.
func (f *e2e) call(method, path string, out any) int {
	f.t.Helper()
	req, _ := http.NewRequest(method, f.api.URL+path, nil)
	req.Header.Set("Authorization", "Bearer "+f.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil {
		if s, ok := out.(*string); ok {
			*s = string(b)
		} else if err := json.Unmarshal(b, out); err != nil {
			f.t.Fatalf("%s %s: %v: %s", method, path, err, b)
		}
	}
	return resp.StatusCode
}

type e2eDevice struct {
	ns  *netns.NS
	wg  *netns.WireGuard
	sim fleet.SIM
}

// device makes a namespace linked to the gateway's bridge with a Debian
// wireguard-go configured from GET /api/v1/sims/{id}/wireguard-config.
func (f *e2e) device(groupID string) *e2eDevice {
	t := f.t
	t.Helper()
	f.nDev++
	d := &e2eDevice{ns: f.env.NewNS(fmt.Sprintf("d%d", f.nDev))}
	gwEnd, _ := f.env.Veth(f.gwNS, netip.Prefix{}, d.ns, netip.MustParsePrefix(fmt.Sprintf("10.231.%d.2/16", f.nDev)))
	f.gwNS.MustExec("ip", "link", "set", gwEnd.Name, "master", f.bridge)
	d.wg = d.ns.StartWireGuardGo("")
	sim, _, err := f.svc.CreateSIM(context.Background(), controlplane.System, controlplane.SIMSpec{Name: fmt.Sprintf("dev%d", f.nDev), GroupID: groupID, PublicKey: fleet.Key(d.wg.Public)})
	if err != nil {
		t.Fatal(err)
	}
	d.sim = sim
	var export string
	if code := f.call("GET", "/api/v1/sims/"+sim.ID+"/wireguard-config", &export); code != 200 {
		t.Fatalf("wireguard-config: %d %s", code, export)
	}
	var conf strings.Builder
	var address string
	var allowed []string
	for _, line := range strings.Split(export, "\n") {
		k, v, _ := strings.Cut(line, "=")
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		switch k {
		case "Address":
			address = v
			continue
		case "DNS":
			continue
		case "PrivateKey":
			if v != controlplane.PrivateKeyPlaceholder {
				t.Fatalf("the export holds a private key: %q", line)
			}
			line = "PrivateKey = " + d.wg.Private.String()
		case "AllowedIPs":
			for _, a := range strings.Split(v, ",") {
				allowed = append(allowed, strings.TrimSpace(a))
			}
		}
		conf.WriteString(line + "\n")
	}
	d.wg.SetConf(conf.String())
	d.wg.AddAddr(netip.MustParsePrefix(address))
	d.wg.Up()
	for _, a := range allowed {
		f.env.AddRoute(d.ns, a, "dev", d.wg.Name)
	}
	return d
}

// sh runs a shell line in the device's namespace.
func (d *e2eDevice) sh(line string) (string, error) {
	return d.ns.Exec("sh", "-c", line)
}

// TestEndToEnd: devices behind Debian wireguard-go write with plain curl
// (HTTP) and nc (TCP, UDP); the data is read back through the API; a group
// with the data store off and an oversized payload are refused with their
// reasons, and nothing of them is stored.
func TestEndToEnd(t *testing.T) {
	f := newE2E(t)
	ctx := context.Background()
	on, err := f.svc.CreateGroup(ctx, controlplane.System, "sensors", fleet.GroupSettings{DataStore: fleet.DataStoreSettings{Enabled: true, Category: "telemetry", TimestampPointer: "/ts", MaxPayload: 4096}})
	if err != nil {
		t.Fatal(err)
	}
	off, err := f.svc.CreateGroup(ctx, controlplane.System, "quiet", fleet.GroupSettings{})
	if err != nil {
		t.Fatal(err)
	}
	a, b := f.device(on.ID), f.device(off.ID)

	// The first request also brings the tunnel up: retry until the
	// handshake is done.
	post := func(d *e2eDevice, args string) string {
		var out string
		var err error
		for try := 0; try < 10; try++ {
			out, err = d.sh("curl -sS --max-time 5 -w '\\n%{http_code}' " + args + " http://100.127.111.111/")
			if err == nil {
				return out
			}
			time.Sleep(500 * time.Millisecond)
		}
		t.Fatalf("curl %s: %v: %s", args, err, out)
		return ""
	}
	out := post(a, `-H 'Content-Type: application/json' --data '{"temp":21.5,"ts":1767225600000}'`)
	if !strings.HasSuffix(out, "\n201") || !strings.Contains(out, `"stored":1`) {
		t.Fatalf("curl write: %q", out)
	}
	out, err = a.sh("printf 'hello over tcp' | nc -N -w 10 100.127.111.111 8514")
	if err != nil || out != "201 stored 1\n" {
		t.Fatalf("nc TCP: %v %q", err, out)
	}
	out, err = a.sh("printf 'hello over udp' | nc -u -w 3 100.127.111.111 8514")
	if err != nil || out != "201 stored 1\n" {
		t.Fatalf("nc UDP: %v %q", err, out)
	}
	// Refusals reach the device with their reasons.
	out = post(a, `-H 'Content-Type: application/octet-stream' --data-binary @/proc/self/exe --max-filesize 1000000`)
	if !strings.HasSuffix(out, "\n413") || !strings.Contains(out, ReasonTooLarge) {
		t.Fatalf("oversized: %q", out)
	}
	out = post(a, `-H 'Content-Type: application/json' --data '{"temp":'`)
	if !strings.HasSuffix(out, "\n400") || !strings.Contains(out, ReasonBadJSON) {
		t.Fatalf("bad JSON: %q", out)
	}
	out = post(b, `--data 'x'`)
	if !strings.HasSuffix(out, "\n403") || !strings.Contains(out, ReasonDisabled) {
		t.Fatalf("group off: %q", out)
	}
	out, _ = b.sh("printf 'x' | nc -N -w 10 100.127.111.111 8514")
	if !strings.HasPrefix(out, "403 disabled") {
		t.Fatalf("nc TCP, group off: %q", out)
	}

	// Read back through the API.
	var page struct {
		Items []api.DataRecord
	}
	if code := f.call("GET", "/api/v1/sims/"+a.sim.ID+"/data", &page); code != 200 || len(page.Items) != 3 {
		t.Fatalf("GET data: %d, %d records: %+v", code, len(page.Items), page.Items)
	}
	got := map[string]api.DataRecord{}
	for _, r := range page.Items {
		if r.SIMID != a.sim.ID || r.GroupID != on.ID || r.Category != "telemetry" {
			t.Fatalf("record %+v", r)
		}
		if r.Payload != nil {
			var c bytes.Buffer
			json.Compact(&c, r.Payload) // the API indents its answers
			got[c.String()] = r
		} else {
			got[r.PayloadBase64] = r
		}
	}
	h, ok := got[`{"temp":21.5,"ts":1767225600000}`]
	if !ok || !h.Time.Equal(time.UnixMilli(1767225600000)) || h.ContentType != "application/json" {
		t.Fatalf("HTTP record: %+v (all %v)", h, got)
	}
	for _, want := range []string{"hello over tcp", "hello over udp"} {
		r, ok := got[b64(want)]
		if !ok || r.ContentType != ContentBinary || time.Since(r.Time) > time.Minute {
			t.Fatalf("record %q: %+v (all %v)", want, r, got)
		}
	}
	var gp struct{ Items []api.DataRecord }
	if code := f.call("GET", "/api/v1/groups/"+on.ID+"/data", &gp); code != 200 || len(gp.Items) != 3 {
		t.Fatalf("group data: %d %d", code, len(gp.Items))
	}
	if code := f.call("GET", "/api/v1/sims/"+b.sim.ID+"/data", &gp); code != 200 || len(gp.Items) != 0 {
		t.Fatalf("refused device has records: %d %+v", code, gp.Items)
	}
}

func b64(s string) string {
	return base64.StdEncoding.EncodeToString([]byte(s))
}
