// SPDX-License-Identifier: Apache-2.0

package api

import (
	"context"
	"net/http"
	"slices"

	"github.com/wirefleet/wirefleet/controlplane"
	"github.com/wirefleet/wirefleet/controlplane/api/apiv1"
	"github.com/wirefleet/wirefleet/controlplane/audit"
	"github.com/wirefleet/wirefleet/controlplane/store"
	"github.com/wirefleet/wirefleet/fleet"
)

// Request bodies. Keys and addresses are strings here and parsed by hand
// so that a bad one is reported with its field name.

type simCreateRequest struct {
	Name        string            `json:"name"`
	Tags        map[string]string `json:"tags"`
	GroupID     string            `json:"groupId"`
	Address     string            `json:"address"`
	PublicKey   string            `json:"publicKey"`
	GenerateKey bool              `json:"generateKey"`
	Kind        fleet.SIMKind     `json:"kind"`
}

type simPatchRequest struct {
	Name    *string            `json:"name"`
	Tags    *map[string]string `json:"tags"`
	GroupID *string            `json:"groupId"`
}

type groupRequest struct {
	GroupID string `json:"groupId"`
}

type tagsRequest struct {
	Tags map[string]string `json:"tags"`
}

type keyRequest struct {
	PublicKey   string `json:"publicKey"`
	GenerateKey bool   `json:"generateKey"`
	Next        bool   `json:"next"`
}

type groupCreateRequest struct {
	Name     string              `json:"name"`
	Settings fleet.GroupSettings `json:"settings"`
}

type groupPatchRequest struct {
	Name     *string              `json:"name"`
	Settings *fleet.GroupSettings `json:"settings"`
}

type authKeyCreateRequest struct {
	Description string            `json:"description"`
	GroupID     string            `json:"groupId"`
	Tags        map[string]string `json:"tags"`
	TTLSeconds  int64             `json:"ttlSeconds"`
	MaxUses     *int              `json:"maxUses"`
}

type tokenCreateRequest struct {
	Role        fleet.Role `json:"role"`
	Description string     `json:"description"`
	TTLSeconds  int64      `json:"ttlSeconds"`
}

type auditReport struct {
	Findings []audit.Finding `json:"findings"`
}

type wgConfigRequest struct {
	GenerateKey bool `json:"generateKey"`
}

// Response bodies.

// authKeyResponse adds the same auth key written as SORACOM Arc
// credentials, for soratun and other Arc clients.
type authKeyResponse struct {
	apiv1.Secret[fleet.AuthKey]
	ArcAuthKeyID string `json:"arcAuthKeyId"`
	ArcAuthKey   string `json:"arcAuthKey"`
}

func pageReq(r *http.Request) (store.PageRequest, error) {
	n, err := queryInt(r, "limit")
	if err != nil {
		return store.PageRequest{}, err
	}
	if n > store.MaxLimit {
		return store.PageRequest{}, errorf(fleet.CodeInvalid, "limit", "at most %d", store.MaxLimit)
	}
	return store.PageRequest{Limit: n, Cursor: r.URL.Query().Get("cursor")}, nil
}

var pageQuery = []string{"limit", "cursor"}

// handler is a route's operation: the answer is written as JSON (a
// created value as 201), an error as the API's error body.
type handler func(ctx context.Context, a controlplane.Actor, r *http.Request) (any, error)

// The routes that only pass the request's page, or its {id}, to one
// control-plane call share these adapters; the table names that call.

// listed serves a plain list: the page from ?limit and ?cursor.
func listed[T any](list func(context.Context, controlplane.Actor, store.PageRequest) (T, error)) handler {
	return func(ctx context.Context, a controlplane.Actor, r *http.Request) (any, error) {
		p, err := pageReq(r)
		if err != nil {
			return nil, err
		}
		return list(ctx, a, p)
	}
}

// byID serves a read of the object named by the path's {id}.
func byID[T any](get func(context.Context, controlplane.Actor, string) (T, error)) handler {
	return func(ctx context.Context, a controlplane.Actor, r *http.Request) (any, error) {
		return get(ctx, a, r.PathValue("id"))
	}
}

// removeByID serves a delete or revocation of the path's {id} (204).
func removeByID(remove func(context.Context, controlplane.Actor, string) error) handler {
	return func(ctx context.Context, a controlplane.Actor, r *http.Request) (any, error) {
		return nil, remove(ctx, a, r.PathValue("id"))
	}
}

// routes is the API's route table, one resource file each; it registers
// the handlers and drives the OpenAPI document.
func (h *Handler) routes() []route {
	return slices.Concat(h.mappingRoutes(), h.bootstrapRoutes(), h.simRoutes(), h.groupRoutes(), h.authKeyRoutes(), h.tokenRoutes(),
		h.eventRoutes(), h.identityRoutes(), h.dataRoutes(), h.lanRouteRoutes(), h.gatePeerRoutes(), h.captureRoutes(), h.simCardRoutes(), h.nodeRoutes())
}
