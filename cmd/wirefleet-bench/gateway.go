// SPDX-License-Identifier: Apache-2.0

package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"math"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/wirefleet/wirefleet/controlplane"
	"github.com/wirefleet/wirefleet/controlplane/store/sqlitestore"
	"github.com/wirefleet/wirefleet/fleet"
	"github.com/wirefleet/wirefleet/gateway"
	"github.com/wirefleet/wirefleet/internal/netns"
	"github.com/wirefleet/wirefleet/internal/seal"
	"github.com/wirefleet/wirefleet/keystore"
	"github.com/wirefleet/wirefleet/services/platform"
	"github.com/wirefleet/wirefleet/wgkey"
)

// The gateway bench, end to end: two Debian wireguard-go devices in
// namespaces of their own send TCP (iperf3) to each other through a hub —
// our gateway (in this process, with its SQLite store, router and
// services), the latest golang.zx2c4.com/wireguard (this binary as
// wireguard-go, a process of its own) or Debian's wireguard-go, each
// forwarding in the kernel's stead — in rounds taking the hubs in turn.
// Each hub's CPU time is read around each run, so the figure that tells
// engines apart, CPU-seconds per gigabit, comes with the throughput.

const (
	benchPort  = 51820
	hubLAN     = "10.230.0.1/16" // the hub's bridge in its namespace
	hubOverlay = "10.99.0.1/24"  // the baseline hubs' own overlay
)

type gwSubject struct {
	name   string
	tag    string // its name in --hubs
	a, b   *netns.NS
	bAddr  netip.Addr // B's overlay address, iperf3's target
	cpu    func() time.Duration
	server *netns.Process
	hub    fleetHub
	flow   string // the TCP flow service's address:port, from A
}

type gwRound struct {
	Gbps       float64 `json:"gbps"`
	CPUSeconds float64 `json:"cpuSeconds"`
	CPUPerGbit float64 `json:"cpuSecondsPerGbit"`
	// ServiceUp and ServiceDown are one TCP flow between device A and a
	// service on the hub (ours: on the in-tunnel stack; the baselines: on
	// the kernel's TCP in the hub's namespace), Gbit/s.
	ServiceUp   float64 `json:"serviceUpGbps,omitempty"`
	ServiceDown float64 `json:"serviceDownGbps,omitempty"`
}

type gwFigure struct {
	Subject     string    `json:"subject"`
	Rounds      []gwRound `json:"rounds"`
	Gbps        float64   `json:"gbpsMedian"`
	CPUPerGbit  float64   `json:"cpuSecondsPerGbitMedian"`
	ServiceUp   float64   `json:"serviceUpGbpsMedian"`
	ServiceDown float64   `json:"serviceDownGbpsMedian"`
}

type gwReport struct {
	Test     string     `json:"test"`
	Duration string     `json:"duration"`
	Figures  []gwFigure `json:"figures"`
	// Ratios are ours over each baseline: throughput (>1 is faster) and
	// CPU per gigabit (<1 is cheaper).
	Ratios map[string]map[string]float64 `json:"ratios"`
	// Fleet is the simulated fleet's figures per hub; FleetRatios ours
	// over each baseline (<1 is cheaper, for every figure).
	Fleet       []fleetFigure                 `json:"fleet,omitempty"`
	FleetRatios map[string]map[string]float64 `json:"fleetRatios,omitempty"`
}

func gatewayBench(args []string) (code int) {
	fs := flag.NewFlagSet("gateway", flag.ContinueOnError)
	rounds := fs.Int("rounds", 3, "rounds, each taking every hub in turn (medians are reported)")
	dur := fs.Duration("duration", 5*time.Second, "length of each iperf3 run")
	hubs := fs.String("hubs", "ours,latest,debian", "hubs to measure: ours (wirefleet's gateway), latest (golang.zx2c4.com/wireguard of go.mod), debian (Debian's wireguard-go)")
	asJSON := fs.Bool("json", false, "print JSON instead of a table")
	sessions := fs.Int("fleet", 10000, "sessions of the simulated fleet (0: skip it)")
	fleetHubs := fs.String("fleet-hubs", "ours,latest", "hubs the simulated fleet is measured on")
	keepalive := fs.Duration("keepalive", 25*time.Second, "the simulated fleet's keepalive interval")
	idle := fs.Duration("idle", 30*time.Second, "how long the idle fleet's CPU is read")
	fs.StringVar(&profileDir, "profile", "", "write CPU profiles of our gateway during the fleet's connect and idle phases (connect.pprof, idle.pprof), its heap once idle (heap.pprof), and its CPU during device-to-device runs (d2d.pprof) to this folder")
	fs.Usage = func() {
		fmt.Fprintf(os.Stderr, `usage: wirefleet-bench gateway [flags]

End to end, real devices in network namespaces (needs root, wireguard-go,
wg, iproute2 and iperf3): device-to-device TCP through each hub, and the
hub's CPU-seconds per gigabit carried; one TCP flow each way between a
device and a service on the hub (ours: on its in-tunnel stack; the
baselines: on the kernel's TCP in the hub's namespace). Then a simulated fleet (--fleet
sessions from one process, each with its own loopback source address)
connects to each of --fleet-hubs at once and idles with keepalives: the
hub's CPU per connected session, its CPU while idle, its memory per
session. Progress on stderr.

`)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if _, err := exec.LookPath("iperf3"); err != nil {
		fmt.Fprintln(os.Stderr, "wirefleet-bench gateway: needs iperf3 (Debian: iperf3)")
		return 1
	}
	t := &runT{}
	defer func() {
		if r := recover(); r != nil {
			f, ok := r.(fatal)
			if !ok {
				panic(r)
			}
			fmt.Fprintln(os.Stderr, "wirefleet-bench gateway:", string(f))
			code = 1
		}
		t.finish()
	}()
	env := netns.New(t)
	var subjects []*gwSubject
	for _, h := range strings.Split(*hubs, ",") {
		progress("gateway: building the %s hub and its two devices", h)
		switch strings.TrimSpace(h) {
		case "ours":
			subjects = append(subjects, ourGateway(t, env))
		case "latest":
			exe, err := os.Executable()
			if err != nil {
				t.Fatal(err)
			}
			s := wireguardHub(t, env, "l", "latest wireguard-go", func(n *netns.NS) *netns.WireGuard { return n.StartWireGuardProgram("", exe, wggoCommand) })
			s.tag = "latest"
			subjects = append(subjects, s)
		case "debian":
			s := wireguardHub(t, env, "d", "Debian wireguard-go", func(n *netns.NS) *netns.WireGuard { return n.StartWireGuardGo("") })
			s.tag = "debian"
			subjects = append(subjects, s)
		default:
			fmt.Fprintf(os.Stderr, "wirefleet-bench gateway: unknown hub %q\n", h)
			return 2
		}
	}
	figs := make([]gwFigure, len(subjects))
	for i, s := range subjects {
		figs[i].Subject = s.name
	}
	for r := range *rounds {
		for i, s := range subjects {
			progress("gateway: round %d/%d, %s", r+1, *rounds, s.name)
			figs[i].Rounds = append(figs[i].Rounds, s.run(t, *dur))
		}
	}
	rep := gwReport{Test: "device to device, TCP, 1 stream", Duration: dur.String(), Figures: figs, Ratios: map[string]map[string]float64{}}
	if *sessions > 0 {
		for _, s := range subjects {
			if slices.Contains(strings.Split(*fleetHubs, ","), s.tag) {
				rep.Fleet = append(rep.Fleet, s.fleet(t, *sessions, *keepalive, *idle))
			}
		}
		if len(rep.Fleet) > 1 && rep.Fleet[0].Subject == oursName {
			rep.FleetRatios = map[string]map[string]float64{}
			o := rep.Fleet[0]
			for _, f := range rep.Fleet[1:] {
				rep.FleetRatios[f.Subject] = map[string]float64{
					"connectSeconds": ratio(o.ConnectSeconds, f.ConnectSeconds),
					"connectCpu":     ratio(o.ConnectCPUms, f.ConnectCPUms),
					"idleCpu":        ratio(o.IdleCore, f.IdleCore),
					"rssPerSession":  ratio(o.RSSPerSessionKB, f.RSSPerSessionKB),
				}
			}
		}
	}
	for i := range figs {
		figs[i].Gbps = median(figs[i].Rounds, func(r gwRound) float64 { return r.Gbps })
		figs[i].CPUPerGbit = median(figs[i].Rounds, func(r gwRound) float64 { return r.CPUPerGbit })
		figs[i].ServiceUp = median(figs[i].Rounds, func(r gwRound) float64 { return r.ServiceUp })
		figs[i].ServiceDown = median(figs[i].Rounds, func(r gwRound) float64 { return r.ServiceDown })
	}
	if len(figs) > 1 && subjects[0].name == oursName {
		for _, f := range figs[1:] {
			rep.Ratios[f.Subject] = map[string]float64{
				"throughput":    round3(figs[0].Gbps / f.Gbps),
				"cpuPerGigabit": round3(figs[0].CPUPerGbit / f.CPUPerGbit),
				"serviceUp":     ratio(figs[0].ServiceUp, f.ServiceUp),
				"serviceDown":   ratio(figs[0].ServiceDown, f.ServiceDown),
			}
		}
	}
	if *asJSON {
		out, _ := json.MarshalIndent(rep, "", "  ")
		fmt.Println(string(out))
		return 0
	}
	fmt.Printf("%s, %s per run, %d rounds (medians), end to end in namespaces\n\n", rep.Test, rep.Duration, *rounds)
	fmt.Printf("%-22s %10s %18s %16s %18s\n", "hub", "Gbit/s", "CPU s per Gbit", "service up", "service down")
	for _, f := range figs {
		fmt.Printf("%-22s %10.2f %18.3f %16.2f %18.2f\n", f.Subject, f.Gbps, f.CPUPerGbit, f.ServiceUp, f.ServiceDown)
	}
	for _, f := range figs[1:] {
		if r, ok := rep.Ratios[f.Subject]; ok {
			fmt.Printf("\nours / %s: throughput %.2f×, CPU per gigabit %.2f×, service flow up %.2f×, down %.2f×", f.Subject,
				r["throughput"], r["cpuPerGigabit"], r["serviceUp"], r["serviceDown"])
		}
	}
	fmt.Println()
	if len(rep.Fleet) > 0 {
		fmt.Printf("\nsimulated fleet: %d sessions connecting at once, then idle with keepalives every %s\n\n", *sessions, *keepalive)
		fmt.Printf("%-22s %12s %12s %14s %14s %12s\n", "hub", "connect s", "cookies", "CPU ms/conn", "idle % core", "KB/session")
		for _, f := range rep.Fleet {
			fmt.Printf("%-22s %12.2f %12d %14.3f %14.1f %12.2f\n", f.Subject, f.ConnectSeconds, f.CookieReplies, f.ConnectCPUms, f.IdleCore*100, f.RSSPerSessionKB)
		}
		for _, f := range rep.Fleet[1:] {
			if r, ok := rep.FleetRatios[f.Subject]; ok {
				fmt.Printf("\nours / %s: connect time %.2f×, CPU per connect %.2f×, idle CPU %.2f×, memory per session %.2f×", f.Subject,
					r["connectSeconds"], r["connectCpu"], r["idleCpu"], r["rssPerSession"])
			}
		}
		fmt.Println()
	}
	return 0
}

// ratio is a/b to three places, 0 when b is.
func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return round3(a / b)
}

const oursName = "wirefleet gateway"

// hubNS makes the hub's namespace with a bridge, and two devices on it.
func hubNS(env *netns.Env, tag string) (hub, a, b *netns.NS) {
	hub = env.NewNS(tag + "hub")
	br := env.Name(tag + "br")
	hub.MustExec("ip", "link", "add", br, "address", "02:00:0a:e6:00:01", "type", "bridge")
	hub.MustExec("ip", "addr", "add", hubLAN, "dev", br)
	hub.MustExec("ip", "link", "set", br, "up")
	devs := make([]*netns.NS, 2)
	for i := range devs {
		devs[i] = env.NewNS(fmt.Sprintf("%sd%c", tag, 'a'+i))
		end, _ := env.Veth(hub, netip.Prefix{}, devs[i], netip.MustParsePrefix(fmt.Sprintf("10.230.0.%d/16", i+2)))
		hub.MustExec("ip", "link", "set", end.Name, "master", br)
	}
	return hub, devs[0], devs[1]
}

// startDevice starts Debian wireguard-go in n as a peer of the hub.
func startDevice(n *netns.NS, hubKey wgkey.Public, addr netip.Prefix, allowed []netip.Prefix) *netns.WireGuard {
	w := n.StartWireGuardGo("")
	w.Configure(netns.Config{Peers: []netns.Peer{{PublicKey: hubKey, Endpoint: netip.AddrPortFrom(netip.MustParsePrefix(hubLAN).Addr(), benchPort),
		AllowedIPs: allowed, PersistentKeepalive: 25}}})
	w.AddAddr(addr)
	w.Up()
	for _, p := range allowed {
		n.MustExec("ip", "route", "replace", p.String(), "dev", w.Name)
	}
	return w
}

func ourGateway(t *runT, env *netns.Env) *gwSubject {
	hub, a, b := hubNS(env, "o")
	ctx := context.Background()
	st, err := sqlitestore.Open(ctx, filepath.Join(t.TempDir(), "fleet.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	ks, err := keystore.GenerateMemory()
	if err != nil {
		t.Fatal(err)
	}
	secrets, err := seal.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	svc := controlplane.New(st, controlplane.Config{Endpoint: fmt.Sprintf("%s:%d", netip.MustParsePrefix(hubLAN).Addr(), benchPort),
		GatewayPublicKey: func() wgkey.Public { return ks.PublicKey() }, Logger: log, Secrets: secrets})
	gw, err := gateway.New(gateway.Config{ControlPlane: svc, KeyStore: ks, ListenPort: benchPort, Logger: log, Secrets: secrets, Records: st,
		Services: []platform.Service{&flowService{}}})
	if err != nil {
		t.Fatal(err)
	}
	hub.MustDo(gw.Start) // the UDP socket opens inside the hub's namespace
	t.Cleanup(func() { gw.Close() })
	grp, err := svc.CreateGroup(ctx, controlplane.System, "bench", fleet.GroupSettings{DeviceToDevice: fleet.D2DPolicy{Mode: fleet.D2DGroup}})
	if err != nil {
		t.Fatal(err)
	}
	var bAddr netip.Addr
	for i, n := range []*netns.NS{a, b} {
		bAddr = simDevice(t, svc, n, fmt.Sprintf("bench-%d", i), grp.ID, ks.PublicKey(), netip.AddrPortFrom(netip.MustParsePrefix(hubLAN).Addr(), benchPort))
	}
	s := newSubject(t, oursName, a, b, bAddr, selfCPU)
	s.tag = "ours"
	s.flow = netip.AddrPortFrom(flowAddr, flowPort).String()
	s.hub = fleetHub{ns: hub, key: ks.PublicKey(), addPeers: ourFleetPeers(t, st), rss: func() int64 { return procRSS(os.Getpid()) }, before: selfRSS}
	return s
}

// simDevice makes a SIM in group and brings up Debian's wireguard-go in n
// as its device, with the session's IPv4 allowed IPs routed into the
// tunnel towards endpoint; it returns the SIM's address.
func simDevice(t *runT, svc *controlplane.Service, n *netns.NS, name, group string, gwKey wgkey.Public, endpoint netip.AddrPort) netip.Addr {
	ctx := context.Background()
	priv, _ := wgkey.NewPrivate()
	sim, _, err := svc.CreateSIM(ctx, controlplane.System, controlplane.SIMSpec{Name: name, GroupID: group, PublicKey: priv.Public()})
	if err != nil {
		t.Fatal(err)
	}
	_, sess, err := svc.SessionFor(ctx, controlplane.System, sim.ID)
	if err != nil {
		t.Fatal(err)
	}
	var allowed []netip.Prefix
	for _, s := range sess.AllowedIPs {
		if p, err := netip.ParsePrefix(s); err == nil && p.Addr().Is4() {
			allowed = append(allowed, p)
		}
	}
	w := n.StartWireGuardGo("")
	w.Private, w.Public = priv, priv.Public()
	w.Configure(netns.Config{Peers: []netns.Peer{{PublicKey: gwKey, Endpoint: endpoint, AllowedIPs: allowed, PersistentKeepalive: 25}}})
	w.AddAddr(netip.PrefixFrom(sim.Address, 32))
	w.Up()
	for _, p := range allowed {
		n.MustExec("ip", "route", "replace", p.String(), "dev", w.Name)
	}
	return sim.Address
}

func wireguardHub(t *runT, env *netns.Env, tag, name string, start func(*netns.NS) *netns.WireGuard) *gwSubject {
	hub, a, b := hubNS(env, tag)
	hub.MustExec("sysctl", "-q", "-w", "net.ipv4.ip_forward=1")
	hw := start(hub)
	overlay := netip.MustParsePrefix(hubOverlay)
	var peers []netns.Peer
	var devs []*netns.WireGuard
	for i, n := range []*netns.NS{a, b} {
		addr := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 99, 0, byte(2 + i)}), 32)
		d := startDevice(n, hw.Public, addr, []netip.Prefix{overlay.Masked()})
		devs = append(devs, d)
		peers = append(peers, netns.Peer{PublicKey: d.Public, AllowedIPs: []netip.Prefix{addr}})
	}
	hw.Configure(netns.Config{ListenPort: benchPort, Peers: peers})
	hw.AddAddr(overlay)
	hw.Up()
	pid := hw.Process.PID
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	s := newSubject(t, name, a, b, netip.AddrFrom4([4]byte{10, 99, 0, 3}), func() time.Duration { return procCPU(t, pid) })
	s.flow = netip.AddrPortFrom(overlay.Addr(), flowPort).String()
	hub.Start(nil, exe, sinkCommand, s.flow)
	rss := func() int64 { return procRSS(pid) }
	s.hub = fleetHub{ns: hub, key: hw.Public, addPeers: hubFleetPeers(hw), rss: rss, before: rss}
	return s
}

// newSubject waits until A reaches B through the hub and starts B's
// iperf3 server.
func newSubject(t *runT, name string, a, b *netns.NS, bAddr netip.Addr, cpu func() time.Duration) *gwSubject {
	deadline := time.Now().Add(20 * time.Second)
	for {
		out, err := a.Exec("ping", "-c", "1", "-W", "1", bAddr.String())
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: device A does not reach B (%s): %v\n%s", name, bAddr, err, out)
		}
	}
	s := &gwSubject{name: name, a: a, b: b, bAddr: bAddr, cpu: cpu}
	s.server = b.Start(nil, "iperf3", "-s", "-B", bAddr.String())
	time.Sleep(300 * time.Millisecond)
	return s
}

func (s *gwSubject) run(t *runT, d time.Duration) gwRound {
	stop := s.profile(t, "d2d.pprof") // each round's overwrites the last
	r := s.iperf(t, d)
	stop()
	r.ServiceUp, r.ServiceDown = s.serviceFlow(t, "u", d), s.serviceFlow(t, "d", d)
	return r
}

// iperf runs one iperf3 TCP stream from A to bAddr for d, with the CPU
// time s.cpu counts meanwhile.
func (s *gwSubject) iperf(t *runT, d time.Duration) gwRound {
	before := s.cpu()
	out, err := s.a.Exec("iperf3", "-c", s.bAddr.String(), "-t", strconv.Itoa(int(math.Ceil(d.Seconds()))), "-J")
	cpu := s.cpu() - before
	if err != nil {
		t.Fatalf("%s: iperf3: %v\n%s", s.name, err, out)
	}
	var res struct {
		End struct {
			SumReceived struct {
				Bytes   float64 `json:"bytes"`
				Seconds float64 `json:"seconds"`
			} `json:"sum_received"`
		} `json:"end"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil || res.End.SumReceived.Seconds == 0 {
		t.Fatalf("%s: iperf3 output: %v\n%s", s.name, err, out)
	}
	gbit := res.End.SumReceived.Bytes * 8 / 1e9
	r := gwRound{Gbps: round3(gbit / res.End.SumReceived.Seconds), CPUSeconds: round3(cpu.Seconds())}
	r.CPUPerGbit = round3(cpu.Seconds() / gbit)
	return r
}

// serviceFlow runs one TCP flow from device A to the hub's flow service,
// Gbit/s.
func (s *gwSubject) serviceFlow(t *runT, mode string, d time.Duration) float64 {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	out, err := s.a.Exec(exe, flowCommand, mode, s.flow, d.String())
	if err != nil {
		t.Fatalf("%s: service flow %s: %v\n%s", s.name, mode, err, out)
	}
	var r flowResult
	if err := json.Unmarshal([]byte(out), &r); err != nil || r.Seconds == 0 {
		t.Fatalf("%s: service flow %s: %v\n%s", s.name, mode, err, out)
	}
	return round3(float64(r.Bytes) * 8 / 1e9 / r.Seconds)
}

// selfCPU is this process's CPU time: our gateway's, the bench idle
// around it.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// procCPU is a process's user and system time from /proc/PID/stat.
func procCPU(t *runT, pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	// Fields after the parenthesised command: state is field 3, utime 14, stime 15.
	i := strings.LastIndexByte(string(b), ')')
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		t.Fatalf("/proc/%d/stat: %q", pid, b)
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	const ticks = 100 // USER_HZ on Linux
	return time.Duration(ut+st) * time.Second / ticks
}

func median(rs []gwRound, f func(gwRound) float64) float64 {
	v := make([]float64, len(rs))
	for i, r := range rs {
		v[i] = f(r)
	}
	slices.Sort(v)
	if len(v) == 0 {
		return 0
	}
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return round3((v[len(v)/2-1] + v[len(v)/2]) / 2)
}

func round3(x float64) float64 { return math.Round(x*1000) / 1000 }

func progress(format string, args ...any) { fmt.Fprintf(os.Stderr, format+"\n", args...) }

// runT is what netns needs of a test, for a command: cleanups run at the
// end (in reverse), a fatal error unwinds to gatewayBench.
type runT struct {
	name     string // what pgtest names its database after
	cleanups []func()
}

type fatal string

func (t *runT) Helper()                           {}
func (t *runT) Cleanup(f func())                  { t.cleanups = append(t.cleanups, f) }
func (t *runT) Errorf(format string, args ...any) { fmt.Fprintf(os.Stderr, format+"\n", args...) }
func (t *runT) Fatal(args ...any)                 { panic(fatal(fmt.Sprint(args...))) }
func (t *runT) Fatalf(format string, args ...any) { panic(fatal(fmt.Sprintf(format, args...))) }
func (t *runT) Logf(format string, args ...any)   { fmt.Fprintf(os.Stderr, format+"\n", args...) }
func (t *runT) Skip(args ...any)                  { panic(fatal(fmt.Sprint(args...))) }
func (t *runT) Skipf(format string, args ...any)  { panic(fatal(fmt.Sprintf(format, args...))) }
func (t *runT) Name() string                      { return t.name }

func (t *runT) TempDir() string {
	d, err := os.MkdirTemp("", "wirefleet-bench-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

// finish runs the cleanups, newest first; one that panics does not stop
// the others.
func (t *runT) finish() {
	for i := len(t.cleanups) - 1; i >= 0; i-- {
		func() {
			defer func() { recover() }()
			t.cleanups[i]()
		}()
	}
	t.cleanups = nil
}
