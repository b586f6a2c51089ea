// SPDX-License-Identifier: Apache-2.0

package api

import (
	"context"
	"net/http"

	"github.com/wirefleet/wirefleet/controlplane"
	"github.com/wirefleet/wirefleet/fleet"
)

// groupRoutes are the group routes.
func (h *Handler) groupRoutes() []route {
	return []route{
		{method: "GET", path: "/api/v1/groups", summary: "List groups.", role: fleet.RoleViewer, response: "GroupPage", query: pageQuery, handle: listed(h.svc.ListGroups)},
		{method: "POST", path: "/api/v1/groups", summary: "Create a group.", role: fleet.RoleOperator, request: "GroupCreateRequest", response: "Group", handle: h.createGroup},
		{method: "GET", path: "/api/v1/groups/{id}", summary: "Get a group.", role: fleet.RoleViewer, response: "Group", handle: byID(h.svc.GetGroup)},
		{method: "PATCH", path: "/api/v1/groups/{id}", summary: "Rename a group or replace its settings.", role: fleet.RoleOperator, request: "GroupPatchRequest", response: "Group", handle: h.patchGroup},
		{method: "DELETE", path: "/api/v1/groups/{id}", summary: "Delete an empty group.", role: fleet.RoleOperator, handle: removeByID(h.svc.DeleteGroup)},
	}
}

// createGroup serves POST /api/v1/groups: create a group.
func (h *Handler) createGroup(ctx context.Context, a controlplane.Actor, r *http.Request) (any, error) {
	var req groupCreateRequest
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	g, err := h.svc.CreateGroup(ctx, a, req.Name, req.Settings)
	if err != nil {
		return nil, err
	}
	return created{g}, nil
}

// patchGroup serves PATCH /api/v1/groups/{id}: rename a group or replace its settings.
func (h *Handler) patchGroup(ctx context.Context, a controlplane.Actor, r *http.Request) (any, error) {
	var req groupPatchRequest
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	return h.svc.UpdateGroup(ctx, a, r.PathValue("id"), req.Name, req.Settings)
}
