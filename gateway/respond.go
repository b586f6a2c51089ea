// SPDX-License-Identifier: Apache-2.0

package gateway

import (
	"context"
	"time"

	"github.com/wirefleet/wirefleet/controlplane"
	"github.com/wirefleet/wirefleet/controlplane/store"
	"github.com/wirefleet/wirefleet/fleet"
	"github.com/wirefleet/wirefleet/gateway/monitor"
	"github.com/wirefleet/wirefleet/gateway/monitor/response"
)

// monitorActor is who the audit trail names for the monitor's actions.
var monitorActor = controlplane.Actor{Kind: "monitor", ID: "gateway", Role: fleet.RoleOperator}

// respond hands an alert and the SIM's group security profile to the
// responder (gateway/monitor/response). It runs on its own goroutine,
// never the data path.
func (g *Gateway) respond(a monitor.Alert) {
	groupID := g.simGroup(a.SIM)
	if groupID == "" {
		return
	}
	g.policies.ensure(g.ctx, g.st, groupID)
	pol := g.policies.get(groupID)
	if pol == nil {
		return
	}
	g.responder.Respond(g.ctx, a, pol.settings.Security)
}

// simGroup returns the group of a SIM the gateway holds.
func (g *Gateway) simGroup(simID string) string {
	g.regMu.Lock()
	defer g.regMu.Unlock()
	for _, st := range g.reg[simID] {
		return st.SIM().GroupID
	}
	return ""
}

// monitorActions are the responder's actions, taken through the control
// plane as the monitor.
type monitorActions struct {
	svc *controlplane.Service
	st  store.View
}

var _ response.Actions = monitorActions{}

// Suspend implements response.Actions.
func (m monitorActions) Suspend(ctx context.Context, simID string) error {
	_, err := m.svc.SetSIMStatus(ctx, monitorActor, simID, fleet.StatusSuspended)
	return err
}

// RequireRotation implements response.Actions.
func (m monitorActions) RequireRotation(ctx context.Context, simID string, within time.Duration) error {
	_, err := m.svc.RequireKeyRotation(ctx, monitorActor, simID, within)
	return err
}

// Quarantine implements response.Actions.
func (m monitorActions) Quarantine(ctx context.Context, simID, group string) error {
	q, err := m.st.GroupByName(ctx, group)
	if err != nil {
		return err
	}
	_, err = m.svc.SetSIMGroup(ctx, monitorActor, simID, q.ID)
	return err
}
