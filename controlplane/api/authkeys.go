// SPDX-License-Identifier: Apache-2.0

package api

import (
	"context"
	"net/http"
	"time"

	"github.com/wirefleet/wirefleet/controlplane"
	"github.com/wirefleet/wirefleet/controlplane/api/apiv1"
	"github.com/wirefleet/wirefleet/controlplane/arcapi"
	"github.com/wirefleet/wirefleet/fleet"
)

// authKeyRoutes are the auth-key routes.
func (h *Handler) authKeyRoutes() []route {
	return []route{
		{method: "GET", path: "/api/v1/authkeys", summary: "List auth keys (never their secrets).", role: fleet.RoleViewer, response: "AuthKeyPage", query: pageQuery, handle: listed(h.svc.ListAuthKeys)},
		{method: "POST", path: "/api/v1/authkeys", summary: "Create an auth key; its secret is in this answer only.", role: fleet.RoleOperator, request: "AuthKeyCreateRequest", response: "AuthKeySecret", handle: h.createAuthKey},
		{method: "GET", path: "/api/v1/authkeys/{id}", summary: "Get an auth key.", role: fleet.RoleViewer, response: "AuthKey", handle: byID(h.svc.GetAuthKey)},
		{method: "DELETE", path: "/api/v1/authkeys/{id}", summary: "Revoke an auth key.", role: fleet.RoleOperator, handle: removeByID(h.svc.RevokeAuthKey)},
	}
}

// createAuthKey serves POST /api/v1/authkeys: create an auth key; its secret is in this answer only.
func (h *Handler) createAuthKey(ctx context.Context, a controlplane.Actor, r *http.Request) (any, error) {
	var req authKeyCreateRequest
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	if req.TTLSeconds < 0 || req.TTLSeconds > int64(controlplane.MaxAuthKeyTTL/time.Second) {
		return nil, errorf(fleet.CodeInvalid, "ttlSeconds", "must be between 1 and %d", int64(controlplane.MaxAuthKeyTTL/time.Second))
	}
	maxUses := 1 // one-time unless asked otherwise
	if req.MaxUses != nil {
		maxUses = *req.MaxUses
	}
	k, secret, err := h.svc.CreateAuthKey(ctx, a, controlplane.AuthKeySpec{Description: req.Description, GroupID: req.GroupID, Tags: req.Tags, TTL: time.Duration(req.TTLSeconds) * time.Second, MaxUses: maxUses})
	if err != nil {
		return nil, err
	}
	return created{authKeyResponse{Secret: apiv1.Secret[fleet.AuthKey]{Item: k, Secret: secret},
		ArcAuthKeyID: arcapi.KeyIDPrefix + k.ID, ArcAuthKey: arcapi.SecretPrefix + secret}}, nil
}
