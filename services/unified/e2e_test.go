// SPDX-License-Identifier: Apache-2.0

package unified

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wirefleet/wirefleet/controlplane"
	"github.com/wirefleet/wirefleet/controlplane/store"
	"github.com/wirefleet/wirefleet/fleet"
	"github.com/wirefleet/wirefleet/internal/egress"
	"github.com/wirefleet/wirefleet/internal/gwtest"
	"github.com/wirefleet/wirefleet/internal/seal"
	"github.com/wirefleet/wirefleet/services/datastore"
	"github.com/wirefleet/wirefleet/services/forwarder"
	"github.com/wirefleet/wirefleet/services/platform"
)

// fixture: a gateway (internal/gwtest) with the data store, the forwarders
// and the unified endpoint; devices are Debian wireguard-go.
type fixture struct {
	*gwtest.Platform
	t *testing.T
}

func newFixture(t *testing.T) *fixture {
	key, err := seal.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	p := gwtest.Start(t, gwtest.Options{Subnet: 232, Secrets: key, Services: func(st store.Store, log *slog.Logger) []platform.Service {
		ds := datastore.New(datastore.Config{Store: st, Logger: log})
		fwd := forwarder.New(forwarder.Config{Egress: egress.Policy{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("10.0.0.0/8")}}, Secrets: key, Logger: log, Timeout: 5 * time.Second})
		return []platform.Service{ds, fwd, New(Config{DataStore: ds, Forwarder: fwd, Logger: log})}
	}})
	return &fixture{Platform: p, t: t}
}

func (f *fixture) group(name string, s fleet.GroupSettings) fleet.Group { return f.Group(name, s) }

func (f *fixture) newDevice(groupID string) *gwtest.Device { return f.Device(groupID, nil) }

// records returns the SIM's stored payloads.
func (f *fixture) records(simID string) []string {
	p, err := f.Service.ListRecords(context.Background(), controlplane.System, store.RecordFilter{SIMID: simID})
	if err != nil {
		f.t.Fatal(err)
	}
	var out []string
	for _, r := range p.Items {
		out = append(out, string(r.Payload))
	}
	return out
}

// destination is a cloud endpoint on loopback recording what it got.
type destination struct {
	mu   sync.Mutex
	got  []*http.Request
	body []string
	srv  *httptest.Server
}

func newDestination(t *testing.T) *destination {
	d := &destination{}
	d.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		d.mu.Lock()
		d.got = append(d.got, r)
		d.body = append(d.body, string(b))
		d.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"ok":true,"path":%q}`, r.URL.Path)
	}))
	t.Cleanup(d.srv.Close)
	return d
}

func (d *destination) last() (*http.Request, string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.got) == 0 {
		return nil, ""
	}
	return d.got[len(d.got)-1], d.body[len(d.body)-1]
}

// One message to 100.127.69.42 reaches every service the group enables:
// over HTTP, UDP and TCP the data store stores it and the forwarder
// delivers it with the device's identity, and the device gets both
// answers; a group with only the data store gets its answer alone; a
// destination that is down is a partial success (207) with the reason; a
// group with nothing enabled gets 404 with the reason.
func TestUnifiedEndpoint(t *testing.T) {
	f := newFixture(t)
	dst := newDestination(t)
	const secret = "unified-secret-0123456789"
	both := f.group("both", fleet.GroupSettings{
		DataStore: fleet.DataStoreSettings{Enabled: true},
		Forwarders: fleet.Forwarders{
			HTTP: []fleet.HTTPForward{{PathPrefix: "/", URL: dst.srv.URL + "/ingest", Secret: secret}},
			UDP:  fleet.UDPForward{URL: dst.srv.URL + "/udp", Secret: secret},
			TCP:  fleet.TCPForward{URL: dst.srv.URL + "/tcp", Secret: secret},
		},
	})
	storeOnly := f.group("store-only", fleet.GroupSettings{DataStore: fleet.DataStoreSettings{Enabled: true}})
	none := f.group("none", fleet.GroupSettings{})
	a, b, c := f.newDevice(both.ID), f.newDevice(storeOnly.ID), f.newDevice(none.ID)

	type answer map[string]struct {
		Status  int             `json:"status"`
		Stored  int             `json:"stored"`
		Error   string          `json:"error"`
		Message string          `json:"message"`
		Body    json.RawMessage `json:"body"`
	}
	post := func(d *gwtest.Device, path, body string) (int, answer, string) {
		t.Helper()
		out, err := d.Sh(fmt.Sprintf(`curl -sS --max-time 10 -H 'Content-Type: application/json' --data '%s' -w '\n%%{http_code}' http://%s%s`, body, Addr, path))
		if err != nil {
			t.Fatalf("curl: %v %s", err, out)
		}
		i := strings.LastIndex(out, "\n")
		var code int
		fmt.Sscan(out[i+1:], &code)
		var a answer
		json.Unmarshal([]byte(out[:i]), &a)
		return code, a, out[:i]
	}

	// HTTP: both services.
	code, ans, raw := post(a, "/telemetry", `{"temp":21.5}`)
	if code != 200 || ans[ServiceDataStore].Status != 201 || ans[ServiceDataStore].Stored != 1 || ans[ServiceForwarder].Status != 200 {
		t.Fatalf("both services: %d %s", code, raw)
	}
	if !strings.Contains(string(ans[ServiceForwarder].Body), `"/ingest/telemetry"`) {
		t.Fatalf("the forwarder's answer is not the destination's: %s", raw)
	}
	req, body := dst.last()
	if req == nil || req.Header.Get(forwarder.HeaderSIMID) != a.SIM.ID || req.Header.Get(forwarder.HeaderSignature) == "" || body != `{"temp":21.5}` {
		t.Fatalf("the destination got %v %q", req, body)
	}
	if got := f.records(a.SIM.ID); len(got) != 1 || got[0] != `{"temp":21.5}` {
		t.Fatalf("stored %q", got)
	}

	// UDP and TCP: one message, one JSON line with both answers.
	out, err := a.Sh(fmt.Sprintf(`printf 'dgram-1' | nc -u -w 3 %s %d`, Addr, MessagePort))
	if err != nil || !strings.Contains(out, `"status":200`) || !strings.Contains(out, `"stored":1`) || !strings.Contains(out, `"/udp"`) {
		t.Fatalf("UDP: %v %q", err, out)
	}
	if _, got := dst.last(); !strings.Contains(got, `"payload":"ZGdyYW0tMQ=="`) || !strings.Contains(got, a.SIM.ID) {
		t.Fatalf("the destination got the datagram as %q, want the forwarder's JSON with the identity", got)
	}
	out, err = a.Sh(fmt.Sprintf(`printf 'stream-1' | nc -N -w 5 %s %d`, Addr, MessagePort))
	if err != nil || !strings.Contains(out, `"status":200`) || !strings.Contains(out, `"stored":1`) || !strings.Contains(out, `"/tcp"`) {
		t.Fatalf("TCP: %v %q", err, out)
	}
	if got := f.records(a.SIM.ID); len(got) != 3 {
		t.Fatalf("after UDP and TCP, stored %q", got)
	}
	if req, got := dst.last(); got != "stream-1" || req.Header.Get(forwarder.HeaderSIMID) != a.SIM.ID {
		t.Fatalf("the destination got the TCP message as %q", got)
	}

	// Only the data store: its answer alone.
	code, ans, raw = post(b, "/x", `{"n":1}`)
	if code != 200 || len(ans) != 1 || ans[ServiceDataStore].Status != 201 {
		t.Fatalf("store only: %d %s", code, raw)
	}

	// The destination down: stored, not forwarded — 207 with the reason.
	dst.srv.Close()
	code, ans, raw = post(a, "/telemetry", `{"temp":22}`)
	if code != 207 || ans[ServiceDataStore].Status != 201 || ans[ServiceForwarder].Status != 502 || ans[ServiceForwarder].Error == "" {
		t.Fatalf("destination down: %d %s", code, raw)
	}

	// Nothing enabled: 404 saying so; nothing stored.
	code, _, raw = post(c, "/x", `{"n":1}`)
	if code != 404 || !strings.Contains(raw, "no_service") {
		t.Fatalf("nothing enabled: %d %s", code, raw)
	}
	if got := f.records(c.SIM.ID); len(got) != 0 {
		t.Fatalf("stored for a group without the data store: %q", got)
	}

	// Over IPv6, at the endpoint's IPv6 twin: the same SIM.
	o6, err := f.Service.Overlay6(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	out6, err := a.Sh(fmt.Sprintf(`curl -sS --max-time 10 -H 'Content-Type: application/json' --data '{"temp":6}' -w '\n%%{http_code}' http://[%s]/six`, o6.Addr(Addr)))
	// (The destination is gone by now: the data store's part answers.)
	if err != nil || !strings.Contains(out6, `"dataStore":{"status":201,"stored":1}`) {
		t.Fatalf("over IPv6: %v %s", err, out6)
	}
	if got := f.records(a.SIM.ID); !slices.Contains(got, `{"temp":6}`) {
		t.Fatalf("the record written over IPv6 is not SIM %s's: %q", a.SIM.ID, got)
	}
}

// A TCP message the device never finishes (no half-close) is answered 408
// and handed to nobody; Close does not wait for such a connection.
func TestUnifiedIncompleteTCP(t *testing.T) {
	f := newFixture(t)
	g := f.group("store", fleet.GroupSettings{DataStore: fleet.DataStoreSettings{Enabled: true}})
	d := f.newDevice(g.ID)
	out, err := d.Sh(fmt.Sprintf(`printf 'half' | nc -w 15 %s %d`, Addr, MessagePort))
	if !strings.Contains(out, `"status":408`) {
		t.Fatalf("an unfinished message: %v %q, want 408", err, out)
	}
	if got := f.records(d.SIM.ID); len(got) != 0 {
		t.Fatalf("an unfinished message was stored: %q", got)
	}
}
