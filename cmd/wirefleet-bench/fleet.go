// SPDX-License-Identifier: Apache-2.0

package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/wirefleet/wirefleet/controlplane/store"
	"github.com/wirefleet/wirefleet/fleet"
	"github.com/wirefleet/wirefleet/internal/netns"
	"github.com/wirefleet/wirefleet/wgkey"
)

// The simulated fleet: n WireGuard sessions from one process (fleet-sim,
// in the hub's namespace, each session with a loopback source address
// of its own) connect to a hub at once, then stay idle with keepalives.
// What the hub spends is read from the hub's process: CPU per connected
// session, CPU while idle as a share of one core, and resident memory
// grown per session (peers configured and connected, against before).

type fleetFigure struct {
	Subject  string `json:"subject"`
	Sessions int    `json:"sessions"`
	// ConnectSeconds is from the burst of initiations to the last
	// session's answer (retries after RekeyTimeout included).
	ConnectSeconds float64 `json:"connectSeconds"`
	Initiations    int64   `json:"initiations"`
	CookieReplies  int64   `json:"cookieReplies"`
	// ConnectCPUms is the hub's CPU per connected session, milliseconds.
	ConnectCPUms float64 `json:"connectCpuMsPerSession"`
	// IdleCore is the hub's CPU while the sessions are idle, as a share of
	// one core.
	IdleCore  float64 `json:"idleCpuShareOfCore"`
	Keepalive string  `json:"keepalive"`
	// RSSPerSessionKB is resident memory grown per session, KB (1,000 B).
	RSSPerSessionKB float64 `json:"rssPerSessionKB"`
}

// fleetHub is what the fleet step needs of a hub.
type fleetHub struct {
	ns       *netns.NS
	key      wgkey.Public
	addPeers func(pubs []wgkey.Public)
	// rss reads the hub's resident memory; before is the reading taken
	// before its peers exist (ours returns setup garbage first).
	rss, before func() int64
}

// profileDir, when set (--profile), gets CPU profiles of our gateway
// (this process) while the fleet connects and while it idles.
var profileDir string

// profile starts a CPU profile of this process into profileDir/name, when
// asked and the subject is ours; the returned func stops it.
func (s *gwSubject) profile(t *runT, name string) func() {
	if profileDir == "" || s.tag != "ours" {
		return func() {}
	}
	f, err := os.Create(filepath.Join(profileDir, name))
	if err != nil {
		t.Fatal(err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		t.Fatal(err)
	}
	return func() { pprof.StopCPUProfile(); f.Close() }
}

// heapProfile writes our gateway's heap (this process) to
// profileDir/heap.pprof, when asked.
func (s *gwSubject) heapProfile(t *runT) {
	if profileDir == "" || s.tag != "ours" {
		return
	}
	f, err := os.Create(filepath.Join(profileDir, "heap.pprof"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	runtime.GC()
	if err := pprof.WriteHeapProfile(f); err != nil {
		t.Fatal(err)
	}
}

func (s *gwSubject) fleet(t *runT, n int, keepalive, idle time.Duration) fleetFigure {
	h := s.hub
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	rss0 := h.before()
	raw := make([]byte, 32*n)
	if _, err := rand.Read(raw); err != nil {
		t.Fatal(err)
	}
	pubs := make([]wgkey.Public, n)
	parallel(n, func(i int) {
		var k wgkey.Private
		copy(k[:], raw[i*32:])
		pubs[i] = k.Public()
	})
	progress("fleet: %s: configuring %d peers", s.name, n)
	h.addPeers(pubs)
	keys := filepath.Join(t.TempDir(), "fleet.keys")
	if err := os.WriteFile(keys, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	clear(raw)
	p := h.ns.Start(nil, exe, fleetSimCommand, "--keys", keys, "--gateway-key", h.key.String(),
		"--target", fmt.Sprintf("127.0.0.1:%d", benchPort), "--keepalive", keepalive.String())
	defer p.Stop()
	waitEvent(t, p, "ready", 5*time.Minute, nil)
	progress("fleet: %s: %d sessions connecting at once", s.name, n)
	stop := s.profile(t, "connect.pprof")
	cpu0 := s.cpu()
	if err := syscall.Kill(p.PID, syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	last := time.Now()
	done := waitEvent(t, p, "connected", 10*time.Minute, func(ev simEvent) {
		if time.Since(last) >= 5*time.Second {
			last = time.Now()
			progress("fleet: %s: %d/%d connected after %.0f s", s.name, ev.Connected, ev.Sessions, ev.Seconds)
		}
	})
	cpu1 := s.cpu()
	stop()
	f := fleetFigure{Subject: s.name, Sessions: n, ConnectSeconds: round3(done.Seconds), Initiations: done.Initiations,
		CookieReplies: done.CookieReplies, ConnectCPUms: round3(float64((cpu1 - cpu0).Microseconds()) / 1000 / float64(n)), Keepalive: keepalive.String()}
	progress("fleet: %s: all connected in %.1f s; idle for %s", s.name, done.Seconds, idle)
	time.Sleep(3 * time.Second) // what connecting left behind settles
	stop = s.profile(t, "idle.pprof")
	cpuA := s.cpu()
	time.Sleep(idle)
	f.IdleCore = round3((s.cpu() - cpuA).Seconds() / idle.Seconds())
	stop()
	f.RSSPerSessionKB = round3(float64(h.rss()-rss0) / 1000 / float64(n))
	s.heapProfile(t)
	if p.Exited() {
		t.Fatalf("fleet: the simulator ended: %s", p.Output())
	}
	return f
}

// waitEvent waits for the simulator's JSON event name, calling each (if
// set) with every other event seen meanwhile.
func waitEvent(t *runT, p *netns.Process, name string, timeout time.Duration, each func(simEvent)) simEvent {
	deadline := time.Now().Add(timeout)
	seen := 0
	for {
		sc := bufio.NewScanner(strings.NewReader(p.Output()))
		i := 0
		for sc.Scan() {
			var ev simEvent
			if line := sc.Text(); !strings.HasPrefix(line, "{") || json.Unmarshal([]byte(line), &ev) != nil {
				continue
			}
			i++
			if i <= seen {
				continue
			}
			seen = i
			if ev.Event == name {
				return ev
			}
			if each != nil {
				each(ev)
			}
		}
		if p.Exited() {
			t.Fatalf("fleet: the simulator ended before %q: %s", name, p.Output())
		}
		if time.Now().After(deadline) {
			t.Fatalf("fleet: no %q from the simulator within %s", name, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// ourFleetPeers stores SIMs for the keys straight through the store, in
// large transactions (setup: not what is measured).
func ourFleetPeers(t *runT, st store.Store) func([]wgkey.Public) {
	return func(pubs []wgkey.Public) {
		ctx := context.Background()
		base := netip.MustParseAddr("10.200.0.0").As4() // inside the default pool, above what the bench's own SIMs take
		b0 := binary.BigEndian.Uint32(base[:])
		now := time.Now().UTC()
		const batch = 5000
		for i := 0; i < len(pubs); i += batch {
			err := st.Update(ctx, func(tx store.Tx) error {
				for j := i; j < min(len(pubs), i+batch); j++ {
					var a [4]byte
					binary.BigEndian.PutUint32(a[:], b0+uint32(j)+1)
					sim := fleet.SIM{ID: fmt.Sprintf("sim_fleet%08d", j), IMSI: fleet.FormatIMSI(5_000_000_000 + int64(j)), Status: fleet.StatusActive,
						Address: netip.AddrFrom4(a), PublicKey: pubs[j], Created: now, Updated: now}
					if err := tx.InsertSIM(ctx, sim); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
		}
		// The inserts' garbage is the bench's, not the gateway's.
		runtime.GC()
		debug.FreeOSMemory()
	}
}

// hubFleetPeers adds the keys as peers of a wireguard-go hub (no allowed
// IPs: the fleet sends only keepalives).
func hubFleetPeers(w *netns.WireGuard) func([]wgkey.Public) {
	return func(pubs []wgkey.Public) {
		var b strings.Builder
		for _, k := range pubs {
			fmt.Fprintf(&b, "[Peer]\nPublicKey = %s\n", k)
		}
		w.AddConf(b.String())
	}
}

// selfRSS is this process's resident memory after returning what the
// heap no longer holds, so the bench's setup garbage is not counted as
// the gateway's (read so only before the peers exist: after, the
// gateway's garbage counts, as the wireguard-go hubs' does).
func selfRSS() int64 {
	runtime.GC()
	debug.FreeOSMemory()
	return procRSS(os.Getpid())
}

// procRSS is a process's VmRSS in bytes (0 if unreadable).
func procRSS(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb * 1024
		}
	}
	return 0
}
