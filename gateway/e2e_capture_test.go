// SPDX-License-Identifier: Apache-2.0

package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wirefleet/wirefleet/fleet"
)

// apiCall is an API request as admin, with its status and body.
func (f *fixture) apiCall(method, path string, body any) (int, []byte) {
	f.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, f.api.URL+path, rd)
	req.Header.Set("Authorization", "Bearer "+f.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, out
}

func (f *fixture) capture(id string) fleet.Capture {
	f.t.Helper()
	code, body := f.apiCall("GET", "/api/v1/captures/"+id, nil)
	var c fleet.Capture
	if code != 200 || json.Unmarshal(body, &c) != nil {
		f.t.Fatalf("GET capture %s: %d %s", id, code, body)
	}
	return c
}

// A capture session on a SIM, through the API, with real devices: during
// it the device pings and fetches; stopped, its pcapng file downloads (with
// the token, and by a signed link without one) and `tcpdump -r` shows the
// pings and the TCP exchange with the right addresses. A session with a
// 1 MiB cap ends at it; one of 30 s ends by itself; bad requests are
// refused; a deleted session's file is gone.
func TestCaptureSessions(t *testing.T) {
	dir := t.TempDir()
	f := newFixture(t, func(c *Config) { c.CaptureDir = dir })
	grp := f.group("captured", fleet.GroupSettings{})
	a := f.newDevice(grp.ID)
	if err := a.pingUntil(MetadataAddr.String(), 10*time.Second); err != nil {
		t.Fatal(err)
	}

	for name, c := range map[string]struct {
		body any
		code int
	}{
		"too short":     {map[string]any{"simId": a.sim.ID, "duration": 10}, 400},
		"too long":      {map[string]any{"simId": a.sim.ID, "duration": 86401}, 400},
		"no target":     {map[string]any{"duration": 60}, 400},
		"both targets":  {map[string]any{"simId": a.sim.ID, "groupId": grp.ID, "duration": 60}, 400},
		"no such SIM":   {map[string]any{"simId": "sim_nope", "duration": 60}, 404},
		"bad prefix":    {map[string]any{"simId": a.sim.ID, "duration": 60, "prefix": "10.0.0.1/8"}, 400},
		"icmp port":     {map[string]any{"simId": a.sim.ID, "duration": 60, "protocol": "icmp", "port": 80}, 400},
		"tiny size cap": {map[string]any{"simId": a.sim.ID, "duration": 60, "maxBytes": 1000}, 400},
	} {
		if code, body := f.apiCall("POST", "/api/v1/captures", c.body); code != c.code {
			t.Errorf("%s: %d %s, want %d", name, code, body, c.code)
		}
	}

	start := func(body map[string]any) fleet.Capture {
		t.Helper()
		code, out := f.apiCall("POST", "/api/v1/captures", body)
		var c fleet.Capture
		if code != 201 || json.Unmarshal(out, &c) != nil {
			t.Fatalf("POST capture: %d %s", code, out)
		}
		waitFor(t, "the session to capture", func() bool { return f.capture(c.ID).Status == fleet.CaptureCapturing })
		return c
	}
	short := start(map[string]any{"simId": a.sim.ID, "duration": 30})
	main := start(map[string]any{"simId": a.sim.ID, "duration": 600})
	if code, body := f.apiCall("POST", "/api/v1/captures", map[string]any{"simId": a.sim.ID, "duration": 60}); code != 409 {
		t.Fatalf("a third session on one SIM: %d %s, want 409", code, body)
	}

	if err := a.ping(MetadataAddr.String(), 3, 3*time.Second); err != nil {
		t.Fatal(err)
	}
	if out, err := a.curl("http://" + MetadataAddr.String() + "/v1/subscriber"); err != nil || !strings.HasSuffix(out, "\n200") {
		t.Fatalf("metadata: %v %q", err, out)
	}
	if code, body := f.apiCall("POST", "/api/v1/captures/"+main.ID+"/stop", nil); code != 200 {
		t.Fatalf("stop: %d %s", code, body)
	}
	waitFor(t, "the stopped session's counters", func() bool { c := f.capture(main.ID); return c.Status == fleet.CaptureStopped && c.Packets >= 8 })
	if code, _ := f.apiCall("POST", "/api/v1/captures/"+main.ID+"/stop", nil); code != 400 {
		t.Fatalf("stopping a stopped session: %d, want 400", code)
	}

	// Download with the token; tcpdump reads it.
	code, file := f.apiCall("GET", "/api/v1/captures/"+main.ID+"/file", nil)
	if code != 200 || len(file) < 100 {
		t.Fatalf("download: %d, %d bytes", code, len(file))
	}
	path := filepath.Join(t.TempDir(), "c.pcapng")
	os.WriteFile(path, file, 0o600)
	out, err := exec.Command("tcpdump", "-n", "-r", path).CombinedOutput()
	if err != nil {
		t.Fatalf("tcpdump -r: %v\n%s", err, out)
	}
	dump := string(out)
	for _, want := range []string{
		fmt.Sprintf("%s > %s: ICMP echo request", a.sim.Address, MetadataAddr),
		fmt.Sprintf("%s > %s: ICMP echo reply", MetadataAddr, a.sim.Address),
		fmt.Sprintf("%s.80 > %s.", MetadataAddr, a.sim.Address),
		fmt.Sprintf("> %s.80: Flags [S]", MetadataAddr),
	} {
		if !strings.Contains(dump, want) {
			t.Errorf("tcpdump shows no %q:\n%s", want, dump)
		}
	}

	// A signed link, without the token; a forged one is refused.
	code, body := f.apiCall("POST", "/api/v1/captures/"+main.ID+"/url", nil)
	var link struct{ URL string }
	if code != 200 || json.Unmarshal(body, &link) != nil || link.URL == "" {
		t.Fatalf("url: %d %s", code, body)
	}
	resp, err := http.Get(f.api.URL + link.URL)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !bytes.Equal(got, file) {
		t.Fatalf("signed download: %d, %d bytes (want %d)", resp.StatusCode, len(got), len(file))
	}
	resp, err = http.Get(f.api.URL + link.URL[:len(link.URL)-4] + "beef")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Fatalf("a forged signature: %d, want 401", resp.StatusCode)
	}

	// A 1 MiB cap: a ping flood fills it, and the session ends there.
	capped := start(map[string]any{"simId": a.sim.ID, "duration": 600, "maxBytes": 1 << 20})
	a.ns.Exec("ping", "-f", "-c", "1500", "-s", "1200", "-W", "1", "-n", MetadataAddr.String())
	waitFor(t, "the size cap to end the session", func() bool { return f.capture(capped.ID).Status == fleet.CaptureDone })
	if c := f.capture(capped.ID); !strings.Contains(c.Reason, "size cap") || c.Bytes > 1<<20 {
		t.Fatalf("capped session: %+v", c)
	}
	if fi, err := os.Stat(CaptureFile(dir, capped.ID)); err != nil || fi.Size() > 1<<20 {
		t.Fatalf("capped file: %v %v", fi, err)
	}

	// The 30 s one ends by itself.
	waitForWithin(t, 45*time.Second, "the 30 s session to end", func() bool { return f.capture(short.ID).Status == fleet.CaptureDone })
	if c := f.capture(short.ID); c.Packets == 0 || c.Expires.Sub(c.Ended) != fleet.CaptureRetention {
		t.Fatalf("ended session: %+v", c)
	}

	// Deleted: the record and the file go.
	if code, body := f.apiCall("DELETE", "/api/v1/captures/"+main.ID, nil); code != 204 {
		t.Fatalf("delete: %d %s", code, body)
	}
	waitFor(t, "the file to go", func() bool { _, err := os.Stat(CaptureFile(dir, main.ID)); return os.IsNotExist(err) })
	if code, _ := f.apiCall("GET", "/api/v1/captures/"+main.ID, nil); code != 404 {
		t.Fatalf("a deleted session: %d", code)
	}

	// Seven days after its end, a session and its file are gone.
	f.gw.caps.sweep(context.Background(), f.capture(capped.ID).Expires.Add(time.Second))
	if code, _ := f.apiCall("GET", "/api/v1/captures/"+capped.ID, nil); code != 404 {
		t.Fatalf("an expired session: %d", code)
	}
	if _, err := os.Stat(CaptureFile(dir, capped.ID)); !os.IsNotExist(err) {
		t.Fatalf("an expired session's file: %v", err)
	}
}
