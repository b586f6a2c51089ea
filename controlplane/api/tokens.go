// SPDX-License-Identifier: Apache-2.0

package api

import (
	"context"
	"net/http"
	"time"

	"github.com/wirefleet/wirefleet/controlplane"
	"github.com/wirefleet/wirefleet/controlplane/api/apiv1"
	"github.com/wirefleet/wirefleet/fleet"
)

// tokenRoutes are the operator-token routes.
func (h *Handler) tokenRoutes() []route {
	return []route{
		{method: "GET", path: "/api/v1/tokens", summary: "List operator tokens.", role: fleet.RoleAdmin, response: "TokenPage", query: pageQuery, handle: listed(h.svc.ListTokens)},
		{method: "POST", path: "/api/v1/tokens", summary: "Create an operator token; its secret is in this answer only.", role: fleet.RoleAdmin, request: "TokenCreateRequest", response: "TokenSecret", handle: h.createToken},
		{method: "DELETE", path: "/api/v1/tokens/{id}", summary: "Revoke an operator token.", role: fleet.RoleAdmin, handle: removeByID(h.svc.DeleteToken)},
	}
}

// createToken serves POST /api/v1/tokens: create an operator token; its secret is in this answer only.
func (h *Handler) createToken(ctx context.Context, a controlplane.Actor, r *http.Request) (any, error) {
	var req tokenCreateRequest
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	if req.TTLSeconds < 0 || req.TTLSeconds > int64(controlplane.MaxTokenTTL/time.Second) {
		return nil, errorf(fleet.CodeInvalid, "ttlSeconds", "between 1 and %d, or 0 for never", int64(controlplane.MaxTokenTTL/time.Second))
	}
	t, secret, err := h.svc.CreateExpiringToken(ctx, a, req.Role, req.Description, time.Duration(req.TTLSeconds)*time.Second)
	if err != nil {
		return nil, err
	}
	return created{apiv1.Secret[fleet.Token]{Item: t, Secret: secret}}, nil
}
