// SPDX-License-Identifier: Apache-2.0

package api

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/http"

	"github.com/wirefleet/wirefleet/attest"
	"github.com/wirefleet/wirefleet/controlplane"
	"github.com/wirefleet/wirefleet/controlplane/api/apiv1"
	"github.com/wirefleet/wirefleet/controlplane/store"
	"github.com/wirefleet/wirefleet/fleet"
)

// Attestation bootstrap (devices) and identity batches (operators); the
// protocol is in docs/keystores.md.

type attestBootstrapRequest struct {
	IdentityKey string `json:"identityKey"`
	PublicKey   string `json:"publicKey"`
	Nonce       string `json:"nonce"`
	Signature   string `json:"signature"`
	Name        string `json:"name"`
}

type identityBatchCreateRequest struct {
	Name       string            `json:"name"`
	GroupID    string            `json:"groupId"`
	Tags       map[string]string `json:"tags"`
	PublicKeys []string          `json:"publicKeys"`
}

type identityAddRequest struct {
	PublicKeys []string `json:"publicKeys"`
}

func init() {
	identityProps := props{"id": str("fingerprint: hex SHA-256 of the key's DER SubjectPublicKeyInfo"), "publicKey": str("ed25519:<base64> or p256:<base64 uncompressed point>"),
		"batchId": str(""), "status": enum("active", "used", "revoked"), "simId": str("the SIM it created, once used"), "created": dateTime(), "updated": dateTime()}
	for name, schema := range map[string]any{
		"AttestChallenge": obj(props{"nonce": str("32 random bytes, base64; single use"), "expires": dateTime()}, "nonce", "expires"),
		"AttestBootstrapRequest": obj(props{"identityKey": str("the device's identity public key (any form the identity import reads)"), "publicKey": str("WireGuard public key to register, base64"),
			"nonce": str("from POST /api/v1/attest/challenge, base64"), "signature": str("base64: Ed25519 over the attestation message, or ECDSA P-256 over its SHA-256 (DER or raw r||s)"), "name": str("SIM name")},
			"identityKey", "publicKey", "nonce", "signature"),
		"IdentityBatch": obj(props{"id": str(""), "name": str(""), "groupId": str(""), "tags": strMap(), "revoked": boolean(), "created": dateTime(),
			"count": integer(), "used": integer()}),
		"IdentityBatchCreateRequest": obj(props{"name": str("the production lot"), "groupId": str("group of the SIMs"), "tags": strMap(),
			"publicKeys": arr(str("PEM, hex, base64 or alg:base64"))}, "name"),
		"IdentityAddRequest": obj(props{"publicKeys": arr(str(""))}, "publicKeys"),
		"Identity":           obj(identityProps),
		"IdentityBatchPage":  page("IdentityBatch"),
		"IdentityPage":       page("Identity"),
	} {
		schemas[name] = schema
	}
}

// parseIdentityKeys parses publicKeys, naming the first bad one.
func parseIdentityKeys(in []string) ([]attest.PublicKey, error) {
	keys := make([]attest.PublicKey, len(in))
	for i, s := range in {
		k, err := attest.ParsePublicKey(s)
		if err != nil {
			return nil, errorf(fleet.CodeInvalid, fmt.Sprintf("publicKeys[%d]", i), "%v", err)
		}
		keys[i] = k
	}
	return keys, nil
}

func decodeBase64(field, s string) ([]byte, error) {
	if s == "" {
		return nil, errorf(fleet.CodeRequired, field, "missing")
	}
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, errorf(fleet.CodeInvalid, field, "not standard base64")
	}
	return b, nil
}

func (h *Handler) identityRoutes() []route {
	return []route{
		{method: "POST", path: "/api/v1/attest/challenge", summary: "A device asks for a single-use challenge (60 s) to sign with its identity key.", response: "AttestChallenge", handle: h.attestChallenge},
		{method: "POST", path: "/api/v1/attest/bootstrap", summary: "A device proves it holds a registered identity key and gets its SIM and session.", request: "AttestBootstrapRequest", response: "BootstrapResponse", handle: h.attestBootstrap},
		{method: "GET", path: "/api/v1/identity-batches", summary: "List identity batches.", role: fleet.RoleViewer, response: "IdentityBatchPage", query: pageQuery, handle: listed(h.svc.ListIdentityBatches)},
		{method: "POST", path: "/api/v1/identity-batches", summary: "Register a batch of device identity public keys from manufacturing, bound to a group (all or nothing).", role: fleet.RoleOperator, request: "IdentityBatchCreateRequest", response: "IdentityBatch", handle: h.createIdentityBatch},
		{method: "GET", path: "/api/v1/identity-batches/{id}", summary: "Get an identity batch with its counts.", role: fleet.RoleViewer, response: "IdentityBatch", handle: byID(h.svc.GetIdentityBatch)},
		{method: "POST", path: "/api/v1/identity-batches/{id}/identities", summary: "Add identity keys to a batch (large batches are sent in parts).", role: fleet.RoleOperator, request: "IdentityAddRequest", response: "IdentityBatch", handle: h.addIdentities},
		{method: "DELETE", path: "/api/v1/identity-batches/{id}", summary: "Revoke an identity batch and every identity in it (their SIMs stay).", role: fleet.RoleOperator, handle: removeByID(h.svc.RevokeIdentityBatch)},
		{method: "GET", path: "/api/v1/identities", summary: "List device identities, by batch and status.", role: fleet.RoleViewer, response: "IdentityPage", query: []string{"limit", "cursor", "batchId", "status"}, handle: h.listIdentities},
		{method: "GET", path: "/api/v1/identities/{id}", summary: "Get a device identity by fingerprint.", role: fleet.RoleViewer, response: "Identity", handle: byID(h.svc.GetIdentity)},
		{method: "DELETE", path: "/api/v1/identities/{id}", summary: "Revoke a device identity (a SIM it created stays).", role: fleet.RoleOperator, handle: removeByID(h.svc.RevokeIdentity)},
	}
}

// attestChallenge serves POST /api/v1/attest/challenge: a device asks for a single-use challenge (60 s) to sign with its identity key.
func (h *Handler) attestChallenge(ctx context.Context, _ controlplane.Actor, r *http.Request) (any, error) {
	c, err := h.svc.AttestChallenge(ctx)
	if err != nil {
		return nil, err
	}
	return created{c}, nil
}

// attestBootstrap serves POST /api/v1/attest/bootstrap: a device proves it holds a registered identity key and gets its SIM and session.
func (h *Handler) attestBootstrap(ctx context.Context, _ controlplane.Actor, r *http.Request) (any, error) {
	var req attestBootstrapRequest
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	if req.IdentityKey == "" {
		return nil, errorf(fleet.CodeRequired, "identityKey", "missing")
	}
	id, err := attest.ParsePublicKey(req.IdentityKey)
	if err != nil {
		return nil, errorf(fleet.CodeInvalid, "identityKey", "%v", err)
	}
	key, err := parseKey("publicKey", req.PublicKey)
	if err != nil {
		return nil, err
	}
	nonce, err := decodeBase64("nonce", req.Nonce)
	if err != nil {
		return nil, err
	}
	sig, err := decodeBase64("signature", req.Signature)
	if err != nil {
		return nil, err
	}
	sim, sess, err := h.svc.AttestBootstrap(ctx, controlplane.AttestRequest{Identity: id, PublicKey: key, Nonce: nonce, Signature: sig, Name: req.Name})
	if err != nil {
		return nil, err
	}
	return apiv1.BootstrapResponse{SIM: sim, Session: sess}, nil
}

// createIdentityBatch serves POST /api/v1/identity-batches: register a batch of device identity public keys from manufacturing, bound to a group (all or nothing).
func (h *Handler) createIdentityBatch(ctx context.Context, a controlplane.Actor, r *http.Request) (any, error) {
	var req identityBatchCreateRequest
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	keys, err := parseIdentityKeys(req.PublicKeys)
	if err != nil {
		return nil, err
	}
	b, err := h.svc.ImportIdentities(ctx, a, controlplane.IdentityBatchSpec{Name: req.Name, GroupID: req.GroupID, Tags: req.Tags, Keys: keys})
	if err != nil {
		return nil, err
	}
	return created{b}, nil
}

// addIdentities serves POST /api/v1/identity-batches/{id}/identities: add identity keys to a batch (large batches are sent in parts).
func (h *Handler) addIdentities(ctx context.Context, a controlplane.Actor, r *http.Request) (any, error) {
	var req identityAddRequest
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	keys, err := parseIdentityKeys(req.PublicKeys)
	if err != nil {
		return nil, err
	}
	b, err := h.svc.AddIdentities(ctx, a, r.PathValue("id"), keys)
	if err != nil {
		return nil, err
	}
	return created{b}, nil
}

// listIdentities serves GET /api/v1/identities: list device identities, by batch and status.
func (h *Handler) listIdentities(ctx context.Context, a controlplane.Actor, r *http.Request) (any, error) {
	p, err := pageReq(r)
	if err != nil {
		return nil, err
	}
	q := r.URL.Query()
	return h.svc.ListIdentities(ctx, a, store.IdentityFilter{PageRequest: p, BatchID: q.Get("batchId"), Status: fleet.IdentityStatus(q.Get("status"))})
}
