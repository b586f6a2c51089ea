// SPDX-License-Identifier: Apache-2.0

package forwarder

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/wirefleet/wirefleet/fleet"
	"github.com/wirefleet/wirefleet/internal/gwtest"
)

// Inspection records go to forwarder destinations too: with
// inspection.forwardPath, each interval's record of a SIM is posted along
// the group's HTTP route for that path, signed with the route's secret
// and carrying the SIM's identity, as the device's own POST would be.
func TestInspectionRecordsForwarded(t *testing.T) {
	type got struct {
		header http.Header
		path   string
		body   []byte
	}
	recv := make(chan got, 16)
	dest := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		recv <- got{r.Header.Clone(), r.URL.Path, b}
	}))
	defer dest.Close()
	f := newFixtureWith(t, Config{}, gwtest.Options{Inspect: true})
	g := f.group("inspected", fleet.GroupSettings{
		Forwarders: fleet.Forwarders{HTTP: []fleet.HTTPForward{{PathPrefix: "/stats", URL: dest.URL + "/in", Secret: httpSecret}}},
		Inspection: fleet.Inspection{Enabled: true, IntervalSeconds: 10, PerSIM: true, ForwardPath: "/stats/inspection"}})
	dev := f.newDevice(g.ID, nil)
	for i := 0; i < 5; i++ {
		dev.ns.Exec("ping", "-c", "1", "-W", "1", "100.127.127.100")
	}
	var r got
	select {
	case r = <-recv:
	case <-time.After(40 * time.Second):
		t.Fatal("no inspection record reached the destination")
	}
	if r.path != "/in/inspection" || r.header.Get(HeaderSIMID) != dev.sim.ID || r.header.Get(HeaderGroup) != "inspected" || r.header.Get(HeaderIMSI) != dev.sim.IMSI {
		t.Fatalf("record posted to %s with %v", r.path, r.header)
	}
	canonical := strings.Join([]string{"wirefleet-signature-v1", r.header.Get(HeaderTimestamp), dev.sim.ID, dev.sim.IMSI, "inspected", "POST", "/in/inspection", sha256Hex(r.body)}, "\n")
	if want := "v1=" + hmacHex(httpSecret, canonical); r.header.Get(HeaderSignature) != want {
		t.Fatalf("signature %q, want %q", r.header.Get(HeaderSignature), want)
	}
	var rec struct {
		SIMID   string `json:"simId"`
		Traffic struct {
			Statistics struct {
				Packets int64 `json:"packets"`
			} `json:"statistics"`
		} `json:"traffic"`
	}
	if err := json.Unmarshal(r.body, &rec); err != nil || rec.SIMID != dev.sim.ID || rec.Traffic.Statistics.Packets == 0 {
		t.Fatalf("record %s: %v", r.body, err)
	}
}

// A forwardPath no HTTP route takes is refused when the group is written.
func TestInspectionForwardPathNeedsARoute(t *testing.T) {
	s := fleet.GroupSettings{Version: fleet.SettingsVersion, Inspection: fleet.Inspection{Enabled: true, ForwardPath: "/nowhere"}}
	err := s.Normalize("settings")
	if err == nil || !strings.Contains(err.Error(), "inspection.forwardPath") {
		t.Fatalf("got %v", err)
	}
	s.Inspection.ForwardPath = "/a/../b"
	if err := s.Normalize("settings"); err == nil {
		t.Fatal("a path climbing out was accepted")
	}
}
