// SPDX-License-Identifier: Apache-2.0

package console_test

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wirefleet/wirefleet/controlplane"
	"github.com/wirefleet/wirefleet/controlplane/console"
	"github.com/wirefleet/wirefleet/controlplane/store"
	"github.com/wirefleet/wirefleet/fleet"
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
			for b.Loop() {
				resp, body := do(b, c, "GET", s.url+p.path, nil, nil)
				if resp.StatusCode != 200 || !strings.Contains(body, "</html>") {
					b.Fatalf("%s: %d", p.path, resp.StatusCode)
				}
			}
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
