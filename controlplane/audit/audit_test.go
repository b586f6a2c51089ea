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
	"github.com/wirefleet/wirefleet/wgkey"
)

func TestAudit(t *testing.T) {
	ctx := context.Background()
	st, err := sqlitestore.Open(ctx, filepath.Join(t.TempDir(), "fleet.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	gw, _ := wgkey.NewPrivate()
	svc := controlplane.New(st, controlplane.Config{GatewayPublicKey: gw.Public})
	sys := controlplane.System

	clean, _, err := svc.CreateSIM(ctx, sys, controlplane.SIMSpec{GenerateKey: true})
	if err != nil {
		t.Fatal(err)
	}
	refused, _, _ := svc.CreateSIM(ctx, sys, controlplane.SIMSpec{GenerateKey: true})
	svc.SetSIMStatus(ctx, sys, refused.ID, fleet.StatusSuspended)
	svc.RecordDeviceEvent(ctx, refused.ID, "device.handshake_rejected", map[string]any{"status": "suspended"})
	// A low-order key, as legacy data might hold (the API refuses it).
	weak := clean
	weak.ID, weak.IMSI, weak.Address = "sim_weak", "999990000009999", clean.Address.Next().Next()
	weak.PublicKey = wgkey.Public{1}
	if err := st.Update(ctx, func(tx store.Tx) error { return tx.InsertSIM(ctx, weak) }); err != nil {
		t.Fatal(err)
	}
	// Another spelling of the clean SIM's key (the top bit set), as an
	// import might have stored it.
	alias := clean
	alias.ID, alias.IMSI, alias.Address = "sim_alias", "999990000009990", netip.MustParseAddr("10.128.0.202")
	alias.PublicKey[31] |= 0x80
	if err := st.Update(ctx, func(tx store.Tx) error { return tx.InsertSIM(ctx, alias) }); err != nil {
		t.Fatal(err)
	}
	long, _, _ := svc.CreateAuthKey(ctx, sys, controlplane.AuthKeySpec{TTL: 300 * 24 * time.Hour})
	svc.CreateAuthKey(ctx, sys, controlplane.AuthKeySpec{TTL: 300 * 24 * time.Hour, MaxUses: 1})
	open, _ := svc.CreateGroup(ctx, sys, "open", fleet.GroupSettings{DeviceToDevice: fleet.D2DPolicy{Mode: fleet.D2DGroup}, Security: fleet.SecurityProfile{AllowList: []string{"0.0.0.0/0"}}})
	legacy, _ := svc.CreateGroup(ctx, sys, "legacy-arc", fleet.GroupSettings{ArcRekeyWithAuthKey: true})
	svc.CreateGroup(ctx, sys, "tight", fleet.GroupSettings{DeviceToDevice: fleet.D2DPolicy{Mode: fleet.D2DGroup, Ports: []uint16{8883}}})

	// A group rotating keys every 30 days: one SIM's key is 40 days old,
	// another's is fresh; a third was required to rotate and did not.
	rot, _ := svc.CreateGroup(ctx, sys, "rotating", fleet.GroupSettings{Security: fleet.SecurityProfile{KeyMaxAgeDays: 30}})
	fresh, _, _ := svc.CreateSIM(ctx, sys, controlplane.SIMSpec{GenerateKey: true, GroupID: rot.ID})
	stale := fresh
	stale.ID, stale.IMSI, stale.Address = "sim_stale", "999990000009998", netip.MustParseAddr("10.128.0.200")
	stalePriv, _ := wgkey.NewPrivate()
	stale.PublicKey = stalePriv.Public()
	stale.KeySet = time.Now().Add(-40 * 24 * time.Hour)
	overdue := clean
	overdue.ID, overdue.IMSI, overdue.Address = "sim_overdue", "999990000009997", netip.MustParseAddr("10.128.0.201")
	overduePriv, _ := wgkey.NewPrivate()
	overdue.PublicKey = overduePriv.Public()
	overdue.RotateBy = time.Now().Add(-time.Hour)
	if err := st.Update(ctx, func(tx store.Tx) error {
		if err := tx.InsertSIM(ctx, stale); err != nil {
			return err
		}
		return tx.InsertSIM(ctx, overdue)
	}); err != nil {
		t.Fatal(err)
	}
	// A deadline still ahead is no finding.
	if _, err := svc.RequireKeyRotation(ctx, sys, fresh.ID, time.Hour); err != nil {
		t.Fatal(err)
	}

	findings, err := Run(ctx, st, Options{})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, f := range findings {
		got[f.Check+" "+f.Object] = f.Severity
		t.Logf("%s %s %s: %s", f.Severity, f.Check, f.Object, f.Detail)
	}
	want := map[string]string{
		"low-order-key " + weak.ID:               High,
		"non-canonical-key " + alias.ID:          High,
		"refused-sim-trying " + refused.ID:       Medium,
		"long-lived-reusable-authkey " + long.ID: Medium,
		"d2d-all-ports " + open.ID:               Low,
		"allow-list-open " + open.ID:             Medium,
		"key-age " + stale.ID:                    Medium,
		"rotation-overdue " + overdue.ID:         High,
		"arc-rekey-with-authkey " + legacy.ID:    High,
	}
	for k, sev := range want {
		if got[k] != sev {
			t.Errorf("missing or wrong finding %q: got %q, want %q", k, got[k], sev)
		}
	}
	if len(findings) != len(want) {
		t.Errorf("%d findings, want %d (nothing about the clean SIM, the one-time key, the tight group, the fresh key)", len(findings), len(want))
	}
}
