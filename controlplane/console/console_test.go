// SPDX-License-Identifier: Apache-2.0

package console_test

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"fmt"
	"html"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wirefleet/wirefleet/controlplane"
	"github.com/wirefleet/wirefleet/controlplane/console"
	"github.com/wirefleet/wirefleet/controlplane/store"
	"github.com/wirefleet/wirefleet/controlplane/store/sqlitestore"
	"github.com/wirefleet/wirefleet/fleet"
	"github.com/wirefleet/wirefleet/internal/clock"
	"github.com/wirefleet/wirefleet/internal/ratelimit"
	"github.com/wirefleet/wirefleet/wgkey"
)

// site is a console over a fresh SQLite store, served on loopback.
type site struct {
	t     testing.TB
	svc   *controlplane.Service
	st    store.Store
	clock *clock.Fake
	url   string
	h     *console.Handler
	logs  *testWriter // what the console logged
}

func newSite(t testing.TB, c console.Config, cpOpts ...func(*controlplane.Config)) *site {
	t.Helper()
	st, err := sqlitestore.Open(context.Background(), filepath.Join(t.TempDir(), "wf.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	clk := clock.NewFake(time.Now())
	cfg := controlplane.Config{Clock: clk, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Endpoint: "127.0.0.1:51820",
		GatewayPublicKey: func() wgkey.Public { return wgkey.Public{1} }}
	for _, o := range cpOpts {
		o(&cfg)
	}
	svc := controlplane.New(st, cfg)
	logs := &testWriter{t: t}
	c.Logger = slog.New(slog.NewTextHandler(logs, nil))
	h, err := console.New(svc, c)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return &site{t: t, svc: svc, st: st, clock: clk, url: srv.URL, h: h, logs: logs}
}

// token makes an operator token of role.
func (s *site) token(role fleet.Role) (fleet.Token, string) {
	s.t.Helper()
	tok, secret, err := s.svc.CreateToken(context.Background(), controlplane.System, role, "test "+string(role))
	if err != nil {
		s.t.Fatal(err)
	}
	return tok, secret
}

// browser is an HTTP client with a cookie jar that does not follow
// redirects (the tests look at them).
func browser(t testing.TB) *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }, Timeout: 10 * time.Second}
}

func do(t testing.TB, c *http.Client, method, u string, form url.Values, hdr map[string]string) (*http.Response, string) {
	t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// signIn signs c in with secret and returns the session cookie.
func (s *site) signIn(c *http.Client, secret string) *http.Cookie {
	s.t.Helper()
	resp, body := do(s.t, c, "POST", s.url+"/signin", url.Values{"token": {secret}, "next": {"/"}}, nil)
	if resp.StatusCode != http.StatusSeeOther {
		s.t.Fatalf("sign-in: %d %s", resp.StatusCode, body)
	}
	for _, ck := range resp.Cookies() {
		if ck.Name == console.CookieName {
			return ck
		}
	}
	s.t.Fatal("sign-in set no session cookie")
	return nil
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// csrf reads the CSRF token from a page the client is signed in to.
func (s *site) csrf(c *http.Client) string {
	s.t.Helper()
	_, body := do(s.t, c, "GET", s.url+"/sims", nil, nil)
	m := csrfRE.FindStringSubmatch(body)
	if m == nil {
		s.t.Fatalf("no CSRF token on the page: %s", body)
	}
	return m[1]
}

func TestSignInSessionSignOut(t *testing.T) {
	s := newSite(t, console.Config{})
	_, secret := s.token(fleet.RoleOperator)
	c := browser(t)

	// Not signed in: pages send to sign-in, remembering where they were.
	resp, _ := do(t, c, "GET", s.url+"/sims?status=suspended", nil, nil)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/signin?next="+url.QueryEscape("/sims?status=suspended") {
		t.Fatalf("unsigned GET /sims: %d Location %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	resp, body := do(t, c, "GET", s.url+"/signin?next="+url.QueryEscape("/sims?status=suspended"), nil, nil)
	if resp.StatusCode != 200 || !strings.Contains(body, `name="next" value="/sims?status=suspended"`) {
		t.Fatalf("sign-in page does not keep the page asked for: %d %s", resp.StatusCode, body)
	}

	// A wrong token: refused, audited with the source, no cookie.
	resp, body = do(t, c, "POST", s.url+"/signin", url.Values{"token": {"wft_nottherightone"}}, nil)
	if resp.StatusCode != http.StatusUnauthorized || len(resp.Cookies()) != 0 || !strings.Contains(body, "not valid") {
		t.Fatalf("bad token: %d cookies %v", resp.StatusCode, resp.Cookies())
	}
	ev, err := s.st.ListEvents(context.Background(), store.EventFilter{Action: "console.signin_failed"})
	if err != nil || len(ev.Items) != 1 || ev.Items[0].Details["source"] != "127.0.0.1" {
		t.Fatalf("failed sign-in audit: %+v %v", ev.Items, err)
	}
	if strings.Contains(fmt.Sprint(ev.Items), "wft_nottherightone") {
		t.Fatal("the audit trail holds the token that was tried")
	}

	// The right one: a session cookie with every protection, to the page asked for.
	resp, _ = do(t, c, "POST", s.url+"/signin", url.Values{"token": {secret}, "next": {"/sims?status=suspended"}}, nil)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/sims?status=suspended" {
		t.Fatalf("sign-in: %d Location %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	var ck *http.Cookie
	for _, k := range resp.Cookies() {
		if k.Name == console.CookieName {
			ck = k
		}
	}
	if ck == nil || !ck.HttpOnly || ck.SameSite != http.SameSiteStrictMode || ck.Path != "/" || !strings.HasPrefix(ck.Value, controlplane.ConsoleSessionPrefix) {
		t.Fatalf("session cookie %+v: want HttpOnly, SameSite=Strict, Path=/", ck)
	}
	if set := resp.Header.Get("Set-Cookie"); strings.Contains(set, "Secure") {
		t.Fatalf("plain HTTP cookie marked Secure (the browser would drop it): %s", set)
	}
	resp, body = do(t, c, "GET", s.url+"/sims", nil, nil)
	if resp.StatusCode != 200 || !strings.Contains(body, "Sign out") {
		t.Fatalf("signed in GET /sims: %d", resp.StatusCode)
	}
	// Only the hash is stored.
	if _, err := s.st.ConsoleSession(context.Background(), ck.Value); err == nil {
		t.Fatal("the session secret is stored as is")
	}

	// Sign out revokes the session on the server: the old cookie is dead.
	tokCSRF := s.csrf(c)
	resp, _ = do(t, c, "POST", s.url+"/signout", url.Values{"csrf": {tokCSRF}}, nil)
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign out: %d", resp.StatusCode)
	}
	stale := browser(t)
	u, _ := url.Parse(s.url)
	stale.Jar.SetCookies(u, []*http.Cookie{{Name: console.CookieName, Value: ck.Value}})
	resp, _ = do(t, stale, "GET", s.url+"/sims", nil, nil)
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("a signed-out session still reads pages: %d", resp.StatusCode)
	}
}

func TestSessionEnds(t *testing.T) {
	s := newSite(t, console.Config{})
	tok, secret := s.token(fleet.RoleViewer)
	c := browser(t)
	s.signIn(c, secret)
	if resp, _ := do(t, c, "GET", s.url+"/", nil, nil); resp.StatusCode != 200 {
		t.Fatalf("signed in: %d", resp.StatusCode)
	}
	// The server's expiry, whatever the cookie says.
	s.clock.Advance(controlplane.ConsoleSessionTTL)
	resp, _ := do(t, c, "GET", s.url+"/audit", nil, nil)
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/signin?next=") {
		t.Fatalf("expired session: %d %q, want back to sign-in with the page kept", resp.StatusCode, resp.Header.Get("Location"))
	}
	// An htmx request is told where to go.
	resp, _ = do(t, c, "GET", s.url+"/live/overview", nil, map[string]string{"HX-Request": "true"})
	if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("HX-Redirect") == "" {
		t.Fatalf("expired session, htmx: %d HX-Redirect %q", resp.StatusCode, resp.Header.Get("HX-Redirect"))
	}

	// Deleting the token ends its sessions at once.
	s.clock.Advance(time.Minute)
	s.signIn(c, secret)
	if err := s.svc.DeleteToken(context.Background(), controlplane.System, tok.ID); err != nil {
		t.Fatal(err)
	}
	if resp, _ := do(t, c, "GET", s.url+"/", nil, nil); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("the session of a deleted token still reads: %d", resp.StatusCode)
	}
}

func TestCSRFAndOrigin(t *testing.T) {
	s := newSite(t, console.Config{})
	_, secret := s.token(fleet.RoleOperator)
	c := browser(t)
	s.signIn(c, secret)
	token := s.csrf(c)
	groups := func() int {
		pg, err := s.st.ListGroups(context.Background(), store.PageRequest{})
		if err != nil {
			t.Fatal(err)
		}
		return len(pg.Items)
	}
	for _, tc := range []struct {
		name string
		form url.Values
		hdr  map[string]string
	}{
		{"no token", url.Values{"name": {"g1"}}, nil},
		{"wrong token", url.Values{"name": {"g1"}, "csrf": {"x" + token}}, nil},
		{"cross-site", url.Values{"name": {"g1"}, "csrf": {token}}, map[string]string{"Sec-Fetch-Site": "cross-site"}},
		{"other origin", url.Values{"name": {"g1"}, "csrf": {token}}, map[string]string{"Origin": "http://evil.example"}},
	} {
		resp, _ := do(t, c, "POST", s.url+"/groups", tc.form, tc.hdr)
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("%s: %d, want 403", tc.name, resp.StatusCode)
		}
	}
	if n := groups(); n != 0 {
		t.Fatalf("%d groups created by refused requests", n)
	}
	resp, _ := do(t, c, "POST", s.url+"/groups", url.Values{"name": {"g1"}, "csrf": {token}}, map[string]string{"Sec-Fetch-Site": "same-origin"})
	if resp.StatusCode != http.StatusSeeOther || groups() != 1 {
		t.Fatalf("a real form: %d, %d groups", resp.StatusCode, groups())
	}
	// The header form of the token (htmx requests).
	resp, _ = do(t, c, "POST", s.url+"/groups", url.Values{"name": {"g2"}}, map[string]string{"X-CSRF-Token": token})
	if resp.StatusCode != http.StatusSeeOther || groups() != 2 {
		t.Fatalf("token in the header: %d, %d groups", resp.StatusCode, groups())
	}
	// Another session's token is no good.
	other := browser(t)
	s.signIn(other, secret)
	resp, _ = do(t, other, "POST", s.url+"/groups", url.Values{"name": {"g3"}, "csrf": {token}}, nil)
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("another session's CSRF token: %d, want 403", resp.StatusCode)
	}
}

func TestViewerSeesNoWriteControls(t *testing.T) {
	s := newSite(t, console.Config{})
	ctx := context.Background()
	g, err := s.svc.CreateGroup(ctx, controlplane.System, "plant", fleet.GroupSettings{})
	if err != nil {
		t.Fatal(err)
	}
	sim, _, err := s.svc.CreateSIM(ctx, controlplane.System, controlplane.SIMSpec{Name: "pump", GroupID: g.ID, GenerateKey: true})
	if err != nil {
		t.Fatal(err)
	}
	key, _, err := s.svc.CreateAuthKey(ctx, controlplane.System, controlplane.AuthKeySpec{GroupID: g.ID})
	if err != nil {
		t.Fatal(err)
	}
	_, secret := s.token(fleet.RoleViewer)
	c := browser(t)
	s.signIn(c, secret)
	writeForm := regexp.MustCompile(`<form method="post" action="/(sims|groups|authkeys|alerts|mappings|gatepeers|captures|simcards|identities|tokens)`)
	for _, p := range []string{"/", "/sims", "/sims/" + sim.ID, "/groups", "/groups/" + g.ID, "/authkeys", "/audit", "/alerts", "/mappings",
		"/routes", "/gatepeers", "/captures", "/inspection?group=" + g.ID, "/simcards", "/identities", "/data?sim=" + sim.ID, "/settings"} {
		resp, body := do(t, c, "GET", s.url+p, nil, nil)
		if resp.StatusCode != 200 {
			t.Fatalf("viewer GET %s: %d", p, resp.StatusCode)
		}
		if m := writeForm.FindString(body); m != "" {
			t.Errorf("viewer's %s shows a write control: %s", p, m)
		}
	}
	// Forged writes, with the viewer's own valid CSRF token: refused by role.
	token := s.csrf(c)
	for _, f := range []struct {
		path string
		form url.Values
	}{
		{"/groups", url.Values{"name": {"forged"}}},
		{"/authkeys", url.Values{"group": {g.ID}}},
		{"/authkeys/" + key.ID + "/revoke", url.Values{}},
		{"/sims/" + sim.ID + "/suspend", url.Values{}},
		{"/sims/bulk", url.Values{"action": {"suspend"}, "id": {sim.ID}}},
		{"/groups/" + g.ID + "/settings", url.Values{"d2dMode": {"group"}, "version": {controlplane.GroupVersion(g)}}},
		{"/groups/" + g.ID + "/json", url.Values{"json": {`{"version":1,"deviceToDevice":{"mode":"group"}}`}, "version": {controlplane.GroupVersion(g)}}},
		{"/groups/" + g.ID + "/delete", url.Values{}},
		{"/sims/" + sim.ID + "/mappings", url.Values{"port": {"22"}, "sources": {"127.0.0.1/32"}}},
		{"/mappings/map_0123456789abcdef/close", url.Values{}},
		{"/sims/" + sim.ID + "/routes/hosts", url.Values{"prefix": {"192.168.1.0/24"}}},
		{"/gatepeers", url.Values{"name": {"gp"}, "outer": {"192.0.2.1"}, "vni": {"1"}}},
		{"/captures", url.Values{"sim": {sim.ID}, "duration": {"60"}}},
		{"/simcards/898110000000000001/update", url.Values{"status": {"suspended"}}},
	} {
		f.form.Set("csrf", token)
		resp, _ := do(t, c, "POST", s.url+f.path, f.form, nil)
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("viewer POST %s: %d, want 403", f.path, resp.StatusCode)
		}
	}
	got, _ := s.svc.GetSIM(ctx, controlplane.System, sim.ID)
	k, _ := s.svc.GetAuthKey(ctx, controlplane.System, key.ID)
	gs, _ := s.st.ListGroups(ctx, store.PageRequest{})
	gps, _ := s.svc.ListGatePeers(ctx, controlplane.System, store.PageRequest{})
	caps, _ := s.svc.ListCaptures(ctx, controlplane.System, store.PageRequest{})
	if len(gps.Items) != 0 || len(caps.Items) != 0 {
		t.Fatalf("a forged write took effect: %d Gate peers, %d captures", len(gps.Items), len(caps.Items))
	}
	if got.Status != fleet.StatusActive || k.Revoked || len(gs.Items) != 1 || gs.Items[0].Settings.DeviceToDevice.Mode == fleet.D2DGroup {
		t.Fatalf("a forged write took effect: sim %s, key revoked %v, %d groups", got.Status, k.Revoked, len(gs.Items))
	}
}

func TestSignInRateLimited(t *testing.T) {
	s := newSite(t, console.Config{SignInLimit: ratelimit.Config{PerSecond: 0.01, Burst: 3}})
	_, secret := s.token(fleet.RoleAdmin)
	c := browser(t)
	for i := range 3 {
		if resp, _ := do(t, c, "POST", s.url+"/signin", url.Values{"token": {"wft_guess"}}, nil); resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("attempt %d: %d", i, resp.StatusCode)
		}
	}
	resp, body := do(t, c, "POST", s.url+"/signin", url.Values{"token": {secret}}, nil)
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" || len(resp.Cookies()) != 0 {
		t.Fatalf("attempt past the limit: %d Retry-After %q: %s", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
}

// xss is a payload for every field an operator or a device can fill.
const xss = `<script>alert(1)</script><img src=x onerror=alert(2)>"'`

func TestUserDataEscaped(t *testing.T) {
	s := newSite(t, console.Config{})
	ctx := context.Background()
	g, err := s.svc.CreateGroup(ctx, controlplane.System, "g1", fleet.GroupSettings{}) // names are letters and digits
	if err != nil {
		t.Fatal(err)
	}
	sim, _, err := s.svc.CreateSIM(ctx, controlplane.System, controlplane.SIMSpec{Name: "n" + xss, GroupID: g.ID, Tags: map[string]string{"t": "v" + xss}, GenerateKey: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.svc.CreateAuthKey(ctx, controlplane.System, controlplane.AuthKeySpec{Description: "d" + xss, GroupID: g.ID}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.svc.CreateGatePeer(ctx, controlplane.System, controlplane.GatePeerSpec{Name: "gp" + xss, GroupID: g.ID, OuterAddress: netip.MustParseAddr("192.0.2.1"), VNI: 9}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.svc.CreateCapture(ctx, controlplane.System, controlplane.CaptureSpec{SIMID: sim.ID, Duration: time.Minute}); err != nil {
		t.Fatal(err)
	}
	if err := s.svc.RecordDeviceEvent(ctx, sim.ID, controlplane.AlertAction, map[string]any{"kind": "k" + xss, "severity": "s" + xss, "detail": "d" + xss}); err != nil {
		t.Fatal(err)
	}
	if err := s.st.AppendRecords(ctx, []fleet.Record{{SIMID: sim.ID, GroupID: g.ID, Time: time.Now(), Received: time.Now(), Category: fleet.InspectionCategory, ContentType: "application/json",
		Payload: []byte(`{"detected":{"protos":[{"name":"p` + strings.ReplaceAll(xss, `"`, `\"`) + `","bytes":5}]},"tlsServerNames":{"t` + strings.ReplaceAll(xss, `"`, `\"`) + `":1}}`)}}); err != nil {
		t.Fatal(err)
	}
	_, secret := s.token(fleet.RoleAdmin)
	c := browser(t)
	s.signIn(c, secret)
	for _, p := range []string{"/", "/sims", "/sims/" + sim.ID, "/groups", "/authkeys", "/audit", "/sims?q=" + url.QueryEscape(xss), "/audit?object=" + url.QueryEscape(xss),
		"/gatepeers", "/captures", "/captures?sim=" + url.QueryEscape(xss), "/alerts", "/inspection?group=" + g.ID, "/inspection?sim=" + url.QueryEscape(xss), "/data?sim=" + sim.ID, "/routes", "/settings"} {
		_, body := do(t, c, "GET", s.url+p, nil, nil)
		if strings.Contains(body, "<script>alert") || strings.Contains(body, "<img src=x") {
			t.Errorf("%s renders the payload as markup", p)
		}
	}
	_, body := do(t, c, "GET", s.url+"/sims", nil, nil)
	if !strings.Contains(body, "n&lt;script&gt;alert(1)&lt;/script&gt;") {
		t.Errorf("the SIM's name is not shown escaped")
	}
	// The payloads are on the pages (escaped), not dropped on the way.
	for p, want := range map[string]string{"/inspection?group=" + g.ID: "p&lt;script&gt;", "/gatepeers": "gp&lt;script&gt;", "/alerts": "d&lt;script&gt;"} {
		if _, body := do(t, c, "GET", s.url+p, nil, nil); !strings.Contains(body, want) {
			t.Errorf("%s does not show %q", p, want)
		}
	}
	// A search that finds its SIM is no error, in the page or the log.
	if resp, body := do(t, c, "GET", s.url+"/sims?q="+sim.IMSI, nil, nil); resp.StatusCode != 200 || strings.Count(body, "<tr data-sim=") != 1 {
		t.Fatalf("search by IMSI: %d", resp.StatusCode)
	}
	if logs := s.logs.String(); strings.Contains(logs, "level=ERROR") {
		t.Fatalf("the console logged errors for good requests:\n%s", logs)
	}
}

func TestSecurityHeaders(t *testing.T) {
	s := newSite(t, console.Config{})
	c := browser(t)
	for _, p := range []string{"/signin", "/", "/assets/console.js", "/nope"} {
		resp, _ := do(t, c, "GET", s.url+p, nil, nil)
		csp := resp.Header.Get("Content-Security-Policy")
		if csp != console.ContentSecurityPolicy || resp.Header.Get("X-Frame-Options") != "DENY" || resp.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("%s: CSP %q, frame %q", p, csp, resp.Header.Get("X-Frame-Options"))
		}
	}
	for _, want := range []string{"script-src 'self'", "default-src 'none'", "frame-ancestors 'none'", "form-action 'self'"} {
		if !strings.Contains(console.ContentSecurityPolicy, want) {
			t.Errorf("CSP lacks %s", want)
		}
	}
	if strings.Contains(console.ContentSecurityPolicy, "unsafe") {
		t.Errorf("CSP allows unsafe sources: %s", console.ContentSecurityPolicy)
	}
}

func TestSignInNextStaysLocal(t *testing.T) {
	s := newSite(t, console.Config{})
	_, secret := s.token(fleet.RoleAdmin)
	for _, next := range []string{"https://evil.example/", "//evil.example/x", "/\\evil.example", "/./\\evil.example", "/a/../\\evil.example", "/.//evil.example", "javascript:alert(1)", "/sims\r\nSet-Cookie: x=y"} {
		c := browser(t)
		resp, _ := do(t, c, "POST", s.url+"/signin", url.Values{"token": {secret}, "next": {next}}, nil)
		if loc := resp.Header.Get("Location"); loc != "/" && (strings.HasPrefix(loc, "//") || strings.Contains(loc, "\\") || strings.Contains(loc, ":")) {
			t.Errorf("next %q: sent to %q", next, loc)
		}
		// Signed in already, the sign-in page follows next at once: the same rule.
		resp, _ = do(t, c, "GET", s.url+"/signin?next="+url.QueryEscape(next), nil, nil)
		if loc := resp.Header.Get("Location"); strings.HasPrefix(loc, "//") || strings.Contains(loc, "\\") || strings.Contains(loc, ":") {
			t.Errorf("GET /signin next %q: sent to %q", next, loc)
		}
	}
	c := browser(t)
	resp, _ := do(t, c, "POST", s.url+"/signin", url.Values{"token": {secret}, "next": {"/sims?status=active&group=g1"}}, nil)
	if loc := resp.Header.Get("Location"); loc != "/sims?status=active&group=g1" {
		t.Errorf("a local next: sent to %q", loc)
	}
}

func TestLiveStreamEndsOnShutdown(t *testing.T) {
	s := newSite(t, console.Config{LiveInterval: 50 * time.Millisecond})
	_, secret := s.token(fleet.RoleViewer)
	c := browser(t)
	s.signIn(c, secret)
	req, _ := http.NewRequest("GET", s.url+"/live/overview", nil)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("live view Content-Type %q", ct)
	}
	buf := make([]byte, 4096)
	n, _ := resp.Body.Read(buf)
	if !strings.Contains(string(buf[:n]), "event: overview\ndata: ") {
		t.Fatalf("first event: %q", buf[:n])
	}
	done := make(chan error, 1)
	go func() { _, err := io.Copy(io.Discard, resp.Body); done <- err }()
	s.h.Shutdown()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("the live stream did not end on Shutdown")
	}
}

// testWriter sends log lines to the test's log, and keeps them.
type testWriter struct {
	t  testing.TB
	mu sync.Mutex
	b  strings.Builder
}

func (w *testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(b)))
	w.mu.Lock()
	w.b.Write(b)
	w.mu.Unlock()
	return len(b), nil
}

func (w *testWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

var versionRE = regexp.MustCompile(`name="version" value="([^"]+)"`)

// TestGroupPolicyEditor: both editors save through the service; a bad
// value is shown next to its field and nothing is written; a form loaded
// before someone else saved gets a conflict and overwrites nothing.
func TestGroupPolicyEditor(t *testing.T) {
	s := newSite(t, console.Config{})
	ctx := context.Background()
	g, err := s.svc.CreateGroup(ctx, controlplane.System, "line-3", fleet.GroupSettings{})
	if err != nil {
		t.Fatal(err)
	}
	_, secret := s.token(fleet.RoleOperator)
	c := browser(t)
	s.signIn(c, secret)
	load := func() (csrf, updated string) {
		t.Helper()
		resp, body := do(t, c, "GET", s.url+"/groups/"+g.ID, nil, nil)
		if resp.StatusCode != 200 {
			t.Fatalf("group page: %d", resp.StatusCode)
		}
		return csrfRE.FindStringSubmatch(body)[1], versionRE.FindStringSubmatch(body)[1]
	}
	stored := func() fleet.GroupSettings {
		t.Helper()
		got, err := s.svc.GetGroup(ctx, controlplane.System, g.ID)
		if err != nil {
			t.Fatal(err)
		}
		return got.Settings
	}
	csrf, updated := load()

	// A route with host bits: refused, said beside the routes field.
	resp, body := do(t, c, "POST", s.url+"/groups/"+g.ID+"/settings", url.Values{"csrf": {csrf}, "version": {updated}, "d2dMode": {"group"}, "routes": {"10.50.0.0/16\n10.60.0.1/16"}}, nil)
	if resp.StatusCode != http.StatusBadRequest || !regexp.MustCompile(`id="routes"[^>]*aria-invalid="true"`).MatchString(body) || !strings.Contains(body, `id="err-routes">prefix has host bits set`) {
		t.Fatalf("bad route: %d, no error beside the field:\n%s", resp.StatusCode, body)
	}
	if !strings.Contains(body, "10.60.0.1/16</textarea>") {
		t.Error("the refused form lost what the operator typed")
	}
	if st := stored(); st.DeviceToDevice.Mode == fleet.D2DGroup || len(st.Routes) != 0 {
		t.Fatalf("a refused form wrote %+v", st)
	}

	// The raw editor: strict decoding, the error beside the text.
	resp, body = do(t, c, "POST", s.url+"/groups/"+g.ID+"/json", url.Values{"csrf": {csrf}, "version": {updated}, "json": {`{"version":1,"deviceToDevice":{"mode":"group"},"colour":"red"}`}}, nil)
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, `id="err-json"`) || !strings.Contains(body, "colour") {
		t.Fatalf("unknown field in the JSON: %d\n%s", resp.StatusCode, body)
	}
	// A good save through the form.
	resp, _ = do(t, c, "POST", s.url+"/groups/"+g.ID+"/settings", url.Values{"csrf": {csrf}, "version": {updated}, "d2dMode": {"group"}, "d2dPorts": {"22, 443"}, "routes": {"10.50.0.0/16"}, "devicesMayWriteTags": {"on"}, "userData": {"<b>hi</b>"}}, nil)
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("good form: %d", resp.StatusCode)
	}
	st := stored()
	if st.DeviceToDevice.Mode != fleet.D2DGroup || fmt.Sprint(st.DeviceToDevice.Ports) != "[22 443]" || fmt.Sprint(st.Routes) != "[10.50.0.0/16]" || !st.DevicesMayWriteTags || st.UserData != "<b>hi</b>" {
		t.Fatalf("saved %+v", st)
	}
	// The same (now stale) form sent again from the JSON editor: a conflict, nothing overwritten.
	resp, body = do(t, c, "POST", s.url+"/groups/"+g.ID+"/json", url.Values{"csrf": {csrf}, "version": {updated}, "json": {`{"version":1,"deviceToDevice":{"mode":"off"}}`}}, nil)
	if resp.StatusCode != http.StatusConflict || !strings.Contains(body, "after this form was loaded") {
		t.Fatalf("stale form: %d\n%s", resp.StatusCode, body)
	}
	if st := stored(); st.DeviceToDevice.Mode != fleet.D2DGroup {
		t.Fatalf("a stale form overwrote the settings: %+v", st)
	}
	// Reloaded, the user data shows as text in the editor.
	_, body = do(t, c, "GET", s.url+"/groups/"+g.ID, nil, nil)
	if strings.Contains(body, "<b>hi</b>") || !strings.Contains(body, "&lt;b&gt;hi&lt;/b&gt;</textarea>") {
		t.Error("user data is not escaped in the policy editor")
	}
	// A form refused for bad input, while someone else saved meanwhile,
	// comes back at the version it was loaded at: sent again, it conflicts.
	_, loaded := load()
	other := fleet.GroupSettings{Version: fleet.SettingsVersion, DeviceToDevice: fleet.D2DPolicy{Mode: fleet.D2DOff}, UserData: "theirs"}
	if _, err := s.svc.UpdateGroup(ctx, controlplane.System, g.ID, nil, &other); err != nil {
		t.Fatal(err)
	}
	// (A port the console itself refuses, before the service sees the form.)
	resp, body = do(t, c, "POST", s.url+"/groups/"+g.ID+"/settings", url.Values{"csrf": {csrf}, "version": {loaded}, "d2dMode": {"group"}, "d2dPorts": {"99999"}}, nil)
	if got := versionRE.FindStringSubmatch(body)[1]; resp.StatusCode != http.StatusBadRequest || got != loaded {
		t.Fatalf("refused form: %d, version %s, want 400 and the loaded %s", resp.StatusCode, got, loaded)
	}
	resp, _ = do(t, c, "POST", s.url+"/groups/"+g.ID+"/settings", url.Values{"csrf": {csrf}, "version": {versionRE.FindStringSubmatch(body)[1]}, "d2dMode": {"group"}, "routes": {"10.60.0.0/16"}}, nil)
	if st := stored(); resp.StatusCode != http.StatusConflict || st.UserData != "theirs" {
		t.Fatalf("the corrected form sent again: %d, user data %q; want a conflict and theirs kept", resp.StatusCode, st.UserData)
	}
}

// TestAlerts: a monitor alert is listed; a viewer sees no action and a
// forged acknowledgement fails; an operator acknowledges it (once, in
// the audit trail), quarantines the SIM and releases it back to its
// group, resumed.
func TestAlerts(t *testing.T) {
	s := newSite(t, console.Config{})
	ctx := context.Background()
	home, _ := s.svc.CreateGroup(ctx, controlplane.System, "home", fleet.GroupSettings{})
	jail, _ := s.svc.CreateGroup(ctx, controlplane.System, "jail", fleet.GroupSettings{})
	sim, _, err := s.svc.CreateSIM(ctx, controlplane.System, controlplane.SIMSpec{Name: "cam", GroupID: home.ID, GenerateKey: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.svc.RecordDeviceEvent(ctx, sim.ID, controlplane.AlertAction, map[string]any{"kind": "cloned-key", "severity": "high", "detail": "endpoints taking turns <b>x</b>"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.svc.SetSIMStatus(ctx, controlplane.System, sim.ID, fleet.StatusSuspended); err != nil {
		t.Fatal(err)
	}
	pg, err := s.svc.ListAlerts(ctx, controlplane.System, store.PageRequest{})
	if err != nil || len(pg.Items) != 1 {
		t.Fatalf("alerts: %+v %v", pg, err)
	}
	alert := fmt.Sprint(pg.Items[0].ID)

	_, viewerSecret := s.token(fleet.RoleViewer)
	v := browser(t)
	s.signIn(v, viewerSecret)
	_, body := do(t, v, "GET", s.url+"/alerts", nil, nil)
	if !strings.Contains(body, "cloned-key") || strings.Contains(body, "<b>x</b>") || strings.Contains(body, `action="/alerts/`) || strings.Contains(body, "/quarantine") {
		t.Fatalf("viewer's alerts page:\n%s", body)
	}
	vcsrf := s.csrf(v)
	for _, path := range []string{"/alerts/" + alert + "/acknowledge", "/sims/" + sim.ID + "/quarantine", "/sims/" + sim.ID + "/release"} {
		if resp, _ := do(t, v, "POST", s.url+path, url.Values{"csrf": {vcsrf}, "group": {jail.ID}}, nil); resp.StatusCode != http.StatusForbidden {
			t.Errorf("viewer POST %s: %d, want 403", path, resp.StatusCode)
		}
	}

	_, opSecret := s.token(fleet.RoleOperator)
	c := browser(t)
	s.signIn(c, opSecret)
	csrf := s.csrf(c)
	for range 2 {
		if resp, _ := do(t, c, "POST", s.url+"/alerts/"+alert+"/acknowledge", url.Values{"csrf": {csrf}}, nil); resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("acknowledge: %d", resp.StatusCode)
		}
	}
	acks, _ := s.st.ListEvents(ctx, store.EventFilter{Action: controlplane.AlertAckAction})
	if len(acks.Items) != 1 || !strings.HasPrefix(acks.Items[0].Actor, "token:") {
		t.Fatalf("acknowledgements in the audit trail: %+v", acks.Items)
	}
	_, body = do(t, c, "GET", s.url+"/alerts", nil, nil)
	if !strings.Contains(body, "acknowledged by token:") || strings.Contains(body, `class="ack"`) {
		t.Fatalf("acknowledged alert still shown as new:\n%s", body)
	}
	if resp, _ := do(t, c, "POST", s.url+"/alerts/999999/acknowledge", url.Values{"csrf": {csrf}}, nil); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("acknowledging no alert: %d, want 404", resp.StatusCode)
	}
	resp, _ := do(t, c, "POST", s.url+"/sims/"+sim.ID+"/quarantine", url.Values{"csrf": {csrf}, "group": {jail.ID}, "back": {"/alerts"}}, nil)
	if got, _ := s.svc.GetSIM(ctx, controlplane.System, sim.ID); resp.StatusCode != http.StatusSeeOther || got.GroupID != jail.ID {
		t.Fatalf("quarantine: %d, group %s", resp.StatusCode, got.GroupID)
	}
	resp, _ = do(t, c, "POST", s.url+"/sims/"+sim.ID+"/release", url.Values{"csrf": {csrf}, "back": {"/alerts"}}, nil)
	if got, _ := s.svc.GetSIM(ctx, controlplane.System, sim.ID); resp.StatusCode != http.StatusSeeOther || got.GroupID != home.ID || got.Status != fleet.StatusActive {
		t.Fatalf("release: %d, group %s status %s; want back home, active", resp.StatusCode, got.GroupID, got.Status)
	}
	for _, p := range []string{"/alerts?cursor=x", "/audit?cursor=x"} {
		if resp, _ := do(t, c, "GET", s.url+p, nil, nil); resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("%s: %d, want 400", p, resp.StatusCode)
		}
	}
}

// TestSecureCookieBehindProxy: over HTTPS (here a trusted proxy saying
// so) the cookie is Secure and __Host- prefixed; a plain-HTTP request
// does not read it, and an untrusted peer's X-Forwarded-Proto counts for
// nothing.
func TestSecureCookieBehindProxy(t *testing.T) {
	s := newSite(t, console.Config{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}})
	_, secret := s.token(fleet.RoleViewer)
	c := browser(t)
	https := map[string]string{"X-Forwarded-Proto": "https", "X-Forwarded-For": "192.0.2.7"}
	resp, _ := do(t, c, "POST", s.url+"/signin", url.Values{"token": {secret}}, https)
	var ck *http.Cookie
	for _, k := range resp.Cookies() {
		ck = k
	}
	if resp.StatusCode != http.StatusSeeOther || ck == nil || ck.Name != console.SecureCookieName || !ck.Secure || !ck.HttpOnly || ck.Path != "/" || ck.Domain != "" {
		t.Fatalf("behind an HTTPS proxy: %d cookie %+v", resp.StatusCode, ck)
	}
	req := func(hdr map[string]string) int {
		r, _ := http.NewRequest("GET", s.url+"/sims", nil)
		r.AddCookie(&http.Cookie{Name: ck.Name, Value: ck.Value})
		for k, v := range hdr {
			r.Header.Set(k, v)
		}
		resp, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(r)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := req(https); code != 200 {
		t.Fatalf("the secure cookie over HTTPS: %d", code)
	}
	if code := req(nil); code != http.StatusSeeOther {
		t.Fatalf("the secure cookie read over plain HTTP: %d, want a redirect to sign-in", code)
	}

	untrusted := newSite(t, console.Config{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}})
	_, secret = untrusted.token(fleet.RoleViewer)
	resp, _ = do(t, browser(t), "POST", untrusted.url+"/signin", url.Values{"token": {secret}}, https)
	for _, k := range resp.Cookies() {
		if k.Name != console.CookieName || k.Secure {
			t.Fatalf("an untrusted peer's X-Forwarded-Proto changed the cookie: %+v", k)
		}
	}
}

// TestFailedSignInAuditBounded: failed sign-ins from anywhere write at
// most a burst of audit events, and the next one written counts the ones
// left out.
func TestFailedSignInAuditBounded(t *testing.T) {
	s := newSite(t, console.Config{SignInLimit: ratelimit.Config{PerSecond: 1000, Burst: 1000}})
	c := browser(t)
	for range 50 {
		do(t, c, "POST", s.url+"/signin", url.Values{"token": {"wft_guess"}}, nil)
	}
	count := func() []fleet.Event {
		ev, err := s.st.ListEvents(context.Background(), store.EventFilter{Action: "console.signin_failed", PageRequest: store.PageRequest{Limit: 1000}})
		if err != nil {
			t.Fatal(err)
		}
		return ev.Items
	}
	if n := len(count()); n != 20 {
		t.Fatalf("%d failed sign-ins audited of 50 at once, want the burst of 20", n)
	}
	s.clock.Advance(5 * time.Second)
	do(t, c, "POST", s.url+"/signin", url.Values{"token": {"wft_guess"}}, nil)
	evs := count()
	if len(evs) != 21 || fmt.Sprint(evs[0].Details["suppressed"]) != "30" {
		t.Fatalf("after a pause: %d events, the last %v; want 21, saying 30 were left out", len(evs), evs[0].Details)
	}
}

// TestSignInAgainEndsOldSession: signing in again from the same browser
// ends the session it had.
func TestSignInAgainEndsOldSession(t *testing.T) {
	s := newSite(t, console.Config{})
	_, secret := s.token(fleet.RoleViewer)
	c := browser(t)
	old := s.signIn(c, secret)
	s.signIn(c, secret)
	if _, err := s.svc.ConsoleActor(context.Background(), old.Value); err == nil {
		t.Fatal("the first session outlived a second sign-in")
	}
}

// TestSIMsPagesAndBulk: the next-page link keeps the filter and shows the
// rest; bulk moves need an explicit group and tags merge.
func TestSIMsPagesAndBulk(t *testing.T) {
	s := newSite(t, console.Config{})
	ctx := context.Background()
	g, _ := s.svc.CreateGroup(ctx, controlplane.System, "bulk", fleet.GroupSettings{})
	var ids []string
	for i := range 60 {
		sim, _, err := s.svc.CreateSIM(ctx, controlplane.System, controlplane.SIMSpec{Name: fmt.Sprintf("s%d", i), GroupID: g.ID, Tags: map[string]string{"keep": "yes"}, GenerateKey: true})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, sim.ID)
	}
	_, secret := s.token(fleet.RoleOperator)
	c := browser(t)
	s.signIn(c, secret)
	_, body := do(t, c, "GET", s.url+"/sims?status=active", nil, nil)
	m := regexp.MustCompile(`<a href="([^"]+)" rel="next">`).FindStringSubmatch(body)
	if m == nil {
		t.Fatal("no next-page link on a full page")
	}
	next := html.UnescapeString(m[1])
	if !strings.Contains(next, "status=active") || !strings.Contains(next, "cursor=") {
		t.Fatalf("next link %q loses the filter", next)
	}
	_, body = do(t, c, "GET", s.url+next, nil, nil)
	if rows := strings.Count(body, "<tr data-sim="); rows != 10 {
		t.Fatalf("page 2 shows %d SIMs, want the last 10", rows)
	}
	csrf := s.csrf(c)
	resp, _ := do(t, c, "POST", s.url+"/sims/bulk", url.Values{"csrf": {csrf}, "action": {"group"}, "id": ids[:2]}, nil)
	if got, _ := s.svc.GetSIM(ctx, controlplane.System, ids[0]); resp.StatusCode != http.StatusBadRequest || got.GroupID != g.ID {
		t.Fatalf("a move with no group chosen: %d, group %q", resp.StatusCode, got.GroupID)
	}
	do(t, c, "POST", s.url+"/sims/bulk", url.Values{"csrf": {csrf}, "action": {"group"}, "group": {"-"}, "id": ids[:2]}, nil)
	if got, _ := s.svc.GetSIM(ctx, controlplane.System, ids[0]); got.GroupID != "" {
		t.Fatalf("'no group' left the SIM in %q", got.GroupID)
	}
	do(t, c, "POST", s.url+"/sims/bulk", url.Values{"csrf": {csrf}, "action": {"tag"}, "tag": {"site=b7"}, "id": ids[:3]}, nil)
	if got, _ := s.svc.GetSIM(ctx, controlplane.System, ids[2]); got.Tags["site"] != "b7" || got.Tags["keep"] != "yes" {
		t.Fatalf("tags after add: %v", got.Tags)
	}
}

// TestLiveStreamLimits: a session holds at most MaxStreamsPerSession live
// views; HEAD holds none.
func TestLiveStreamLimits(t *testing.T) {
	s := newSite(t, console.Config{LiveInterval: time.Hour})
	_, secret := s.token(fleet.RoleViewer)
	c := browser(t)
	s.signIn(c, secret)
	var open []*http.Response
	defer func() {
		for _, r := range open {
			r.Body.Close()
		}
	}()
	for i := range console.MaxStreamsPerSession {
		resp, err := c.Get(s.url + "/live/overview")
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("stream %d: %v %v", i, resp.Status, err)
		}
		open = append(open, resp)
	}
	resp, _ := do(t, c, "GET", s.url+"/live/overview", nil, nil)
	if resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("stream past the session's share: %d, want 429", resp.StatusCode)
	}
	other := browser(t)
	s.signIn(other, secret)
	o, err := other.Get(s.url + "/live/overview")
	if err != nil || o.StatusCode != 200 {
		t.Fatalf("another session's stream: %v %v", o.Status, err)
	}
	o.Body.Close()
	resp, _ = do(t, c, "HEAD", s.url+"/live/overview", nil, nil)
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("HEAD on a live view: %d, want 405", resp.StatusCode)
	}
}

// TestPortMappings: an operator opens a port of a device from its page
// (the allowed source offered is their own address), sees the command to
// connect, and closes it; a refused create says why beside the form.
func TestPortMappings(t *testing.T) {
	s := newSite(t, console.Config{}, func(c *controlplane.Config) {
		c.Remote = controlplane.RemotePolicy{Host: "gw.example", PortMin: 40000, PortMax: 40010}
	})
	ctx := context.Background()
	sim, _, err := s.svc.CreateSIM(ctx, controlplane.System, controlplane.SIMSpec{Name: "plc", GenerateKey: true})
	if err != nil {
		t.Fatal(err)
	}
	_, secret := s.token(fleet.RoleOperator)
	c := browser(t)
	s.signIn(c, secret)
	_, body := do(t, c, "GET", s.url+"/sims/"+sim.ID, nil, nil)
	if !strings.Contains(body, `name="sources" value="127.0.0.1/32"`) {
		t.Fatalf("the mapping form does not offer the operator's own address:\n%s", body)
	}
	csrf := s.csrf(c)
	resp, body := do(t, c, "POST", s.url+"/sims/"+sim.ID+"/mappings", url.Values{"csrf": {csrf}, "port": {"70000"}, "sources": {"127.0.0.1/32"}}, nil)
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, `id="err-mapping"`) || !strings.Contains(body, `value="70000"`) {
		t.Fatalf("a bad port: %d\n%s", resp.StatusCode, body)
	}
	resp, _ = do(t, c, "POST", s.url+"/sims/"+sim.ID+"/mappings", url.Values{"csrf": {csrf}, "port": {"22"}, "minutes": {"30"}, "sources": {"127.0.0.1/32, 192.0.2.0/24"}}, nil)
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("open a port: %d", resp.StatusCode)
	}
	ms, err := s.svc.ListMappings(ctx, controlplane.System, store.MappingFilter{SIMID: sim.ID})
	if err != nil || len(ms.Items) != 1 {
		t.Fatalf("mappings: %+v %v", ms.Items, err)
	}
	m := ms.Items[0]
	if m.Port != 22 || len(m.AllowedSources) != 2 || m.Expires.Sub(m.Created) != 30*time.Minute {
		t.Fatalf("mapping %+v", m)
	}
	want := fmt.Sprintf("ssh -p %d gw.example", m.PublicPort)
	for _, p := range []string{"/sims/" + sim.ID, "/mappings"} {
		if _, body := do(t, c, "GET", s.url+p, nil, nil); !strings.Contains(body, want) {
			t.Errorf("%s does not show %q", p, want)
		}
	}
	resp, _ = do(t, c, "POST", s.url+"/mappings/"+m.ID+"/close", url.Values{"csrf": {csrf}, "back": {"/mappings"}}, nil)
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/mappings?") {
		t.Fatalf("close: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	if ms, _ := s.svc.ListMappings(ctx, controlplane.System, store.MappingFilter{SIMID: sim.ID}); len(ms.Items) != 0 {
		t.Fatal("the closed mapping is still there")
	}
}

// TestWireGuardConfigAndRekey: the wg-quick file carries no private key;
// re-keying needs an operator and a confirmation, and shows the complete
// file (whose key is the SIM's new one) with a QR code, once.
func TestWireGuardConfigAndRekey(t *testing.T) {
	s := newSite(t, console.Config{})
	ctx := context.Background()
	sim, _, err := s.svc.CreateSIM(ctx, controlplane.System, controlplane.SIMSpec{Name: "phone", GenerateKey: true})
	if err != nil {
		t.Fatal(err)
	}
	_, vsecret := s.token(fleet.RoleViewer)
	v := browser(t)
	s.signIn(v, vsecret)
	resp, body := do(t, v, "GET", s.url+"/sims/"+sim.ID+"/wg-quick.conf", nil, nil)
	if resp.StatusCode != 200 || !strings.Contains(body, "PrivateKey = "+controlplane.PrivateKeyPlaceholder) || !strings.Contains(resp.Header.Get("Content-Disposition"), "attachment") {
		t.Fatalf("wg-quick file: %d %q\n%s", resp.StatusCode, resp.Header.Get("Content-Disposition"), body)
	}
	if resp, _ := do(t, v, "POST", s.url+"/sims/"+sim.ID+"/rekey-config", url.Values{"csrf": {s.csrf(v)}, "confirm": {"on"}}, nil); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("viewer re-key: %d, want 403", resp.StatusCode)
	}
	_, secret := s.token(fleet.RoleOperator)
	c := browser(t)
	s.signIn(c, secret)
	csrf := s.csrf(c)
	if resp, _ := do(t, c, "POST", s.url+"/sims/"+sim.ID+"/rekey-config", url.Values{"csrf": {csrf}}, nil); resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("re-key without the confirmation: %d, want 400", resp.StatusCode)
	}
	if got, _ := s.svc.GetSIM(ctx, controlplane.System, sim.ID); got.PublicKey != sim.PublicKey {
		t.Fatal("re-keyed without the confirmation")
	}
	resp, body = do(t, c, "POST", s.url+"/sims/"+sim.ID+"/rekey-config", url.Values{"csrf": {csrf}, "confirm": {"on"}}, nil)
	// The page escapes '+' as &#43;: read the text, not the markup.
	m := regexp.MustCompile(`PrivateKey = ([A-Za-z0-9+/]{43}=)`).FindStringSubmatch(html.UnescapeString(body))
	if resp.StatusCode != 200 || m == nil || !strings.Contains(body, `<svg class="qr"`) || resp.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("re-key: %d\n%s", resp.StatusCode, body)
	}
	priv, err := wgkey.ParsePrivate(m[1])
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := s.svc.GetSIM(ctx, controlplane.System, sim.ID); got.PublicKey != priv.Public() || got.PublicKey == sim.PublicKey {
		t.Fatal("the key shown is not the SIM's new key")
	}
}

// TestOperatorTokens: admins list, create (secret once) and revoke
// tokens, and a revoked token's console sessions end; an operator gets
// 403 for the page and for a forged create, and no link to it.
func TestOperatorTokens(t *testing.T) {
	s := newSite(t, console.Config{})
	ctx := context.Background()
	_, opSecret := s.token(fleet.RoleOperator)
	op := browser(t)
	s.signIn(op, opSecret)
	if _, body := do(t, op, "GET", s.url+"/", nil, nil); strings.Contains(body, `href="/tokens"`) {
		t.Error("an operator is shown the tokens link")
	}
	if resp, _ := do(t, op, "GET", s.url+"/tokens", nil, nil); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("operator GET /tokens: %d, want 403", resp.StatusCode)
	}
	if resp, _ := do(t, op, "POST", s.url+"/tokens", url.Values{"csrf": {s.csrf(op)}, "role": {"admin"}}, nil); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("operator POST /tokens: %d, want 403", resp.StatusCode)
	}

	_, adminSecret := s.token(fleet.RoleAdmin)
	c := browser(t)
	s.signIn(c, adminSecret)
	csrf := s.csrf(c)
	resp, body := do(t, c, "POST", s.url+"/tokens", url.Values{"csrf": {csrf}, "role": {"viewer"}, "description": {"grafana"}, "days": {"30"}}, nil)
	m := regexp.MustCompile(`id="token-secret">([^<]+)<`).FindStringSubmatch(body)
	if resp.StatusCode != http.StatusCreated || m == nil {
		t.Fatalf("create: %d\n%s", resp.StatusCode, body)
	}
	newSecret := html.UnescapeString(m[1])
	a, err := s.svc.Authenticate(ctx, newSecret)
	if err != nil || a.Role != fleet.RoleViewer {
		t.Fatalf("the token shown does not authenticate as a viewer: %+v %v", a, err)
	}
	if _, body := do(t, c, "GET", s.url+"/tokens", nil, nil); strings.Contains(body, newSecret) {
		t.Fatal("the token's secret is shown again")
	}
	if resp, _ := do(t, c, "POST", s.url+"/tokens", url.Values{"csrf": {csrf}, "role": {"root"}}, nil); resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("a bad role: %d, want 400", resp.StatusCode)
	}
	// Its console session ends when it is revoked.
	v := browser(t)
	s.signIn(v, newSecret)
	resp, _ = do(t, c, "POST", s.url+"/tokens/"+a.ID+"/revoke", url.Values{"csrf": {csrf}}, nil)
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("revoke: %d", resp.StatusCode)
	}
	if resp, _ := do(t, v, "GET", s.url+"/sims", nil, nil); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("the revoked token's session still reads: %d", resp.StatusCode)
	}
}

// TestIdentities: an operator imports a batch of identity keys (a bad
// line refused beside the field, nothing imported), sees its identities
// and revokes one; a viewer sees them and gets 403 for an import.
func TestIdentities(t *testing.T) {
	s := newSite(t, console.Config{})
	ctx := context.Background()
	var keys []string
	for range 3 {
		pub, _, err := ed25519.GenerateKey(nil)
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, "ed25519:"+base64.StdEncoding.EncodeToString(pub))
	}
	_, secret := s.token(fleet.RoleOperator)
	c := browser(t)
	s.signIn(c, secret)
	csrf := s.csrf(c)
	resp, body := do(t, c, "POST", s.url+"/identities", url.Values{"csrf": {csrf}, "name": {"lot-7"}, "keys": {keys[0] + "\nnot-a-key\n" + keys[1]}}, nil)
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, `id="err-import">publicKeys[1]`) {
		t.Fatalf("a bad key: %d\n%s", resp.StatusCode, body)
	}
	if pg, _ := s.svc.ListIdentityBatches(ctx, controlplane.System, store.PageRequest{}); len(pg.Items) != 0 {
		t.Fatal("a refused import left a batch")
	}
	resp, _ = do(t, c, "POST", s.url+"/identities", url.Values{"csrf": {csrf}, "name": {"lot-7"}, "keys": {strings.Join(keys, "\n")}}, nil)
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("import: %d", resp.StatusCode)
	}
	_, body = do(t, c, "GET", s.url+resp.Header.Get("Location"), nil, nil)
	if n := strings.Count(body, "<tr data-identity="); n != 3 {
		t.Fatalf("the batch page lists %d identities, want 3", n)
	}
	ids, _ := s.svc.ListIdentities(ctx, controlplane.System, store.IdentityFilter{})
	id := ids.Items[0]
	do(t, c, "POST", s.url+"/identities/"+id.ID+"/revoke", url.Values{"csrf": {csrf}, "batch": {id.BatchID}}, nil)
	if got, _ := s.svc.GetIdentity(ctx, controlplane.System, id.ID); got.Status != fleet.IdentityRevoked {
		t.Fatalf("after revoke: %s", got.Status)
	}
	_, vsecret := s.token(fleet.RoleViewer)
	v := browser(t)
	s.signIn(v, vsecret)
	if _, body := do(t, v, "GET", s.url+"/identities?batch="+id.BatchID, nil, nil); strings.Contains(body, `<form method="post" action="/identities`) || !strings.Contains(body, "lot-7") {
		t.Fatal("the viewer's identities page is wrong")
	}
	for _, path := range []string{"/identities", "/identities/" + id.ID + "/revoke", "/identities/batches/" + id.BatchID + "/revoke"} {
		if resp, _ := do(t, v, "POST", s.url+path, url.Values{"csrf": {s.csrf(v)}, "name": {"x"}, "keys": {keys[2]}}, nil); resp.StatusCode != http.StatusForbidden {
			t.Errorf("viewer POST %s: %d, want 403", path, resp.StatusCode)
		}
	}
}

// TestDataExplorer: a SIM's records are listed (payloads as escaped
// text), a numeric field is charted, and an unknown SIM is a clear error.
func TestDataExplorer(t *testing.T) {
	s := newSite(t, console.Config{})
	ctx := context.Background()
	g, _ := s.svc.CreateGroup(ctx, controlplane.System, "meters", fleet.GroupSettings{})
	sim, _, err := s.svc.CreateSIM(ctx, controlplane.System, controlplane.SIMSpec{Name: "m1", GroupID: g.ID, GenerateKey: true})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	var recs []fleet.Record
	for i := range 12 {
		recs = append(recs, fleet.Record{SIMID: sim.ID, GroupID: g.ID, Time: now.Add(time.Duration(i) * time.Minute), Received: now, ContentType: "application/json",
			Payload: []byte(fmt.Sprintf(`{"temp": %d, "note": "<script>x</script>"}`, 20+i))})
	}
	recs = append(recs, fleet.Record{SIMID: sim.ID, GroupID: g.ID, Time: now.Add(time.Hour), Received: now, ContentType: "application/octet-stream", Payload: []byte{0xff, 0xfe, 0x00}})
	if err := s.st.AppendRecords(ctx, recs); err != nil {
		t.Fatal(err)
	}
	_, secret := s.token(fleet.RoleViewer)
	c := browser(t)
	s.signIn(c, secret)
	resp, body := do(t, c, "GET", s.url+"/data?sim="+sim.ID+"&field=temp", nil, nil)
	if resp.StatusCode != 200 || strings.Count(body, "<tr data-record=") != 13 || !strings.Contains(body, `data-points="12"`) {
		t.Fatalf("data page: %d\n%s", resp.StatusCode, body)
	}
	if strings.Contains(body, "<script>x") || !strings.Contains(body, "(3 bytes of binary data)") || !strings.Contains(body, ">temp</a>") {
		t.Fatal("payloads not shown as escaped text, or the field list is missing")
	}
	if resp, body := do(t, c, "GET", s.url+"/data?group="+g.ID, nil, nil); resp.StatusCode != 200 || strings.Count(body, "<tr data-record=") != 13 {
		t.Fatalf("group data: %d", resp.StatusCode)
	}
	if resp, _ := do(t, c, "GET", s.url+"/data?sim=sim_nope", nil, nil); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("an unknown SIM: %d, want 404", resp.StatusCode)
	}
}

// TestSIMRoutesAndRotation: from a SIM's page an operator adds a LAN
// route, approves one the device advertised, removes one, and requires a
// key rotation; a bad prefix is said on the page; a viewer gets 403.
func TestSIMRoutesAndRotation(t *testing.T) {
	s := newSite(t, console.Config{})
	ctx := context.Background()
	g, _ := s.svc.CreateGroup(ctx, controlplane.System, "sites", fleet.GroupSettings{DevicesMayAdvertiseRoutes: true})
	sim, _, err := s.svc.CreateSIM(ctx, controlplane.System, controlplane.SIMSpec{Name: "router", GroupID: g.ID, GenerateKey: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.svc.AdvertiseRoutes(ctx, controlplane.Actor{Kind: "sim", ID: sim.ID, Role: fleet.RoleViewer}, sim.ID, []netip.Prefix{netip.MustParsePrefix("192.168.7.0/24")}); err != nil {
		t.Fatalf("advertise: %v", err)
	}
	_, vsecret := s.token(fleet.RoleViewer)
	v := browser(t)
	s.signIn(v, vsecret)
	for _, path := range []string{"/sims/" + sim.ID + "/routes/add", "/sims/" + sim.ID + "/routes/approve", "/sims/" + sim.ID + "/require-rotation"} {
		if resp, _ := do(t, v, "POST", s.url+path, url.Values{"csrf": {s.csrf(v)}, "prefix": {"192.168.7.0/24"}}, nil); resp.StatusCode != http.StatusForbidden {
			t.Errorf("viewer POST %s: %d, want 403", path, resp.StatusCode)
		}
	}
	_, secret := s.token(fleet.RoleOperator)
	c := browser(t)
	s.signIn(c, secret)
	csrf := s.csrf(c)
	_, body := do(t, c, "GET", s.url+"/sims/"+sim.ID, nil, nil)
	if !strings.Contains(body, `class="approve-route"`) {
		t.Fatal("an advertised route offers no Approve")
	}
	post := func(path string, form url.Values) int {
		form.Set("csrf", csrf)
		resp, _ := do(t, c, "POST", s.url+path, form, nil)
		return resp.StatusCode
	}
	if code := post("/sims/"+sim.ID+"/routes/approve", url.Values{"prefix": {"192.168.7.0/24"}}); code != http.StatusSeeOther {
		t.Fatalf("approve: %d", code)
	}
	if code := post("/sims/"+sim.ID+"/routes/add", url.Values{"prefix": {"10.9.0.0/16"}}); code != http.StatusSeeOther {
		t.Fatalf("add: %d", code)
	}
	if code := post("/sims/"+sim.ID+"/routes/add", url.Values{"prefix": {"banana"}}); code != http.StatusBadRequest {
		t.Fatalf("a bad prefix: %d, want 400", code)
	}
	routes, _ := s.svc.SIMRoutes(ctx, controlplane.System, sim.ID)
	if len(routes) != 2 || routes[0].Status != fleet.RouteApproved || routes[1].Status != fleet.RouteApproved {
		t.Fatalf("routes: %+v", routes)
	}
	post("/sims/"+sim.ID+"/routes/remove", url.Values{"prefix": {"10.9.0.0/16"}})
	if routes, _ := s.svc.SIMRoutes(ctx, controlplane.System, sim.ID); len(routes) != 1 {
		t.Fatalf("after remove: %+v", routes)
	}
	if code := post("/sims/"+sim.ID+"/require-rotation", url.Values{"hours": {"6"}}); code != http.StatusSeeOther {
		t.Fatalf("require rotation: %d", code)
	}
	got, _ := s.svc.GetSIM(ctx, controlplane.System, sim.ID)
	if d := got.RotateBy.Sub(s.clock.Now()); got.RotateBy.IsZero() || d > 6*time.Hour+time.Second || d < 6*time.Hour-time.Second {
		t.Fatalf("rotate by %v, want 6 h from now", got.RotateBy)
	}
}
