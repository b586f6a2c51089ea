// SPDX-License-Identifier: Apache-2.0

package console_test

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/wirefleet/wirefleet/controlplane"
	"github.com/wirefleet/wirefleet/controlplane/console"
	"github.com/wirefleet/wirefleet/controlplane/store"
	"github.com/wirefleet/wirefleet/fleet"
	"github.com/wirefleet/wirefleet/internal/ratelimit"
	"github.com/wirefleet/wirefleet/wgkey"
)

// benchSIMs is how many SIMs the console benchmark holds
// (WIREFLEET_CONSOLE_BENCH_SIMS; 1,000,000 by default: the size).
func benchSIMs(b *testing.B) int {
	n := 1_000_000
	if v := os.Getenv("WIREFLEET_CONSOLE_BENCH_SIMS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n <= 0 {
			b.Fatalf("WIREFLEET_CONSOLE_BENCH_SIMS=%q", v)
		}
	}
	return n
}

// BenchmarkConsoleAtScale serves the console's pages over a SQLite store
// holding benchSIMs SIMs: the first SIMs page, a page deep in the list by
// cursor, a page filtered by group and status, a search by IMSI, searches
// by name (narrow, matching every SIM, and deep in that list), a SIM's
// page, and the SIM counts behind the overview uncached (the overview
// itself caches them for 2 s for all viewers). In process, over loopback
// HTTP: the console's own cost, no browser.
func BenchmarkConsoleAtScale(b *testing.B) {
	n := benchSIMs(b)
	s := newSite(b, console.Config{})
	ctx := context.Background()
	g, err := s.svc.CreateGroup(ctx, controlplane.System, "bulk", fleet.GroupSettings{})
	if err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	const batch = 10_000
	base := netip.MustParseAddr("10.128.0.2").As4()
	var deep, last fleet.SIM
	for i := 0; i < n; i += batch {
		err := s.st.Update(ctx, func(tx store.Tx) error {
			for j := i; j < min(i+batch, n); j++ {
				v := uint32(base[0])<<24 | uint32(base[1])<<16 | uint32(base[2])<<8 | uint32(base[3]) + uint32(j)
				addr := netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
				var k wgkey.Public
				copy(k[:], fmt.Sprintf("%032d", j))
				now := time.Now().UTC()
				sim := fleet.SIM{ID: fmt.Sprintf("sim_%020x", j+1), IMSI: fmt.Sprintf("99999%010d", j+1), Name: fmt.Sprintf("dev-%d", j), Status: fleet.StatusActive,
					Address: addr, PublicKey: k, Created: now, Updated: now, KeySet: now}
				if j%10 == 0 {
					sim.GroupID = g.ID
				}
				if j%100 == 0 {
					sim.Status = fleet.StatusSuspended
				}
				if err := tx.InsertSIM(ctx, sim); err != nil {
					return err
				}
				if j == n/2 {
					deep = sim
				}
				last = sim
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	b.Logf("%d SIMs inserted in %s", n, time.Since(start).Round(time.Millisecond))
	_, secret := s.token(fleet.RoleViewer)
	c := browser(b)
	s.signIn(c, secret)
	pages := []struct{ name, path string }{
		{"sims-first", "/sims"},
		{"sims-deep", "/sims?cursor=" + deep.ID},
		{"sims-group-suspended", "/sims?group=" + g.ID + "&status=suspended"},
		{"search-imsi", "/sims?q=" + last.IMSI},
		{"search-name-narrow", "/sims?q=dev-4999"}, // 1,111 names at 1M: a page of them
		{"search-name-broad", "/sims?q=dev-"},      // every name: the first page
		{"search-name-deep", "/sims?q=dev-&cursor=" + store.SIMNameCursor(deep)},
		{"sim", "/sims/" + deep.ID},
	}
	for _, p := range pages {
		b.Run(p.name, func(b *testing.B) {
			var took []time.Duration
			for b.Loop() {
				t0 := time.Now()
				resp, body := do(b, c, "GET", s.url+p.path, nil, nil)
				took = append(took, time.Since(t0))
				if resp.StatusCode != 200 || !strings.Contains(body, "</html>") {
					b.Fatalf("%s: %d", p.path, resp.StatusCode)
				}
			}
			reportP95(b, took)
		})
	}
	b.Run("count-by-status", func(b *testing.B) {
		for b.Loop() {
			if _, err := s.svc.View().CountSIMs(ctx); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// reportP95 reports the 95th percentile of took, in milliseconds.
func reportP95(b *testing.B, took []time.Duration) {
	if len(took) == 0 {
		return
	}
	slices.Sort(took)
	b.ReportMetric(float64(took[(len(took)*95+99)/100-1].Microseconds())/1000, "p95-ms")
}

// benchGateway gives the live views a gateway's readings: what the
// console costs is measured, not the gateway's walk over its peers.
type benchGateway struct{}

func (benchGateway) Connection(simID string) fleet.Connection {
	return fleet.Connection{Online: true, Endpoint: "192.0.2.1:4500", LastHandshake: time.Now(), RxBytes: 1 << 20, TxBytes: 1 << 19}
}

func (benchGateway) Stats() fleet.GatewayStats {
	return fleet.GatewayStats{Sessions: 50, Handshakes: 1000, RxBytes: 1 << 30, TxBytes: 1 << 29}
}

// BenchmarkLiveFanOut opens 100 consoles (100 sessions), each on the SIMs
// page's live stream (50 SIMs' tunnel states) or the overview's, and
// measures a refresh round: every stream sends its next event. Reported:
// the process's CPU time a round (server and the in-process readers) and
// the heap and goroutines each open console holds. At the default 2 s
// interval a round's CPU over 2 s is the share of a core 100 consoles
// take.
func BenchmarkLiveFanOut(b *testing.B) {
	const consoles = 100
	const interval = 250 * time.Millisecond
	s := newSite(b, console.Config{Gateway: benchGateway{}, LiveInterval: interval, SignInLimit: ratelimit.Config{PerSecond: 1000, Burst: consoles}})
	ctx := context.Background()
	var ids []string
	for i := range 50 {
		sim, _, err := s.svc.CreateSIM(ctx, controlplane.System, controlplane.SIMSpec{Name: fmt.Sprintf("dev-%d", i), GenerateKey: true})
		if err != nil {
			b.Fatal(err)
		}
		ids = append(ids, sim.ID)
	}
	// The consoles sign in here, in the parent: site's helpers fail the
	// benchmark they were made with.
	clients := make([]*http.Client, consoles)
	for i := range clients {
		_, secret := s.token(fleet.RoleViewer)
		clients[i] = browser(b)
		clients[i].Timeout = 0
		s.signIn(clients[i], secret)
	}
	for _, view := range []struct{ name, path, event string }{
		{"sims-page", "/live/sims?ids=" + strings.Join(ids, ","), "event: sim-" + ids[0]}, // the round's first event
		{"overview", "/live/overview", "event: overview"},
	} {
		b.Run(view.name, func(b *testing.B) {
			runtime.GC()
			var before runtime.MemStats
			runtime.ReadMemStats(&before)
			g0 := runtime.NumGoroutine()
			rounds := make(chan struct{}, consoles*1024)
			sctx, stop := context.WithCancel(ctx)
			var wg sync.WaitGroup
			for _, c := range clients {
				req, _ := http.NewRequestWithContext(sctx, "GET", s.url+view.path, nil)
				resp, err := c.Do(req)
				if err != nil || resp.StatusCode != 200 {
					b.Fatalf("open a stream: %v %v", err, resp)
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					defer resp.Body.Close()
					sc := bufio.NewScanner(resp.Body)
					sc.Buffer(make([]byte, 64<<10), 1<<20)
					for sc.Scan() {
						// One event a round: its first event line.
						if strings.HasPrefix(sc.Text(), view.event) {
							select {
							case rounds <- struct{}{}:
							default:
							}
						}
					}
				}()
			}
			round := func() {
				for range consoles {
					<-rounds
				}
			}
			for len(rounds) < consoles { // every stream has sent its first
				time.Sleep(10 * time.Millisecond)
			}
			for len(rounds) > 0 {
				<-rounds
			}
			runtime.GC()
			var during runtime.MemStats
			runtime.ReadMemStats(&during)
			g1 := runtime.NumGoroutine()
			cpu0 := cpuTime()
			n := 0
			for b.Loop() {
				round()
				n++
			}
			cpu := cpuTime() - cpu0
			stop()
			wg.Wait()
			b.ReportMetric(float64(cpu.Microseconds())/1000/float64(n), "cpu-ms/round")
			b.ReportMetric(100*cpu.Seconds()/float64(n)/2, "%core@2s")
			b.ReportMetric(float64(int64(during.HeapInuse)-int64(before.HeapInuse))/consoles/1024, "heap-KiB/console")
			b.ReportMetric(float64(g1-g0)/consoles, "goroutines/console")
		})
	}
}

// cpuTime is the process's user and system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
