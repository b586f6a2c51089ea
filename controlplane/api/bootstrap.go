// SPDX-License-Identifier: Apache-2.0

package api

import (
	"context"
	"net/http"

	"github.com/wirefleet/wirefleet/controlplane"
	"github.com/wirefleet/wirefleet/controlplane/api/apiv1"
)

// bootstrapRoutes are the device routes (bootstrap, key-proof challenge).
func (h *Handler) bootstrapRoutes() []route {
	return []route{
		{method: "POST", path: "/api/v1/bootstrap", summary: "A device exchanges an auth key and its public key for its SIM and session.", request: "BootstrapRequest", response: "BootstrapResponse", handle: h.bootstrap},
		{method: "POST", path: "/api/v1/key-proof/challenge", summary: "A device asks for a single-use challenge (60 s) to prove it holds its WireGuard key (re-bootstrap, Arc re-key).", response: "KeyChallenge", handle: h.keyProofChallenge},
	}
}

// bootstrap serves POST /api/v1/bootstrap: a device exchanges an auth key and its public key for its SIM and session.
func (h *Handler) bootstrap(ctx context.Context, _ controlplane.Actor, r *http.Request) (any, error) {
	var req apiv1.BootstrapRequest
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	key, err := parseKey("publicKey", req.PublicKey)
	if err != nil {
		return nil, err
	}
	sim, sess, err := h.svc.Bootstrap(ctx, controlplane.BootstrapRequest{AuthKey: req.AuthKey, PublicKey: key, GenerateKey: req.GenerateKey, Name: req.Name, KeyProof: req.KeyProof})
	if err != nil {
		return nil, err
	}
	return apiv1.BootstrapResponse{SIM: sim, Session: sess}, nil
}

// keyProofChallenge serves POST /api/v1/key-proof/challenge: a device asks for a single-use challenge (60 s) to prove it holds its WireGuard key (re-bootstrap, Arc re-key).
func (h *Handler) keyProofChallenge(ctx context.Context, _ controlplane.Actor, r *http.Request) (any, error) {
	c, err := h.svc.KeyProofChallenge(ctx)
	if err != nil {
		return nil, err
	}
	return created{c}, nil
}
