// SPDX-License-Identifier: Apache-2.0

package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"net/url"
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

// failoverNode is one wirefleetd of a failover test, in its namespace.
type failoverNode struct {
	name string
	ns   *netns.NS
	addr string // on its LAN
	link string // its LAN interface
	dir  string
	proc *netns.Process
	args []string // more flags of its own
}

// startNodes starts wirefleetd on each node, on one PostgreSQL and one
// identity (the first node's keys copied to the others), all handing out
// endpoint; apiListen is where each node's API listens in its namespace.
func startNodes(t *testing.T, env *netns.Env, bin, dsn string, endpoint netip.AddrPort, apiListen string, nodes []*failoverNode) {
	t.Helper()
	apiPort := apiListen[strings.LastIndexByte(apiListen, ':')+1:]
	for i, n := range nodes {
		dir, err := os.MkdirTemp("", "wirefleetd-"+n.name+"-")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(dir) })
		n.dir = dir
		if i > 0 {
			for _, f := range []string{"gateway.key", seal.KeyFile, "admin.token"} { // one identity; the token is the store's
				b, err := os.ReadFile(filepath.Join(nodes[0].dir, f))
				if err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(dir, f), b, 0o600); err != nil {
					t.Fatal(err)
				}
			}
		}
		n.proc = env.Start(n.ns, []string{"WIREFLEET_POSTGRES=" + dsn}, bin, append([]string{"--data", dir, "--api-listen", apiListen,
			"--wg-listen", ":51820", "--endpoint", endpoint.String(), "--node-name", n.name}, n.args...)...)
		c := n.ns.HTTPClient()
		waitUntil(t, 30*time.Second, n.name+" ready", func() bool {
			resp, err := c.Get("http://127.0.0.1:" + apiPort + "/readyz")
			if err != nil {
				return n.proc.Exited()
			}
			resp.Body.Close()
			return resp.StatusCode == 200 || n.proc.Exited()
		}, n.proc.Output)
		if n.proc.Exited() {
			t.Fatalf("%s exited:\n%s", n.name, n.proc.Output())
		}
	}
}

// failoverDevice makes a SIM through node's API and brings up Debian's
// wireguard-go in dev with its wg-quick export (the endpoint the platform
// hands out); it returns the device and the gateway's key.
func failoverDevice(t *testing.T, env *netns.Env, dev *netns.NS, node *failoverNode, group string) (*netns.WireGuard, wgkey.Public, netip.Addr) {
	t.Helper()
	token, err := os.ReadFile(filepath.Join(node.dir, "admin.token"))
	if err != nil {
		t.Fatal(err)
	}
	call := func(method, path, body string) []byte {
		t.Helper()
		return apiCall(t, node, strings.TrimSpace(string(token)), method, path, body)
	}
	wg := dev.StartWireGuardGo("")
	var sim struct {
		ID      string
		Address netip.Addr `json:"address"`
	}
	json.Unmarshal(call("POST", "/api/v1/sims", fmt.Sprintf(`{"name":%q,"publicKey":%q,"groupId":%q}`, dev.Name, wg.Public, group)), &sim)
	export := string(call("GET", "/api/v1/sims/"+sim.ID+"/wireguard-config", ""))
	for _, a := range upFromExport(wg, export) {
		if netip.MustParsePrefix(a).Addr().Is4() {
			env.AddRoute(dev, a, "dev", wg.Name)
		}
	}
	return wg, wgPeerKey(t, export), sim.Address
}

// killAndMeasure has the device ping the metadata address every 0.2 s,
// kills victim with SIGKILL (its PID only) and waits for the answers to
// come back through survivor. It fails unless survivor took the device
// over (it initiated the handshake) well before the ~15 s after which the
// device would have, and the device's endpoint is still endpoint; it
// returns how long pings went unanswered.
func killAndMeasure(t *testing.T, env *netns.Env, dev *netns.NS, wg *netns.WireGuard, gwPub wgkey.Public, endpoint netip.AddrPort, victim, survivor *failoverNode, beforeKill func(), why func() string) time.Duration {
	t.Helper()
	ping := env.Start(dev, nil, "ping", "-n", "-D", "-i", "0.2", "-W", "1", "100.127.100.127")
	waitUntil(t, 20*time.Second, "pings answered through "+victim.name, func() bool { return len(replyTimes(ping.Output())) >= 5 }, ping.Output)
	if ep := wg.PeerEndpoint(gwPub); ep != endpoint {
		t.Fatalf("the device's endpoint is %v before the failover, want %v", ep, endpoint)
	}
	// The nodes hear each other over the mesh (how the survivor will know
	// the victim is gone).
	waitUntil(t, 20*time.Second, "the mesh between the nodes up", func() bool {
		for _, n := range []*failoverNode{victim, survivor} {
			resp, err := n.ns.HTTPClient().Get("http://127.0.0.1:18080/healthz?format=json")
			if err != nil {
				return false
			}
			var h struct {
				Up int `json:"meshPeersUp"`
			}
			json.NewDecoder(resp.Body).Decode(&h)
			resp.Body.Close()
			if h.Up < 1 {
				return false
			}
		}
		return true
	}, survivor.proc.Output)
	if beforeKill != nil {
		beforeKill()
	}
	time.Sleep(time.Second)
	killed := time.Now()
	if err := syscall.Kill(victim.proc.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	var back time.Time
	waitUntil(t, 25*time.Second, "pings answered after "+victim.name+" was killed", func() bool {
		for _, r := range replyTimes(ping.Output()) {
			if r.After(killed) {
				back = r
				return true
			}
		}
		return false
	}, func() string {
		return "ping:\n" + ping.Output() + "\n" + survivor.name + ":\n" + survivor.proc.Output() + "\n" + why()
	})
	var last time.Time
	for _, r := range replyTimes(ping.Output()) {
		if !r.After(killed) {
			last = r
		}
	}
	lost := back.Sub(last)
	t.Logf("pings lost for %s (last answer before the kill to the first after); answered again %s after the kill", lost.Round(time.Millisecond), back.Sub(killed).Round(time.Millisecond))
	if !strings.Contains(survivor.proc.Output(), "taking over a device from another node") {
		t.Fatalf("%s did not take the device over (it handshook on its own?):\n%s", survivor.name, survivor.proc.Output())
	}
	if back.Sub(killed) > 12*time.Second {
		t.Fatalf("answers came back %s after the kill: the device's own handshake, not the takeover", back.Sub(killed))
	}
	if ep := wg.PeerEndpoint(gwPub); ep != endpoint {
		t.Fatalf("the device's endpoint is %v after the failover, want %v (%s answered from another address)", ep, endpoint, survivor.name)
	}
	return lost
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
	dsn := pgtest.Start(t).NewDatabase(t) // a Unix socket: reachable from every namespace

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
	endpoint := netip.AddrPortFrom(vip, 51820)
	nodes := []*failoverNode{{name: "n1", addr: "10.213.0.11"}, {name: "n2", addr: "10.213.0.12"}}
	for _, n := range nodes {
		n.ns = env.NewNS(n.name)
		n.link = attach(n.ns, n.addr+"/24")
		// The mesh tells a node that another is gone (no keepalive for
		// 2.5 s): only then does it take the other's devices over.
		n.args = []string{"--mesh-endpoint", n.addr + ":51821"}
	}
	dev := env.NewNS("dev")
	attach(dev, "10.213.0.2/24")
	startNodes(t, env, bin, dsn, endpoint, "127.0.0.1:18080", nodes)

	// keepalived on each node: n1 is preferred; each tracks its node's
	// readiness, so a dead wirefleetd gives the address up.
	kas := make([]*netns.Process, len(nodes))
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
		kas[i] = env.Start(n.ns, nil, "keepalived", "--dont-fork", "--log-console", "--log-detail", "--vrrp", "--use-file", path,
			"--pid", filepath.Join(n.dir, "keepalived.pid"), "--vrrp_pid", filepath.Join(n.dir, "vrrp.pid"))
	}
	holds := func(n *failoverNode) bool {
		out, _ := n.ns.Exec("ip", "-4", "-o", "addr", "show", "dev", n.link)
		return strings.Contains(out, " "+vip.String()+"/")
	}
	waitUntil(t, 20*time.Second, "n1 holds the virtual address", func() bool { return holds(nodes[0]) && !holds(nodes[1]) }, kas[0].Output)

	// The device writes to the data store before and after the failover.
	token, err := os.ReadFile(filepath.Join(nodes[0].dir, "admin.token"))
	if err != nil {
		t.Fatal(err)
	}
	grp := apiCall(t, nodes[0], strings.TrimSpace(string(token)), "POST", "/api/v1/groups", `{"name":"meters","settings":{"dataStore":{"enabled":true}}}`)
	var g struct{ ID string }
	json.Unmarshal(grp, &g)
	wg, gwPub, _ := failoverDevice(t, env, dev, nodes[0], g.ID)
	write := func(n int) {
		t.Helper()
		out, err := dev.Exec("sh", "-c", fmt.Sprintf(`curl -sS --max-time 5 -w '\n%%{http_code}' -H 'Content-Type: application/json' --data '{"n":%d}' http://100.127.111.111/`, n))
		if err != nil || !strings.HasSuffix(strings.TrimSpace(out), "201") {
			t.Fatalf("data-store write %d: %v %q", n, err, out)
		}
	}
	killAndMeasure(t, env, dev, wg, gwPub, endpoint, nodes[0], nodes[1], func() { write(1) }, func() string { return "keepalived n2:\n" + kas[1].Output() })
	if !holds(nodes[1]) {
		t.Fatal("n2 does not hold the virtual address")
	}
	write(2)
	var sim struct{ ID string }
	json.Unmarshal(apiCall(t, nodes[1], strings.TrimSpace(string(token)), "GET", "/api/v1/sims/find?ref="+url.QueryEscape(wg.Public.String()), ""), &sim)
	var data struct{ Items []json.RawMessage }
	json.Unmarshal(apiCall(t, nodes[1], strings.TrimSpace(string(token)), "GET", "/api/v1/sims/"+sim.ID+"/data", ""), &data)
	if len(data.Items) != 2 {
		t.Fatalf("the device's data-store records after the failover: %d, want the one before and the one after", len(data.Items))
	}
}

// apiCall calls node n's API (on 127.0.0.1:18080 in its namespace).
func apiCall(t *testing.T, n *failoverNode, token, method, path, body string) []byte {
	t.Helper()
	req, _ := http.NewRequest(method, "http://127.0.0.1:18080"+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := n.ns.HTTPClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 {
		t.Fatalf("%s %s on %s: %d %s", method, path, n.name, resp.StatusCode, b)
	}
	return b
}

// TestFailoverNftablesBalancer: two wirefleetd nodes behind a stateless
// nftables UDP balancer with source affinity (docs/failover: the ruleset
// and its health checker, as documented), the devices on one side, the
// nodes on the other. The device's node is killed with SIGKILL; the
// checker points its hash bucket at the other node, which takes the device
// over; the device keeps the balancer's address as its endpoint.
func TestFailoverNftablesBalancer(t *testing.T) {
	requireTool(t, "nft")
	requireTool(t, "curl")
	_, bin := buildWirefleetd(t)
	env := netns.New(t)
	dsn := pgtest.Start(t).NewDatabase(t)

	lb, dev := env.NewNS("lb"), env.NewNS("dev")
	env.Veth(lb, netip.MustParsePrefix("10.214.0.1/24"), dev, netip.MustParsePrefix("10.214.0.2/24"))
	vip := netip.MustParseAddr("10.214.0.100")
	lb.MustExec("ip", "addr", "add", vip.String()+"/32", "dev", "lo")
	lb.MustExec("sysctl", "-q", "-w", "net.ipv4.ip_forward=1")
	env.AddRoute(dev, "default", "via", "10.214.0.1")
	br := env.Name("br")
	lb.MustExec("ip", "link", "add", br, "type", "bridge")
	lb.MustExec("ip", "addr", "add", "10.214.1.1/24", "dev", br)
	lb.MustExec("ip", "link", "set", br, "up")
	nodes := []*failoverNode{{name: "n1", addr: "10.214.1.11"}, {name: "n2", addr: "10.214.1.12"}}
	for _, n := range nodes {
		n.ns = env.NewNS(n.name)
		l, peer := env.Veth(n.ns, netip.MustParsePrefix(n.addr+"/24"), lb, netip.Prefix{})
		lb.MustExec("ip", "link", "set", peer.Name, "master", br)
		n.link = l.Name
		env.AddRoute(n.ns, "default", "via", "10.214.1.1")
		n.args = []string{"--mesh-endpoint", n.addr + ":51821"}
	}
	endpoint := netip.AddrPortFrom(vip, 51820)
	startNodes(t, env, bin, dsn, endpoint, "0.0.0.0:18080", nodes)

	docs := filepath.Join("..", "..", "docs", "failover")
	lb.MustExec("nft", "-D", "VIP="+vip.String(), "-D", "N1="+nodes[0].addr, "-D", "N2="+nodes[1].addr, "-f", filepath.Join(docs, "nftables-lb.nft"))
	health := env.Start(lb, nil, "sh", filepath.Join(docs, "lb-health.sh"), "18080", nodes[0].addr, nodes[1].addr)
	waitUntil(t, 10*time.Second, "the health checker's first pass", func() bool { return strings.Contains(health.Output(), "buckets ->") }, health.Output)

	wg, gwPub, _ := failoverDevice(t, env, dev, nodes[0], "")
	// The device's bucket: whichever node its session is on.
	token, err := os.ReadFile(filepath.Join(nodes[0].dir, "admin.token"))
	if err != nil {
		t.Fatal(err)
	}
	var victim, survivor *failoverNode
	probe := env.Start(dev, nil, "ping", "-n", "-i", "0.2", "100.127.100.127")
	waitUntil(t, 20*time.Second, "the device's session on a node", func() bool {
		for i, n := range nodes {
			if nodeHolds(n, strings.TrimSpace(string(token)), wg) {
				victim, survivor = n, nodes[1-i]
				return true
			}
		}
		return false
	}, func() string { return "ping:\n" + probe.Output() + "\nhealth checker:\n" + health.Output() })
	probe.Stop()
	killAndMeasure(t, env, dev, wg, gwPub, endpoint, victim, survivor, nil, health.Output)
}

// nodeHolds says whether n has a live session of wg's SIM (its API's
// connection state; token is the installation's admin token).
func nodeHolds(n *failoverNode, token string, wg *netns.WireGuard) bool {
	req, _ := http.NewRequest("GET", "http://127.0.0.1:18080/api/v1/sims/find?ref="+url.QueryEscape(wg.Public.String()), nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := n.ns.HTTPClient().Do(req)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	var sim struct {
		Connection struct{ Online bool } `json:"connection"`
	}
	json.NewDecoder(resp.Body).Decode(&sim)
	return sim.Connection.Online
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

// upFromExport configures wg from a wg-quick export as wg-quick would
// (its addresses, the rest through wg setconf, with wg's own private key)
// and brings it up; the caller routes the AllowedIPs it returns.
func upFromExport(wg *netns.WireGuard, export string) (allowed []string) {
	var conf strings.Builder
	var addrs []string
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
	return allowed
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

// TestMeshAcrossNodes: three wirefleetd nodes, each with --mesh-endpoint,
// on a PostgreSQL with a synchronous streaming standby; device A (Debian
// wireguard-go) connects to the first, device B to the second, both in a
// group that allows device-to-device. A and B ping each other and move
// 10 MB over TCP across the mesh; a host on a LAN behind A answers B.
// Then the primary is lost and the standby promoted: traffic across nodes
// goes on and the third node takes API writes, no node restarted.
func TestMeshAcrossNodes(t *testing.T) {
	_, bin := buildWirefleetd(t)
	env := netns.New(t)
	// PostgreSQL with a synchronous streaming standby, the nodes on a
	// multi-host string that keeps to the primary.
	primary := pgtest.StartDurable(t)
	one := primary.NewDatabase(t)
	standby := pgtest.StartStandby(t, primary, true)
	dbname := one[strings.Index(one, "dbname=")+len("dbname="):]
	dbname = dbname[:strings.IndexByte(dbname, ' ')]
	dsn := fmt.Sprintf("host=%s,%s user=wirefleet dbname=%s sslmode=disable target_session_attrs=read-write connect_timeout=2", primary.Socket(), standby.Socket(), dbname)
	lan := env.NewNS("lan")
	br := env.Name("br")
	lan.MustExec("ip", "link", "add", br, "type", "bridge")
	lan.MustExec("ip", "link", "set", br, "up")
	attach := func(ns *netns.NS, addr string) {
		_, peer := env.Veth(ns, netip.MustParsePrefix(addr), lan, netip.Prefix{})
		lan.MustExec("ip", "link", "set", peer.Name, "master", br)
	}
	nodes := []*failoverNode{{name: "n1", addr: "10.215.0.11"}, {name: "n2", addr: "10.215.0.12"}, {name: "n3", addr: "10.215.0.13"}}
	for _, n := range nodes {
		n.ns = env.NewNS(n.name)
		attach(n.ns, n.addr+"/24")
		n.args = []string{"--endpoint", n.addr + ":51820", "--mesh-endpoint", n.addr + ":51821"}
	}
	devA, devB := env.NewNS("a"), env.NewNS("b")
	attach(devA, "10.215.0.2/24")
	attach(devB, "10.215.0.3/24")
	startNodes(t, env, bin, dsn, netip.MustParseAddrPort("10.215.0.11:51820"), "127.0.0.1:18080", nodes)

	token, err := os.ReadFile(filepath.Join(nodes[0].dir, "admin.token"))
	if err != nil {
		t.Fatal(err)
	}
	var grp struct{ ID string }
	json.Unmarshal(apiCall(t, nodes[0], strings.TrimSpace(string(token)), "POST", "/api/v1/groups", `{"name":"plant","settings":{"deviceToDevice":{"mode":"group"}}}`), &grp)
	// Each node registers its mesh key and endpoint at start; each holds
	// the others from its next registry read (every 10 s).
	_, _, addrA := failoverDevice(t, env, devA, nodes[0], grp.ID)
	wgB, gwPub, addrB := failoverDevice(t, env, devB, nodes[1], grp.ID)
	// B's session starts with its first packet; then A pings B.
	devB.Exec("ping", "-c", "1", "-W", "2", "100.127.100.127")
	devA.Exec("ping", "-c", "1", "-W", "2", "100.127.100.127")
	var out string
	waitUntil(t, 40*time.Second, "A's pings answered by B across the mesh", func() bool {
		out, err = devA.Exec("ping", "-c", "2", "-i", "0.2", "-W", "1", addrB.String())
		return err == nil
	}, func() string { return out + "\nn1:\n" + nodes[0].proc.Output() + "\nn2:\n" + nodes[1].proc.Output() })
	if out, err := devB.Exec("ping", "-c", "2", "-i", "0.2", "-W", "2", addrA.String()); err != nil {
		t.Fatalf("B's pings to A: %v\n%s", err, out)
	}
	// 10 MB over TCP from A to B, across the mesh.
	sink := filepath.Join(nodes[1].dir, "received")
	recv := env.Start(devB, nil, "sh", "-c", "nc -l -N 5001 > "+sink)
	time.Sleep(300 * time.Millisecond)
	start := time.Now()
	if out, err := devA.Exec("sh", "-c", "head -c 10000000 /dev/urandom | nc -N -w 10 "+addrB.String()+" 5001"); err != nil {
		t.Fatalf("sending 10 MB from A to B: %v\n%s", err, out)
	}
	if err := recv.Wait(); err != nil {
		t.Fatalf("B's receiver: %v\n%s", err, recv.Output())
	}
	fi, err := os.Stat(sink)
	if err != nil || fi.Size() != 10_000_000 {
		t.Fatalf("B received %v bytes of 10,000,000 (%v)", fi, err)
	}
	t.Logf("10 MB from a device on n1 to one on n2 in %s", time.Since(start).Round(time.Millisecond))

	// A LAN behind A (a router: A forwards between its tunnel and the
	// LAN), reached from B on the other node; the LAN host answers.
	host := env.NewNS("host")
	env.Veth(devA, netip.MustParsePrefix("192.168.77.1/24"), host, netip.MustParsePrefix("192.168.77.10/24"))
	devA.MustExec("sysctl", "-q", "-w", "net.ipv4.ip_forward=1")
	env.AddRoute(host, "default", "via", "192.168.77.1")
	var simA struct{ ID string }
	json.Unmarshal(apiCall(t, nodes[0], strings.TrimSpace(string(token)), "GET", "/api/v1/sims/find?ref="+addrA.String(), ""), &simA)
	apiCall(t, nodes[0], strings.TrimSpace(string(token)), "POST", "/api/v1/sims/"+simA.ID+"/routes", `{"prefix":"192.168.77.0/24"}`)
	// B routes the LAN into its tunnel, as wg-quick would for a route in
	// its AllowedIPs.
	f := strings.Fields(wgB.Show("allowed-ips"))
	wgB.Set("peer", gwPub.String(), "allowed-ips", strings.Join(append(f[1:], "192.168.77.0/24"), ","))
	env.AddRoute(devB, "192.168.77.0/24", "dev", wgB.Name)
	waitUntil(t, 20*time.Second, "B reaching the host on the LAN behind A, across the mesh", func() bool {
		out, err = devB.Exec("ping", "-c", "2", "-i", "0.2", "-W", "1", "192.168.77.10")
		return err == nil
	}, func() string { return out })

	// The primary is lost and the standby promoted, no node restarted:
	// the devices' traffic across nodes goes on, and the third node (no
	// device of its own) takes API writes again.
	primary.Crash()
	standby.Promote(t)
	if out, err := devA.Exec("ping", "-c", "3", "-i", "0.2", "-W", "2", addrB.String()); err != nil {
		t.Fatalf("A's pings to B after the switchover: %v\n%s", err, out)
	}
	waitUntil(t, 30*time.Second, "API writes on n3 after the switchover", func() bool {
		req, _ := http.NewRequest("POST", "http://127.0.0.1:18080/api/v1/groups", strings.NewReader(`{"name":"after-switchover"}`))
		req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(token)))
		req.Header.Set("Content-Type", "application/json")
		resp, err := nodes[2].ns.HTTPClient().Do(req)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 201
	}, nodes[2].proc.Output)
	for _, n := range nodes {
		if n.proc.Exited() {
			t.Fatalf("%s exited during the switchover:\n%s", n.name, n.proc.Output())
		}
	}
}
