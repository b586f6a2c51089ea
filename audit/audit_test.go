package audit

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/wirefleet/wirefleet/controlplane"
	"github.com/wirefleet/wirefleet/fleet"
	"github.com/wirefleet/wirefleet/store"
	"github.com/wirefleet/wirefleet/store/sqlitestore"
)

func TestAudit(t *testing.T) {
	ctx := context.Background()
	st, err := sqlitestore.Open(ctx, filepath.Join(t.TempDir(), "fleet.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	gw, _ := fleet.GeneratePrivateKey()
	svc := controlplane.New(st, controlplane.Config{GatewayPublicKey: gw.PublicKey})
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
	weak.PublicKey = fleet.Key{1}
	if err := st.Update(ctx, func(tx store.Tx) error { return tx.InsertSIM(ctx, weak) }); err != nil {
		t.Fatal(err)
	}
	long, _, _ := svc.CreateAuthKey(ctx, sys, controlplane.AuthKeySpec{TTL: 300 * 24 * time.Hour})
	svc.CreateAuthKey(ctx, sys, controlplane.AuthKeySpec{TTL: 300 * 24 * time.Hour, MaxUses: 1})
	open, _ := svc.CreateGroup(ctx, sys, "open", fleet.GroupSettings{DeviceToDevice: fleet.D2DPolicy{Mode: fleet.D2DGroup}, Security: fleet.SecurityProfile{AllowList: []string{"0.0.0.0/0"}}})
	svc.CreateGroup(ctx, sys, "tight", fleet.GroupSettings{DeviceToDevice: fleet.D2DPolicy{Mode: fleet.D2DGroup, Ports: []uint16{8883}}})

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
		"refused-sim-trying " + refused.ID:       Medium,
		"long-lived-reusable-authkey " + long.ID: Medium,
		"d2d-all-ports " + open.ID:               Low,
		"allow-list-open " + open.ID:             Medium,
	}
	for k, sev := range want {
		if got[k] != sev {
			t.Errorf("missing or wrong finding %q: got %q, want %q", k, got[k], sev)
		}
	}
	if len(findings) != len(want) {
		t.Errorf("%d findings, want %d (nothing about the clean SIM, the one-time key, the tight group)", len(findings), len(want))
	}
}
