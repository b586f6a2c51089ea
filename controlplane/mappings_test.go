// SPDX-License-Identifier: Apache-2.0

package controlplane_test

import (
	"context"
	"errors"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"github.com/wirefleet/wirefleet/controlplane"
	"github.com/wirefleet/wirefleet/controlplane/store"
	"github.com/wirefleet/wirefleet/controlplane/store/sqlitestore"
	"github.com/wirefleet/wirefleet/fleet"
	"github.com/wirefleet/wirefleet/internal/clock"
)

// TestMappingLifecycle: roles, IPv4-mapped sources written as IPv4,
// ExpireMapping a no-op before expiry and recording once after it (as
// every gateway calls it), an expired mapping's port given again with its
// expiry recorded, and mapping events limited to their own actions.
func TestMappingLifecycle(t *testing.T) {
	ctx := context.Background()
	st, err := sqlitestore.Open(ctx, filepath.Join(t.TempDir(), "fleet.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	now := time.Now()
	svc := controlplane.New(st, controlplane.Config{Logger: discard(), Clock: clock.Func(func() time.Time { return now }),
		Remote: controlplane.RemotePolicy{Host: "h", PortMin: 40000, PortMax: 40000}})
	admin := controlplane.System
	viewer := controlplane.Actor{Kind: "token", ID: "tok_v", Role: fleet.RoleViewer}
	sim, _, err := svc.CreateSIM(ctx, admin, controlplane.SIMSpec{GenerateKey: true})
	if err != nil {
		t.Fatal(err)
	}
	spec := controlplane.MappingSpec{SIMID: sim.ID, Port: 22, Duration: time.Minute, AllowedSources: []netip.Prefix{netip.MustParsePrefix("::ffff:192.0.2.0/120")}}
	if _, err := svc.CreateMapping(ctx, viewer, spec); !isCode(err, fleet.CodeForbidden) {
		t.Fatalf("viewer created a mapping: %v", err)
	}
	m, err := svc.CreateMapping(ctx, admin, spec)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.AllowedSources) != 1 || m.AllowedSources[0] != netip.MustParsePrefix("192.0.2.0/24") || !m.Allows(netip.MustParseAddr("::ffff:192.0.2.9")) {
		t.Fatalf("sources %v", m.AllowedSources)
	}
	if err := svc.DeleteMapping(ctx, viewer, m.ID); !isCode(err, fleet.CodeForbidden) {
		t.Fatalf("viewer deleted a mapping: %v", err)
	}
	if _, err := svc.GetMapping(ctx, viewer, m.ID); err != nil {
		t.Fatalf("viewer cannot read: %v", err)
	}
	if ok, err := svc.ExpireMapping(ctx, m.ID); ok || err != nil {
		t.Fatalf("expired a live mapping: %v %v", ok, err)
	}
	now = now.Add(2 * time.Minute)
	if ok, err := svc.ExpireMapping(ctx, m.ID); !ok || err != nil {
		t.Fatalf("expiry not recorded: %v %v", ok, err)
	}
	if ok, err := svc.ExpireMapping(ctx, m.ID); ok || err != nil {
		t.Fatalf("expiry recorded twice: %v %v", ok, err)
	}
	ev, _ := svc.ListEvents(ctx, admin, store.EventFilter{ObjectID: m.ID, Action: "mapping.expire"})
	if len(ev.Items) != 1 {
		t.Fatalf("%d expiry events", len(ev.Items))
	}

	// The one port: an expired mapping still in the store gives it up, and
	// its expiry is recorded by the allocation.
	m2, err := svc.CreateMapping(ctx, admin, spec)
	if err != nil {
		t.Fatal(err)
	}
	now = now.Add(2 * time.Minute)
	m3, err := svc.CreateMapping(ctx, admin, spec)
	if err != nil || m3.PublicPort != m2.PublicPort {
		t.Fatalf("port of an expired mapping not given again: %+v %v", m3, err)
	}
	if ev, _ := svc.ListEvents(ctx, admin, store.EventFilter{ObjectID: m2.ID, Action: "mapping.expire"}); len(ev.Items) != 1 {
		t.Fatalf("the replaced mapping's expiry was not recorded: %+v", ev.Items)
	}

	if err := svc.RecordMappingEvent(ctx, m3.ID, "192.0.2.1", "sim.suspend", nil); !isCode(err, fleet.CodeInvalid) {
		t.Fatalf("a non-mapping action was recorded: %v", err)
	}
	if err := svc.RecordMappingEvent(ctx, m3.ID, "192.0.2.1", "mapping.connect", map[string]any{"source": "192.0.2.1"}); err != nil {
		t.Fatal(err)
	}
	ev, _ = svc.ListEvents(ctx, admin, store.EventFilter{ObjectID: m3.ID, Action: "mapping.connect"})
	if len(ev.Items) != 1 || ev.Items[0].Actor != "remote:192.0.2.1" {
		t.Fatalf("connect event %+v", ev.Items)
	}
}

func isCode(err error, code string) bool {
	var fe *fleet.Error
	return errors.As(err, &fe) && fe.Code == code
}
