// SPDX-License-Identifier: Apache-2.0

package audit

import (
	"context"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"github.com/wirefleet/wirefleet/controlplane"
	"github.com/wirefleet/wirefleet/controlplane/store"
	"github.com/wirefleet/wirefleet/controlplane/store/sqlitestore"
	"github.com/wirefleet/wirefleet/fleet"
)

// TestMappingFindings: a live mapping open to 0.0.0.0/0 or ::/0 is high, one
// lasting longer than the policy is medium; a restricted one within policy,
// and an expired open one, are not reported.
func TestMappingFindings(t *testing.T) {
	ctx := context.Background()
	st, err := sqlitestore.Open(ctx, filepath.Join(t.TempDir(), "fleet.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	svc := controlplane.New(st, controlplane.Config{Remote: controlplane.RemotePolicy{Host: "r.example", PortMin: 40000, PortMax: 40100, MaxDuration: 8 * time.Hour}})
	sys := controlplane.System
	sim, _, err := svc.CreateSIM(ctx, sys, controlplane.SIMSpec{GenerateKey: true})
	if err != nil {
		t.Fatal(err)
	}
	mk := func(sources ...string) fleet.MappingView {
		var ps []netip.Prefix
		for _, s := range sources {
			ps = append(ps, netip.MustParsePrefix(s))
		}
		m, err := svc.CreateMapping(ctx, sys, controlplane.MappingSpec{SIMID: sim.ID, Port: 22, Duration: 8 * time.Hour, AllowedSources: ps})
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	open4 := mk("192.0.2.0/24", "0.0.0.0/0")
	open6 := mk("::/0")
	tight := mk("192.0.2.7/32")
	// Written past the API (or under an older, longer policy): 24 h, and
	// an open one already expired.
	now := time.Now().UTC().Truncate(time.Microsecond)
	long := fleet.Mapping{ID: "map_long", SIMID: sim.ID, Port: 80, Host: "r.example", PublicPort: 40200, AllowedSources: []netip.Prefix{netip.MustParsePrefix("192.0.2.7/32")},
		MaxConnections: 16, Created: now, Expires: now.Add(24 * time.Hour), CreatedBy: "token:old"}
	gone := long
	gone.ID, gone.PublicPort, gone.AllowedSources, gone.Created, gone.Expires = "map_gone", 40201, []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0")}, now.Add(-2*time.Hour), now.Add(-time.Hour)
	if err := st.Update(ctx, func(tx store.Tx) error {
		if err := tx.InsertMapping(ctx, long); err != nil {
			return err
		}
		return tx.InsertMapping(ctx, gone)
	}); err != nil {
		t.Fatal(err)
	}

	for _, c := range []struct {
		max  time.Duration
		want map[string]string
	}{
		{0, map[string]string{"mapping-open-to-all " + open4.ID: High, "mapping-open-to-all " + open6.ID: High, "mapping-too-long map_long": Medium}},
		// A stricter policy (4 h) makes the 8 h ones too long as well.
		{4 * time.Hour, map[string]string{"mapping-open-to-all " + open4.ID: High, "mapping-open-to-all " + open6.ID: High, "mapping-too-long map_long": Medium,
			"mapping-too-long " + open4.ID: Medium, "mapping-too-long " + open6.ID: Medium, "mapping-too-long " + tight.ID: Medium}},
	} {
		findings, err := Run(ctx, st, Options{MaxMappingDuration: c.max})
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]string{}
		for _, f := range findings {
			got[f.Check+" "+f.Object] = f.Severity
		}
		for k, sev := range c.want {
			if got[k] != sev {
				t.Errorf("policy %s: finding %q: got %q, want %q", c.max, k, got[k], sev)
			}
		}
		if len(got) != len(c.want) {
			t.Errorf("policy %s: findings %v, want exactly %v", c.max, got, c.want)
		}
	}
}
