// SPDX-License-Identifier: Apache-2.0

package api

import (
	"context"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/wirefleet/wirefleet/arcapi"
	"github.com/wirefleet/wirefleet/audit"
	"github.com/wirefleet/wirefleet/controlplane"
	"github.com/wirefleet/wirefleet/fleet"
	"github.com/wirefleet/wirefleet/store"
	"github.com/wirefleet/wirefleet/wgkey"
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
}

type auditReport struct {
	Findings []audit.Finding `json:"findings"`
}

type bootstrapRequest struct {
	AuthKey     string                 `json:"authKey"`
	PublicKey   string                 `json:"publicKey"`
	GenerateKey bool                   `json:"generateKey"`
	Name        string                 `json:"name"`
	KeyProof    *controlplane.KeyProof `json:"keyProof"`
}

type wgConfigRequest struct {
	GenerateKey bool `json:"generateKey"`
}

// Response bodies.

// simWithKey is a SIM plus, once, a private key the platform generated.
type simWithKey struct {
	fleet.SIM
	PrivateKey wgkey.Private `json:"privateKey,omitzero"`
}

type secretResponse[T any] struct {
	Item   T      `json:"item"`
	Secret string `json:"secret"` // shown once; only its hash is stored
}

// authKeyResponse adds the same auth key written as SORACOM Arc
// credentials, for soratun and other Arc clients.
type authKeyResponse struct {
	secretResponse[fleet.AuthKey]
	ArcAuthKeyID string `json:"arcAuthKeyId"`
	ArcAuthKey   string `json:"arcAuthKey"`
}

type bootstrapResponse struct {
	SIM     fleet.SIM            `json:"sim"`
	Session controlplane.Session `json:"session"`
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

func (h *Handler) routes() []route {
	s := h.svc
	simAction := func(to fleet.Status) func(ctx context.Context, a controlplane.Actor, r *http.Request) (any, error) {
		return func(ctx context.Context, a controlplane.Actor, r *http.Request) (any, error) {
			return s.SetSIMStatus(ctx, a, r.PathValue("id"), to)
		}
	}
	return append(append(append(h.mappingRoutes(), []route{
		{method: "POST", path: "/api/v1/bootstrap", summary: "A device exchanges an auth key and its public key for its SIM and session.", request: "BootstrapRequest", response: "BootstrapResponse",
			handle: func(ctx context.Context, _ controlplane.Actor, r *http.Request) (any, error) {
				var req bootstrapRequest
				if err := decode(r, &req); err != nil {
					return nil, err
				}
				key, err := parseKey("publicKey", req.PublicKey)
				if err != nil {
					return nil, err
				}
				sim, sess, err := s.Bootstrap(ctx, controlplane.BootstrapRequest{AuthKey: req.AuthKey, PublicKey: key, GenerateKey: req.GenerateKey, Name: req.Name, KeyProof: req.KeyProof})
				if err != nil {
					return nil, err
				}
				return bootstrapResponse{SIM: sim, Session: sess}, nil
			}},
		{method: "POST", path: "/api/v1/key-proof/challenge", summary: "A device asks for a single-use challenge (60 s) to prove it holds its WireGuard key (re-bootstrap, Arc re-key).", response: "KeyChallenge",
			handle: func(ctx context.Context, _ controlplane.Actor, r *http.Request) (any, error) {
				c, err := s.KeyProofChallenge(ctx)
				if err != nil {
					return nil, err
				}
				return created{c}, nil
			}},

		{method: "GET", path: "/api/v1/sims", summary: "List SIMs.", role: fleet.RoleViewer, response: "SIMPage", query: []string{"limit", "cursor", "status", "groupId", "tag"},
			handle: func(ctx context.Context, a controlplane.Actor, r *http.Request) (any, error) {
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
				page, err := s.ListSIMs(ctx, a, store.SIMFilter{PageRequest: p, Status: fleet.Status(q.Get("status")), GroupID: q.Get("groupId"), Tags: tags})
				if err != nil {
					return nil, err
				}
				out := store.Page[simView]{Items: make([]simView, len(page.Items)), Next: page.Next}
				for i, sim := range page.Items {
					out.Items[i] = h.view(sim)
				}
				return out, nil
			}},
		{method: "POST", path: "/api/v1/sims", summary: "Create a SIM.", role: fleet.RoleOperator, request: "SIMCreateRequest", response: "SIMWithKey",
			handle: func(ctx context.Context, a controlplane.Actor, r *http.Request) (any, error) {
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
				sim, priv, err := s.CreateSIM(ctx, a, controlplane.SIMSpec{Name: req.Name, Tags: req.Tags, GroupID: req.GroupID, Address: addr, PublicKey: key, GenerateKey: req.GenerateKey})
				if err != nil {
					return nil, err
				}
				return created{simWithKey{SIM: sim, PrivateKey: priv}}, nil
			}},
		{method: "GET", path: "/api/v1/sims/find", summary: "Find a SIM by IMSI, overlay address or public key (?ref=).", role: fleet.RoleViewer, response: "SIM", query: []string{"ref"},
			handle: func(ctx context.Context, a controlplane.Actor, r *http.Request) (any, error) {
				sim, err := s.FindSIM(ctx, a, r.URL.Query().Get("ref"))
				if err != nil {
					return nil, err
				}
				return h.view(sim), nil
			}},
		{method: "GET", path: "/api/v1/sims/{id}", summary: "Get a SIM.", role: fleet.RoleViewer, response: "SIM",
			handle: func(ctx context.Context, a controlplane.Actor, r *http.Request) (any, error) {
				sim, err := s.GetSIM(ctx, a, r.PathValue("id"))
				if err != nil {
					return nil, err
				}
				return h.view(sim), nil
			}},
		{method: "PATCH", path: "/api/v1/sims/{id}", summary: "Change a SIM's name, tags or group.", role: fleet.RoleOperator, request: "SIMPatchRequest", response: "SIM",
			handle: func(ctx context.Context, a controlplane.Actor, r *http.Request) (any, error) {
				var req simPatchRequest
				if err := decode(r, &req); err != nil {
					return nil, err
				}
				return s.PatchSIM(ctx, a, r.PathValue("id"), controlplane.SIMPatch{Name: req.Name, Tags: req.Tags, GroupID: req.GroupID})
			}},
		{method: "POST", path: "/api/v1/sims/{id}/suspend", summary: "Suspend a SIM: its tunnel is cut.", role: fleet.RoleOperator, response: "SIM", handle: simAction(fleet.StatusSuspended)},
		{method: "POST", path: "/api/v1/sims/{id}/resume", summary: "Resume a suspended SIM.", role: fleet.RoleOperator, response: "SIM", handle: simAction(fleet.StatusActive)},
		{method: "POST", path: "/api/v1/sims/{id}/terminate", summary: "Terminate a SIM (final).", role: fleet.RoleOperator, response: "SIM", handle: simAction(fleet.StatusTerminated)},
		{method: "PUT", path: "/api/v1/sims/{id}/group", summary: "Move a SIM to a group.", role: fleet.RoleOperator, request: "SIMGroupRequest", response: "SIM",
			handle: func(ctx context.Context, a controlplane.Actor, r *http.Request) (any, error) {
				var req groupRequest
				if err := decode(r, &req); err != nil {
					return nil, err
				}
				return s.SetSIMGroup(ctx, a, r.PathValue("id"), req.GroupID)
			}},
		{method: "PUT", path: "/api/v1/sims/{id}/tags", summary: "Replace a SIM's tags.", role: fleet.RoleOperator, request: "SIMTagsRequest", response: "SIM",
			handle: func(ctx context.Context, a controlplane.Actor, r *http.Request) (any, error) {
				var req tagsRequest
				if err := decode(r, &req); err != nil {
					return nil, err
				}
				return s.SetSIMTags(ctx, a, r.PathValue("id"), req.Tags)
			}},
		{method: "PUT", path: "/api/v1/sims/{id}/key", summary: "Set a SIM's WireGuard key, or announce its next key (rotation).", role: fleet.RoleOperator, request: "SIMKeyRequest", response: "SIMWithKey",
			handle: func(ctx context.Context, a controlplane.Actor, r *http.Request) (any, error) {
				var req keyRequest
				if err := decode(r, &req); err != nil {
					return nil, err
				}
				key, err := parseKey("publicKey", req.PublicKey)
				if err != nil {
					return nil, err
				}
				sim, priv, err := s.SetSIMKey(ctx, a, r.PathValue("id"), controlplane.KeySpec{PublicKey: key, GenerateKey: req.GenerateKey, Next: req.Next})
				if err != nil {
					return nil, err
				}
				return simWithKey{SIM: sim, PrivateKey: priv}, nil
			}},
		{method: "POST", path: "/api/v1/sims/{id}/require-rotation", summary: "Require the device to replace its key within a time (e.g. \"24h\"); after it the gateway refuses the current key.", role: fleet.RoleOperator, request: "RequireRotationRequest", response: "SIM",
			handle: func(ctx context.Context, a controlplane.Actor, r *http.Request) (any, error) {
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
				return s.RequireKeyRotation(ctx, a, r.PathValue("id"), within)
			}},
		{method: "GET", path: "/api/v1/sims/{id}/wireguard-config", summary: "The SIM's session as a wg-quick file (private key as a placeholder).", role: fleet.RoleViewer, response: "text",
			handle: func(ctx context.Context, a controlplane.Actor, r *http.Request) (any, error) {
				sim, sess, err := s.SessionFor(ctx, a, r.PathValue("id"))
				if err != nil {
					return nil, err
				}
				return text(controlplane.WireGuardConfig(sim, sess)), nil
			}},
		{method: "POST", path: "/api/v1/sims/{id}/wireguard-config", summary: "Re-key the SIM with a platform-generated key and return a complete wg-quick file (the private key is not stored).", role: fleet.RoleOperator, request: "WireGuardConfigRequest", response: "text",
			handle: func(ctx context.Context, a controlplane.Actor, r *http.Request) (any, error) {
				var req wgConfigRequest
				if err := decode(r, &req); err != nil {
					return nil, err
				}
				if !req.GenerateKey {
					return nil, errorf(fleet.CodeInvalid, "generateKey", "must be true; use GET for a configuration without the private key")
				}
				id := r.PathValue("id")
				_, priv, err := s.SetSIMKey(ctx, a, id, controlplane.KeySpec{GenerateKey: true})
				if err != nil {
					return nil, err
				}
				sim, sess, err := s.SessionFor(ctx, a, id)
				if err != nil {
					return nil, err
				}
				sess.PrivateKey = priv
				return text(controlplane.WireGuardConfig(sim, sess)), nil
			}},

		{method: "GET", path: "/api/v1/groups", summary: "List groups.", role: fleet.RoleViewer, response: "GroupPage", query: pageQuery,
			handle: func(ctx context.Context, a controlplane.Actor, r *http.Request) (any, error) {
				p, err := pageReq(r)
				if err != nil {
					return nil, err
				}
				return s.ListGroups(ctx, a, p)
			}},
		{method: "POST", path: "/api/v1/groups", summary: "Create a group.", role: fleet.RoleOperator, request: "GroupCreateRequest", response: "Group",
			handle: func(ctx context.Context, a controlplane.Actor, r *http.Request) (any, error) {
				var req groupCreateRequest
				if err := decode(r, &req); err != nil {
					return nil, err
				}
				g, err := s.CreateGroup(ctx, a, req.Name, req.Settings)
				if err != nil {
					return nil, err
				}
				return created{g}, nil
			}},
		{method: "GET", path: "/api/v1/groups/{id}", summary: "Get a group.", role: fleet.RoleViewer, response: "Group",
			handle: func(ctx context.Context, a controlplane.Actor, r *http.Request) (any, error) {
				return s.GetGroup(ctx, a, r.PathValue("id"))
			}},
		{method: "PATCH", path: "/api/v1/groups/{id}", summary: "Rename a group or replace its settings.", role: fleet.RoleOperator, request: "GroupPatchRequest", response: "Group",
			handle: func(ctx context.Context, a controlplane.Actor, r *http.Request) (any, error) {
				var req groupPatchRequest
				if err := decode(r, &req); err != nil {
					return nil, err
				}
				return s.UpdateGroup(ctx, a, r.PathValue("id"), req.Name, req.Settings)
			}},
		{method: "DELETE", path: "/api/v1/groups/{id}", summary: "Delete an empty group.", role: fleet.RoleOperator,
			handle: func(ctx context.Context, a controlplane.Actor, r *http.Request) (any, error) {
				return nil, s.DeleteGroup(ctx, a, r.PathValue("id"))
			}},

		{method: "GET", path: "/api/v1/authkeys", summary: "List auth keys (never their secrets).", role: fleet.RoleViewer, response: "AuthKeyPage", query: pageQuery,
			handle: func(ctx context.Context, a controlplane.Actor, r *http.Request) (any, error) {
				p, err := pageReq(r)
				if err != nil {
					return nil, err
				}
				return s.ListAuthKeys(ctx, a, p)
			}},
		{method: "POST", path: "/api/v1/authkeys", summary: "Create an auth key; its secret is in this answer only.", role: fleet.RoleOperator, request: "AuthKeyCreateRequest", response: "AuthKeySecret",
			handle: func(ctx context.Context, a controlplane.Actor, r *http.Request) (any, error) {
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
				k, secret, err := s.CreateAuthKey(ctx, a, controlplane.AuthKeySpec{Description: req.Description, GroupID: req.GroupID, Tags: req.Tags, TTL: time.Duration(req.TTLSeconds) * time.Second, MaxUses: maxUses})
				if err != nil {
					return nil, err
				}
				return created{authKeyResponse{secretResponse: secretResponse[fleet.AuthKey]{Item: k, Secret: secret},
					ArcAuthKeyID: arcapi.KeyIDPrefix + k.ID, ArcAuthKey: arcapi.SecretPrefix + secret}}, nil
			}},
		{method: "GET", path: "/api/v1/authkeys/{id}", summary: "Get an auth key.", role: fleet.RoleViewer, response: "AuthKey",
			handle: func(ctx context.Context, a controlplane.Actor, r *http.Request) (any, error) {
				return s.GetAuthKey(ctx, a, r.PathValue("id"))
			}},
		{method: "DELETE", path: "/api/v1/authkeys/{id}", summary: "Revoke an auth key.", role: fleet.RoleOperator,
			handle: func(ctx context.Context, a controlplane.Actor, r *http.Request) (any, error) {
				return nil, s.RevokeAuthKey(ctx, a, r.PathValue("id"))
			}},

		{method: "GET", path: "/api/v1/tokens", summary: "List operator tokens.", role: fleet.RoleAdmin, response: "TokenPage", query: pageQuery,
			handle: func(ctx context.Context, a controlplane.Actor, r *http.Request) (any, error) {
				p, err := pageReq(r)
				if err != nil {
					return nil, err
				}
				return s.ListTokens(ctx, a, p)
			}},
		{method: "POST", path: "/api/v1/tokens", summary: "Create an operator token; its secret is in this answer only.", role: fleet.RoleAdmin, request: "TokenCreateRequest", response: "TokenSecret",
			handle: func(ctx context.Context, a controlplane.Actor, r *http.Request) (any, error) {
				var req tokenCreateRequest
				if err := decode(r, &req); err != nil {
					return nil, err
				}
				t, secret, err := s.CreateToken(ctx, a, req.Role, req.Description)
				if err != nil {
					return nil, err
				}
				return created{secretResponse[fleet.Token]{Item: t, Secret: secret}}, nil
			}},
		{method: "DELETE", path: "/api/v1/tokens/{id}", summary: "Revoke an operator token.", role: fleet.RoleAdmin,
			handle: func(ctx context.Context, a controlplane.Actor, r *http.Request) (any, error) {
				return nil, s.DeleteToken(ctx, a, r.PathValue("id"))
			}},

		{method: "GET", path: "/api/v1/audit", summary: "Audit the fleet's configuration now: findings with severity.", role: fleet.RoleViewer, response: "AuditReport",
			handle: func(ctx context.Context, a controlplane.Actor, r *http.Request) (any, error) {
				findings, err := audit.Run(ctx, s.View(), audit.Options{MaxMappingDuration: s.Config().Remote.MaxDuration})
				if err != nil {
					return nil, err
				}
				if findings == nil {
					findings = []audit.Finding{}
				}
				return auditReport{Findings: findings}, nil
			}},
		{method: "GET", path: "/api/v1/events", summary: "The audit trail, newest first.", role: fleet.RoleViewer, response: "EventPage", query: []string{"limit", "cursor", "objectId", "actor", "action", "since"},
			handle: func(ctx context.Context, a controlplane.Actor, r *http.Request) (any, error) {
				p, err := pageReq(r)
				if err != nil {
					return nil, err
				}
				q := r.URL.Query()
				if c := p.Cursor; c != "" {
					if _, err := strconv.ParseInt(c, 10, 64); err != nil {
						return nil, errorf(fleet.CodeInvalid, "cursor", "not a cursor this API returned")
					}
				}
				f := store.EventFilter{PageRequest: p, ObjectID: q.Get("objectId"), Actor: q.Get("actor"), Action: q.Get("action")}
				if v := q.Get("since"); v != "" {
					if f.Since, err = time.Parse(time.RFC3339, v); err != nil {
						return nil, errorf(fleet.CodeInvalid, "since", "must be an RFC 3339 time")
					}
				}
				return s.ListEvents(ctx, a, f)
			}},
	}...), h.identityRoutes()...), h.dataRoutes()...) // mappings.go, identities.go, data.go
}
