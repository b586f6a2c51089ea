// SPDX-License-Identifier: Apache-2.0

package enginebench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/wirefleet/wirefleet/internal/memtun"
)

// MemoryChildCommand is the hidden subcommand the bench binary re-executes
// itself with to measure memory in a clean process.
const MemoryChildCommand = "memory-child"

// MemorySample is the process's memory at one point.
type MemorySample struct {
	RSS        uint64 `json:"rss_bytes"`  // VmRSS after a GC that returns free memory to the OS
	HeapAlloc  uint64 `json:"heap_bytes"` // live Go heap
	Goroutines int    `json:"goroutines"`
}

// MemoryResult is what one child measured for one subject and peer count.
type MemoryResult struct {
	Subject   string `json:"subject"`
	Requested int    `json:"requested_peers"`
	Peers     int    `json:"peers"`  // configured: Requested, or the subject's cap
	Capped    bool   `json:"capped"` // Peers < Requested because of MaxPeers
	Sessions  int    `json:"sessions"`

	Baseline   MemorySample  `json:"baseline"`
	Configured MemorySample  `json:"configured"`
	Active     *MemorySample `json:"active,omitempty"` // after one accepted handshake per peer

	// Per configured peer, from Baseline to Configured.
	RSSPerPeer  float64 `json:"rss_per_peer"`
	HeapPerPeer float64 `json:"heap_per_peer"`
	// Per peer with a session, from Baseline to Active: what an active device
	// costs in total, peer state included — the figure lazy peers are judged by.
	RSSPerActiveSession  float64 `json:"rss_per_active_session,omitempty"`
	HeapPerActiveSession float64 `json:"heap_per_active_session,omitempty"`
	SetupSec             float64 `json:"setup_sec"`
	HandshakeSec         float64 `json:"handshake_sec,omitempty"`
}

func sample() MemorySample {
	runtime.GC()
	debug.FreeOSMemory()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return MemorySample{RSS: readRSS(), HeapAlloc: ms.HeapAlloc, Goroutines: runtime.NumGoroutine()}
}

// readRSS returns VmRSS of this process in bytes (0 if unreadable).
func readRSS() uint64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, _ := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb * 1024
		}
	}
	return 0
}

// RunMemoryChild is the body of the hidden subcommand: it loads a handshake
// set, measures, configures a responder of the named subject with the set's
// first --peers initiators, measures, optionally completes one handshake per
// peer, measures, and prints a MemoryResult as JSON on stdout.
func RunMemoryChild(subjects []Subject, args []string) error {
	fs := flag.NewFlagSet(MemoryChildCommand, flag.ContinueOnError)
	name := fs.String("subject", "", "subject name")
	file := fs.String("set", "", "handshake set file")
	peers := fs.Int("peers", 10000, "peers to configure")
	sessions := fs.Bool("sessions", false, "also complete one handshake per peer")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var s Subject
	for _, c := range subjects {
		if c.Name() == *name {
			s = c
		}
	}
	if s == nil {
		return fmt.Errorf("unknown subject %q", *name)
	}
	full, err := ReadHandshakeFile(*file)
	if err != nil {
		return err
	}
	res := MemoryResult{Subject: s.Name(), Requested: *peers, Peers: *peers}
	if m := s.MaxPeers(); m > 0 && res.Peers > m {
		res.Peers, res.Capped = m, true
	}
	if res.Peers > len(full.Messages) {
		return fmt.Errorf("set holds %d initiators, %d wanted", len(full.Messages), res.Peers)
	}
	hs := full.Prefix(res.Peers)
	peerCfg, lookup := hs.Peers(), hs.Lookup()
	tunDev := newIdleTun()

	res.Baseline = sample()
	t0 := time.Now()
	r, err := s.NewResponder(ResponderConfig{PrivateKey: hs.Responder, Peers: peerCfg, Lookup: lookup, Tun: tunDev})
	if err != nil {
		return fmt.Errorf("%s: responder with %d peers: %w", s.Name(), res.Peers, err)
	}
	// The child exits right after printing; the responder is not closed, so
	// an engine that hangs in Close cannot hang the measurement.
	res.SetupSec = time.Since(t0).Seconds()
	res.Configured = sample()
	n := float64(res.Peers)
	res.RSSPerPeer = (float64(res.Configured.RSS) - float64(res.Baseline.RSS)) / n
	res.HeapPerPeer = (float64(res.Configured.HeapAlloc) - float64(res.Baseline.HeapAlloc)) / n

	// At its cap a subject gets no sessions: its per-session cost is known
	// from the smaller counts, and the time is better spent elsewhere.
	if *sessions && !res.Capped {
		t1 := time.Now()
		hr, err := Blast(r.Addr(), hs.Messages, DefaultWindow, 5*time.Minute)
		if err != nil {
			return err
		}
		res.HandshakeSec = time.Since(t1).Seconds()
		res.Sessions = hr.Responses
		a := sample()
		res.Active = &a
		if hr.Responses > 0 {
			res.RSSPerActiveSession = (float64(a.RSS) - float64(res.Baseline.RSS)) / float64(hr.Responses)
			res.HeapPerActiveSession = (float64(a.HeapAlloc) - float64(res.Baseline.HeapAlloc)) / float64(hr.Responses)
		}
	}
	// The harness's own data stays alive to the last sample, so it is in
	// every sample alike and no delta.
	runtime.KeepAlive(full)
	runtime.KeepAlive(peerCfg)
	runtime.KeepAlive(lookup)
	return json.NewEncoder(os.Stdout).Encode(res)
}

// ChildTimeout bounds one memory child process.
const ChildTimeout = 5 * time.Minute

// Memory runs the memory child for one subject and peer count, in a fresh
// process of this executable, and returns what it measured.
func Memory(s Subject, setFile string, peers int, sessions bool) (MemoryResult, error) {
	exe, err := os.Executable()
	if err != nil {
		return MemoryResult{}, err
	}
	args := []string{MemoryChildCommand, "-subject", s.Name(), "-set", setFile, "-peers", strconv.Itoa(peers)}
	if sessions {
		args = append(args, "-sessions")
	}
	ctx, cancel := context.WithTimeout(context.Background(), ChildTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, exe, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return MemoryResult{}, fmt.Errorf("%s memory child (%d peers): %v: %s", s.Name(), peers, err, strings.TrimSpace(errb.String()))
	}
	var res MemoryResult
	if err := json.Unmarshal(out.Bytes(), &res); err != nil {
		return MemoryResult{}, fmt.Errorf("%s memory child output: %v: %q", s.Name(), err, out.String())
	}
	return res, nil
}

// newIdleTun returns a TUN for engines whose inner traffic does not matter.
func newIdleTun() *memtun.Sink { return memtun.NewSink(0, 0) }
