// SPDX-License-Identifier: Apache-2.0

package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wirefleet/wirefleet/internal/inettest"
	"github.com/wirefleet/wirefleet/internal/netns"
)

// nobody is the unprivileged user the binary runs as.
const nobody = "65534"

// The wirefleetd binary as an unprivileged user (nobody, every capability
// dropped) in a namespace of its own: a standard WireGuard device (Debian
// wireguard-go) of a group with breakout fetches a page and pings a host on
// the stand-in Internet, and the server sees the gateway host's address —
// no root, no TUN, no NAT rules.
func TestBreakoutUnprivileged(t *testing.T) {
	env := netns.New(t)
	dir, err := os.MkdirTemp("", "wirefleetd-unpriv-") // not t.TempDir: its parent is private to root
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)
	bin := filepath.Join(dir, "wirefleetd")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/wirefleet/wirefleet/cmd/wirefleetd").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	data := filepath.Join(dir, "data")
	os.Mkdir(data, 0o700)
	if out, err := exec.Command("chown", nobody+":"+nobody, data).CombinedOutput(); err != nil {
		t.Fatalf("chown: %v %s", err, out)
	}

	gw, dev := env.NewNS("gw"), env.NewNS("dev")
	env.Veth(gw, netip.MustParsePrefix("10.242.0.1/24"), dev, netip.MustParsePrefix("10.242.0.2/24"))
	inet := inettest.New(t, env, gw)
	// Ping sockets for every group (Debian's host default; a new namespace has none).
	gw.MustExec("sysctl", "-q", "-w", "net.ipv4.ping_group_range=0 2147483647")
	proc := env.Start(gw, nil, "setpriv", "--reuid="+nobody, "--regid="+nobody, "--clear-groups", "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs", "--",
		bin, "--data", data, "--api-listen", "127.0.0.1:18080", "--wg-listen", ":51820", "--endpoint", "10.242.0.1:51820",
		"--dns-upstream", inettest.DNS.String())

	// The API, from inside the gateway's namespace.
	client := gw.HTTPClient()
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := client.Get("http://127.0.0.1:18080/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) || proc.Exited() {
			t.Fatalf("wirefleetd as nobody did not come up: %v\n%s", err, proc.Output())
		}
		time.Sleep(100 * time.Millisecond)
	}
	if out, _ := exec.Command("ps", "-o", "user=", "-p", fmt.Sprint(proc.PID)).Output(); strings.TrimSpace(string(out)) != "nobody" && strings.TrimSpace(string(out)) != nobody {
		t.Fatalf("wirefleetd runs as %q", out)
	}
	token, err := os.ReadFile(filepath.Join(data, "admin.token"))
	if err != nil {
		t.Fatal(err)
	}
	call := func(method, path, body string, out any) {
		t.Helper()
		req, _ := http.NewRequest(method, "http://127.0.0.1:18080"+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(token)))
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode >= 300 {
			t.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, b)
		}
		if s, ok := out.(*string); ok {
			*s = string(b)
		} else if out != nil {
			json.Unmarshal(b, out)
		}
	}
	var grp struct{ ID string }
	call("POST", "/api/v1/groups", `{"name":"out","settings":{"egress":{"breakout":true,"rules":[{"action":"allow","prefix":"203.0.113.0/24"}]}}}`, &grp)
	wg := dev.StartWireGuardGo("")
	var sim struct{ ID string }
	call("POST", "/api/v1/sims", fmt.Sprintf(`{"name":"d1","groupId":%q,"publicKey":%q}`, grp.ID, wg.Public), &sim)
	var export string
	call("GET", "/api/v1/sims/"+sim.ID+"/wireguard-config", "", &export)

	// Configured as wg-quick would, with routes for all its AllowedIPs
	// (all of it, with breakout).
	allowed := upFromExport(wg, export)
	if !strings.Contains(strings.Join(allowed, ","), "0.0.0.0/0") {
		t.Fatalf("a breakout group's export does not route everything through the tunnel: %v", allowed)
	}
	for _, a := range allowed {
		env.AddRoute(dev, a, "dev", wg.Name)
	}

	var out string
	for try := 0; try < 20; try++ {
		if out, err = dev.Exec("curl", "-sS", "--max-time", "3", "http://"+inettest.WebA.String()+"/"); err == nil {
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	if err != nil || !strings.Contains(out, "from "+inet.GatewayV4.String()+":") {
		t.Fatalf("fetch through the breakout of an unprivileged wirefleetd: %v %q\n%s", err, out, proc.Output())
	}
	if out, err := dev.Exec("ping", "-c", "2", "-W", "3", "-n", inettest.WebB.String()); err != nil {
		t.Fatalf("ICMP echo through the breakout of an unprivileged wirefleetd: %v\n%s", err, out)
	}
	// Another network is not in the rules.
	if out, err := dev.Exec("curl", "-sS", "--max-time", "2", "http://"+inettest.WebC.String()+"/"); err == nil {
		t.Fatalf("reached a network no rule allows: %s", out)
	}
}
