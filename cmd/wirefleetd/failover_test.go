// SPDX-License-Identifier: Apache-2.0

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/wirefleet/wirefleet/controlplane/store/pgstore/pgtest"
	"github.com/wirefleet/wirefleet/internal/netns"
	"github.com/wirefleet/wirefleet/internal/seal"
	"github.com/wirefleet/wirefleet/wgkey"
)

// requireTool skips without the program, or fails with CI=true.
func requireTool(t *testing.T, name string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s missing (CI=true: failing instead of skipping)", name)
		}
		t.Skipf("%s missing", name)
	}
}

// buildWirefleetd builds the binary into a fresh directory.
func buildWirefleetd(t *testing.T) (dir, bin string) {
	t.Helper()
	dir, err := os.MkdirTemp("", "wirefleetd-bin-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)
	bin = filepath.Join(dir, "wirefleetd")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/wirefleet/wirefleet/cmd/wirefleetd").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	return dir, bin
}

// nsClient is an HTTP client whose connections start inside ns.
func nsClient(ns *netns.NS) *http.Client {
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		var c net.Conn
		err := ns.Do(func() (err error) { c, err = (&net.Dialer{}).DialContext(ctx, network, addr); return err })
		return c, err
	}}}
}

// TestFailoverKeepalived: two wirefleetd nodes on one PostgreSQL behind a
// virtual address that keepalived (VRRP) moves between them, each node's
// keepalived tracking its node's /readyz. A standard WireGuard device
// (Debian wireguard-go) pings through the virtual address; its node is
// killed with SIGKILL. The virtual address moves, the surviving node
// receives packets of a session it never had and initiates the handshake
// itself (from the virtual address: the device keeps that endpoint), and
// the pings come back — well before the ~15 s after which the device
// alone would have started a handshake.
func TestFailoverKeepalived(t *testing.T) {
	requireTool(t, "keepalived")
	requireTool(t, "curl")
	_, bin := buildWirefleetd(t)
	env := netns.New(t)
	srv := pgtest.Start(t)
	dsn := srv.NewDatabase(t) // a Unix socket: reachable from every namespace

	lan := env.NewNS("lan")
	br := env.Name("br")
	lan.MustExec("ip", "link", "add", br, "type", "bridge")
	lan.MustExec("ip", "link", "set", br, "up")
	attach := func(ns *netns.NS, addr string) string {
		l, peer := env.Veth(ns, netip.MustParsePrefix(addr), lan, netip.Prefix{})
		lan.MustExec("ip", "link", "set", peer.Name, "master", br)
		return l.Name
	}
	vip := netip.MustParseAddr("10.213.0.100")
	type node struct {
		name string
		ns   *netns.NS
		addr string
		link string
		dir  string
		proc *netns.Process
		ka   *netns.Process
	}
	nodes := []*node{{name: "n1", addr: "10.213.0.11"}, {name: "n2", addr: "10.213.0.12"}}
	for _, n := range nodes {
		n.ns = env.NewNS(n.name)
		n.link = attach(n.ns, n.addr+"/24")
		dir, err := os.MkdirTemp("", "wirefleetd-"+n.name+"-")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(dir) })
		n.dir = dir
	}
	dev := env.NewNS("dev")
	attach(dev, "10.213.0.2/24")

	ready := func(n *node) {
		t.Helper()
		c := nsClient(n.ns)
		deadline := time.Now().Add(30 * time.Second)
		for {
			resp, err := c.Get("http://127.0.0.1:18080/readyz")
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == 200 {
					return
				}
			}
			if time.Now().After(deadline) || n.proc.Exited() {
				t.Fatalf("%s did not come up: %v\n%s", n.name, err, n.proc.Output())
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	start := func(n *node) {
		n.proc = env.Start(n.ns, []string{"WIREFLEET_POSTGRES=" + dsn}, bin, "--data", n.dir, "--api-listen", "127.0.0.1:18080",
			"--wg-listen", ":51820", "--endpoint", netip.AddrPortFrom(vip, 51820).String(), "--node-name", n.name)
		ready(n)
	}
	start(nodes[0])
	for _, f := range []string{"gateway.key", seal.KeyFile} { // one identity
		b, err := os.ReadFile(filepath.Join(nodes[0].dir, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(nodes[1].dir, f), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	start(nodes[1])

	// keepalived on each node: n1 is preferred; each tracks its node's
	// readiness, so a dead wirefleetd gives the address up.
	for i, n := range nodes {
		other := nodes[1-i]
		state, prio := "BACKUP", 100
		if i == 0 {
			state, prio = "MASTER", 150
		}
		conf := fmt.Sprintf(`global_defs {
	router_id %[1]s
	script_user root
	enable_script_security
}
vrrp_script wirefleetd_ready {
	script "/usr/bin/curl -sf -m 1 -o /dev/null http://127.0.0.1:18080/readyz"
	interval 1
	fall 1
	rise 2
}
vrrp_instance wirefleet {
	state %[2]s
	interface %[3]s
	virtual_router_id 51
	priority %[4]d
	advert_int 1
	unicast_src_ip %[5]s
	unicast_peer {
		%[6]s
	}
	virtual_ipaddress {
		%[7]s/24 dev %[3]s
	}
	track_script {
		wirefleetd_ready
	}
}
`, n.name, state, n.link, prio, n.addr, other.addr, vip)
		path := filepath.Join(n.dir, "keepalived.conf")
		if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
			t.Fatal(err)
		}
		n.ka = env.Start(n.ns, nil, "keepalived", "--dont-fork", "--log-console", "--log-detail", "--vrrp", "--use-file", path,
			"--pid", filepath.Join(n.dir, "keepalived.pid"), "--vrrp_pid", filepath.Join(n.dir, "vrrp.pid"))
	}
	holds := func(n *node) bool {
		out, _ := n.ns.Exec("ip", "-4", "-o", "addr", "show", "dev", n.link)
		return strings.Contains(out, " "+vip.String()+"/")
	}
	waitUntil(t, 20*time.Second, "n1 holds the virtual address", func() bool { return holds(nodes[0]) && !holds(nodes[1]) }, func() string { return nodes[0].ka.Output() })

	// A device of the fleet, configured from its wg-quick export.
	token, err := os.ReadFile(filepath.Join(nodes[0].dir, "admin.token"))
	if err != nil {
		t.Fatal(err)
	}
	api := nsClient(nodes[0].ns)
	call := func(method, path, body string) []byte {
		t.Helper()
		req, _ := http.NewRequest(method, "http://127.0.0.1:18080"+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(token)))
		req.Header.Set("Content-Type", "application/json")
		resp, err := api.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode >= 300 {
			t.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, b)
		}
		return b
	}
	wg := dev.StartWireGuardGo("")
	var sim struct{ ID string }
	json.Unmarshal(call("POST", "/api/v1/sims", fmt.Sprintf(`{"name":"pinger","publicKey":%q}`, wg.Public)), &sim)
	export := string(call("GET", "/api/v1/sims/"+sim.ID+"/wireguard-config", ""))
	var conf strings.Builder
	var addrs, allowed []string
	for _, line := range strings.Split(export, "\n") {
		k, v, _ := strings.Cut(line, "=")
		switch strings.TrimSpace(k) {
		case "Address":
			for _, a := range strings.Split(v, ",") {
				addrs = append(addrs, strings.TrimSpace(a))
			}
			continue
		case "PrivateKey":
			line = "PrivateKey = " + wg.Private.Base64()
		case "AllowedIPs":
			for _, a := range strings.Split(v, ",") {
				allowed = append(allowed, strings.TrimSpace(a))
			}
		}
		conf.WriteString(line + "\n")
	}
	wg.SetConf(conf.String())
	for _, a := range addrs {
		wg.AddAddr(netip.MustParsePrefix(a))
	}
	wg.Up()
	for _, a := range allowed {
		if netip.MustParsePrefix(a).Addr().Is4() {
			env.AddRoute(dev, a, "dev", wg.Name)
		}
	}
	// Pings to the metadata address, answered by whichever node holds the
	// device's session; -D stamps each reply.
	ping := env.Start(dev, nil, "ping", "-n", "-D", "-i", "0.2", "-W", "1", "100.127.100.127")
	waitUntil(t, 20*time.Second, "pings answered through n1", func() bool { return len(replyTimes(ping.Output())) >= 5 }, ping.Output)
	gwPub := wgPeerKey(t, export)
	if ep := wg.PeerEndpoint(gwPub); ep != netip.AddrPortFrom(vip, 51820) {
		t.Fatalf("the device's endpoint is %v before the failover, want the virtual address", ep)
	}

	time.Sleep(time.Second)
	killed := time.Now()
	if err := syscall.Kill(nodes[0].proc.PID, syscall.SIGKILL); err != nil { // its PID only
		t.Fatal(err)
	}
	var back time.Time
	waitUntil(t, 20*time.Second, "pings answered after n1 was killed", func() bool {
		for _, r := range replyTimes(ping.Output()) {
			if r.After(killed) {
				back = r
				return true
			}
		}
		return false
	}, func() string {
		return "ping:\n" + ping.Output() + "\nn2:\n" + nodes[1].proc.Output() + "\nkeepalived n2:\n" + nodes[1].ka.Output()
	})
	var last time.Time
	for _, r := range replyTimes(ping.Output()) {
		if !r.After(killed) {
			last = r
		}
	}
	t.Logf("pings lost for %s (last answer before the kill to the first after); answered again %s after the kill", back.Sub(last).Round(time.Millisecond), back.Sub(killed).Round(time.Millisecond))
	if !holds(nodes[1]) {
		t.Fatal("n2 does not hold the virtual address")
	}
	if !strings.Contains(nodes[1].proc.Output(), "taking over a device from another node") {
		t.Fatalf("n2 did not take the device over (it handshook on its own?):\n%s", nodes[1].proc.Output())
	}
	if back.Sub(killed) > 12*time.Second {
		t.Fatalf("answers came back %s after the kill: the device's own handshake, not the takeover", back.Sub(killed))
	}
	if ep := wg.PeerEndpoint(gwPub); ep != netip.AddrPortFrom(vip, 51820) {
		t.Fatalf("the device's endpoint is %v after the failover, want the virtual address (n2 answered from its own)", ep)
	}
}

// replyTimes reads the times of the echo replies in ping -D output.
func replyTimes(out string) []time.Time {
	var ts []time.Time
	for _, line := range strings.Split(out, "\n") {
		if !strings.Contains(line, "bytes from") || !strings.HasPrefix(line, "[") {
			continue
		}
		end := strings.IndexByte(line, ']')
		f, err := strconv.ParseFloat(line[1:end], 64)
		if err != nil {
			continue
		}
		sec := int64(f)
		ts = append(ts, time.Unix(sec, int64((f-float64(sec))*1e9)))
	}
	return ts
}

// wgPeerKey is the gateway's public key in a wg-quick export.
func wgPeerKey(t *testing.T, export string) wgkey.Public {
	t.Helper()
	for _, line := range strings.Split(export, "\n") {
		if key, v, ok := strings.Cut(line, "="); ok && strings.TrimSpace(key) == "PublicKey" {
			k, err := wgkey.ParsePublic(strings.TrimSpace(v))
			if err != nil {
				t.Fatalf("the export's PublicKey %q: %v", v, err)
			}
			return k
		}
	}
	t.Fatal("the export has no PublicKey")
	return wgkey.Public{}
}

// waitUntil polls cond for up to d, failing with what says why.
func waitUntil(t *testing.T, d time.Duration, what string, cond func() bool, why func() string) {
	t.Helper()
	for end := time.Now().Add(d); !cond(); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("%s: not within %s\n%s", what, d, why())
		}
	}
}
