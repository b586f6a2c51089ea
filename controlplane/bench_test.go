// SPDX-License-Identifier: Apache-2.0

package controlplane_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/wirefleet/wirefleet/controlplane"
	"github.com/wirefleet/wirefleet/controlplane/store"
	"github.com/wirefleet/wirefleet/controlplane/store/pgstore"
	"github.com/wirefleet/wirefleet/controlplane/store/pgstore/pgtest"
	"github.com/wirefleet/wirefleet/controlplane/store/sqlitestore"
	"github.com/wirefleet/wirefleet/fleet"
	"github.com/wirefleet/wirefleet/wgkey"
)

// backends opens an empty store of each kind for a benchmark.
var backends = []struct {
	name string
	open func(b *testing.B) store.Store
}{
	{"sqlite", func(b *testing.B) store.Store {
		st, err := sqlitestore.Open(context.Background(), filepath.Join(b.TempDir(), "fleet.db"))
		if err != nil {
			b.Fatal(err)
		}
		return st
	}},
	{"postgres", func(b *testing.B) store.Store {
		srv := pgtest.Start(b)
		st, err := pgstore.Open(context.Background(), srv.NewDatabase(b), nil)
		if err != nil {
			b.Fatal(err)
		}
		return st
	}},
}

// BenchmarkBootstrap measures device bootstraps (auth key check, IMSI and
// address allocation, SIM insert, audit event, change publication — one
// transaction each) with 16 concurrent callers.
func BenchmarkBootstrap(b *testing.B) {
	for _, be := range backends {
		b.Run(be.name, func(b *testing.B) {
			st := be.open(b)
			defer st.Close()
			svc := controlplane.New(st, controlplane.Config{Logger: discard()})
			ctx := context.Background()
			_, secret, err := svc.CreateAuthKey(ctx, controlplane.System, controlplane.AuthKeySpec{MaxUses: 0})
			if err != nil {
				b.Fatal(err)
			}
			keys := make([]wgkey.Public, b.N)
			for i := range keys {
				p, _ := wgkey.NewPrivate()
				keys[i] = p.Public()
			}
			var next = make(chan wgkey.Public, b.N)
			for _, k := range keys {
				next <- k
			}
			close(next)
			b.SetParallelism(16 / max(1, runtimeProcs()))
			b.ResetTimer()
			start := time.Now()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, _, err := svc.Bootstrap(ctx, controlplane.BootstrapRequest{AuthKey: secret, PublicKey: <-next}); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "bootstraps/s")
		})
	}
}

// benchSIMs is how many SIMs BenchmarkListSIMs stores (default 1,000,000;
// WIREFLEET_BENCH_SIMS overrides it for quicker runs).
func benchSIMs(b *testing.B) int {
	if v := os.Getenv("WIREFLEET_BENCH_SIMS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			b.Fatal(err)
		}
		return n
	}
	return 1_000_000
}

// fill stores n SIMs directly through the store in large transactions
// (no audit events): setup, not what is measured.
func fill(b *testing.B, st store.Store, n int) {
	ctx := context.Background()
	base := netip.MustParseAddr("10.128.0.0").As4()
	b0 := binary.BigEndian.Uint32(base[:])
	now := time.Now().UTC()
	const batch = 5000
	start := time.Now()
	for i := 0; i < n; i += batch {
		err := st.Update(ctx, func(tx store.Tx) error {
			for j := i; j < min(n, i+batch); j++ {
				var a [4]byte
				binary.BigEndian.PutUint32(a[:], b0+uint32(j)+2)
				var k wgkey.Public
				binary.BigEndian.PutUint64(k[:], uint64(j)+1)
				status := fleet.StatusActive
				if j%100 == 0 {
					status = fleet.StatusSuspended
				}
				sim := fleet.SIM{ID: fmt.Sprintf("sim_%012d", j), IMSI: fleet.FormatIMSI(int64(j)), Tags: map[string]string{"batch": strconv.Itoa(i)},
					GroupID: fmt.Sprintf("grp_%d", j%10), Status: status, Address: netip.AddrFrom4(a), PublicKey: k, Created: now, Updated: now}
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
	b.Logf("stored %d SIMs in %v", n, time.Since(start).Round(time.Millisecond))
}

// BenchmarkListSIMs measures reading one page of 100 SIMs with many SIMs
// stored: the first page, a page deep in the list (cursor), a page of a
// selective status filter and of a group, and the gateway's lookup by key.
func BenchmarkListSIMs(b *testing.B) {
	for _, be := range backends {
		b.Run(be.name, func(b *testing.B) {
			st := be.open(b)
			defer st.Close()
			n := benchSIMs(b)
			fill(b, st, n)
			ctx := context.Background()
			mid := fmt.Sprintf("sim_%012d", n/2)
			cases := []struct {
				name string
				f    store.SIMFilter
			}{
				{"first-page", store.SIMFilter{PageRequest: store.PageRequest{Limit: 100}}},
				{"deep-page", store.SIMFilter{PageRequest: store.PageRequest{Limit: 100, Cursor: mid}}},
				{"suspended", store.SIMFilter{PageRequest: store.PageRequest{Limit: 100}, Status: fleet.StatusSuspended}},
				{"group", store.SIMFilter{PageRequest: store.PageRequest{Limit: 100, Cursor: mid}, GroupID: "grp_3"}},
			}
			for _, c := range cases {
				b.Run(c.name, func(b *testing.B) {
					for b.Loop() {
						p, err := st.ListSIMs(ctx, c.f)
						if err != nil || len(p.Items) != 100 {
							b.Fatalf("%d items, %v", len(p.Items), err)
						}
					}
				})
			}
			b.Run("count-by-status", func(b *testing.B) {
				for b.Loop() {
					c, err := st.CountSIMs(ctx)
					if err != nil || c[fleet.StatusActive]+c[fleet.StatusSuspended] != int64(n) {
						b.Fatalf("counts %v %v", c, err)
					}
				}
			})
			b.Run("by-public-key", func(b *testing.B) {
				i := 0
				for b.Loop() {
					var k wgkey.Public
					binary.BigEndian.PutUint64(k[:], uint64(i%n)+1)
					if _, err := st.SIMByPublicKey(ctx, k); err != nil {
						b.Fatal(err)
					}
					i += 7919
				}
			})
		})
	}
}
