package datastore

import (
	"context"
	"fmt"
	"net/netip"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/wirefleet/wirefleet/fleet"
	"github.com/wirefleet/wirefleet/gateway"
	"github.com/wirefleet/wirefleet/store"
	"github.com/wirefleet/wirefleet/store/pgstore"
	"github.com/wirefleet/wirefleet/store/pgstore/pgtest"
	"github.com/wirefleet/wirefleet/store/sqlitestore"
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
			s := New(Config{Store: st, Committers: c.committers, MaxBatchRecords: c.batch, RetentionEvery: -1})
			defer s.Close()
			set := fleet.GroupSettings{DataStore: fleet.DataStoreSettings{Enabled: true, TimestampPointer: "/ts"}}
			s.caller = func(_ context.Context, a netip.Addr) (gateway.Caller, bool) {
				return gateway.Caller{SIM: fleet.SIM{ID: "sim_" + a.String(), GroupID: "grp_bench"}, Group: set}, true
			}
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
			s := New(Config{Store: st, RetentionEvery: -1})
			set := fleet.GroupSettings{DataStore: fleet.DataStoreSettings{Enabled: true}}
			s.caller = func(_ context.Context, a netip.Addr) (gateway.Caller, bool) {
				return gateway.Caller{SIM: fleet.SIM{ID: "sim_" + a.String(), GroupID: "grp_bench"}, Group: set}, true
			}
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
