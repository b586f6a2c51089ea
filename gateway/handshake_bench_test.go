// SPDX-License-Identifier: Apache-2.0

package gateway

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/wirefleet/wirefleet/controlplane"
	"github.com/wirefleet/wirefleet/controlplane/store"
	"github.com/wirefleet/wirefleet/controlplane/store/sqlitestore"
	"github.com/wirefleet/wirefleet/fleet"
	"github.com/wirefleet/wirefleet/internal/enginebench"
	"github.com/wirefleet/wirefleet/internal/enginebench/noiseinit"
	"github.com/wirefleet/wirefleet/keystore"
	"github.com/wirefleet/wirefleet/wgkey"
)

// BenchmarkHandshakesFromStore measures handshakes per second at the
// gateway with every peer resolved from an SQLite store holding
// WIREFLEET_BENCH_SIMS SIMs (default 1,000,000): WIREFLEET_BENCH_DEVICES of
// them (default 20,000) initiate, each with one valid initiation (made
// beforehand by our noise package, so initiator cost is not measured),
// blasted from one 127.0.0.1 socket with 64 outstanding (enginebench.Blast,
// as for the engine's own figure). Each handshake costs a key lookup
// (indexed) and the DHs.
//
// It is also the "every device reconnects after a gateway restart" figure
// (a fresh gateway, every device initiating), with the process CPU time per
// handshake (blaster included) and the live heap per session held
// afterwards. Run with -benchtime=1x.
func BenchmarkHandshakesFromStore(b *testing.B) {
	n := envInt(b, "WIREFLEET_BENCH_SIMS", 1_000_000)
	initiators := envInt(b, "WIREFLEET_BENCH_DEVICES", 20_000)
	hs, err := enginebench.NewHandshakeSet(noiseinit.Maker{}, initiators)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	st, err := sqlitestore.Open(ctx, filepath.Join(b.TempDir(), "fleet.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	start := time.Now()
	fillSIMs(b, st, n, hs)
	b.Logf("stored %d SIMs in %v", n, time.Since(start).Round(time.Second))

	ks := keystore.NewMemory(hs.Responder)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	svc := controlplane.New(st, controlplane.Config{GatewayPublicKey: func() wgkey.Public { return ks.PublicKey() }, Logger: log})
	for i := 0; i < b.N; i++ {
		heap0 := liveHeap()
		gw, err := New(Config{ControlPlane: svc, KeyStore: ks, Logger: log})
		if err != nil {
			b.Fatal(err)
		}
		if err := gw.Start(); err != nil {
			b.Fatal(err)
		}
		cpu0 := cpuTime()
		res, err := enginebench.Blast(netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), gw.Port()), hs.Messages, enginebench.DefaultWindow, 10*time.Minute)
		cpu := cpuTime() - cpu0
		heap := liveHeap() - heap0
		sessions := gw.Engine().PeerCount()
		gw.Close()
		if err != nil {
			b.Fatal(err)
		}
		if res.Responses < initiators*9/10 {
			b.Fatalf("only %d responses (%d cookie replies) to %d initiations", res.Responses, res.CookieReplies, initiators)
		}
		b.ReportMetric(res.PerSec, "handshakes/s")
		b.ReportMetric(res.DurationSec, "s-all-connected")
		b.ReportMetric(float64(cpu.Microseconds())/1000/float64(res.Responses), "cpu-ms/handshake")
		b.ReportMetric(float64(heap)/float64(max(sessions, 1)), "heap-B/session")
		b.ReportMetric(float64(res.CookieReplies), "cookie-replies")
		b.Logf("%d devices: %d responses in %.1f s, %d peers held, heap +%d MB, CPU %v", initiators, res.Responses, res.DurationSec, sessions, heap>>20, cpu.Round(time.Millisecond))
	}
}

func envInt(b *testing.B, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		b.Fatalf("%s: %v", name, err)
	}
	return n
}

// liveHeap returns the live heap after a full collection.
func liveHeap() int64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc)
}

// cpuTime returns the process's user+system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// fillSIMs stores n SIMs straight through the store in large transactions
// (setup, not measured): the first len(hs.Initiators) with the initiators'
// keys, the rest with filler keys; one in a hundred of the filler suspended.
func fillSIMs(b *testing.B, st store.Store, n int, hs *enginebench.HandshakeSet) {
	ctx := context.Background()
	base := netip.MustParseAddr("10.128.0.0").As4()
	b0 := binary.BigEndian.Uint32(base[:])
	now := time.Now().UTC()
	const batch = 5000
	for i := 0; i < n; i += batch {
		err := st.Update(ctx, func(tx store.Tx) error {
			for j := i; j < min(n, i+batch); j++ {
				var a [4]byte
				binary.BigEndian.PutUint32(a[:], b0+uint32(j)+2)
				var k wgkey.Public
				status := fleet.StatusActive
				if j < len(hs.Initiators) {
					k = hs.Initiators[j]
				} else {
					binary.BigEndian.PutUint64(k[:], uint64(j)+1)
					k[31] = 0xee
					if j%100 == 0 {
						status = fleet.StatusSuspended
					}
				}
				sim := fleet.SIM{ID: fmt.Sprintf("sim_%012d", j), IMSI: fleet.FormatIMSI(int64(j)), Status: status, Address: netip.AddrFrom4(a), PublicKey: k, Created: now, Updated: now}
				if err := tx.InsertSIM(ctx, sim); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
}
