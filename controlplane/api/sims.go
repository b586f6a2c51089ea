// SPDX-License-Identifier: Apache-2.0

package api

import (
	"context"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/wirefleet/wirefleet/controlplane"
	"github.com/wirefleet/wirefleet/controlplane/api/apiv1"
	"github.com/wirefleet/wirefleet/controlplane/store"
	"github.com/wirefleet/wirefleet/fleet"
)

// simRoutes are the SIM routes.
func (h *Handler) simRoutes() []route {
	return []route{
		{method: "GET", path: "/api/v1/sims", summary: "List SIMs (by id; with name, those whose name starts with it, by name).", role: fleet.RoleViewer, response: "SIMPage", query: []string{"limit", "cursor", "status", "groupId", "tag", "name"}, handle: h.listSIMs},
		{method: "POST", path: "/api/v1/sims", summary: "Create a SIM.", role: fleet.RoleOperator, request: "SIMCreateRequest", response: "SIMWithKey", handle: h.createSIM},
		{method: "GET", path: "/api/v1/sims/find", summary: "Find a SIM by IMSI, overlay address or public key (?ref=).", role: fleet.RoleViewer, response: "SIM", query: []string{"ref"}, handle: h.findSIM},
		{method: "GET", path: "/api/v1/sims/{id}", summary: "Get a SIM.", role: fleet.RoleViewer, response: "SIM", handle: h.getSIM},
		{method: "PATCH", path: "/api/v1/sims/{id}", summary: "Change a SIM's name, tags or group.", role: fleet.RoleOperator, request: "SIMPatchRequest", response: "SIM", handle: h.patchSIM},
		{method: "POST", path: "/api/v1/sims/{id}/suspend", summary: "Suspend a SIM: its tunnel is cut.", role: fleet.RoleOperator, response: "SIM", handle: h.simAction(fleet.StatusSuspended)},
		{method: "POST", path: "/api/v1/sims/{id}/resume", summary: "Resume a suspended SIM.", role: fleet.RoleOperator, response: "SIM", handle: h.simAction(fleet.StatusActive)},
		{method: "POST", path: "/api/v1/sims/{id}/terminate", summary: "Terminate a SIM (final).", role: fleet.RoleOperator, response: "SIM", handle: h.simAction(fleet.StatusTerminated)},
		{method: "PUT", path: "/api/v1/sims/{id}/group", summary: "Move a SIM to a group.", role: fleet.RoleOperator, request: "SIMGroupRequest", response: "SIM", handle: h.setSIMGroup},
		{method: "PUT", path: "/api/v1/sims/{id}/tags", summary: "Replace a SIM's tags.", role: fleet.RoleOperator, request: "SIMTagsRequest", response: "SIM", handle: h.setSIMTags},
		{method: "PUT", path: "/api/v1/sims/{id}/key", summary: "Set a SIM's WireGuard key, or announce its next key (rotation).", role: fleet.RoleOperator, request: "SIMKeyRequest", response: "SIMWithKey", handle: h.setSIMKey},
		{method: "POST", path: "/api/v1/sims/{id}/require-rotation", summary: "Require the device to replace its key within a time (e.g. \"24h\"); after it the gateway refuses the current key.", role: fleet.RoleOperator, request: "RequireRotationRequest", response: "SIM", handle: h.requireRotation},
		{method: "GET", path: "/api/v1/sims/{id}/wireguard-config", summary: "The SIM's session as a wg-quick file (private key as a placeholder).", role: fleet.RoleViewer, response: "text", handle: h.wireGuardConfig},
		{method: "POST", path: "/api/v1/sims/{id}/wireguard-config", summary: "Re-key the SIM with a platform-generated key and return a complete wg-quick file (the private key is not stored).", role: fleet.RoleOperator, request: "WireGuardConfigRequest", response: "text", handle: h.rekeyWireGuardConfig},
	}
}

// listSIMs serves GET /api/v1/sims: list SIMs.
func (h *Handler) listSIMs(ctx context.Context, a controlplane.Actor, r *http.Request) (any, error) {
	p, err := pageReq(r)
	if err != nil {
		return nil, err
	}
	q := r.URL.Query()
	var tags map[string]string
	for _, kv := range q["tag"] {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, errorf(fleet.CodeInvalid, "tag", "want key=value")
		}
		if tags == nil {
			tags = map[string]string{}
		}
		tags[k] = v
	}
	page, err := h.svc.ListSIMs(ctx, a, store.SIMFilter{PageRequest: p, Status: fleet.Status(q.Get("status")), GroupID: q.Get("groupId"), Tags: tags, NamePrefix: q.Get("name")})
	if err != nil {
		return nil, err
	}
	out := store.Page[apiv1.SIM]{Items: make([]apiv1.SIM, len(page.Items)), Next: page.Next}
	for i, sim := range page.Items {
		out.Items[i] = h.view(ctx, sim)
	}
	return out, nil
}

// createSIM serves POST /api/v1/sims: create a SIM.
func (h *Handler) createSIM(ctx context.Context, a controlplane.Actor, r *http.Request) (any, error) {
	var req simCreateRequest
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	key, err := parseKey("publicKey", req.PublicKey)
	if err != nil {
		return nil, err
	}
	var addr netip.Addr
	if req.Address != "" {
		if addr, err = netip.ParseAddr(req.Address); err != nil || !addr.Is4() {
			return nil, errorf(fleet.CodeInvalid, "address", "not an IPv4 address")
		}
	}
	sim, priv, err := h.svc.CreateSIM(ctx, a, controlplane.SIMSpec{Name: req.Name, Tags: req.Tags, GroupID: req.GroupID, Address: addr, PublicKey: key, GenerateKey: req.GenerateKey, Kind: req.Kind})
	if err != nil {
		return nil, err
	}
	v := h.view(ctx, sim)
	v.PrivateKey = priv
	return created{v}, nil
}

// findSIM serves GET /api/v1/sims/find: find a SIM by IMSI, overlay address or public key (?ref=).
func (h *Handler) findSIM(ctx context.Context, a controlplane.Actor, r *http.Request) (any, error) {
	sim, err := h.svc.FindSIM(ctx, a, r.URL.Query().Get("ref"))
	if err != nil {
		return nil, err
	}
	return h.view(ctx, sim), nil
}

// getSIM serves GET /api/v1/sims/{id}: get a SIM.
func (h *Handler) getSIM(ctx context.Context, a controlplane.Actor, r *http.Request) (any, error) {
	sim, err := h.svc.GetSIM(ctx, a, r.PathValue("id"))
	if err != nil {
		return nil, err
	}
	return h.view(ctx, sim), nil
}

// patchSIM serves PATCH /api/v1/sims/{id}: change a SIM's name, tags or group.
func (h *Handler) patchSIM(ctx context.Context, a controlplane.Actor, r *http.Request) (any, error) {
	var req simPatchRequest
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	return h.svc.PatchSIM(ctx, a, r.PathValue("id"), controlplane.SIMPatch{Name: req.Name, Tags: req.Tags, GroupID: req.GroupID})
}

// setSIMGroup serves PUT /api/v1/sims/{id}/group: move a SIM to a group.
func (h *Handler) setSIMGroup(ctx context.Context, a controlplane.Actor, r *http.Request) (any, error) {
	var req groupRequest
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	return h.svc.SetSIMGroup(ctx, a, r.PathValue("id"), req.GroupID)
}

// setSIMTags serves PUT /api/v1/sims/{id}/tags: replace a SIM's tags.
func (h *Handler) setSIMTags(ctx context.Context, a controlplane.Actor, r *http.Request) (any, error) {
	var req tagsRequest
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	return h.svc.SetSIMTags(ctx, a, r.PathValue("id"), req.Tags)
}

// setSIMKey serves PUT /api/v1/sims/{id}/key: set a SIM's WireGuard key, or announce its next key (rotation).
func (h *Handler) setSIMKey(ctx context.Context, a controlplane.Actor, r *http.Request) (any, error) {
	var req keyRequest
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	key, err := parseKey("publicKey", req.PublicKey)
	if err != nil {
		return nil, err
	}
	sim, priv, err := h.svc.SetSIMKey(ctx, a, r.PathValue("id"), controlplane.KeySpec{PublicKey: key, GenerateKey: req.GenerateKey, Next: req.Next})
	if err != nil {
		return nil, err
	}
	v := h.view(ctx, sim)
	v.PrivateKey = priv
	return v, nil
}

// requireRotation serves POST /api/v1/sims/{id}/require-rotation: require the device to replace its key within a time (e.g. "24h"); after it the gateway refuses the current key.
func (h *Handler) requireRotation(ctx context.Context, a controlplane.Actor, r *http.Request) (any, error) {
	var req struct {
		Within string `json:"within"`
	}
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	within, err := time.ParseDuration(req.Within)
	if err != nil {
		return nil, fleet.Errorf(fleet.CodeInvalid, "within", "a duration such as \"24h\"")
	}
	return h.svc.RequireKeyRotation(ctx, a, r.PathValue("id"), within)
}

// wireGuardConfig serves GET /api/v1/sims/{id}/wireguard-config: the SIM's session as a wg-quick file (private key as a placeholder).
func (h *Handler) wireGuardConfig(ctx context.Context, a controlplane.Actor, r *http.Request) (any, error) {
	sim, sess, err := h.svc.SessionFor(ctx, a, r.PathValue("id"))
	if err != nil {
		return nil, err
	}
	return text(controlplane.WireGuardConfig(sim, sess)), nil
}

// rekeyWireGuardConfig serves POST /api/v1/sims/{id}/wireguard-config: re-key the SIM with a platform-generated key and return a complete wg-quick file (the private key is not stored).
func (h *Handler) rekeyWireGuardConfig(ctx context.Context, a controlplane.Actor, r *http.Request) (any, error) {
	var req wgConfigRequest
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	if !req.GenerateKey {
		return nil, errorf(fleet.CodeInvalid, "generateKey", "must be true; use GET for a configuration without the private key")
	}
	id := r.PathValue("id")
	_, priv, err := h.svc.SetSIMKey(ctx, a, id, controlplane.KeySpec{GenerateKey: true})
	if err != nil {
		return nil, err
	}
	sim, sess, err := h.svc.SessionFor(ctx, a, id)
	if err != nil {
		return nil, err
	}
	sess.PrivateKey = priv
	return text(controlplane.WireGuardConfig(sim, sess)), nil
}

// simAction serves a status change of the SIM named in the path.
func (h *Handler) simAction(to fleet.Status) func(ctx context.Context, a controlplane.Actor, r *http.Request) (any, error) {
	return func(ctx context.Context, a controlplane.Actor, r *http.Request) (any, error) {
		return h.svc.SetSIMStatus(ctx, a, r.PathValue("id"), to)
	}
}
