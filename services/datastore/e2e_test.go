// SPDX-License-Identifier: Apache-2.0

package datastore

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/wirefleet/wirefleet/controlplane"
	"github.com/wirefleet/wirefleet/controlplane/api"
	"github.com/wirefleet/wirefleet/controlplane/api/apiv1"
	"github.com/wirefleet/wirefleet/controlplane/store"
	"github.com/wirefleet/wirefleet/fleet"
	"github.com/wirefleet/wirefleet/internal/gwtest"
	"github.com/wirefleet/wirefleet/services/platform"
)

// e2e is the shared platform (internal/gwtest) with the data store on the
// gateway, plus the REST API on loopback to read records back.
type e2e struct {
	*gwtest.Platform
	t     *testing.T
	api   *httptest.Server
	token string
}

func newE2E(t *testing.T) *e2e {
	p := gwtest.Start(t, gwtest.Options{Subnet: 233, Services: func(st store.Store, log *slog.Logger) []platform.Service {
		return []platform.Service{New(Config{Store: st, Logger: log})}
	}})
	f := &e2e{Platform: p, t: t}
	var err error
	if f.token, _, err = p.Service.EnsureAdminToken(context.Background()); err != nil {
		t.Fatal(err)
	}
	f.api = httptest.NewServer(api.New(p.Service, api.Config{Logger: p.Logger, Connections: p.Gateway}))
	t.Cleanup(f.api.Close)
	return f
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

// device is a Debian wireguard-go device of the group, configured from
// its SIM's wg-quick export.
func (f *e2e) device(groupID string) *gwtest.Device { return f.Device(groupID, nil) }

// TestEndToEnd: devices behind Debian wireguard-go write with plain curl
// (HTTP) and nc (TCP, UDP); the data is read back through the API; a group
// with the data store off and an oversized payload are refused with their
// reasons, and nothing of them is stored.
func TestEndToEnd(t *testing.T) {
	f := newE2E(t)
	ctx := context.Background()
	on, err := f.Service.CreateGroup(ctx, controlplane.System, "sensors", fleet.GroupSettings{DataStore: fleet.DataStoreSettings{Enabled: true, Category: "telemetry", TimestampPointer: "/ts", MaxPayload: 4096}})
	if err != nil {
		t.Fatal(err)
	}
	off, err := f.Service.CreateGroup(ctx, controlplane.System, "quiet", fleet.GroupSettings{})
	if err != nil {
		t.Fatal(err)
	}
	a, b := f.device(on.ID), f.device(off.ID)

	// The first request also brings the tunnel up: retry until the
	// handshake is done.
	post := func(d *gwtest.Device, args string) string {
		var out string
		var err error
		for try := 0; try < 10; try++ {
			out, err = d.Sh("curl -sS --max-time 5 -w '\\n%{http_code}' " + args + " http://100.127.111.111/")
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
	out, err = a.Sh("printf 'hello over tcp' | nc -N -w 10 100.127.111.111 8514")
	if err != nil || out != "201 stored 1\n" {
		t.Fatalf("nc TCP: %v %q", err, out)
	}
	out, err = a.Sh("printf 'hello over udp' | nc -u -w 3 100.127.111.111 8514")
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
	out, _ = b.Sh("printf 'x' | nc -N -w 10 100.127.111.111 8514")
	if !strings.HasPrefix(out, "403 disabled") {
		t.Fatalf("nc TCP, group off: %q", out)
	}

	// Read back through the API.
	var page struct {
		Items []apiv1.DataRecord
	}
	if code := f.call("GET", "/api/v1/sims/"+a.SIM.ID+"/data", &page); code != 200 || len(page.Items) != 3 {
		t.Fatalf("GET data: %d, %d records: %+v", code, len(page.Items), page.Items)
	}
	got := map[string]apiv1.DataRecord{}
	for _, r := range page.Items {
		if r.SIMID != a.SIM.ID || r.GroupID != on.ID || r.Category != "telemetry" {
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
	var gp struct{ Items []apiv1.DataRecord }
	if code := f.call("GET", "/api/v1/groups/"+on.ID+"/data", &gp); code != 200 || len(gp.Items) != 3 {
		t.Fatalf("group data: %d %d", code, len(gp.Items))
	}
	if code := f.call("GET", "/api/v1/sims/"+b.SIM.ID+"/data", &gp); code != 200 || len(gp.Items) != 0 {
		t.Fatalf("refused device has records: %d %+v", code, gp.Items)
	}
}

func b64(s string) string {
	return base64.StdEncoding.EncodeToString([]byte(s))
}

// TestOverIPv6: a device writes over IPv6 to the data store's IPv6 twin
// address (HTTP, TCP, UDP), and the records are its SIM's, as over IPv4.
func TestOverIPv6(t *testing.T) {
	f := newE2E(t)
	ctx := context.Background()
	o6, err := f.Service.Overlay6(ctx)
	if err != nil {
		t.Fatal(err)
	}
	on, err := f.Service.CreateGroup(ctx, controlplane.System, "sensors6", fleet.GroupSettings{DataStore: fleet.DataStoreSettings{Enabled: true}})
	if err != nil {
		t.Fatal(err)
	}
	a, other := f.device(on.ID), f.device(on.ID)
	ds6 := o6.Addr(Addr).String()
	var out string
	for try := 0; try < 10; try++ {
		if out, err = a.Sh("curl -sS --max-time 5 -w '\\n%{http_code}' --data 'six over http' http://[" + ds6 + "]/"); err == nil {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	if err != nil || !strings.HasSuffix(out, "\n201") {
		t.Fatalf("curl over IPv6: %v %q", err, out)
	}
	if out, err = a.Sh("printf 'six over tcp' | nc -N -w 10 " + ds6 + " 8514"); err != nil || out != "201 stored 1\n" {
		t.Fatalf("nc TCP over IPv6: %v %q", err, out)
	}
	if out, err = a.Sh("printf 'six over udp' | nc -u -w 3 " + ds6 + " 8514"); err != nil || out != "201 stored 1\n" {
		t.Fatalf("nc UDP over IPv6: %v %q", err, out)
	}
	var page struct{ Items []apiv1.DataRecord }
	if code := f.call("GET", "/api/v1/sims/"+a.SIM.ID+"/data", &page); code != 200 || len(page.Items) != 3 {
		t.Fatalf("GET data: %d, %d records: %+v", code, len(page.Items), page.Items)
	}
	for _, want := range []string{"six over http", "six over tcp", "six over udp"} {
		found := false
		for _, r := range page.Items {
			found = found || r.PayloadBase64 == b64(want) && r.SIMID == a.SIM.ID
		}
		if !found {
			t.Fatalf("record %q is not SIM %s's: %+v", want, a.SIM.ID, page.Items)
		}
	}
	if code := f.call("GET", "/api/v1/sims/"+other.SIM.ID+"/data", &page); code != 200 || len(page.Items) != 0 {
		t.Fatalf("the other device has records: %d %+v", code, page.Items)
	}
}
