// SPDX-License-Identifier: Apache-2.0

package main

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"math"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/wirefleet/wirefleet/controlplane"
	"github.com/wirefleet/wirefleet/controlplane/store/pgstore"
	"github.com/wirefleet/wirefleet/controlplane/store/pgstore/pgtest"
	"github.com/wirefleet/wirefleet/fleet"
	"github.com/wirefleet/wirefleet/internal/netns"
	"github.com/wirefleet/wirefleet/internal/seal"
	"github.com/wirefleet/wirefleet/keystore"
	"github.com/wirefleet/wirefleet/wgkey"
)

// The cluster bench, end to end: several real wirefleetd nodes, each in a
// namespace of its own, on one PostgreSQL (Debian's binaries, durable
// settings) holding many SIMs, with the inter-node mesh between them. A
// simulated fleet per node (fleet-sim, in the node's namespace) connects
// its share of the devices, all nodes at once: handshakes per second per
// node, CPU per handshake, memory per node. Then, with the fleet
// connected, three Debian wireguard-go devices on the nodes' LAN measure
// device-to-device TCP (iperf3) in rounds taking both paths in turn: A to
// C on the same node (what one node does) and A to B across nodes (node
// 1 → mesh → node 2), with all nodes' CPU-seconds per gigabit.

type clusterNode struct {
	name string
	ns   *netns.NS
	addr netip.Addr
	dir  string
	proc *netns.Process
}

type clusterNodeFigure struct {
	Node     string `json:"node"`
	Sessions int    `json:"sessions"`
	// ConnectSeconds is from the burst to the node's last session's
	// answer; HandshakesPerSecond is Sessions over it.
	ConnectSeconds      float64 `json:"connectSeconds"`
	HandshakesPerSecond float64 `json:"handshakesPerSecond"`
	CookieReplies       int64   `json:"cookieReplies"`
	// ConnectCPUms is the node's CPU per connected session, milliseconds.
	ConnectCPUms float64 `json:"connectCpuMsPerSession"`
	// IdleCore is the node's CPU while its sessions idle, share of a core.
	IdleCore float64 `json:"idleCpuShareOfCore"`
	// RSSMB is the node's resident memory once its sessions are connected
	// (MB, 10^6 B); RSSPerSessionKB what it grew by per session.
	RSSMB           float64 `json:"rssMB"`
	RSSPerSessionKB float64 `json:"rssPerSessionKB"`
}

type clusterD2D struct {
	Path       string    `json:"path"`
	Rounds     []gwRound `json:"rounds"`
	Gbps       float64   `json:"gbpsMedian"`
	CPUPerGbit float64   `json:"cpuSecondsPerGbitMedian"`
}

type clusterReport struct {
	Nodes     int                 `json:"nodes"`
	SIMs      int                 `json:"sims"`
	Devices   int                 `json:"connectedDevices"`
	Keepalive string              `json:"keepalive"`
	Duration  string              `json:"duration"`
	PerNode   []clusterNodeFigure `json:"perNode"`
	// D2D is device to device, TCP, one stream, with the fleet connected:
	// on one node, then across two; CPU is every node's.
	D2D []clusterD2D `json:"deviceToDevice"`
	// AcrossOverSame is the throughput across nodes over that on one node,
	// and the CPU per gigabit across over the same.
	AcrossOverSame map[string]float64 `json:"acrossOverSameNode"`
}

func clusterBench(args []string) (code int) {
	fs := flag.NewFlagSet("cluster", flag.ContinueOnError)
	nodes := fs.Int("nodes", 3, "wirefleetd nodes on the one store")
	sims := fs.Int("sims", 300000, "SIMs in the store")
	devices := fs.Int("devices", 30000, "simulated devices connected, spread evenly over the nodes")
	rounds := fs.Int("rounds", 3, "device-to-device rounds, each taking both paths in turn (medians are reported)")
	dur := fs.Duration("duration", 5*time.Second, "length of each iperf3 run")
	keepalive := fs.Duration("keepalive", 25*time.Second, "the simulated devices' keepalive interval")
	idle := fs.Duration("idle", 30*time.Second, "how long the nodes' CPU is read while the fleet idles")
	bin := fs.String("wirefleetd", "", "the wirefleetd binary (default: built from this module with `go build`)")
	asJSON := fs.Bool("json", false, "print JSON instead of a table")
	fs.Usage = func() {
		fmt.Fprintf(os.Stderr, `usage: wirefleet-bench cluster [flags]

End to end, in network namespaces (needs root, PostgreSQL's Debian binaries,
wireguard-go, wg, iproute2 and iperf3): --nodes real wirefleetd processes
on one PostgreSQL holding --sims SIMs, with the inter-node mesh; --devices
simulated devices connect at once, spread over the nodes (handshakes per
second per node, CPU per handshake, memory per node, idle CPU); then with
them connected, device-to-device TCP on one node and across two nodes,
with the nodes' CPU-seconds per gigabit. Progress on stderr.

`)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *nodes < 2 || *devices < *nodes || *sims < *devices+3 {
		fmt.Fprintln(os.Stderr, "wirefleet-bench cluster: needs --nodes ≥ 2, --devices ≥ --nodes and --sims ≥ --devices + 3")
		return 2
	}
	if *nodes > 200 {
		fmt.Fprintln(os.Stderr, "wirefleet-bench cluster: at most 200 nodes")
		return 2
	}
	if _, err := exec.LookPath("iperf3"); err != nil {
		fmt.Fprintln(os.Stderr, "wirefleet-bench cluster: needs iperf3 (Debian: iperf3)")
		return 1
	}
	t := &runT{name: "cluster"}
	defer func() {
		if r := recover(); r != nil {
			f, ok := r.(fatal)
			if !ok {
				panic(r)
			}
			fmt.Fprintln(os.Stderr, "wirefleet-bench cluster:", string(f))
			code = 1
		}
		t.finish()
	}()
	if *bin == "" {
		*bin = buildDaemon(t)
	}
	ctx := context.Background()
	progress("cluster: starting PostgreSQL")
	pg := pgtest.StartDurable(t)
	dsn := pg.NewDatabase(t)
	quiet := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	st, err := pgstore.Open(ctx, dsn, quiet)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })

	// The fleet's SIMs: the first --devices with keys the simulators hold,
	// the rest with keys nobody does (they are looked up, never used).
	raw := make([]byte, 32*(*devices))
	if _, err := rand.Read(raw); err != nil {
		t.Fatal(err)
	}
	pubs := make([]wgkey.Public, *sims-3)
	parallel(*devices, func(i int) {
		var k wgkey.Private
		copy(k[:], raw[i*32:])
		pubs[i] = k.Public()
	})
	rest := make([]byte, 32*(len(pubs)-*devices))
	if _, err := rand.Read(rest); err != nil {
		t.Fatal(err)
	}
	for i := *devices; i < len(pubs); i++ {
		copy(pubs[i][:], rest[(i-*devices)*32:])
	}
	progress("cluster: storing %d SIMs", len(pubs))
	began := time.Now()
	ourFleetPeers(t, st)(pubs)
	progress("cluster: %d SIMs stored in %.0f s", len(pubs), time.Since(began).Seconds())

	env := netns.New(t)
	lan := env.NewNS("lan")
	br := env.Name("br")
	lan.MustExec("ip", "link", "add", br, "type", "bridge")
	lan.MustExec("ip", "link", "set", br, "up")
	attach := func(ns *netns.NS, addr netip.Addr) {
		_, peer := env.Veth(ns, netip.PrefixFrom(addr, 24), lan, netip.Prefix{})
		lan.MustExec("ip", "link", "set", peer.Name, "master", br)
	}
	cn := make([]*clusterNode, *nodes)
	for i := range cn {
		n := &clusterNode{name: fmt.Sprintf("n%d", i+1), addr: netip.AddrFrom4([4]byte{10, 231, 0, byte(11 + i)})}
		n.ns = env.NewNS(n.name)
		attach(n.ns, n.addr)
		cn[i] = n
	}
	startNode := func(n *clusterNode, first *clusterNode) {
		dir := t.TempDir()
		n.dir = dir
		if first != nil { // one identity; the admin token is the store's
			for _, f := range []string{"gateway.key", seal.KeyFile, "admin.token"} {
				b, err := os.ReadFile(filepath.Join(first.dir, f))
				if err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(dir, f), b, 0o600); err != nil {
					t.Fatal(err)
				}
			}
		}
		n.proc = env.Start(n.ns, []string{"WIREFLEET_POSTGRES=" + dsn}, *bin, "--data", dir, "--api-listen", "127.0.0.1:18080",
			"--wg-listen", fmt.Sprintf(":%d", benchPort), "--endpoint", netip.AddrPortFrom(n.addr, benchPort).String(),
			"--mesh-endpoint", netip.AddrPortFrom(n.addr, benchPort+1).String(), "--node-name", n.name, "--log-level", "warn")
		c := n.ns.HTTPClient()
		deadline := time.Now().Add(60 * time.Second)
		for {
			if resp, err := c.Get("http://127.0.0.1:18080/readyz"); err == nil {
				resp.Body.Close()
				if resp.StatusCode == 200 {
					return
				}
			}
			if n.proc.Exited() || time.Now().After(deadline) {
				t.Fatalf("%s did not become ready:\n%s", n.name, n.proc.Output())
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	progress("cluster: starting %d wirefleetd nodes", len(cn))
	startNode(cn[0], nil)
	for _, n := range cn[1:] {
		startNode(n, cn[0])
	}
	gwKey, err := keystore.LoadOrCreateFile(filepath.Join(cn[0].dir, "gateway.key"))
	if err != nil {
		t.Fatal(err)
	}
	gwPub := gwKey.PublicKey()

	// Three devices in a group with device-to-device on: A and C on the
	// first node, B on the second.
	secrets, err := seal.LoadOrCreateKey(filepath.Join(cn[0].dir, seal.KeyFile))
	if err != nil {
		t.Fatal(err)
	}
	svc := controlplane.New(st, controlplane.Config{GatewayPublicKey: func() wgkey.Public { return gwPub }, Secrets: secrets, Logger: quiet})
	grp, err := svc.CreateGroup(ctx, controlplane.System, "bench", fleet.GroupSettings{DeviceToDevice: fleet.D2DPolicy{Mode: fleet.D2DGroup}})
	if err != nil {
		t.Fatal(err)
	}
	dev := map[string]*netns.NS{}
	devAddr := map[string]netip.Addr{}
	for i, name := range []string{"a", "b", "c"} {
		ns := env.NewNS(name)
		attach(ns, netip.AddrFrom4([4]byte{10, 231, 0, byte(2 + i)}))
		node := cn[0]
		if name == "b" {
			node = cn[1]
		}
		dev[name] = ns
		devAddr[name] = simDevice(t, svc, ns, "bench-"+name, grp.ID, gwPub, netip.AddrPortFrom(node.addr, benchPort))
	}
	// Every device's session starts with its first packet; the nodes hold
	// each other's mesh keys from their next registry read.
	progress("cluster: waiting for A to reach C (one node) and B (across the mesh)")
	for _, name := range []string{"b", "c", "a"} {
		dev[name].Exec("ping", "-c", "1", "-W", "2", "100.127.100.127")
	}
	for _, to := range []string{"c", "b"} {
		deadline := time.Now().Add(60 * time.Second)
		for {
			out, err := dev["a"].Exec("ping", "-c", "1", "-W", "1", devAddr[to].String())
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("device A does not reach %s (%s): %v\n%s\nn1:\n%s", strings.ToUpper(to), devAddr[to], err, out, cn[0].proc.Output())
			}
		}
	}
	servers := map[string]*netns.Process{}
	for _, to := range []string{"b", "c"} {
		servers[to] = dev[to].Start(nil, "iperf3", "-s", "-B", devAddr[to].String())
	}
	time.Sleep(300 * time.Millisecond)

	// The fleet: each node's share from a simulator in its namespace, all
	// released at once.
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	figs := make([]clusterNodeFigure, len(cn))
	rss0 := make([]int64, len(cn))
	sims0 := make([]*netns.Process, len(cn))
	for i, n := range cn {
		lo, hi := i**devices/len(cn), (i+1)**devices/len(cn)
		keys := filepath.Join(t.TempDir(), "fleet.keys")
		if err := os.WriteFile(keys, raw[lo*32:hi*32], 0o600); err != nil {
			t.Fatal(err)
		}
		figs[i] = clusterNodeFigure{Node: n.name, Sessions: hi - lo}
		rss0[i] = procRSS(n.proc.PID)
		sims0[i] = n.ns.Start(nil, exe, fleetSimCommand, "--keys", keys, "--gateway-key", gwPub.String(),
			"--target", fmt.Sprintf("127.0.0.1:%d", benchPort), "--keepalive", keepalive.String())
	}
	clear(raw)
	for _, p := range sims0 {
		waitEvent(t, p, "ready", 5*time.Minute, nil)
	}
	progress("cluster: %d devices connecting at once, %d a node", *devices, *devices/len(cn))
	cpu0 := make([]time.Duration, len(cn))
	for i, n := range cn {
		cpu0[i] = procCPU(t, n.proc.PID)
	}
	for _, p := range sims0 {
		if err := syscall.Kill(p.PID, syscall.SIGUSR1); err != nil {
			t.Fatal(err)
		}
	}
	for i, p := range sims0 {
		last := time.Now()
		done := waitEvent(t, p, "connected", 10*time.Minute, func(ev simEvent) {
			if time.Since(last) >= 5*time.Second {
				last = time.Now()
				progress("cluster: %s: %d/%d connected after %.0f s", cn[i].name, ev.Connected, ev.Sessions, ev.Seconds)
			}
		})
		f := &figs[i]
		f.ConnectSeconds = round3(done.Seconds)
		f.HandshakesPerSecond = math.Round(float64(f.Sessions) / done.Seconds)
		f.CookieReplies = done.CookieReplies
		progress("cluster: %s: %d connected in %.1f s", cn[i].name, f.Sessions, done.Seconds)
	}
	for i, n := range cn {
		figs[i].ConnectCPUms = round3(float64((procCPU(t, n.proc.PID) - cpu0[i]).Microseconds()) / 1000 / float64(figs[i].Sessions))
	}
	progress("cluster: fleet connected; idle for %s", *idle)
	time.Sleep(3 * time.Second) // what connecting left behind settles
	for i, n := range cn {
		cpu0[i] = procCPU(t, n.proc.PID)
	}
	time.Sleep(*idle)
	for i, n := range cn {
		figs[i].IdleCore = round3((procCPU(t, n.proc.PID) - cpu0[i]).Seconds() / idle.Seconds())
		rss := procRSS(n.proc.PID)
		figs[i].RSSMB = round3(float64(rss) / 1e6)
		figs[i].RSSPerSessionKB = round3(float64(rss-rss0[i]) / 1000 / float64(figs[i].Sessions))
	}

	allCPU := func() time.Duration {
		var sum time.Duration
		for _, n := range cn {
			sum += procCPU(t, n.proc.PID)
		}
		return sum
	}
	d2d := []clusterD2D{{Path: "one node (A → C on n1)"}, {Path: "across nodes (A on n1 → B on n2)"}}
	for r := range *rounds {
		for j, to := range []string{"c", "b"} {
			progress("cluster: round %d/%d, %s", r+1, *rounds, d2d[j].Path)
			s := &gwSubject{name: d2d[j].Path, a: dev["a"], bAddr: devAddr[to], cpu: allCPU}
			d2d[j].Rounds = append(d2d[j].Rounds, s.iperf(t, *dur))
		}
	}
	for j := range d2d {
		d2d[j].Gbps = median(d2d[j].Rounds, func(r gwRound) float64 { return r.Gbps })
		d2d[j].CPUPerGbit = median(d2d[j].Rounds, func(r gwRound) float64 { return r.CPUPerGbit })
	}
	for i, p := range sims0 {
		if p.Exited() {
			t.Fatalf("the simulator of %s ended: %s", cn[i].name, p.Output())
		}
	}
	for _, n := range cn {
		if n.proc.Exited() {
			t.Fatalf("%s ended:\n%s", n.name, n.proc.Output())
		}
	}
	rep := clusterReport{Nodes: len(cn), SIMs: *sims, Devices: *devices, Keepalive: keepalive.String(), Duration: dur.String(),
		PerNode: figs, D2D: d2d, AcrossOverSame: map[string]float64{
			"throughput":    ratio(d2d[1].Gbps, d2d[0].Gbps),
			"cpuPerGigabit": ratio(d2d[1].CPUPerGbit, d2d[0].CPUPerGbit),
		}}
	if *asJSON {
		out, _ := json.MarshalIndent(rep, "", "  ")
		fmt.Println(string(out))
		return 0
	}
	fmt.Printf("%d wirefleetd nodes on one PostgreSQL, %d SIMs in the store, %d devices connected at once (keepalive %s), end to end in namespaces\n\n",
		rep.Nodes, rep.SIMs, rep.Devices, rep.Keepalive)
	fmt.Printf("%-6s %9s %11s %14s %9s %13s %13s %9s %12s\n", "node", "sessions", "connect s", "handshakes/s", "cookies", "CPU ms/conn", "idle % core", "RSS MB", "KB/session")
	for _, f := range figs {
		fmt.Printf("%-6s %9d %11.2f %14.0f %9d %13.3f %13.1f %9.1f %12.2f\n", f.Node, f.Sessions, f.ConnectSeconds, f.HandshakesPerSecond,
			f.CookieReplies, f.ConnectCPUms, f.IdleCore*100, f.RSSMB, f.RSSPerSessionKB)
	}
	fmt.Printf("\ndevice to device, TCP, 1 stream, %s per run, %d rounds (medians), the fleet connected; CPU is all nodes'\n\n", rep.Duration, *rounds)
	fmt.Printf("%-36s %10s %18s\n", "path", "Gbit/s", "CPU s per Gbit")
	for _, d := range d2d {
		fmt.Printf("%-36s %10.2f %18.3f\n", d.Path, d.Gbps, d.CPUPerGbit)
	}
	fmt.Printf("\nacross nodes / one node: throughput %.2f×, CPU per gigabit %.2f×\n", rep.AcrossOverSame["throughput"], rep.AcrossOverSame["cpuPerGigabit"])
	return 0
}

// buildDaemon builds wirefleetd from this module into a temporary folder
// (the bench runs from the source tree, as `go run ./cmd/wirefleet-bench`).
func buildDaemon(t *runT) string {
	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	bin := filepath.Join(dir, "wirefleetd")
	progress("cluster: building wirefleetd")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/wirefleet/wirefleet/cmd/wirefleetd").CombinedOutput(); err != nil {
		t.Fatalf("building wirefleetd (or pass --wirefleetd): %v\n%s", err, out)
	}
	return bin
}
