// SPDX-License-Identifier: Apache-2.0

package controlplane_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/wirefleet/wirefleet/controlplane"
	"github.com/wirefleet/wirefleet/controlplane/store"
	"github.com/wirefleet/wirefleet/controlplane/store/sqlitestore"
	"github.com/wirefleet/wirefleet/fleet"
	"github.com/wirefleet/wirefleet/wgkey"
)

// A gateway's batches: session records set and cleared in one call;
// device events written together (one of a SIM deleted meanwhile kept, as
// it happened), and a bad action refused before anything is written.
func TestGatewayBatches(t *testing.T) {
	ctx := context.Background()
	st, err := sqlitestore.Open(ctx, filepath.Join(t.TempDir(), "fleet.db"))
	if err != nil {
		t.Fatal(err)
	}
	svc, _ := serviceOver(t, st)
	var ids []string
	for range 3 {
		k, _ := wgkey.NewPrivate()
		sim, _, err := svc.CreateSIM(ctx, admin, controlplane.SIMSpec{PublicKey: k.Public()})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, sim.ID)
	}
	now := time.Now().UTC().Truncate(time.Millisecond)
	set := func(id string) controlplane.PresenceWrite {
		return controlplane.PresenceWrite{Presence: store.Presence{SIMID: id, Gateway: "gw1", Endpoint: "192.0.2.1:1", Since: now}}
	}
	if err := svc.WritePresences(ctx, []controlplane.PresenceWrite{set(ids[0]), set(ids[1]), set(ids[2])}); err != nil {
		t.Fatal(err)
	}
	clear1 := controlplane.PresenceWrite{Presence: store.Presence{SIMID: ids[1], Gateway: "gw1"}, Clear: true}
	if err := svc.WritePresences(ctx, []controlplane.PresenceWrite{clear1}); err != nil {
		t.Fatal(err)
	}
	for i, id := range ids {
		ps, err := st.Presences(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if want := i != 1; (len(ps) == 1) != want {
			t.Fatalf("%s: %v, want online %v", id, ps, want)
		}
	}

	evs := []controlplane.DeviceEvent{
		{SIMID: ids[0], Action: "device.connected"},
		{SIMID: "sim_gone", Action: "device.connected"},
		{SIMID: ids[2], Action: "device.connected", Details: map[string]any{"endpoint": "192.0.2.1:1"}},
	}
	if err := svc.RecordDeviceEvents(ctx, evs); err != nil {
		t.Fatal(err)
	}
	bad := append(evs[:1:1], controlplane.DeviceEvent{SIMID: ids[1], Action: "sim.suspend"})
	wantCode(t, svc.RecordDeviceEvents(ctx, bad), fleet.CodeInvalid, "action")
	pg, err := st.ListEvents(ctx, store.EventFilter{Action: "device.connected"})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for _, e := range pg.Items {
		got[e.ObjectID]++
	}
	if len(pg.Items) != 3 || got[ids[0]] != 1 || got["sim_gone"] != 1 || got[ids[2]] != 1 {
		t.Fatalf("events written: %v", got)
	}
}
