// SPDX-License-Identifier: Apache-2.0

package api_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/wirefleet/wirefleet/controlplane"
	"github.com/wirefleet/wirefleet/fleet"
)

// TestAlertsAPI: alerts are listed with no acknowledgement, then with the
// operator's; an unknown alert is 404.
func TestAlertsAPI(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	sim, _, err := e.svc.CreateSIM(ctx, controlplane.System, controlplane.SIMSpec{Name: "cam", GenerateKey: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.svc.RecordDeviceEvent(ctx, sim.ID, controlplane.AlertAction, map[string]any{"kind": "cloned-key", "severity": "high"}); err != nil {
		t.Fatal(err)
	}
	var page struct {
		Items []fleet.Alert `json:"items"`
	}
	e.must("GET", "/api/v1/alerts", fleet.RoleViewer, nil, 200, &page)
	if len(page.Items) != 1 || page.Items[0].ObjectID != sim.ID || page.Items[0].Details["kind"] != "cloned-key" || page.Items[0].Ack != nil {
		t.Fatalf("alerts: %+v", page.Items)
	}
	e.must("POST", fmt.Sprintf("/api/v1/alerts/%d/acknowledge", page.Items[0].ID), fleet.RoleOperator, nil, 204, nil)
	e.must("GET", "/api/v1/alerts", fleet.RoleViewer, nil, 200, &page)
	if page.Items[0].Ack == nil || page.Items[0].Ack.Action != controlplane.AlertAckAction {
		t.Fatalf("after acknowledging: %+v", page.Items[0])
	}
	e.wantError("POST", "/api/v1/alerts/424242/acknowledge", fleet.RoleOperator, nil, 404, fleet.CodeNotFound, "id")
}
