// SPDX-License-Identifier: Apache-2.0

package console_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/wirefleet/wirefleet/controlplane"
	"github.com/wirefleet/wirefleet/controlplane/console"
	"github.com/wirefleet/wirefleet/controlplane/store"
	"github.com/wirefleet/wirefleet/fleet"
	"github.com/wirefleet/wirefleet/gateway"
	"github.com/wirefleet/wirefleet/internal/gwtest"
	"github.com/wirefleet/wirefleet/internal/netns"
)

// chromiumPath is Debian's chromium (.ci/apt-packages installs it).
const chromiumPath = "/usr/bin/chromium"

// screenshotsEnv names a folder to write the main pages' screenshots to
// (docs/console holds the committed ones).
const screenshotsEnv = "WIREFLEET_CONSOLE_SCREENSHOTS"

// chrome is a headless Debian chromium driven over the DevTools protocol,
// with what its console reports kept.
type chrome struct {
	t   *testing.T
	ctx context.Context
	mu  sync.Mutex
	log []string // errors, warnings and exceptions from the browser's console
}

func newChrome(t *testing.T) *chrome {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is missing (.ci/apt-packages installs chromium)", chromiumPath)
		}
		t.Skipf("no %s: install Debian's chromium to run the browser tests", chromiumPath)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath),
		chromedp.NoSandbox, // as root in CI
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	// Ends the browser process chromedp started (by its PID), even on failure.
	t.Cleanup(func() { cancel(); cancelAlloc() })
	c := &chrome{t: t, ctx: ctx}
	// The first run starts the browser, for as long as its context: no timeout on it.
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("starting %s: %v", chromiumPath, err)
	}
	messages := chromedp.Console(ctx)
	go func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			switch m.Type {
			case chromedp.ConsoleError, chromedp.ConsoleWarning, chromedp.ConsoleException:
				c.mu.Lock()
				c.log = append(c.log, fmt.Sprintf("%s [%s] %s (%s)", m.Type, m.Source, m.Text, m.URL))
				c.mu.Unlock()
			}
		}
	}()
	return c
}

// fail ends the test with what the browser was at.
func (c *chrome) fail(what string, err error) {
	c.t.Helper()
	url, _ := chromedp.Run(c.ctx, chromedp.Location())
	c.t.Fatalf("%s: %v (at %s; browser console: %v)", what, err, url, c.console())
}

// do runs steps, failing the test if they do not finish in 30 s.
func (c *chrome) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(c.ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		c.fail(what, err)
	}
}

// get runs one action and returns its value.
func get[T any](c *chrome, what string, a chromedp.Action[T]) T {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(c.ctx, 30*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		c.fail(what, err)
	}
	return v
}

func (c *chrome) console() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.log...)
}

// waitJS waits until a JavaScript expression is true.
func (c *chrome) waitJS(what, expr string) {
	c.t.Helper()
	get(c, what, chromedp.Poll[bool](expr, chromedp.WithPollingInterval(100*time.Millisecond), chromedp.WithPollingTimeout(25*time.Second)))
}

// js evaluates an expression to a value of T.
func js[T any](c *chrome, what, expr string, opts ...chromedp.EvaluateOption) T {
	c.t.Helper()
	return get(c, what, chromedp.Evaluate[T](expr, opts...))
}

func (c *chrome) screenshot(name string) {
	dir := os.Getenv(screenshotsEnv)
	if dir == "" {
		return
	}
	png := get(c, "screenshot "+name, chromedp.FullScreenshot(100))
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		c.t.Fatal(err)
	}
}

type css = chromedp.CSS

// signIn signs in with a token through the form.
func (c *chrome) signIn(base, token string) {
	c.t.Helper()
	c.do("sign in",
		chromedp.Navigate(base+"/sims"),
		chromedp.WaitVisible(css(`#token`)),
		chromedp.SendKeys(css(`#token`), token),
		chromedp.Submit(css(`#token`)),
		chromedp.WaitVisible(css(`table#sims`)), // back to the page asked for
	)
}

// TestConsoleInChromium drives the console in a real Chromium against a
// real gateway and a real WireGuard device: an operator signs in, creates
// a group and an auth key, a Debian wireguard-go device bootstraps with
// that key and turns online on the SIMs page without a reload, its page
// shows its traffic move, suspending it drops it, and signing out ends
// the session; a viewer sees no write control and a forged write fails;
// payloads in user data stay text; the browser reports no CSP violation.
func TestConsoleInChromium(t *testing.T) {
	netns.Require(t)
	c := newChrome(t)
	p := gwtest.Start(t, gwtest.Options{Subnet: 234, Remote: controlplane.RemotePolicy{Host: "127.0.0.1", PortMin: 40000, PortMax: 40010}})
	ctx := context.Background()
	h, err := console.New(p.Service, console.Config{Logger: p.Logger, Gateway: p.Gateway, LiveInterval: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(h)
	srv.Listener.Close()
	srv.Listener = ln
	srv.Config.RegisterOnShutdown(h.Shutdown)
	srv.Start()
	t.Cleanup(func() { h.Shutdown(); srv.Close() })
	base := srv.URL
	_, opSecret, err := p.Service.CreateToken(ctx, controlplane.System, fleet.RoleOperator, "console test operator")
	if err != nil {
		t.Fatal(err)
	}
	_, viewerSecret, err := p.Service.CreateToken(ctx, controlplane.System, fleet.RoleViewer, "console test viewer")
	if err != nil {
		t.Fatal(err)
	}
	// A SIM whose name and tags hold markup: it must render as text.
	if _, _, err := p.Service.CreateSIM(ctx, controlplane.System, controlplane.SIMSpec{Name: `x<img src=x onerror="window.__xss=1"><script>window.__xss=2</script>`, Tags: map[string]string{"note": `"><svg onload="window.__xss=3">`}, GenerateKey: true}); err != nil {
		t.Fatal(err)
	}

	// Sign in: the first page asks for it and comes back after.
	c.signIn(base, opSecret)

	// Create a group and an auth key of it.
	c.do("create a group",
		chromedp.Navigate(base+"/groups"),
		chromedp.SendKeys(css(`#group-name`), "plant-7"),
		chromedp.Submit(css(`#group-name`)),
		chromedp.WaitVisible(css(`p.flash`)),
	)
	g, err := p.Store.GroupByName(ctx, "plant-7")
	if err != nil {
		t.Fatalf("the group made in the browser is not in the store: %v", err)
	}
	c.do("create an auth key",
		chromedp.Navigate(base+"/authkeys"),
		chromedp.SetValue(css(`select[name="group"]`), g.ID),
		chromedp.SendKeys(css(`input[name="description"]`), "line 7 pumps"),
		chromedp.Submit(css(`input[name="description"]`)),
		chromedp.WaitVisible(css(`#authkey-secret`)),
	)
	secret := get(c, "read the new key", chromedp.Text(css(`#authkey-secret`)))
	if !strings.HasPrefix(secret, controlplane.AuthKeyPrefix) {
		t.Fatalf("the auth key page shows %q, not a key", secret)
	}
	c.screenshot("authkeys")

	// A real device bootstraps with that key; its tunnel is not up yet.
	d := p.NewDevice()
	sim, sess, err := p.Service.Bootstrap(ctx, controlplane.BootstrapRequest{AuthKey: secret, PublicKey: d.WG.Public, Name: "pump-1"})
	if err != nil {
		t.Fatalf("bootstrap with the key from the console: %v", err)
	}
	if sim.GroupID != g.ID {
		t.Fatalf("bootstrapped into group %q, want %q", sim.GroupID, g.ID)
	}
	row := fmt.Sprintf(`tr[data-sim=%q] [data-cell="online"] [data-online]`, sim.ID)
	c.do("the SIMs page lists the new SIM offline",
		chromedp.Navigate(base+"/sims"),
		chromedp.WaitVisible(css(row)),
	)
	if online := get(c, "read its state", chromedp.AttributeValue(css(row), "data-online")); online.Value != "false" {
		t.Fatalf("before its tunnel is up the SIM shows online=%q", online.Value)
	}
	js[bool](c, "mark the page", `window.__sameLoad = true`)
	p.Connect(d, sim, sess)
	c.waitJS("the SIM turns online without a reload", fmt.Sprintf(`document.querySelector(%q)?.dataset.online === "true" && window.__sameLoad === true`, row))
	c.waitJS("its endpoint and handshake show without a reload", fmt.Sprintf(`document.querySelector('tr[data-sim=%q] [data-cell="endpoint"]')?.textContent.trim().startsWith("10.234.") && document.querySelector('tr[data-sim=%q] [data-cell="handshake"] time') !== null`, sim.ID, sim.ID))
	c.screenshot("sims")

	// Its page: traffic moves on the graph.
	stop := make(chan struct{})
	var traffic sync.WaitGroup
	traffic.Add(1)
	go func() {
		defer traffic.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			d.NS.Exec("curl", "-s", "-o", "/dev/null", "--max-time", "2", "http://"+gateway.MetadataAddr.String()+"/")
			time.Sleep(50 * time.Millisecond)
		}
	}()
	c.do("open the SIM's page",
		chromedp.Click(css(fmt.Sprintf(`tr[data-sim=%q] a`, sim.ID))),
		chromedp.WaitVisible(css(`#sim-live`)),
	)
	samples := 2
	if os.Getenv(screenshotsEnv) != "" {
		samples = 20 // a graph worth looking at
	}
	c.waitJS("traffic shows on the graph", fmt.Sprintf(`Number(document.querySelector("#traffic svg")?.dataset.rx || 0) > 0 && Number(document.querySelector("#traffic svg")?.dataset.samples || 0) >= %d`, samples))
	close(stop)
	traffic.Wait()
	c.screenshot("sim")

	// Open a port of the device, see how to connect, close it.
	c.do("open a port mapping",
		chromedp.SendKeys(css(`#mapping-form input[name="port"]`), "22"),
		chromedp.Click(css(`#open-mapping`)),
		chromedp.WaitVisible(css(`table.mappings tr[data-mapping] code`)),
	)
	if cmd := get(c, "read the connect command", chromedp.Text(css(`table.mappings tr[data-mapping] code`))); !strings.HasPrefix(cmd, "ssh -p 400") {
		t.Fatalf("the mapping shows %q to connect with", cmd)
	}
	c.do("close it",
		chromedp.Click(css(`table.mappings button.close-mapping`)),
		chromedp.WaitVisible(css(`p.flash`)),
		chromedp.WaitNotPresent(css(`table.mappings tr[data-mapping]`)),
	)
	if ms, _ := p.Service.ListMappings(ctx, controlplane.System, store.MappingFilter{SIMID: sim.ID}); len(ms.Items) != 0 {
		t.Fatal("the mapping closed in the browser is still in the store")
	}

	// An alert on it: acknowledged from the alerts page.
	if err := p.Service.RecordDeviceEvent(ctx, sim.ID, controlplane.AlertAction, map[string]any{"kind": "fan-out", "severity": "medium", "detail": "40 new destinations in 10 s"}); err != nil {
		t.Fatal(err)
	}
	c.do("acknowledge the alert",
		chromedp.Navigate(base+"/alerts"),
		chromedp.Click(css(`#alerts button.ack`)),
		chromedp.WaitVisible(css(`p.flash`)),
	)
	if st := get(c, "the alert's state", chromedp.Text(css(`#alerts [data-cell="state"]`))); !strings.HasPrefix(st, "acknowledged by token:") {
		t.Fatalf("after Acknowledge the alert is %q", st)
	}
	c.screenshot("alerts")
	c.do("back to the SIM", chromedp.Navigate(base+"/sims/"+sim.ID), chromedp.WaitVisible(css(`#sim-live`)))

	// Suspend it: the gateway drops it, and the page says so.
	c.do("suspend",
		chromedp.Click(css(`#suspend`)),
		chromedp.WaitVisible(css(`#resume`)),
	)
	c.waitJS("the suspended SIM drops", `document.querySelector('#sim-live [data-online]')?.dataset.online === "false"`)
	if got, _ := p.Service.GetSIM(ctx, controlplane.System, sim.ID); got.Status != fleet.StatusSuspended {
		t.Fatalf("after Suspend the SIM is %s", got.Status)
	}
	if out, err := d.NS.Exec("curl", "-s", "-o", "/dev/null", "--max-time", "2", "http://"+gateway.MetadataAddr.String()+"/"); err == nil {
		t.Fatalf("a suspended device still reaches the platform: %s", out)
	}
	ev, err := p.Store.ListEvents(ctx, store.EventFilter{ObjectID: sim.ID, Action: "sim.suspend"})
	if err != nil || len(ev.Items) != 1 || !strings.HasPrefix(ev.Items[0].Actor, "token:") {
		t.Fatalf("the suspension is not audited as the operator's: %+v %v", ev.Items, err)
	}

	// The overview, and the page at a phone's width: nothing wider than the screen.
	c.do("overview", chromedp.Navigate(base+"/"), chromedp.WaitVisible(css(`[data-stat="online"]`)))
	c.screenshot("overview")
	c.do("360 px wide",
		chromedp.EmulateViewport(360, 740),
		chromedp.Navigate(base+"/sims"),
		chromedp.WaitVisible(css(`table#sims`)),
	)
	if js[bool](c, "measure", `document.documentElement.scrollWidth > window.innerWidth + 1`) {
		t.Error("at 360 px the SIMs page is wider than the screen")
	}
	c.screenshot("sims-360px")
	c.do("back to a desktop width", chromedp.EmulateViewport(1280, 900))

	// The payloads stayed text on every page they appear on.
	for _, path := range []string{"/sims", "/audit"} {
		c.do("load "+path, chromedp.Navigate(base+path), chromedp.WaitReady(css(`main`)), chromedp.Sleep(300*time.Millisecond))
		if js[bool](c, "look for the payloads' effect", `window.__xss !== undefined`) {
			t.Fatalf("%s ran a payload from user data", path)
		}
		if path == "/sims" && !js[bool](c, "the payload shows as text", `[...document.querySelectorAll("td.name")].some(td => td.textContent.includes("<script>window.__xss=2</script>"))`) {
			t.Error("the SIM name with markup is not shown as text on the SIMs page")
		}
	}

	// A packet capture of the device and a Gate peer, started from their
	// pages; the policy editor and the settings page, for the screenshots.
	c.do("start a capture",
		chromedp.Navigate(base+"/captures?sim="+sim.ID),
		chromedp.WaitVisible(css(`#capture-form`)),
		chromedp.SetValue(css(`#capture-form select[name=protocol]`), "icmp"),
		chromedp.Submit(css(`#capture-form input[name=duration]`)),
		chromedp.WaitVisible(css(`p.flash`)),
	)
	if n := js[int](c, "count captures", `document.querySelectorAll("tr[data-capture]").length`); n != 1 {
		t.Fatalf("the captures page lists %d captures after one was started", n)
	}
	c.screenshot("captures")
	c.do("register a Gate peer",
		chromedp.Navigate(base+"/gatepeers"),
		chromedp.SendKeys(css(`#gatepeer-form input[name=name]`), "plc-lan"),
		chromedp.SendKeys(css(`#gatepeer-form input[name=outer]`), "192.0.2.10"),
		chromedp.SendKeys(css(`#gatepeer-form input[name=vni]`), "42"),
		chromedp.Submit(css(`#gatepeer-form input[name=vni]`)),
		chromedp.WaitVisible(css(`p.flash`)),
	)
	if !js[bool](c, "the setup is shown", `[...document.querySelectorAll("details[open] pre")].some(p => p.textContent.includes("type vxlan id 42"))`) {
		t.Fatal("the new Gate peer's setup is not shown open")
	}
	c.screenshot("gatepeers")
	c.do("the group's policy", chromedp.Navigate(base+"/groups/"+g.ID), chromedp.WaitVisible(css(`#settings-form`)))
	c.screenshot("group")
	c.do("settings", chromedp.Navigate(base+"/settings"), chromedp.WaitVisible(css(`#platform-settings`)))
	c.screenshot("settings")

	// Every control on every page has an accessible name, every page one
	// h1 and a main landmark, and tab order reaches the controls (no
	// positive tabindex, nothing focusable hidden from assistive tech).
	for _, path := range []string{"/", "/sims", "/sims/" + sim.ID, "/groups", "/groups/" + g.ID, "/authkeys", "/alerts", "/mappings", "/identities", "/data?sim=" + sim.ID, "/audit",
		"/routes", "/gatepeers", "/captures", "/inspection?group=" + g.ID, "/simcards", "/settings", "/nodes", "/signin"} {
		c.do("load "+path, chromedp.Navigate(base+path), chromedp.WaitReady(css(`main`)))
		problems := js[[]string](c, "check "+path, `(() => {
			const out = [];
			const name = e => (e.labels && e.labels.length && [...e.labels].map(l => l.textContent.trim()).join(" ")) ||
				e.getAttribute("aria-label") || (e.getAttribute("aria-labelledby") && document.getElementById(e.getAttribute("aria-labelledby"))?.textContent.trim()) ||
				(e.tagName === "BUTTON" || e.tagName === "A" ? e.textContent.trim() : "") || e.getAttribute("title") || "";
			for (const e of document.querySelectorAll('input:not([type=hidden]), select, textarea, button, a[href]')) {
				if (!name(e)) out.push("unnamed " + e.outerHTML.slice(0, 80));
				if (e.tabIndex > 0) out.push("positive tabindex " + e.outerHTML.slice(0, 80));
				if (e.closest('[aria-hidden="true"]')) out.push("focusable inside aria-hidden " + e.outerHTML.slice(0, 80));
			}
			for (const e of document.querySelectorAll('[aria-describedby]')) {
				if (!document.getElementById(e.getAttribute("aria-describedby"))) out.push("aria-describedby names nothing " + e.outerHTML.slice(0, 80));
			}
			for (const e of document.querySelectorAll('svg[role=img]')) {
				if (!e.getAttribute("aria-label")) out.push("unlabelled image " + e.outerHTML.slice(0, 80));
			}
			// Text contrast, WCAG 2 AA: 4.5:1, or 3:1 for large text, against
			// the first opaque background up the tree.
			const rgb = c => (c.match(/[\d.]+/g) || []).map(Number);
			const lum = ([r, g, b]) => [r, g, b].map(v => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4 })
				.reduce((s, v, i) => s + v * [0.2126, 0.7152, 0.0722][i], 0);
			const background = e => {
				for (; e; e = e.parentElement) {
					const b = rgb(getComputedStyle(e).backgroundColor);
					if (b.length === 3 || (b.length === 4 && b[3] === 1)) return b.slice(0, 3);
				}
				return [255, 255, 255];
			};
			const seen = new Set();
			for (const e of document.querySelectorAll("body *")) {
				if (![...e.childNodes].some(n => n.nodeType === 3 && n.textContent.trim())) continue;
				const st = getComputedStyle(e);
				if (st.visibility === "hidden" || st.display === "none" || e.closest(".sr, .skip, svg")) continue;
				const fg = rgb(st.color), bg = background(e);
				const [hi, lo] = [lum(fg.slice(0, 3)), lum(bg)].sort((a, b) => b - a);
				const ratio = (hi + 0.05) / (lo + 0.05);
				const size = parseFloat(st.fontSize), large = size >= 24 || (size >= 18.66 && Number(st.fontWeight) >= 700);
				const key = e.tagName + "." + e.className + " " + st.color + " on " + bg;
				if (ratio < (large ? 3 : 4.5) && !seen.has(key)) {
					seen.add(key);
					out.push("contrast " + ratio.toFixed(2) + " " + key + " (" + e.textContent.trim().slice(0, 30) + ")");
				}
			}
			if (document.querySelectorAll("h1").length !== 1) out.push("h1 count " + document.querySelectorAll("h1").length);
			if (!document.querySelector("main")) out.push("no main landmark");
			if (!document.documentElement.lang) out.push("no lang");
			return out;
		})()`)
		if len(problems) > 0 {
			t.Errorf("%s: accessibility: %s", path, strings.Join(problems, "; "))
		}
	}

	// Sign out: back to sign-in, and the pages are closed again.
	c.do("sign out",
		chromedp.Click(css(`form.signout button`)),
		chromedp.WaitVisible(css(`#token`)),
		chromedp.Navigate(base+"/authkeys"),
		chromedp.WaitVisible(css(`#token`)),
	)
	if loc := get(c, "where", chromedp.Location()); !strings.Contains(loc, "/signin?next=") {
		t.Fatalf("after sign-out /authkeys lands on %s", loc)
	}

	// A viewer: no write controls anywhere, and a forged write fails.
	c.signIn(base, viewerSecret)
	for _, path := range []string{"/", "/sims", "/sims/" + sim.ID, "/groups", "/groups/" + g.ID, "/authkeys", "/alerts", "/mappings",
		"/routes", "/gatepeers", "/captures", "/simcards", "/identities", "/settings", "/nodes"} {
		c.do("viewer "+path, chromedp.Navigate(base+path), chromedp.WaitReady(css(`main`)))
		writes := js[int](c, "count write controls", `[...document.querySelectorAll("form[method=post]")].filter(f => f.getAttribute("action") !== "/signout").length + document.querySelectorAll("#suspend, #resume, #select-all, button.ack, button.quarantine, button.close-mapping, button.set-hosts, #node-flags").length`)
		if writes != 0 {
			t.Errorf("the viewer's %s shows %d write controls", path, writes)
		}
	}
	// No CSP violation (nor any other error) in the whole run so far.
	if msgs := c.console(); len(msgs) != 0 {
		t.Fatalf("the browser's console reported: %s", strings.Join(msgs, "\n"))
	}
	status := js[int](c, "a forged write", `fetch("/groups", {method: "POST", headers: {"Content-Type": "application/x-www-form-urlencoded"},
		body: new URLSearchParams({name: "forged", csrf: document.querySelector('form.signout input[name=csrf]').value})}).then(r => r.status)`, chromedp.EvalAwaitPromise)
	if status != http.StatusForbidden {
		t.Fatalf("a viewer's forged POST /groups: %d, want 403", status)
	}
	if _, err := p.Store.GroupByName(ctx, "forged"); err == nil {
		t.Fatal("the viewer's forged group exists")
	}

	// The console listener does see a CSP violation when there is one, so
	// the check above can fail.
	js[bool](c, "inject an inline script", `(() => { const s = document.createElement("script"); s.textContent = "window.__inline = 1"; document.body.appendChild(s); return true })()`)
	deadline := time.Now().Add(5 * time.Second)
	for {
		msgs := strings.Join(c.console(), "\n")
		if strings.Contains(msgs, "Content Security Policy") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("an inline script was not reported as a CSP violation (console: %q): the check above proves nothing", msgs)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if js[bool](c, "the inline script was blocked", `window.__inline === 1`) {
		t.Fatal("the CSP let an inline script run")
	}
}
