// SPDX-License-Identifier: Apache-2.0

package controlplane_test

import (
	"context"
	"errors"
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

// A group change with a bad egress rule is refused with the rule's field,
// and changes nothing.
func TestEgressRulesRefusedWhole(t *testing.T) {
	svc, _ := newService(t)
	ctx := context.Background()
	good := fleet.GroupSettings{Egress: fleet.EgressSettings{Breakout: true, Rules: []fleet.EgressRule{{Action: "allow", Prefix: "203.0.113.0/24"}}}}
	g, err := svc.CreateGroup(ctx, controlplane.System, "out", good)
	if err != nil {
		t.Fatal(err)
	}
	for name, rules := range map[string][]fleet.EgressRule{
		"bad port":    {{Action: "allow", Prefix: "198.51.100.0/24"}, {Action: "allow", Prefix: "192.0.2.0/24", Protocol: "tcp", Ports: "70000"}},
		"bad pattern": {{Action: "allow", FQDN: "*.*.example.com"}},
		"too many":    make([]fleet.EgressRule, fleet.MaxEgressRules+1),
	} {
		bad := good
		bad.Egress.Rules = rules
		_, err := svc.UpdateGroup(ctx, controlplane.System, g.ID, nil, &bad)
		var fe *fleet.Error
		if !errors.As(err, &fe) || fe.Code != fleet.CodeInvalid || !strings.Contains(fe.Field, "egress.rules") {
			t.Errorf("%s: %v, want an invalid egress.rules error", name, err)
		}
	}
	now, err := svc.GetGroup(ctx, controlplane.System, g.ID)
	if err != nil || len(now.Settings.Egress.Rules) != 1 || now.Settings.Egress.Rules[0].Prefix != "203.0.113.0/24" {
		t.Fatalf("the group after refused changes: %+v %v", now.Settings.Egress, err)
	}
}
