// SPDX-License-Identifier: Apache-2.0

package datastore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/wirefleet/wirefleet/controlplane/store"
	"github.com/wirefleet/wirefleet/controlplane/store/sqlitestore"
	"github.com/wirefleet/wirefleet/fleet"
	"github.com/wirefleet/wirefleet/internal/clock"
	"github.com/wirefleet/wirefleet/internal/ratelimit"
	"github.com/wirefleet/wirefleet/services/platform"
)

// loopEnv runs the service on loopback listeners over a real SQLite store.
// Devices are loopback source addresses (127.0.0.x) mapped to SIMs: the
// gateway's part (a source address is a SIM) is tested end to end in
// e2e_test.go; this tests what the service does with a message.
type loopEnv struct {
	t       *testing.T
	st      store.Store
	svc     *Service
	reg     *prometheus.Registry
	clk     *clock.Fake
	httpURL string
	tcp     string
	udp     string
	mu      sync.Mutex
	callers map[netip.Addr]platform.Caller
}

func newLoopEnv(t *testing.T) *loopEnv { t.Helper(); return newLoopEnvWith(t, nil) }

// newLoopEnvWith is newLoopEnv with the service's config changed by opt.
func newLoopEnvWith(t *testing.T, opt func(*Config)) *loopEnv {
	t.Helper()
	st, err := sqlitestore.Open(context.Background(), filepath.Join(t.TempDir(), "wirefleet.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	e := &loopEnv{t: t, st: st, reg: prometheus.NewRegistry(), clk: clock.NewFake(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)), callers: map[netip.Addr]platform.Caller{}}
	cfg := Config{Store: st, Registerer: e.reg, Clock: e.clk, RetentionEvery: -1}
	if opt != nil {
		opt(&cfg)
	}
	e.svc = New(cfg)
	hl, _ := net.Listen("tcp", "127.0.0.1:0")
	tl, _ := net.Listen("tcp", "127.0.0.1:0")
	ul, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e.httpURL, e.tcp, e.udp = "http://"+hl.Addr().String()+"/", tl.Addr().String(), ul.LocalAddr().String()
	host := &testHost{tcp: []net.Listener{hl, tl}, udp: []net.PacketConn{ul}, caller: func(_ context.Context, a netip.Addr) (platform.Caller, bool) {
		e.mu.Lock()
		defer e.mu.Unlock()
		c, ok := e.callers[a]
		return c, ok
	}}
	if err := e.svc.Start(host); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.svc.Close() })
	return e
}

// device registers a SIM in a group with settings, sending from 127.0.0.<n>.
func (e *loopEnv) device(n int, set fleet.DataStoreSettings) netip.Addr {
	a := netip.AddrFrom4([4]byte{127, 0, 0, byte(n)})
	e.mu.Lock()
	defer e.mu.Unlock()
	e.callers[a] = platform.Caller{SIM: fleet.SIM{ID: fmt.Sprintf("sim_%d", n), GroupID: fmt.Sprintf("grp_%d", n), Address: a}, Group: fleet.GroupSettings{DataStore: set}}
	return a
}

func (e *loopEnv) post(from netip.Addr, contentType string, body []byte) (int, string) {
	e.t.Helper()
	code, b, _ := e.postHeader(from, contentType, body)
	return code, b
}

// postHeader is post with the answer's headers.
func (e *loopEnv) postHeader(from netip.Addr, contentType string, body []byte) (int, string, http.Header) {
	e.t.Helper()
	c := &http.Client{Transport: &http.Transport{DialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: from.AsSlice()}}).DialContext}, Timeout: 20 * time.Second}
	req, _ := http.NewRequest("POST", e.httpURL, bytes.NewReader(body))
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := c.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

func (e *loopEnv) sendTCP(from netip.Addr, body []byte) string {
	e.t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: from.AsSlice()}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", e.tcp)
	if err != nil {
		e.t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	c.Write(body)
	c.(*net.TCPConn).CloseWrite()
	b, _ := io.ReadAll(c)
	return string(b)
}

func (e *loopEnv) sendUDP(from netip.Addr, body []byte) string {
	e.t.Helper()
	c, err := net.DialUDP("udp", &net.UDPAddr{IP: from.AsSlice()}, net.UDPAddrFromAddrPort(netip.MustParseAddrPort(e.udp)))
	if err != nil {
		e.t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	c.Write(body)
	buf := make([]byte, 2048)
	n, err := c.Read(buf)
	if err != nil {
		e.t.Fatal(err)
	}
	return string(buf[:n])
}

func (e *loopEnv) records(sim string) []fleet.Record {
	e.t.Helper()
	p, err := e.st.ListRecords(context.Background(), store.RecordFilter{SIMID: sim, PageRequest: store.PageRequest{Limit: store.MaxLimit}})
	if err != nil {
		e.t.Fatal(err)
	}
	return p.Items
}

func TestHTTPWrites(t *testing.T) {
	e := newLoopEnv(t)
	on := e.device(2, fleet.DataStoreSettings{Enabled: true, MaxPayload: 100, Category: "telemetry"})
	off := e.device(3, fleet.DataStoreSettings{Enabled: false})
	stranger := netip.MustParseAddr("127.0.0.9")

	if code, body := e.post(on, "application/json", []byte(`{"temp":21.5}`)); code != 201 || !strings.Contains(body, `"stored":1`) {
		t.Fatalf("JSON write: %d %s", code, body)
	}
	bin := []byte{0, 1, 2, 0xff, '\n'}
	if code, body := e.post(on, "application/x-custom", bin); code != 201 {
		t.Fatalf("binary write: %d %s", code, body)
	}
	recs := e.records("sim_2")
	if len(recs) != 2 {
		t.Fatalf("%d records, want 2", len(recs))
	}
	// Same timestamp: newest first by id.
	if recs[0].ContentType != "application/x-custom" || !bytes.Equal(recs[0].Payload, bin) || recs[1].ContentType != "application/json" || string(recs[1].Payload) != `{"temp":21.5}` {
		t.Fatalf("stored %+v", recs)
	}
	for _, r := range recs {
		if r.GroupID != "grp_2" || r.Category != "telemetry" || !r.Time.Equal(e.clk.Now()) || !r.Received.Equal(e.clk.Now()) {
			t.Fatalf("record %+v", r)
		}
	}

	for _, c := range []struct {
		name       string
		from       netip.Addr
		method, ct string
		body       []byte
		code       int
		reason     string
	}{
		{"group off", off, "POST", "application/json", []byte(`{}`), 403, ReasonDisabled},
		{"no SIM", stranger, "POST", "application/json", []byte(`{}`), 403, ReasonUnknownCaller},
		{"too large", on, "POST", "application/octet-stream", bytes.Repeat([]byte("x"), 101), 413, ReasonTooLarge},
		{"bad JSON", on, "POST", "application/json", []byte(`{"a":`), 400, ReasonBadJSON},
	} {
		code, body := e.post(c.from, c.ct, c.body)
		if code != c.code || !strings.Contains(body, `"error":"`+c.reason+`"`) {
			t.Errorf("%s: %d %s, want %d %s", c.name, code, body, c.code, c.reason)
		}
	}
	// Exactly at the limit is fine.
	if code, body := e.post(on, "", bytes.Repeat([]byte("y"), 100)); code != 201 {
		t.Fatalf("100 bytes: %d %s", code, body)
	}
	if n := len(e.records("sim_2")); n != 3 {
		t.Fatalf("refused writes stored something: %d records", n)
	}
	if len(e.records("sim_3")) != 0 {
		t.Fatal("a disabled group's write was stored")
	}
	for reason, want := range map[string]float64{ReasonDisabled: 1, ReasonUnknownCaller: 1, ReasonTooLarge: 1, ReasonBadJSON: 1} {
		if got := value(e.svc.m.rejected.WithLabelValues(reason)); got != want {
			t.Errorf("rejected{%s} = %v, want %v", reason, got, want)
		}
	}
	if got := value(e.svc.m.records.WithLabelValues("http")); got != 3 {
		t.Errorf("records{http} = %v, want 3", got)
	}
	if got := value(e.svc.m.bytes.WithLabelValues("http")); got != float64(len(`{"temp":21.5}`)+len(bin)+100) {
		t.Errorf("bytes{http} = %v", got)
	}
	// Other methods and paths.
	req, _ := http.NewRequest("GET", e.httpURL, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 405 {
		t.Fatalf("GET /: %d", resp.StatusCode)
	}
}

func TestBatchAndTimestamp(t *testing.T) {
	e := newLoopEnv(t)
	d := e.device(2, fleet.DataStoreSettings{Enabled: true, BatchPointer: "/readings", TimestampPointer: "/t"})
	body := `{"readings":[{"t":1767225600000,"v":1},{"t":"2026-01-01T00:00:01Z","v":2},{"v":3}]}`
	if code, b := e.post(d, "application/json", []byte(body)); code != 201 || !strings.Contains(b, `"stored":3`) {
		t.Fatalf("batch: %d %s", code, b)
	}
	recs := e.records("sim_2")
	if len(recs) != 3 {
		t.Fatalf("%d records", len(recs))
	}
	want := map[string]time.Time{`{"t":1767225600000,"v":1}`: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), `{"t":"2026-01-01T00:00:01Z","v":2}`: time.Date(2026, 1, 1, 0, 0, 1, 0, time.UTC), `{"v":3}`: e.clk.Now()}
	for _, r := range recs {
		w, ok := want[string(r.Payload)]
		if !ok || !r.Time.Equal(w) || r.ContentType != ContentJSON || !r.Received.Equal(e.clk.Now()) {
			t.Fatalf("record %s at %v (want %v)", r.Payload, r.Time, w)
		}
	}
	// A batch is all or nothing.
	for _, bad := range []string{`{"readings":[{"t":1},{"t":"yesterday"}]}`, `{"readings":{"t":1}}`, `{"other":[]}`, `[1,2]`} {
		if code, b := e.post(d, "application/json", []byte(bad)); code != 400 {
			t.Errorf("%s: %d %s, want 400", bad, code, b)
		}
	}
	if n := len(e.records("sim_2")); n != 3 {
		t.Fatalf("a refused batch stored records: %d", n)
	}
	// Over TCP and UDP the JSON is recognised without a content type.
	if got := e.sendTCP(d, []byte(`{"readings":[{"v":4},{"v":5}]}`)); got != "201 stored 2\n" {
		t.Fatalf("TCP batch: %q", got)
	}
	if got := e.sendUDP(d, []byte(`{"readings":[{"v":6}]}`)); got != "201 stored 1\n" {
		t.Fatalf("UDP batch: %q", got)
	}
	// A top-level array with "#".
	top := e.device(4, fleet.DataStoreSettings{Enabled: true, BatchPointer: "#"})
	if got := e.sendUDP(top, []byte(`[{"a":1},{"a":2}]`)); got != "201 stored 2\n" {
		t.Fatalf("top-level batch: %q", got)
	}
}

func TestTCPAndUDP(t *testing.T) {
	e := newLoopEnv(t)
	d := e.device(2, fleet.DataStoreSettings{Enabled: true, MaxPayload: 1000})
	off := e.device(3, fleet.DataStoreSettings{})
	if got := e.sendTCP(d, []byte("line one\nline two\n")); got != "201 stored 1\n" {
		t.Fatalf("TCP: %q", got)
	}
	if got := e.sendUDP(d, []byte{1, 2, 3}); got != "201 stored 1\n" {
		t.Fatalf("UDP: %q", got)
	}
	recs := e.records("sim_2")
	if len(recs) != 2 || !bytes.Equal(recs[0].Payload, []byte{1, 2, 3}) || string(recs[1].Payload) != "line one\nline two\n" || recs[0].ContentType != ContentBinary {
		t.Fatalf("records %+v", recs)
	}
	if got := e.sendTCP(d, bytes.Repeat([]byte("z"), 5000)); !strings.HasPrefix(got, "413 too_large") {
		t.Fatalf("TCP too large: %q", got)
	}
	if got := e.sendUDP(d, bytes.Repeat([]byte("z"), 1001)); !strings.HasPrefix(got, "413 too_large") {
		t.Fatalf("UDP too large: %q", got)
	}
	if got := e.sendTCP(off, []byte("x")); !strings.HasPrefix(got, "403 disabled") {
		t.Fatalf("TCP off: %q", got)
	}
	if got := e.sendUDP(off, []byte("x")); !strings.HasPrefix(got, "403 disabled") {
		t.Fatalf("UDP off: %q", got)
	}
	if n := len(e.records("sim_2")); n != 2 {
		t.Fatalf("%d records after refusals", n)
	}
}

// TestGroupCommit: many devices writing at once are committed in fewer
// transactions than writes, and every acknowledged write is stored.
func TestGroupCommit(t *testing.T) {
	e := newLoopEnv(t)
	const devices, each = 32, 20
	for i := range devices {
		e.device(10+i, fleet.DataStoreSettings{Enabled: true})
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	acked := map[string]bool{}
	for i := range devices {
		wg.Add(1)
		go func() {
			defer wg.Done()
			from := netip.AddrFrom4([4]byte{127, 0, 0, byte(10 + i)})
			for j := range each {
				msg := fmt.Sprintf(`{"d":%d,"n":%d}`, i, j)
				if got := e.sendUDP(from, []byte(msg)); got == "201 stored 1\n" {
					mu.Lock()
					acked[msg] = true
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	if len(acked) != devices*each {
		t.Fatalf("%d of %d writes acknowledged", len(acked), devices*each)
	}
	stored := 0
	for i := range devices {
		for _, r := range e.records(fmt.Sprintf("sim_%d", 10+i)) {
			if !acked[string(r.Payload)] {
				t.Fatalf("unexpected record %s", r.Payload)
			}
			stored++
		}
	}
	if stored != devices*each {
		t.Fatalf("%d stored, %d acknowledged", stored, devices*each)
	}
	commits := value(e.svc.m.commits.WithLabelValues("ok"))
	t.Logf("%d writes in %v commits", devices*each, commits)
	if commits >= devices*each {
		t.Fatalf("no group commit: %v commits for %d writes", commits, devices*each)
	}
}

// TestRetentionOnTheLeaseHolder: the scheduled sweep runs only while this
// node holds the cluster-wide job (RetentionHeld): of several nodes on one
// store, one sweeps.
func TestRetentionOnTheLeaseHolder(t *testing.T) {
	var held atomic.Bool
	e := newLoopEnvWith(t, func(c *Config) { c.RetentionEvery, c.RetentionHeld = 10*time.Millisecond, held.Load })
	ctx := context.Background()
	g := fleet.Group{ID: "grp_short", Name: "short", Settings: fleet.GroupSettings{DataStore: fleet.DataStoreSettings{Enabled: true, Retention: "1h"}}}
	if err := g.Settings.Normalize("settings"); err != nil {
		t.Fatal(err)
	}
	if err := e.st.Update(ctx, func(tx store.Tx) error { return tx.InsertGroup(ctx, g) }); err != nil {
		t.Fatal(err)
	}
	old := e.clk.Now().Add(-2 * time.Hour)
	if err := e.st.AppendRecords(ctx, []fleet.Record{{SIMID: "sim_a", GroupID: g.ID, Time: old, Received: old, Category: "c", ContentType: ContentBinary, Payload: []byte{1}}}); err != nil {
		t.Fatal(err)
	}
	left := func() int {
		p, err := e.st.ListRecords(ctx, store.RecordFilter{GroupID: g.ID})
		if err != nil {
			t.Fatal(err)
		}
		return len(p.Items)
	}
	time.Sleep(200 * time.Millisecond) // some twenty ticks
	if left() != 1 {
		t.Fatal("a node not holding the retention job swept")
	}
	held.Store(true)
	for end := time.Now().Add(5 * time.Second); left() != 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatal("the node holding the retention job did not sweep")
		}
	}
}

// TestRetention: the sweeper deletes, per group, the records older than
// the group's retention by the service's (fake) clock.
func TestRetention(t *testing.T) {
	e := newLoopEnv(t)
	ctx := context.Background()
	mk := func(name string, set fleet.DataStoreSettings) fleet.Group {
		g := fleet.Group{ID: "grp_" + name, Name: name, Settings: fleet.GroupSettings{DataStore: set}}
		if err := g.Settings.Normalize("settings"); err != nil {
			t.Fatal(err)
		}
		if err := e.st.Update(ctx, func(tx store.Tx) error { return tx.InsertGroup(ctx, g) }); err != nil {
			t.Fatal(err)
		}
		return g
	}
	short := mk("short", fleet.DataStoreSettings{Enabled: true, Retention: "1h"})
	forever := mk("forever", fleet.DataStoreSettings{Enabled: true})
	now := e.clk.Now()
	var recs []fleet.Record
	for i := range 2500 { // more than one delete chunk
		age := time.Duration(i) * time.Second // 0 … 41 min
		if i >= 1500 {
			age += time.Hour // 1 h 25 min … 1 h 41 min
		}
		for _, g := range []fleet.Group{short, forever} {
			recs = append(recs, fleet.Record{SIMID: "sim_" + g.Name, GroupID: g.ID, Time: now.Add(-age), Received: now, Category: "c", ContentType: ContentBinary, Payload: []byte{1}})
		}
	}
	if err := e.st.AppendRecords(ctx, recs); err != nil {
		t.Fatal(err)
	}
	if n, err := e.svc.Sweep(ctx); err != nil || n != 1000 {
		t.Fatalf("first sweep: %d %v, want the 1000 records past an hour", n, err)
	}
	count := func(g string) int {
		n := 0
		f := store.RecordFilter{GroupID: g, PageRequest: store.PageRequest{Limit: store.MaxLimit}}
		for {
			p, err := e.st.ListRecords(ctx, f)
			if err != nil {
				t.Fatal(err)
			}
			n += len(p.Items)
			for _, r := range p.Items {
				if g == short.ID && r.Time.Before(e.clk.Now().Add(-time.Hour)) {
					t.Fatalf("expired record kept: %v", r.Time)
				}
			}
			if p.Next == "" {
				return n
			}
			f.Cursor = p.Next
		}
	}
	if a, b := count(short.ID), count(forever.ID); a != 1500 || b != 2500 {
		t.Fatalf("after the sweep: %d and %d records, want 1500 and 2500", a, b)
	}
	e.clk.Advance(30 * time.Minute) // now records older than 30 min of the original clock go
	// The records left are 0 to 25 min old on the original clock: none is
	// past the hour yet.
	if n, err := e.svc.Sweep(ctx); err != nil || n != 0 {
		t.Fatalf("second sweep: %d %v, want 0", n, err)
	}
	e.clk.Advance(time.Hour) // every remaining record of short is past an hour
	if n, err := e.svc.Sweep(ctx); err != nil || n != 1500 {
		t.Fatalf("third sweep: %d %v, want 1500", n, err)
	}
	if a, b := count(short.ID), count(forever.ID); a != 0 || b != 2500 {
		t.Fatalf("finally: %d and %d, want 0 and 2500", a, b)
	}
	if got := value(e.svc.m.expired); got != 2500 {
		t.Fatalf("expired metric %v", got)
	}
}

// value reads a counter.
func value(c prometheus.Metric) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		panic(err)
	}
	return m.GetCounter().GetValue()
}

// gatedStore holds every AppendRecords until released, and can fail them.
type gatedStore struct {
	store.Store
	release chan struct{}
	fail    atomic.Bool
	calls   atomic.Int64
}

func (g *gatedStore) AppendRecords(ctx context.Context, recs []fleet.Record) error {
	g.calls.Add(1)
	<-g.release
	if g.fail.Load() {
		return errors.New("disk on fire")
	}
	return g.Store.AppendRecords(ctx, recs)
}

// TestAnswerAfterCommit: no answer leaves before the commit returns (the
// kill test cannot see this ordering: a commit's write reaches the OS
// faster than an answer reaches the device); a failed commit is answered
// 503 and counted, never 201.
func TestAnswerAfterCommit(t *testing.T) {
	e := newLoopEnv(t)
	gs := &gatedStore{Store: e.st, release: make(chan struct{})}
	e.svc.com.close()
	e.svc.com = newCommitter(gs, 1, 1000, 4<<20, e.svc.m.observeCommit)
	releaseAll := sync.OnceFunc(func() { close(gs.release) })
	t.Cleanup(releaseAll) // before the service closes, even on failure
	d := e.device(2, fleet.DataStoreSettings{Enabled: true})
	c, err := net.DialUDP("udp", &net.UDPAddr{IP: d.AsSlice()}, net.UDPAddrFromAddrPort(netip.MustParseAddrPort(e.udp)))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte("held"))
	for gs.calls.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	// The commit is running (and blocked): no answer may have left.
	c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	buf := make([]byte, 512)
	if n, err := c.Read(buf); err == nil {
		t.Fatalf("answered %q before the commit returned", buf[:n])
	}
	gs.release <- struct{}{}
	c.SetReadDeadline(time.Now().Add(20 * time.Second))
	n, err := c.Read(buf)
	if err != nil || string(buf[:n]) != "201 stored 1\n" {
		t.Fatalf("after the commit: %q %v", buf[:n], err)
	}
	// A failing commit: 503 with the reason, nothing acknowledged.
	gs.fail.Store(true)
	releaseAll()
	code, body, hdr := e.postHeader(d, "application/json", []byte(`{"a":1}`))
	if code != 503 || !strings.Contains(body, ReasonStore) || hdr.Get("Retry-After") == "" {
		t.Fatalf("failed commit: %d %s (Retry-After %q)", code, body, hdr.Get("Retry-After"))
	}
	if got := e.sendTCP(d, []byte("x")); !strings.HasPrefix(got, "503 store_error") {
		t.Fatalf("failed commit over TCP: %q", got)
	}
	if v := value(e.svc.m.rejected.WithLabelValues(ReasonStore)); v != 2 {
		t.Fatalf("rejected{store_error} = %v", v)
	}
	if v := value(e.svc.m.records.WithLabelValues("http")); v != 0 {
		t.Fatalf("a failed write was counted as stored: %v", v)
	}
	if recs := e.records("sim_2"); len(recs) != 1 || string(recs[0].Payload) != "held" {
		t.Fatalf("records %+v", recs)
	}
}

// TestRateLimit: a SIM sending more messages than its rate is refused
// with 429 and the reason, on every transport; other SIMs are not.
func TestRateLimit(t *testing.T) {
	e := newLoopEnv(t)
	e.svc.limit = ratelimit.New(ratelimit.Config{PerSecond: 0.001, Burst: 3})
	noisy := e.device(2, fleet.DataStoreSettings{Enabled: true})
	calm := e.device(3, fleet.DataStoreSettings{Enabled: true})
	for i := range 3 {
		if got := e.sendUDP(noisy, []byte{byte(i)}); got != "201 stored 1\n" {
			t.Fatalf("within the burst: %q", got)
		}
	}
	if code, body := e.post(noisy, "", []byte("x")); code != 429 || !strings.Contains(body, ReasonRateLimited) {
		t.Fatalf("HTTP over the rate: %d %s", code, body)
	}
	if got := e.sendTCP(noisy, []byte("x")); !strings.HasPrefix(got, "429 rate_limited") {
		t.Fatalf("TCP over the rate: %q", got)
	}
	if got := e.sendUDP(noisy, []byte("x")); !strings.HasPrefix(got, "429 rate_limited") {
		t.Fatalf("UDP over the rate: %q", got)
	}
	if got := e.sendUDP(calm, []byte("x")); got != "201 stored 1\n" {
		t.Fatalf("another SIM: %q", got)
	}
	if n := len(e.records("sim_2")); n != 3 {
		t.Fatalf("%d records of the noisy SIM, want 3", n)
	}
	if v := value(e.svc.m.rejected.WithLabelValues(ReasonRateLimited)); v != 3 {
		t.Fatalf("rejected{rate_limited} = %v", v)
	}
}

// Close is bounded: a device connection that sent nothing (or never
// half-closes) ends at once and its message is not stored, instead of
// holding shutdown for the 30 s read timeout.
func TestCloseBounded(t *testing.T) {
	e := newLoopEnv(t)
	from := e.device(5, fleet.DataStoreSettings{Enabled: true})
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: from.AsSlice()}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", e.tcp)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte(`{"half":`)) // and never half-closes
	time.Sleep(200 * time.Millisecond)
	start := time.Now()
	if err := e.svc.Close(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("Close took %v with an idle device connection", d)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	answer, _ := io.ReadAll(c)
	if strings.HasPrefix(string(answer), "201") || len(e.records("sim_5")) != 0 {
		t.Fatalf("a message cut by shutdown was acknowledged (%q) or stored", answer)
	}
}

// A payload timestamp far ahead of the server's clock is refused: such a
// record would never expire and would always list first.
func TestFutureTimestampRefused(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	set := fleet.DataStoreSettings{Enabled: true, TimestampPointer: "/t"}
	sim := fleet.SIM{ID: "sim_1", GroupID: "grp_1"}
	ok := fmt.Sprintf(`{"t":%d}`, now.Add(5*time.Minute).UnixMilli()) // a drifting clock
	if recs, err := Records(set, sim, "application/json", []byte(ok), now); err != nil || len(recs) != 1 {
		t.Fatalf("5 minutes ahead: %v", err)
	}
	far := fmt.Sprintf(`{"t":%d}`, now.Add(24*time.Hour).UnixMilli())
	_, err := Records(set, sim, "application/json", []byte(far), now)
	var rj *Reject
	if !errors.As(err, &rj) || rj.Status != 400 || rj.Reason != ReasonBadTimestamp {
		t.Fatalf("a day ahead: %v, want 400 %s", err, ReasonBadTimestamp)
	}
}
