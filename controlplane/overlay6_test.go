// SPDX-License-Identifier: Apache-2.0

package controlplane_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wirefleet/wirefleet/controlplane"
	"github.com/wirefleet/wirefleet/controlplane/store/sqlitestore"
	"github.com/wirefleet/wirefleet/fleet"
)

// The fleet's ULA prefix is drawn once per installation and kept in the
// store: every service over the same database (a restart, another node)
// gets the same one; a configured prefix is taken by a new installation
// and refused, with the stored one named, by an existing one.
func TestOverlay6OncePerInstallation(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "fleet.db")
	open := func(cfg controlplane.Config) *controlplane.Service {
		st, err := sqlitestore.Open(ctx, path)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		return controlplane.New(st, cfg)
	}
	first, err := open(controlplane.Config{}).Overlay6(ctx)
	if err != nil || !first.Enabled() {
		t.Fatalf("first start: %v %v", first, err)
	}
	again, err := open(controlplane.Config{}).Overlay6(ctx)
	if err != nil || again != first {
		t.Fatalf("a second service over the same store: %v %v, want %v", again, err, first)
	}
	if same, err := open(controlplane.Config{ULA: first}).Overlay6(ctx); err != nil || same != first {
		t.Fatalf("configured as stored: %v %v", same, err)
	}
	other, _ := fleet.ParseOverlay6("", "fd12:3456:789a::/48")
	if other == first {
		other, _ = fleet.ParseOverlay6("", "fd12:3456:789b::/48")
	}
	_, err = open(controlplane.Config{ULA: other}).Overlay6(ctx)
	if err == nil || !strings.Contains(err.Error(), first.String()) || !strings.Contains(err.Error(), "renumber") {
		t.Fatalf("a different configured prefix: %v, want a refusal naming %s", err, first)
	}

	// A new installation takes the configured prefix.
	st, err := sqlitestore.Open(ctx, filepath.Join(t.TempDir(), "new.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if got, err := controlplane.New(st, controlplane.Config{ULA: other}).Overlay6(ctx); err != nil || got != other {
		t.Fatalf("new installation with %v: %v %v", other, got, err)
	}
}

// FindSIM takes a SIM's IPv6 address as well as its IPv4 one.
func TestFindSIMByIPv6(t *testing.T) {
	svc, _ := newService(t)
	ctx := context.Background()
	sim, _, err := svc.CreateSIM(ctx, controlplane.System, controlplane.SIMSpec{Name: "six", GenerateKey: true})
	if err != nil {
		t.Fatal(err)
	}
	o6, err := svc.Overlay6(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got, err := svc.FindSIM(ctx, controlplane.System, o6.Addr(sim.Address).String())
	if err != nil || got.ID != sim.ID {
		t.Fatalf("by IPv6 address: %v %v", got.ID, err)
	}
	if _, err := svc.FindSIM(ctx, controlplane.System, "2001:db8::1"); err == nil || !strings.Contains(err.Error(), "outside the fleet's IPv6 overlay") {
		t.Fatalf("an address outside the overlay: %v", err)
	}
}
