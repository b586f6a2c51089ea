// SPDX-License-Identifier: Apache-2.0

package api

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/wirefleet/wirefleet/controlplane"
	"github.com/wirefleet/wirefleet/controlplane/audit"
	"github.com/wirefleet/wirefleet/controlplane/store"
	"github.com/wirefleet/wirefleet/fleet"
)

// eventRoutes are the audit-trail and configuration-audit routes.
func (h *Handler) eventRoutes() []route {
	return []route{
		{method: "GET", path: "/api/v1/audit", summary: "Audit the fleet's configuration now: findings with severity.", role: fleet.RoleViewer, response: "AuditReport", handle: h.runAudit},
		{method: "GET", path: "/api/v1/events", summary: "The audit trail, newest first.", role: fleet.RoleViewer, response: "EventPage", query: []string{"limit", "cursor", "objectId", "actor", "action", "since"}, handle: h.listEvents},
		{method: "GET", path: "/api/v1/alerts", summary: "The security monitor's alerts (device.alert events), newest first, each with its acknowledgement.", role: fleet.RoleViewer, response: "AlertPage", query: pageQuery, handle: listed(h.svc.ListAlerts)},
		{method: "POST", path: "/api/v1/alerts/{id}/acknowledge", summary: "Acknowledge an alert (once; a second time is a no-op).", role: fleet.RoleOperator, handle: h.acknowledgeAlert},
	}
}

// acknowledgeAlert serves POST /api/v1/alerts/{id}/acknowledge: acknowledge an alert (once; a second time is a no-op).
func (h *Handler) acknowledgeAlert(ctx context.Context, a controlplane.Actor, r *http.Request) (any, error) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id <= 0 {
		return nil, errorf(fleet.CodeNotFound, "id", "no such alert")
	}
	return nil, h.svc.AcknowledgeAlert(ctx, a, id)
}

// runAudit serves GET /api/v1/audit: audit the fleet's configuration now: findings with severity.
func (h *Handler) runAudit(ctx context.Context, a controlplane.Actor, r *http.Request) (any, error) {
	findings, err := audit.Run(ctx, h.svc.View(), audit.Options{MaxMappingDuration: h.svc.Config().Remote.MaxDuration})
	if err != nil {
		return nil, err
	}
	if findings == nil {
		findings = []audit.Finding{}
	}
	return auditReport{Findings: findings}, nil
}

// listEvents serves GET /api/v1/events: the audit trail, newest first.
func (h *Handler) listEvents(ctx context.Context, a controlplane.Actor, r *http.Request) (any, error) {
	p, err := pageReq(r)
	if err != nil {
		return nil, err
	}
	q := r.URL.Query()
	f := store.EventFilter{PageRequest: p, ObjectID: q.Get("objectId"), Actor: q.Get("actor"), Action: q.Get("action")}
	if v := q.Get("since"); v != "" {
		if f.Since, err = time.Parse(time.RFC3339, v); err != nil {
			return nil, errorf(fleet.CodeInvalid, "since", "must be an RFC 3339 time")
		}
	}
	return h.svc.ListEvents(ctx, a, f)
}
