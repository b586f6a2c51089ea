// SPDX-License-Identifier: Apache-2.0

package datastore

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wirefleet/wirefleet/controlplane"
	"github.com/wirefleet/wirefleet/controlplane/store"
	"github.com/wirefleet/wirefleet/controlplane/store/pgstore"
	"github.com/wirefleet/wirefleet/controlplane/store/pgstore/pgtest"
	"github.com/wirefleet/wirefleet/controlplane/store/sqlitestore"
	"github.com/wirefleet/wirefleet/fleet"
	"github.com/wirefleet/wirefleet/gateway"
	"github.com/wirefleet/wirefleet/internal/ratelimit"
	"github.com/wirefleet/wirefleet/keystore"
	"github.com/wirefleet/wirefleet/services/platform"
	"github.com/wirefleet/wirefleet/wgkey"
)

// BenchmarkWrites measures acknowledged data-store writes per second from
// many concurrent devices (writers = 32 × GOMAXPROCS goroutines), each
// write one 100-byte JSON message through the service's whole write path
// (group settings, records, group commit, durable commit) into a real
// store: SQLite on disk, and PostgreSQL (a local server). "single" turns
// group commit off (one transaction per write) for comparison.
func BenchmarkWrites(b *testing.B) {
	sqlite := func(b *testing.B) store.Store {
		st, err := sqlitestore.Open(context.Background(), filepath.Join(b.TempDir(), "wirefleet.db"))
		if err != nil {
			b.Fatal(err)
		}
		return st
	}
	pg := pgtest.StartDurable(b) // for the whole benchmark (sub-benchmarks run several times); fsync on
	postgres := func(b *testing.B) store.Store {
		st, err := pgstore.Open(context.Background(), pg.NewDatabase(b), nil)
		if err != nil {
			b.Fatal(err)
		}
		return st
	}
	for _, c := range []struct {
		name       string
		open       func(*testing.B) store.Store
		committers int
		batch      int
	}{
		{"sqlite/group", sqlite, 1, 0},
		{"sqlite/single", sqlite, 1, 1},
		{"postgres/group", postgres, 4, 0},
		{"postgres/single", postgres, 32, 1},
	} {
		b.Run(c.name, func(b *testing.B) {
			st := c.open(b)
			defer st.Close()
			s := New(Config{Store: st, Committers: c.committers, MaxBatchRecords: c.batch, RetentionEvery: -1, Rate: ratelimit.Config{PerSecond: -1}})
			defer s.Close()
			set := fleet.GroupSettings{DataStore: fleet.DataStoreSettings{Enabled: true, TimestampPointer: "/ts"}}
			s.host = &testHost{caller: func(_ context.Context, a netip.Addr) (platform.Caller, bool) {
				return platform.Caller{SIM: fleet.SIM{ID: "sim_" + a.String(), GroupID: "grp_bench"}, Group: set}, true
			}}
			var n atomic.Int64
			b.SetParallelism(32)
			b.SetBytes(100)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				id := n.Add(1)
				addr := netip.AddrFrom4([4]byte{10, 128, byte(id >> 8), byte(id)})
				i := 0
				for pb.Next() {
					i++
					msg := fmt.Appendf(nil, `{"ts":1767225600000,"device":%4d,"seq":%8d,"temp":21.5,"pad":"%s"}`, id, i, "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxx")
					if _, err := s.store(context.Background(), "bench", addr, "application/json", func(int) ([]byte, error) { return msg, nil }); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "writes/s")
		})
	}
}

// BenchmarkControlPlaneUnderLoad measures one control-plane write (a group
// created in its own transaction) on SQLite while 64 devices write to the
// data store as fast as they can: group commit keeps device writes to one
// batch at a time on the single writer connection, so a control-plane
// write waits for at most about one batch. Compare ns/op with
// BenchmarkControlPlaneUnderLoad/idle.
func BenchmarkControlPlaneUnderLoad(b *testing.B) {
	for _, load := range []bool{false, true} {
		name := "idle"
		if load {
			name = "64-writers"
		}
		b.Run(name, func(b *testing.B) {
			st, err := sqlitestore.Open(context.Background(), filepath.Join(b.TempDir(), "wirefleet.db"))
			if err != nil {
				b.Fatal(err)
			}
			defer st.Close()
			s := New(Config{Store: st, RetentionEvery: -1, Rate: ratelimit.Config{PerSecond: -1}})
			set := fleet.GroupSettings{DataStore: fleet.DataStoreSettings{Enabled: true}}
			s.host = &testHost{caller: func(_ context.Context, a netip.Addr) (platform.Caller, bool) {
				return platform.Caller{SIM: fleet.SIM{ID: "sim_" + a.String(), GroupID: "grp_bench"}, Group: set}, true
			}}
			stop := make(chan struct{})
			done := make(chan struct{})
			var writes atomic.Int64
			if load {
				for w := range 64 {
					go func() {
						defer func() { done <- struct{}{} }()
						addr := netip.AddrFrom4([4]byte{10, 128, 0, byte(w)})
						msg := []byte(`{"temp":21.5,"pad":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}`)
						for {
							select {
							case <-stop:
								return
							default:
							}
							if _, err := s.store(context.Background(), "bench", addr, "application/json", func(int) ([]byte, error) { return msg, nil }); err == nil {
								writes.Add(1)
							}
						}
					}()
				}
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				g := fleet.Group{ID: fmt.Sprintf("grp_%d", i), Name: fmt.Sprintf("g%d", i)}
				if err := st.Update(context.Background(), func(tx store.Tx) error { return tx.InsertGroup(context.Background(), g) }); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(writes.Load())/b.Elapsed().Seconds(), "device-writes/s")
			close(stop)
			if load {
				for range 64 {
					<-done
				}
			}
			s.Close()
		})
	}
}

// BenchmarkTunnelWrites measures acknowledged writes per second through
// the whole system: 16 devices (in-process golang.zx2c4.com/wireguard on
// userspace stacks) each with 4 writers posting 100-byte JSON messages
// over HTTP keep-alive through their tunnels to an in-process gateway on
// loopback hosting the data store, over SQLite or durable PostgreSQL.
func BenchmarkTunnelWrites(b *testing.B) {
	pg := pgtest.StartDurable(b)
	for _, backend := range []string{"sqlite", "postgres"} {
		b.Run(backend, func(b *testing.B) {
			ctx := context.Background()
			var st store.Store
			var err error
			committers := 1
			if backend == "sqlite" {
				st, err = sqlitestore.Open(ctx, filepath.Join(b.TempDir(), "wirefleet.db"))
			} else {
				st, err = pgstore.Open(ctx, pg.NewDatabase(b), nil)
				committers = 4
			}
			if err != nil {
				b.Fatal(err)
			}
			defer st.Close()
			quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
			ks, _ := keystore.GenerateMemory()
			svc := controlplane.New(st, controlplane.Config{GatewayPublicKey: func() wgkey.Public { return ks.PublicKey() }, Logger: quiet})
			ds := New(Config{Store: st, Logger: quiet, Committers: committers, RetentionEvery: -1, Rate: ratelimit.Config{PerSecond: -1}})
			gw, err := gateway.New(gateway.Config{ControlPlane: svc, KeyStore: ks, Logger: quiet, Services: []platform.Service{ds}})
			if err != nil {
				b.Fatal(err)
			}
			if err := gw.Start(); err != nil {
				b.Fatal(err)
			}
			defer gw.Close()
			grp, err := svc.CreateGroup(ctx, controlplane.System, "bench", fleet.GroupSettings{DataStore: fleet.DataStoreSettings{Enabled: true}})
			if err != nil {
				b.Fatal(err)
			}
			const devices, writersPer = 16, 4
			clients := make([]*http.Client, devices)
			for i := range clients {
				priv, _ := wgkey.NewPrivate()
				sim, _, err := svc.CreateSIM(ctx, controlplane.System, controlplane.SIMSpec{GroupID: grp.ID, PublicKey: priv.Public()})
				if err != nil {
					b.Fatal(err)
				}
				clients[i] = tunnel(b, sim.Address, priv, ks.PublicKey(), int(gw.Port()))
			}
			post := func(c *http.Client, body string) error {
				resp, err := c.Post("http://100.127.111.111/", "application/json", strings.NewReader(body))
				if err != nil {
					return err
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 201 {
					return fmt.Errorf("status %d", resp.StatusCode)
				}
				return nil
			}
			for i, c := range clients { // tunnels up
				for try := 0; post(c, `{"warmup":true}`) != nil; try++ {
					if try == 50 {
						b.Fatalf("device %d: no tunnel", i)
					}
					time.Sleep(100 * time.Millisecond)
				}
			}
			var next atomic.Int64
			b.ResetTimer()
			var wg sync.WaitGroup
			for w := range devices * writersPer {
				wg.Add(1)
				go func() {
					defer wg.Done()
					c := clients[w%devices]
					for {
						i := next.Add(1)
						if i > int64(b.N) {
							return
						}
						if err := post(c, fmt.Sprintf(`{"writer":%3d,"seq":%10d,"temp":21.5,"pad":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}`, w, i)); err != nil {
							b.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			b.StopTimer() // not the teardown
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "writes/s")
		})
	}
}
