// SPDX-License-Identifier: Apache-2.0

package console_test

import (
	"bytes"
	"context"
	"fmt"
	"html"
	"io"
	"mime/multipart"
	"net/http"
	"net/netip"
	"net/url"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wirefleet/wirefleet/controlplane"
	"github.com/wirefleet/wirefleet/controlplane/console"
	"github.com/wirefleet/wirefleet/controlplane/store"
	"github.com/wirefleet/wirefleet/fleet"
	"github.com/wirefleet/wirefleet/internal/seal"
)

// signedIn is a browser signed in with a new token of role, and its CSRF
// token.
func (s *site) signedIn(role fleet.Role) (*http.Client, string) {
	s.t.Helper()
	_, secret := s.token(role)
	c := browser(s.t)
	s.signIn(c, secret)
	return c, s.csrf(c)
}

// post sends form (with the CSRF token) and returns the status and body.
func post(t *testing.T, s *site, c *http.Client, csrf, path string, form url.Values) (int, string, string) {
	t.Helper()
	form.Set("csrf", csrf)
	resp, body := do(t, c, "POST", s.url+path, form, nil)
	return resp.StatusCode, html.UnescapeString(body), resp.Header.Get("Location")
}

// TestGatePeers: an operator registers a Gate peer (a bad outer address is
// said beside its field, nothing stored), sees the host's setup commands,
// and removes it; a viewer sees no form and a forged POST is refused.
func TestGatePeers(t *testing.T) {
	s := newSite(t, console.Config{})
	ctx := context.Background()
	c, csrf := s.signedIn(fleet.RoleOperator)
	code, body, _ := post(t, s, c, csrf, "/gatepeers", url.Values{"name": {"plc-lan"}, "outer": {"10.128.0.9"}, "vni": {"42"}})
	if code != http.StatusBadRequest || !strings.Contains(body, `id="err-gatepeer">outerAddress:`) {
		t.Fatalf("an outer address inside the pool: %d\n%s", code, body)
	}
	if code, body, _ := post(t, s, c, csrf, "/gatepeers", url.Values{"name": {"plc-lan"}, "outer": {"192.0.2.10"}, "vni": {"0"}}); code != http.StatusBadRequest || !strings.Contains(body, `id="err-gatepeer">vni:`) {
		t.Fatalf("VNI 0: %d", code)
	}
	if pg, _ := s.svc.ListGatePeers(ctx, controlplane.System, store.PageRequest{}); len(pg.Items) != 0 {
		t.Fatal("a refused form registered a Gate peer")
	}
	code, _, loc := post(t, s, c, csrf, "/gatepeers", url.Values{"name": {"plc-lan"}, "outer": {"192.0.2.10"}, "vni": {"42"}})
	if code != http.StatusSeeOther {
		t.Fatalf("register: %d", code)
	}
	pg, _ := s.svc.ListGatePeers(ctx, controlplane.System, store.PageRequest{})
	if len(pg.Items) != 1 {
		t.Fatalf("%d Gate peers, want 1", len(pg.Items))
	}
	gp := pg.Items[0]
	_, body = do(t, c, "GET", s.url+loc, nil, nil)
	body = html.UnescapeString(body)
	if !strings.Contains(body, "ip link add vxlan0 type vxlan id 42 local 192.0.2.10 remote 127.0.0.1") || !strings.Contains(body, "ip addr add "+gp.InnerAddress.String()+"/") {
		t.Fatalf("the page lacks the host's setup:\n%s", body)
	}
	v, vcsrf := s.signedIn(fleet.RoleViewer)
	if _, body := do(t, v, "GET", s.url+"/gatepeers", nil, nil); strings.Contains(body, `<form method="post" action="/gatepeers`) || !strings.Contains(body, "plc-lan") {
		t.Fatal("the viewer's Gate peers page is wrong")
	}
	for _, p := range []string{"/gatepeers", "/gatepeers/" + gp.ID + "/delete"} {
		if code, _, _ := post(t, s, v, vcsrf, p, url.Values{"name": {"x"}, "outer": {"192.0.2.11"}, "vni": {"7"}}); code != http.StatusForbidden {
			t.Errorf("viewer POST %s: %d, want 403", p, code)
		}
	}
	if code, _, _ := post(t, s, c, csrf, "/gatepeers/"+gp.ID+"/delete", url.Values{}); code != http.StatusSeeOther {
		t.Fatalf("remove: %d", code)
	}
	if pg, _ := s.svc.ListGatePeers(ctx, controlplane.System, store.PageRequest{}); len(pg.Items) != 0 {
		t.Fatal("the Gate peer is still registered")
	}
}

// TestCaptures: a capture is started (a bad duration said beside its
// field), listed, downloaded by a short-lived signed link, stopped only
// when capturing, and deleted; a viewer may download but not start one.
func TestCaptures(t *testing.T) {
	s := newSite(t, console.Config{})
	ctx := context.Background()
	sim, _, err := s.svc.CreateSIM(ctx, controlplane.System, controlplane.SIMSpec{Name: "cam", GenerateKey: true})
	if err != nil {
		t.Fatal(err)
	}
	c, csrf := s.signedIn(fleet.RoleOperator)
	if _, body := do(t, c, "GET", s.url+"/captures?sim="+sim.ID, nil, nil); !strings.Contains(body, `name="sim" value="`+sim.ID+`"`) {
		t.Fatal("a link from the SIM's page does not fill in the SIM")
	}
	code, body, _ := post(t, s, c, csrf, "/captures", url.Values{"sim": {sim.ID}, "duration": {"5"}})
	if code != http.StatusBadRequest || !strings.Contains(body, `id="err-capture">duration:`) {
		t.Fatalf("5 s: %d\n%s", code, body)
	}
	if code, body, _ := post(t, s, c, csrf, "/captures", url.Values{"sim": {sim.ID}, "duration": {"60"}, "prefix": {"10.0.0.1/8"}}); code != http.StatusBadRequest || !strings.Contains(body, `id="err-capture">prefix:`) {
		t.Fatalf("host bits: %d", code)
	}
	if code, _, _ := post(t, s, c, csrf, "/captures", url.Values{"sim": {sim.ID}, "duration": {"60"}, "protocol": {"tcp"}, "port": {"443"}, "mib": {"10"}}); code != http.StatusSeeOther {
		t.Fatalf("start: %d", code)
	}
	pg, _ := s.svc.ListCaptures(ctx, controlplane.System, store.PageRequest{})
	if len(pg.Items) != 1 || pg.Items[0].Port != 443 || pg.Items[0].MaxBytes != 10<<20 || pg.Items[0].Duration != time.Minute {
		t.Fatalf("captures: %+v", pg.Items)
	}
	capt := pg.Items[0]
	if _, body := do(t, c, "GET", s.url+"/captures", nil, nil); !strings.Contains(body, `<tr data-capture="`+capt.ID+`"`) || !strings.Contains(body, "REQUESTED") {
		t.Fatal("the capture is not listed")
	}
	// Not capturing yet: a stop is refused, on the page.
	if code, body, _ := post(t, s, c, csrf, "/captures/"+capt.ID+"/stop", url.Values{}); code != http.StatusBadRequest || !strings.Contains(body, "not CAPTURING") {
		t.Fatalf("stop while requested: %d", code)
	}
	v, vcsrf := s.signedIn(fleet.RoleViewer)
	resp, _ := do(t, v, "GET", s.url+"/captures/"+capt.ID+"/download", nil, nil)
	loc, _ := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusSeeOther || loc == nil || loc.Path != "/api/v1/captures/"+capt.ID+"/download" {
		t.Fatalf("download: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	if err := s.svc.CheckCaptureURL(capt.ID, loc.Query().Get("expires"), loc.Query().Get("signature")); err != nil {
		t.Fatalf("the link does not check: %v", err)
	}
	s.clock.Advance(2 * time.Minute)
	if err := s.svc.CheckCaptureURL(capt.ID, loc.Query().Get("expires"), loc.Query().Get("signature")); err == nil {
		t.Fatal("the console's download link works after two minutes")
	}
	for _, p := range []string{"/captures", "/captures/" + capt.ID + "/delete", "/captures/" + capt.ID + "/stop"} {
		if code, _, _ := post(t, s, v, vcsrf, p, url.Values{"sim": {sim.ID}, "duration": {"60"}}); code != http.StatusForbidden {
			t.Errorf("viewer POST %s: %d, want 403", p, code)
		}
	}
	if code, _, _ := post(t, s, c, csrf, "/captures/"+capt.ID+"/delete", url.Values{}); code != http.StatusSeeOther {
		t.Fatalf("delete: %d", code)
	}
	if _, err := s.svc.GetCapture(ctx, controlplane.System, capt.ID); err == nil {
		t.Fatal("the capture is still there")
	}
}

const cardsCSV = "ICCID,IMSI,Ki,OPc\n" +
	"898110000000000001,001010000000001,465b5ce8b199b49faa5f0a2ee238a6bc,cd63cb71954a9f4e48a5994e37a02baf\n" +
	"898110000000000002,001010000000002,0396eb317b6d1c36f19c1c84cd6ffd16,53c15671c60a4b731c55b4a441c0bde2\n"

// upload posts a multipart form with one file, as a browser sends one.
func upload(t *testing.T, s *site, c *http.Client, path string, fields map[string]string, file string) (int, string) {
	t.Helper()
	var b bytes.Buffer
	mw := multipart.NewWriter(&b)
	for k, v := range fields {
		mw.WriteField(k, v)
	}
	fw, _ := mw.CreateFormFile("file", "cards.csv")
	fw.Write([]byte(file))
	mw.Close()
	req, _ := http.NewRequest("POST", s.url+path, &b)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	r, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Body.Close()
	var out bytes.Buffer
	out.ReadFrom(r.Body)
	return r.StatusCode, html.UnescapeString(out.String())
}

// countingReader counts what the server read of a request body.
type countingReader struct {
	r io.Reader
	n atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// TestSIMCardImportBounds: an operator's import is refused before its
// body is read (a large upload costs the server nothing), an admin's
// larger than the API's bound is refused with that bound named, and one
// up to it is read whole.
func TestSIMCardImportBounds(t *testing.T) {
	key, err := seal.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	s := newSite(t, console.Config{}, func(c *controlplane.Config) { c.Secrets = key })
	send := func(c *http.Client, csrf string, size int) (int, string, int64) {
		var b bytes.Buffer
		mw := multipart.NewWriter(&b)
		mw.WriteField("csrf", csrf)
		fw, _ := mw.CreateFormFile("file", "cards.csv")
		fw.Write([]byte(cardsCSV))
		fw.Write(bytes.Repeat([]byte("\n"), size-len(cardsCSV)))
		mw.Close()
		total := int64(b.Len())
		body := &countingReader{r: &b}
		req, _ := http.NewRequest("POST", s.url+"/simcards", body)
		req.ContentLength = total
		req.Header.Set("Content-Type", mw.FormDataContentType())
		r, err := c.Do(req)
		if err != nil {
			t.Fatalf("the upload of %d bytes: %v", size, err)
		}
		defer r.Body.Close()
		out, _ := io.ReadAll(r.Body)
		return r.StatusCode, string(out), total - body.n.Load()
	}
	op, ocsrf := s.signedIn(fleet.RoleOperator)
	code, msg, unread := send(op, ocsrf, 4*fleet.MaxCardCSV)
	if code != http.StatusForbidden || !strings.Contains(msg, "admin") {
		t.Fatalf("an operator's large import: %d %q, want 403 naming the role", code, msg)
	}
	if unread < int64(fleet.MaxCardCSV) {
		t.Errorf("the server read all but %d bytes of a refused operator's upload", unread)
	}
	admin, acsrf := s.signedIn(fleet.RoleAdmin)
	if code, msg, _ := send(admin, acsrf, fleet.MaxCardCSV+128<<10); code != http.StatusRequestEntityTooLarge || !strings.Contains(msg, "send it in parts") {
		t.Fatalf("an admin's import over the bound: %d %q, want 413", code, msg)
	}
	if code, msg, _ := send(admin, acsrf, fleet.MaxCardCSV-1<<10); code != http.StatusSeeOther {
		t.Fatalf("an admin's import at the bound: %d %q, want it read whole and imported", code, msg)
	}
}

// TestSIMCards: an admin imports a vendor's CSV as a file (a bad one is
// refused whole, its text not echoed); the page never shows a key; an
// operator suspends a card and sets its group but cannot import or
// forget one; a viewer changes nothing.
func TestSIMCards(t *testing.T) {
	key, err := seal.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	s := newSite(t, console.Config{}, func(c *controlplane.Config) { c.Secrets = key })
	ctx := context.Background()
	g, _ := s.svc.CreateGroup(ctx, controlplane.System, "meters", fleet.GroupSettings{})
	admin, acsrf := s.signedIn(fleet.RoleAdmin)
	bad := strings.Replace(cardsCSV, "0396eb317b6d1c36f19c1c84cd6ffd16", "nothex", 1)
	code, body := upload(t, s, admin, "/simcards", map[string]string{"csrf": acsrf, "group": g.ID}, bad)
	if code != http.StatusBadRequest || !strings.Contains(body, `id="err-cards"`) || strings.Contains(body, "465b5ce8b199b49faa5f0a2ee238a6bc") {
		t.Fatalf("a bad CSV: %d\n%s", code, body)
	}
	if pg, _ := s.svc.ListSIMCards(ctx, controlplane.System, store.PageRequest{}); len(pg.Items) != 0 {
		t.Fatal("a refused import registered cards")
	}
	if code, body := upload(t, s, admin, "/simcards", map[string]string{"csrf": acsrf, "group": g.ID}, cardsCSV); code != http.StatusSeeOther {
		t.Fatalf("import: %d %s", code, body)
	}
	_, body = do(t, admin, "GET", s.url+"/simcards", nil, nil)
	if strings.Count(body, "<tr data-card=") != 2 || strings.Contains(body, "465b5ce8") || strings.Contains(body, "cd63cb71") {
		t.Fatalf("the cards page lists the wrong cards or shows a key:\n%s", body)
	}
	op, ocsrf := s.signedIn(fleet.RoleOperator)
	if _, body := do(t, op, "GET", s.url+"/simcards", nil, nil); strings.Contains(body, `action="/simcards" enctype`) || strings.Contains(body, "/delete") {
		t.Fatal("an operator is offered the import or the delete")
	}
	if code, _, _ := post(t, s, op, ocsrf, "/simcards/898110000000000001/update", url.Values{"status": {"suspended"}}); code != http.StatusSeeOther {
		t.Fatalf("suspend: %d", code)
	}
	if code, _, _ := post(t, s, op, ocsrf, "/simcards/898110000000000001/update", url.Values{"group": {""}}); code != http.StatusSeeOther {
		t.Fatalf("set group: %d", code)
	}
	if card, _ := s.svc.GetSIMCard(ctx, controlplane.System, "898110000000000001"); card.Status != fleet.CardSuspended || card.GroupID != "" {
		t.Fatalf("card after the operator: %+v", card)
	}
	if code, _ := upload(t, s, op, "/simcards", map[string]string{"csrf": ocsrf}, cardsCSV); code != http.StatusForbidden {
		t.Errorf("operator import: %d, want 403", code)
	}
	if code, _, _ := post(t, s, op, ocsrf, "/simcards/898110000000000001/delete", url.Values{}); code != http.StatusForbidden {
		t.Errorf("operator delete: %d, want 403", code)
	}
	v, vcsrf := s.signedIn(fleet.RoleViewer)
	if code, _, _ := post(t, s, v, vcsrf, "/simcards/898110000000000002/update", url.Values{"status": {"suspended"}}); code != http.StatusForbidden {
		t.Errorf("viewer update: %d, want 403", code)
	}
	if code, _, _ := post(t, s, admin, acsrf, "/simcards/898110000000000002/delete", url.Values{}); code != http.StatusSeeOther {
		t.Fatalf("admin delete: %d", code)
	}
	if pg, _ := s.svc.ListSIMCards(ctx, controlplane.System, store.PageRequest{}); len(pg.Items) != 1 || pg.Items[0].Status != fleet.CardSuspended {
		t.Fatalf("cards at the end: %+v", pg.Items)
	}
}

// TestLANRoutesPage: the fleet's routes filtered by status; one a device
// advertised is approved from the list and the operator is brought back
// to it; a route's hosts are named from the SIM's page (a bad line is
// refused, nothing changed).
func TestLANRoutesPage(t *testing.T) {
	s := newSite(t, console.Config{})
	ctx := context.Background()
	g, _ := s.svc.CreateGroup(ctx, controlplane.System, "sites", fleet.GroupSettings{DevicesMayAdvertiseRoutes: true})
	sim, _, err := s.svc.CreateSIM(ctx, controlplane.System, controlplane.SIMSpec{Name: "router", GroupID: g.ID, GenerateKey: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.svc.AddSIMRoute(ctx, controlplane.System, sim.ID, controlplane.RouteSpec{Prefix: netip.MustParsePrefix("10.9.0.0/16")}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.svc.AdvertiseRoutes(ctx, controlplane.Actor{Kind: "sim", ID: sim.ID, Role: fleet.RoleViewer}, sim.ID, []netip.Prefix{netip.MustParsePrefix("10.9.0.0/16"), netip.MustParsePrefix("192.168.7.0/24")}); err != nil {
		t.Fatal(err)
	}
	c, csrf := s.signedIn(fleet.RoleOperator)
	_, body := do(t, c, "GET", s.url+"/routes", nil, nil)
	if n := strings.Count(body, "<tr data-route="); n != 2 {
		t.Fatalf("all routes: %d rows, want 2", n)
	}
	_, body = do(t, c, "GET", s.url+"/routes?status=advertised", nil, nil)
	if strings.Count(body, "<tr data-route=") != 1 || !strings.Contains(body, "192.168.7.0/24") || strings.Contains(body, ">10.9.0.0/16<") {
		t.Fatalf("advertised routes:\n%s", body)
	}
	code, _, loc := post(t, s, c, csrf, "/sims/"+sim.ID+"/routes/approve", url.Values{"prefix": {"192.168.7.0/24"}, "back": {"/routes?status=advertised"}})
	if u, _ := url.Parse(loc); code != http.StatusSeeOther || u.Path != "/routes" || u.Query().Get("status") != "advertised" || u.Query().Get("done") == "" {
		t.Fatalf("approve from the list: %d %q", code, loc)
	}
	if _, body := do(t, c, "GET", s.url+"/routes?status=advertised", nil, nil); strings.Contains(body, "<tr data-route=") {
		t.Fatal("the approved route is still waiting")
	}
	if code, body, _ := post(t, s, c, csrf, "/sims/"+sim.ID+"/routes/hosts", url.Values{"prefix": {"192.168.7.0/24"}, "hosts": {"plc=192.168.7.20\nhmi"}}); code != http.StatusBadRequest || !strings.Contains(body, `"hmi": want name=address`) {
		t.Fatalf("a bad hosts line: %d", code)
	}
	if code, body, _ := post(t, s, c, csrf, "/sims/"+sim.ID+"/routes/hosts", url.Values{"prefix": {"192.168.7.0/24"}, "hosts": {"plc=192.168.7.20\nplc=192.168.7.21"}}); code != http.StatusBadRequest || !strings.Contains(body, `"plc" is named twice`) {
		t.Fatalf("one name twice: %d\n%s", code, body)
	}
	if code, body, _ := post(t, s, c, csrf, "/sims/"+sim.ID+"/routes/hosts", url.Values{"prefix": {"192.168.7.0/24"}, "hosts": {"plc=10.1.1.1"}}); code != http.StatusBadRequest {
		t.Fatalf("a host outside the route: %d %s", code, body)
	}
	if code, _, _ := post(t, s, c, csrf, "/sims/"+sim.ID+"/routes/hosts", url.Values{"prefix": {"192.168.7.0/24"}, "hosts": {"plc=192.168.7.20\r\nhmi = 192.168.7.21\n"}}); code != http.StatusSeeOther {
		t.Fatalf("hosts: %d", code)
	}
	routes, _ := s.svc.SIMRoutes(ctx, controlplane.System, sim.ID)
	for _, r := range routes {
		if r.Prefix.String() == "192.168.7.0/24" && (len(r.Hosts) != 2 || r.Hosts["hmi"] != netip.MustParseAddr("192.168.7.21")) {
			t.Fatalf("hosts stored: %v", r.Hosts)
		}
	}
	v, vcsrf := s.signedIn(fleet.RoleViewer)
	if _, body := do(t, v, "GET", s.url+"/routes", nil, nil); regexp.MustCompile(`action="/sims/[^"]+/routes/`).MatchString(body) {
		t.Fatal("a viewer is offered route actions")
	}
	if code, _, _ := post(t, s, v, vcsrf, "/sims/"+sim.ID+"/routes/hosts", url.Values{"prefix": {"192.168.7.0/24"}, "hosts": {""}}); code != http.StatusForbidden {
		t.Fatalf("viewer hosts: %d, want 403", code)
	}
}

// TestInspection: the group form turns inspection on (a bad interval is
// said beside its field); the inspection page lists a group's records
// with their busiest protocols and names, and charts the bytes.
func TestInspection(t *testing.T) {
	s := newSite(t, console.Config{})
	ctx := context.Background()
	g, _ := s.svc.CreateGroup(ctx, controlplane.System, "cams", fleet.GroupSettings{})
	c, csrf := s.signedIn(fleet.RoleOperator)
	code, body, _ := post(t, s, c, csrf, "/groups/"+g.ID+"/settings", url.Values{"d2dMode": {"off"}, "inspect": {"on"}, "inspectEvery": {"5"}, "version": {controlplane.GroupVersion(g)}})
	if code != http.StatusBadRequest || !strings.Contains(body, `id="err-inspect"`) {
		t.Fatalf("a 5 s interval: %d", code)
	}
	if code, _, _ := post(t, s, c, csrf, "/groups/"+g.ID+"/settings", url.Values{"d2dMode": {"off"}, "inspect": {"on"}, "inspectEvery": {"30"}, "inspectPerSIM": {"on"}, "version": {controlplane.GroupVersion(g)}}); code != http.StatusSeeOther {
		t.Fatalf("turn on: %d", code)
	}
	g, _ = s.svc.GetGroup(ctx, controlplane.System, g.ID)
	if in := g.Settings.Inspection; !in.Enabled || in.IntervalSeconds != 30 || !in.PerSIM || in.Webhook {
		t.Fatalf("inspection settings: %+v", in)
	}
	// The interval emptied goes back to the default; the rest stays.
	if code, _, _ := post(t, s, c, csrf, "/groups/"+g.ID+"/settings", url.Values{"d2dMode": {"off"}, "inspect": {"on"}, "inspectEvery": {""}, "inspectPerSIM": {"on"}, "version": {controlplane.GroupVersion(g)}}); code != http.StatusSeeOther {
		t.Fatalf("clear the interval: %d", code)
	}
	g, _ = s.svc.GetGroup(ctx, controlplane.System, g.ID)
	if in := g.Settings.Inspection; !in.Enabled || in.IntervalSeconds != fleet.DefaultInspectionInterval || !in.PerSIM {
		t.Fatalf("inspection settings with the interval emptied: %+v", in)
	}
	now := time.Now().UTC().Truncate(time.Second)
	var recs []fleet.Record
	for i := range 3 {
		start := now.Add(time.Duration(i*30) * time.Second)
		body := fmt.Sprintf(`{"kind":"inspection","group":"cams","groupId":%q,"start":%q,"end":%q,"traffic":{"statistics":{"bytes":%d,"packets":%d,"flows":2,"tcp":5,"udp":3,"icmp":0}},`+
			`"detected":{"protos":[{"name":"DNS","bytes":300},{"name":"TLS","bytes":9000},{"name":"<b>x</b>","bytes":1}]},"tlsServerNames":{"api.example.com":4}}`,
			g.ID, start.Format(time.RFC3339), start.Add(30*time.Second).Format(time.RFC3339), 1000*(i+1), 8+i)
		recs = append(recs, fleet.Record{GroupID: g.ID, Time: start.Add(30 * time.Second), Received: now, Category: fleet.InspectionCategory, ContentType: "application/json", Payload: []byte(body)})
	}
	recs = append(recs, fleet.Record{GroupID: g.ID, Time: now, Received: now, Category: "telemetry", ContentType: "application/json", Payload: []byte(`{"temp":3}`)})
	cam, _, _ := s.svc.CreateSIM(ctx, controlplane.System, controlplane.SIMSpec{Name: "cam-1", GroupID: g.ID, GenerateKey: true})
	recs = append(recs, fleet.Record{SIMID: cam.ID, GroupID: g.ID, Time: now, Received: now, Category: fleet.InspectionCategory, ContentType: "application/json", Payload: recs[0].Payload})
	if err := s.st.AppendRecords(ctx, recs); err != nil {
		t.Fatal(err)
	}
	v, _ := s.signedIn(fleet.RoleViewer)
	resp, raw := do(t, v, "GET", s.url+"/inspection?group="+g.ID, nil, nil)
	body = html.UnescapeString(raw)
	if resp.StatusCode != 200 || strings.Count(body, `<tr class="inspection-row">`) != 4 || !strings.Contains(raw, `data-points="4"`) {
		t.Fatalf("inspection page: %d\n%s", resp.StatusCode, body)
	}
	if !strings.Contains(body, "TLS 8.8 KiB, DNS 300 B") || !strings.Contains(body, "api.example.com") || strings.Contains(raw, "<b>x</b>") {
		t.Fatal("the rows lack the busiest protocols or names, or render a name as markup")
	}
	// A SIM asked for with a group still chosen: the SIM's records.
	other, _ := s.svc.CreateGroup(ctx, controlplane.System, "other", fleet.GroupSettings{})
	if resp, body := do(t, v, "GET", s.url+"/inspection?group="+other.ID+"&sim="+cam.ID, nil, nil); resp.StatusCode != 200 || strings.Count(body, `<tr class="inspection-row">`) != 1 {
		t.Fatalf("a SIM's records with a group chosen too: %d\n%s", resp.StatusCode, body)
	}
	if _, body := do(t, v, "GET", s.url+"/inspection", nil, nil); strings.Contains(body, "inspection-row") {
		t.Fatal("records shown before a group is chosen")
	}
}

// TestSettingsPage: every operator sees the platform's settings; only an
// admin sees the node's flags.
func TestSettingsPage(t *testing.T) {
	s := newSite(t, console.Config{Settings: []console.Setting{{Name: "api-listen", Value: "127.0.0.1:9", Default: ":8080", Usage: "address of the REST API"}}})
	admin, _ := s.signedIn(fleet.RoleAdmin)
	_, body := do(t, admin, "GET", s.url+"/settings", nil, nil)
	if !strings.Contains(body, "127.0.0.1:51820") || !strings.Contains(body, "10.128.0.0/9") || !strings.Contains(body, "--api-listen") || !strings.Contains(body, "127.0.0.1:9") {
		t.Fatalf("the admin's settings page:\n%s", body)
	}
	v, _ := s.signedIn(fleet.RoleViewer)
	resp, body := do(t, v, "GET", s.url+"/settings", nil, nil)
	if resp.StatusCode != 200 || !strings.Contains(body, "127.0.0.1:51820") || strings.Contains(body, "--api-listen") {
		t.Fatalf("the viewer's settings page: %d", resp.StatusCode)
	}
}

// TestSIMDetailSessionsAlertsData: a SIM's page lists its sessions on
// every node, its alerts (acknowledged from there, back to the page) and
// its newest records.
func TestSIMDetailSessionsAlertsData(t *testing.T) {
	s := newSite(t, console.Config{})
	ctx := context.Background()
	sim, _, err := s.svc.CreateSIM(ctx, controlplane.System, controlplane.SIMSpec{Name: "cam", GenerateKey: true})
	if err != nil {
		t.Fatal(err)
	}
	other, _, _ := s.svc.CreateSIM(ctx, controlplane.System, controlplane.SIMSpec{Name: "other", GenerateKey: true})
	since := time.Now().UTC().Truncate(time.Second)
	err = s.st.Update(ctx, func(tx store.Tx) error {
		for _, p := range []store.Presence{{SIMID: sim.ID, Gateway: "node-a", Endpoint: "198.51.100.7:4500", Since: since}, {SIMID: sim.ID, Gateway: "node-b", Endpoint: "203.0.113.9:51820", Since: since}, {SIMID: other.ID, Gateway: "node-a", Endpoint: "192.0.2.1:1", Since: since}} {
			if err := tx.SetPresence(ctx, p); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{sim.ID, other.ID} {
		if err := s.svc.RecordDeviceEvent(ctx, id, controlplane.AlertAction, map[string]any{"kind": "port-scan", "severity": "medium", "detail": "scan of " + id}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.st.AppendRecords(ctx, []fleet.Record{{SIMID: sim.ID, Time: since, Received: since, ContentType: "application/json", Payload: []byte(`{"temp":21}`)}}); err != nil {
		t.Fatal(err)
	}
	c, csrf := s.signedIn(fleet.RoleOperator)
	_, body := do(t, c, "GET", s.url+"/sims/"+sim.ID, nil, nil)
	if strings.Count(body, `<tr class="session">`) != 2 || !strings.Contains(body, "198.51.100.7:4500") || !strings.Contains(body, "node-b") || strings.Contains(body, "192.0.2.1:1") {
		t.Fatalf("sessions on the SIM page:\n%s", body)
	}
	if !strings.Contains(body, "scan of "+sim.ID) || strings.Contains(body, "scan of "+other.ID) || !strings.Contains(body, `&#34;temp&#34;: 21`) {
		t.Fatal("the SIM page lacks its alert or record, or shows another SIM's alert")
	}
	al, _ := s.svc.SIMAlerts(ctx, controlplane.System, sim.ID, store.PageRequest{})
	if len(al.Items) != 1 {
		t.Fatalf("SIMAlerts: %d, want 1", len(al.Items))
	}
	code, _, loc := post(t, s, c, csrf, fmt.Sprintf("/alerts/%d/acknowledge", al.Items[0].ID), url.Values{"back": {"/sims/" + sim.ID}})
	if u, _ := url.Parse(loc); code != http.StatusSeeOther || u.Path != "/sims/"+sim.ID {
		t.Fatalf("acknowledge from the SIM page: %d %q", code, loc)
	}
	if _, body := do(t, c, "GET", s.url+"/sims/"+sim.ID, nil, nil); !strings.Contains(body, "acknowledged by") {
		t.Fatal("the acknowledgement is not shown")
	}
}

// TestDataExplorerNestedFields: numbers inside objects are offered for
// the chart by their path.
func TestDataExplorerNestedFields(t *testing.T) {
	s := newSite(t, console.Config{})
	ctx := context.Background()
	sim, _, _ := s.svc.CreateSIM(ctx, controlplane.System, controlplane.SIMSpec{Name: "m", GenerateKey: true})
	now := time.Now().UTC()
	var recs []fleet.Record
	for i := range 4 {
		recs = append(recs, fleet.Record{SIMID: sim.ID, Time: now.Add(time.Duration(i) * time.Minute), Received: now, ContentType: "application/json",
			Payload: []byte(fmt.Sprintf(`{"env":{"air":{"temp":%d,"deep":{"x":1}}},"n":"s"}`, i))})
	}
	if err := s.st.AppendRecords(ctx, recs); err != nil {
		t.Fatal(err)
	}
	v, _ := s.signedIn(fleet.RoleViewer)
	_, body := do(t, v, "GET", s.url+"/data?sim="+sim.ID+"&field=env.air.temp", nil, nil)
	if !strings.Contains(body, ">env.air.temp</a>") || !strings.Contains(body, `data-points="4"`) || strings.Contains(body, ">env.air.deep.x</a>") {
		t.Fatalf("nested fields:\n%s", body)
	}
}

// TestSIMSearchByName: a search that names no single SIM is the start of
// names (case-sensitive), listed by name, paged with the search kept, and
// combined with the filters.
func TestSIMSearchByName(t *testing.T) {
	s := newSite(t, console.Config{})
	ctx := context.Background()
	for i := range 140 {
		name := fmt.Sprintf("pump-%03d", i)
		if i%2 == 1 {
			name = fmt.Sprintf("valve-%03d", i)
		}
		if _, _, err := s.svc.CreateSIM(ctx, controlplane.System, controlplane.SIMSpec{Name: name, GenerateKey: true}); err != nil {
			t.Fatal(err)
		}
	}
	v, _ := s.signedIn(fleet.RoleViewer)
	_, body := do(t, v, "GET", s.url+"/sims?q=pump-00", nil, nil)
	if n := strings.Count(body, "<tr data-sim="); n != 5 || strings.Contains(body, "valve-") || strings.Index(body, "pump-000") > strings.Index(body, "pump-008") {
		t.Fatalf("pump-0: %d rows\n%s", n, body)
	}
	if _, body := do(t, v, "GET", s.url+"/sims?q=Pump", nil, nil); strings.Contains(body, "<tr data-sim=") {
		t.Fatal("the search is not case-sensitive as documented")
	}
	// 70 valves: two pages of 50, the search kept on the second.
	all, pages := 0, 0
	next := "/sims?q=" + url.QueryEscape("valve-")
	for range 5 {
		_, body := do(t, v, "GET", s.url+next, nil, nil)
		all += strings.Count(body, "<tr data-sim=")
		pages++
		if strings.Contains(body, "pump-") {
			t.Fatal("a later page lost the search")
		}
		m := regexp.MustCompile(`href="(/sims\?[^"]+)" rel="next"`).FindStringSubmatch(body)
		if m == nil {
			break
		}
		next = html.UnescapeString(m[1])
	}
	if all != 70 || pages != 2 {
		t.Fatalf("valves over the pages: %d on %d pages, want 70 on 2", all, pages)
	}
	if resp, body := do(t, v, "GET", s.url+"/sims?q=valve-&cursor=junk", nil, nil); resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "cursor") {
		t.Fatalf("a bad cursor: %d", resp.StatusCode)
	}
}

// TestCreateFormSentTwice: an auth-key or token form sent again (a
// reload of the answer) makes nothing more and shows no secret; a form
// refused may be sent again once corrected.
func TestCreateFormSentTwice(t *testing.T) {
	s := newSite(t, console.Config{})
	ctx := context.Background()
	c, csrf := s.signedIn(fleet.RoleAdmin)
	nonceRE := regexp.MustCompile(`name="nonce" value="([^"]+)"`)
	_, body := do(t, c, "GET", s.url+"/authkeys", nil, nil)
	m := nonceRE.FindStringSubmatch(body)
	if m == nil {
		t.Fatal("the auth-key form has no nonce")
	}
	// A nonce the console did not make (too long, not base64url) is
	// refused and makes nothing: nothing a client chooses is held.
	for _, n := range []string{strings.Repeat("A", 32<<10), m[1] + "A", "!!!!!!!!!!!!!!!!!!!!!!", m[1][:21] + "B"} {
		if code, body, _ := post(t, s, c, csrf, "/authkeys", url.Values{"nonce": {n}}); code != http.StatusBadRequest || !strings.Contains(body, "reload the page") {
			t.Fatalf("a nonce of %d bytes not made here: %d", len(n), code)
		}
		if code, _, _ := post(t, s, c, csrf, "/tokens", url.Values{"nonce": {n}, "role": {"viewer"}}); code != http.StatusBadRequest {
			t.Fatalf("a token form's nonce of %d bytes not made here: %d", len(n), code)
		}
	}
	if pg, _ := s.svc.ListAuthKeys(ctx, controlplane.System, store.PageRequest{}); len(pg.Items) != 0 {
		t.Fatal("a form with a bad nonce made an auth key")
	}
	if code, _, _ := post(t, s, c, csrf, "/authkeys", url.Values{"nonce": {m[1]}, "hours": {"0"}}); code != http.StatusBadRequest {
		t.Fatalf("a refused form: %d", code)
	}
	code, first, _ := post(t, s, c, csrf, "/authkeys", url.Values{"nonce": {m[1]}})
	if code != http.StatusCreated || !strings.Contains(first, `id="authkey-secret"`) {
		t.Fatalf("the corrected form: %d", code)
	}
	code, again, _ := post(t, s, c, csrf, "/authkeys", url.Values{"nonce": {m[1]}})
	if code != http.StatusOK || strings.Contains(again, `id="authkey-secret"`) || !strings.Contains(again, "This form was sent already") {
		t.Fatalf("the form sent again: %d\n%s", code, again)
	}
	if pg, _ := s.svc.ListAuthKeys(ctx, controlplane.System, store.PageRequest{}); len(pg.Items) != 1 {
		t.Fatalf("%d auth keys after one form sent twice, want 1", len(pg.Items))
	}
	// A new form (a new nonce) makes a new key.
	_, body = do(t, c, "GET", s.url+"/authkeys", nil, nil)
	if m2 := nonceRE.FindStringSubmatch(body); m2 == nil || m2[1] == m[1] {
		t.Fatal("the form's nonce does not change")
	} else if code, _, _ := post(t, s, c, csrf, "/authkeys", url.Values{"nonce": {m2[1]}}); code != http.StatusCreated {
		t.Fatalf("a second form: %d", code)
	}
	_, body = do(t, c, "GET", s.url+"/tokens", nil, nil)
	tm := nonceRE.FindStringSubmatch(body)
	if tm == nil {
		t.Fatal("the token form has no nonce")
	}
	before, _ := s.svc.ListTokens(ctx, controlplane.System, store.PageRequest{})
	for range 2 {
		post(t, s, c, csrf, "/tokens", url.Values{"nonce": {tm[1]}, "role": {"viewer"}})
	}
	if after, _ := s.svc.ListTokens(ctx, controlplane.System, store.PageRequest{}); len(after.Items) != len(before.Items)+1 {
		t.Fatalf("tokens: %d then %d, want one more", len(before.Items), len(after.Items))
	}
}

// TestAgentShown: the software a device reported is on the SIMs list and
// the SIM's page; a SIM without a report says so.
func TestAgentShown(t *testing.T) {
	s := newSite(t, console.Config{})
	ctx := context.Background()
	a, _, _ := s.svc.CreateSIM(ctx, controlplane.System, controlplane.SIMSpec{Name: "with-agent", GenerateKey: true})
	s.svc.CreateSIM(ctx, controlplane.System, controlplane.SIMSpec{Name: "plain", GenerateKey: true})
	if err := s.svc.ReportAgent(ctx, a.ID, "wirefleet-agent/v1.4.0"); err != nil {
		t.Fatal(err)
	}
	v, _ := s.signedIn(fleet.RoleViewer)
	_, body := do(t, v, "GET", s.url+"/sims", nil, nil)
	if !strings.Contains(body, `<td class="agent">wirefleet-agent/v1.4.0</td>`) || !strings.Contains(body, `title="no agent has reported`) {
		t.Fatalf("the SIMs list's agents:\n%s", body)
	}
	if _, body := do(t, v, "GET", s.url+"/sims/"+a.ID, nil, nil); !strings.Contains(body, "wirefleet-agent/v1.4.0, reported since") {
		t.Fatal("the SIM's page lacks its agent")
	}
}

// TestNodesPage: every role sees the nodes, up and down; only an admin
// may forget one, and only one that is down.
func TestNodesPage(t *testing.T) {
	s := newSite(t, console.Config{})
	ctx := context.Background()
	now := s.clock.Now().UTC()
	s.svc.Heartbeat(ctx, fleet.Node{Name: "node-a:51820", Version: "v1", Sessions: 4, Started: now, Seen: now})
	s.svc.Heartbeat(ctx, fleet.Node{Name: "node-b:51820", Version: "v1", Started: now, Seen: now.Add(-time.Hour), Degraded: "stopped"})
	v, vcsrf := s.signedIn(fleet.RoleViewer)
	_, body := do(t, v, "GET", s.url+"/nodes", nil, nil)
	if strings.Count(body, "<tr data-node=") != 2 || !strings.Contains(body, `<span class="badge on">up</span>`) || !strings.Contains(body, `<span class="badge off">down</span>`) || strings.Contains(body, "/forget") {
		t.Fatalf("the viewer's nodes page:\n%s", body)
	}
	if code, _, _ := post(t, s, v, vcsrf, "/nodes/node-b:51820/forget", url.Values{}); code != http.StatusForbidden {
		t.Fatalf("viewer forget: %d", code)
	}
	a, acsrf := s.signedIn(fleet.RoleAdmin)
	if _, body := do(t, a, "GET", s.url+"/nodes", nil, nil); strings.Count(body, "/forget") != 1 {
		t.Fatal("the admin is not offered Forget for the node down only")
	}
	if code, _, _ := post(t, s, a, acsrf, "/nodes/node-a:51820/forget", url.Values{}); code != http.StatusConflict {
		t.Fatalf("forgetting a node up: %d, want 409", code)
	}
	if code, _, _ := post(t, s, a, acsrf, "/nodes/node-b:51820/forget", url.Values{}); code != http.StatusSeeOther {
		t.Fatalf("forgetting a node down: %d", code)
	}
	if ns, _ := s.svc.ListNodes(ctx, controlplane.System); len(ns) != 1 {
		t.Fatalf("nodes after forgetting: %+v", ns)
	}
}

// TestOverviewFleetHealth: the overview counts the nodes up (and names
// the degraded ones) and the last day's alerts, unacknowledged apart,
// live too.
func TestOverviewFleetHealth(t *testing.T) {
	s := newSite(t, console.Config{})
	ctx := context.Background()
	now := time.Now().UTC()
	s.svc.Heartbeat(ctx, fleet.Node{Name: "node-a:51820", Version: "v1", Started: now, Seen: now})
	s.svc.Heartbeat(ctx, fleet.Node{Name: "node-b:51820", Version: "v1", Started: now, Seen: now, Degraded: "store <b>slow</b>"})
	s.svc.Heartbeat(ctx, fleet.Node{Name: "node-c:51820", Version: "v1", Started: now, Seen: now.Add(-time.Hour), Degraded: "stopped"})
	sim, _, _ := s.svc.CreateSIM(ctx, controlplane.System, controlplane.SIMSpec{Name: "m", GenerateKey: true})
	for range 3 {
		if err := s.svc.RecordDeviceEvent(ctx, sim.ID, controlplane.AlertAction, map[string]any{"kind": "fan-out", "severity": "medium"}); err != nil {
			t.Fatal(err)
		}
	}
	al, _ := s.svc.ListAlerts(ctx, controlplane.System, store.PageRequest{})
	if err := s.svc.AcknowledgeAlert(ctx, controlplane.System, al.Items[0].ID); err != nil {
		t.Fatal(err)
	}
	v, _ := s.signedIn(fleet.RoleViewer)
	for _, path := range []string{"/", "/live/overview"} {
		req, _ := http.NewRequest("GET", s.url+path, nil)
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		resp, err := v.Do(req.WithContext(ctx))
		if err != nil {
			cancel()
			t.Fatal(err)
		}
		buf := make([]byte, 64<<10)
		var raw []byte
		for !bytes.Contains(raw, []byte(`data-stat="alerts"`)) || !bytes.Contains(raw, []byte("</dl>")) {
			n, err := resp.Body.Read(buf)
			raw = append(raw, buf[:n]...)
			if err != nil {
				break
			}
		}
		resp.Body.Close()
		cancel()
		body := string(raw)
		if !strings.Contains(body, `<a href="/nodes">2 of 3</a>`) || !strings.Contains(body, "node-b:51820: store &lt;b&gt;slow&lt;/b&gt;") || strings.Contains(body, "node-c:51820") {
			t.Fatalf("%s: the nodes:\n%s", path, body)
		}
		if !strings.Contains(body, `<a href="/alerts">3</a>, 2 unacknowledged`) {
			t.Fatalf("%s: the alerts:\n%s", path, body)
		}
	}
}
