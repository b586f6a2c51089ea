// SPDX-License-Identifier: Apache-2.0

package gateway

import (
	"context"
	"slices"
	"time"

	"github.com/wirefleet/wirefleet/controlplane"
	"github.com/wirefleet/wirefleet/fleet"
	"github.com/wirefleet/wirefleet/gateway/monitor"
)

// monitorActor is who the audit trail names for the monitor's actions.
var monitorActor = controlplane.Actor{Kind: "monitor", ID: "gateway", Role: fleet.RoleOperator}

// respond carries out the SIM's group security profile for an alert:
// quarantine or suspend the SIM, and notify the group's webhook. It runs
// on its own goroutine (never the data path); webhooks go to the bounded
// queue of gateway/monitor/webhook.
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
	sec := pol.settings.Security
	actOn := sec.ActOn
	if len(actOn) == 0 {
		actOn = fleet.DefaultActOn
	}
	if (sec.Action == fleet.ActionQuarantine || sec.Action == fleet.ActionSuspend || sec.Action == fleet.ActionRotate) && slices.Contains(actOn, a.Kind) {
		func() {
			ctx, cancel := context.WithTimeout(g.ctx, 10*time.Second)
			defer cancel()
			var err error
			switch sec.Action {
			case fleet.ActionSuspend:
				_, err = g.svc.SetSIMStatus(ctx, monitorActor, a.SIM, fleet.StatusSuspended)
			case fleet.ActionRotate:
				within := time.Duration(sec.RotateWithinHours) * time.Hour
				if within == 0 {
					within = 24 * time.Hour
				}
				_, err = g.svc.RequireKeyRotation(ctx, monitorActor, a.SIM, within)
			case fleet.ActionQuarantine:
				var q fleet.Group
				if q, err = g.st.GroupByName(ctx, sec.QuarantineGroup); err == nil {
					_, err = g.svc.SetSIMGroup(ctx, monitorActor, a.SIM, q.ID)
				}
			}
			if err != nil {
				g.log.Error("security action failed", "sim", a.SIM, "action", sec.Action, "err", err)
				return
			}
			g.log.Warn("security action taken", "sim", a.SIM, "action", sec.Action, "alert", a.Kind)
		}()
	}
	if sec.WebhookURL != "" {
		g.webhooks.Send(sec.WebhookURL, sec.WebhookSecret, a)
	}
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
