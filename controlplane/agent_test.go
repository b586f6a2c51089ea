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

// TestReportAgent: a device's report is kept with one device.agent event
// per change (the same report again writes nothing, a change within
// AgentChangeEvery of the last waits); a report that is not a short
// printable label is refused and changes nothing.
func TestReportAgent(t *testing.T) {
	ctx := context.Background()
	st, err := sqlitestore.Open(ctx, filepath.Join(t.TempDir(), "fleet.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	clk := clock.NewFake(time.Now())
	svc := controlplane.New(st, controlplane.Config{Clock: clk})
	sim, _, err := svc.CreateSIM(ctx, controlplane.System, controlplane.SIMSpec{GenerateKey: true})
	if err != nil {
		t.Fatal(err)
	}
	report := func(a string) {
		t.Helper()
		if err := svc.ReportAgent(ctx, sim.ID, a); err != nil {
			t.Fatal(err)
		}
	}
	report("wirefleet-agent/v1")
	report("wirefleet-agent/v1")
	clk.Advance(controlplane.AgentChangeEvery - time.Second)
	report("curl/8.5.0") // a flip within the window: not recorded
	if got, _ := svc.GetSIM(ctx, controlplane.System, sim.ID); got.Agent != "wirefleet-agent/v1" {
		t.Fatalf("a change within the window was recorded: %q", got.Agent)
	}
	clk.Advance(2 * time.Second)
	report("wirefleet-agent/v2")
	for _, bad := range []string{"line\nbreak", strings.Repeat("x", fleet.MaxAgentLen+1)} {
		if err := svc.ReportAgent(ctx, sim.ID, bad); err == nil {
			t.Errorf("report %q accepted", bad)
		}
	}
	if err := svc.ReportAgent(ctx, "sim_nope", "x/1"); err == nil {
		t.Error("a report for no SIM accepted")
	}
	got, _ := svc.GetSIM(ctx, controlplane.System, sim.ID)
	if got.Agent != "wirefleet-agent/v2" || got.AgentSeen.IsZero() {
		t.Fatalf("agent %q seen %v", got.Agent, got.AgentSeen)
	}
	evs, _ := svc.ListEvents(ctx, controlplane.System, store.EventFilter{ObjectID: sim.ID, Action: "device.agent"})
	if len(evs.Items) != 2 || evs.Items[0].Details["from"] != "wirefleet-agent/v1" {
		t.Fatalf("device.agent events: %+v", evs.Items)
	}
}
