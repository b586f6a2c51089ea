// SPDX-License-Identifier: Apache-2.0

package controlplane_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wirefleet/wirefleet/controlplane"
	"github.com/wirefleet/wirefleet/controlplane/store"
	"github.com/wirefleet/wirefleet/controlplane/store/sqlitestore"
	"github.com/wirefleet/wirefleet/fleet"
	"github.com/wirefleet/wirefleet/internal/clock"
)

// A device writing its own tags may not set or change the identity tags
// the forwarder signs (imei, msisdn); an operator may; other tags pass.
func TestDeviceCannotWriteIdentityTags(t *testing.T) {
	ctx := context.Background()
	svc, _ := routeService(t, "")
	admin := controlplane.System
	sim, _, _ := svc.CreateSIM(ctx, admin, controlplane.SIMSpec{GenerateKey: true, Tags: map[string]string{"imei": "356938035643809"}})
	self := controlplane.Actor{Kind: "sim", ID: sim.ID, Role: fleet.RoleOperator}
	for name, tags := range map[string]map[string]string{
		"another device's IMEI": {"imei": "490154203237518"},
		"dropping the IMEI":     {},
		"an MSISDN":             {"imei": "356938035643809", "msisdn": "819012345678"},
	} {
		if _, err := svc.SetSIMTags(ctx, self, sim.ID, tags); code(err) != fleet.CodeForbidden {
			t.Errorf("device, %s: %v", name, err)
		}
	}
	got, err := svc.SetSIMTags(ctx, self, sim.ID, map[string]string{"imei": "356938035643809", "fw": "1.2"})
	if err != nil || got.Tags["fw"] != "1.2" {
		t.Fatalf("device, other tags: %+v %v", got.Tags, err)
	}
	got, err = svc.SetSIMTags(ctx, admin, sim.ID, map[string]string{"imei": "490154203237518", "msisdn": "819012345678"})
	if err != nil || got.Tags["imei"] != "490154203237518" {
		t.Fatalf("operator: %+v %v", got.Tags, err)
	}
}

// An expiring token works until its time, then is refused as expired; a
// lifetime out of range is refused.
func TestTokenExpiry(t *testing.T) {
	ctx := context.Background()
	st, err := sqlitestore.Open(ctx, filepath.Join(t.TempDir(), "fleet.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	clk := clock.NewFake(time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC))
	svc := controlplane.New(st, controlplane.Config{Logger: discard(), Clock: clk})
	tok, secret, err := svc.CreateExpiringToken(ctx, controlplane.System, fleet.RoleViewer, "ci", time.Hour)
	if err != nil || !tok.Expires.Equal(clk.Now().Add(time.Hour)) {
		t.Fatalf("create: %+v %v", tok, err)
	}
	if a, err := svc.Authenticate(ctx, secret); err != nil || a.ID != tok.ID {
		t.Fatalf("before expiry: %+v %v", a, err)
	}
	clk.Advance(time.Hour)
	if _, err := svc.Authenticate(ctx, secret); code(err) != fleet.CodeUnauthorized || !strings.Contains(err.Error(), "expired") {
		t.Fatalf("at expiry: %v", err)
	}
	if _, _, err := svc.CreateExpiringToken(ctx, controlplane.System, fleet.RoleViewer, "", -time.Second); code(err) != fleet.CodeInvalid {
		t.Errorf("a negative lifetime: %v", err)
	}
	forever, s2, _ := svc.CreateToken(ctx, controlplane.System, fleet.RoleViewer, "")
	clk.Advance(100 * 365 * 24 * time.Hour)
	if _, err := svc.Authenticate(ctx, s2); err != nil || !forever.Expires.IsZero() {
		t.Errorf("a token without expiry: %+v %v", forever, err)
	}
	p, _ := svc.ListTokens(ctx, controlplane.System, store.PageRequest{})
	var listed bool
	for _, it := range p.Items {
		listed = listed || it.ID == tok.ID && it.Expires.Equal(tok.Expires)
	}
	if !listed {
		t.Errorf("the list does not show the expiry: %+v", p.Items)
	}
}
