// SPDX-License-Identifier: Apache-2.0

package api

import (
	"bytes"
	"context"
	"io"
	"net/http"

	"github.com/wirefleet/wirefleet/controlplane"
	"github.com/wirefleet/wirefleet/controlplane/api/apiv1"
	"github.com/wirefleet/wirefleet/fleet"
	"github.com/wirefleet/wirefleet/internal/jsonbody"
)

// bootstrapRoutes are the device routes (bootstrap, key-proof challenge).
func (h *Handler) bootstrapRoutes() []route {
	return []route{
		{method: "POST", path: "/api/v1/bootstrap", summary: "A device exchanges an auth key and its public key for its SIM and session.", request: "BootstrapRequest", response: "BootstrapResponse", handle: h.bootstrap},
		{method: "POST", path: "/api/v1/bootstrap/sim-card", summary: "A device whose SIM card answered a challenge (POST /v1/keys) signs its request with the card's CK (X-Wirefleet-Timestamp, X-Wirefleet-Signature) and gets its SIM and session, keeping its own key.", request: "CardBootstrapRequest", response: "BootstrapResponse", handle: h.cardBootstrap},
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

// cardBootstrap serves POST /api/v1/bootstrap/sim-card: the agent's
// bootstrap by SIM card, signed in our form (apiv1.CardSignature).
func (h *Handler) cardBootstrap(ctx context.Context, _ controlplane.Actor, r *http.Request) (any, error) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return nil, errorf(fleet.CodeTooLarge, "", "body larger than %d bytes", MaxBody)
	}
	var req apiv1.CardBootstrapRequest
	if err := jsonbody.Decode(bytes.NewReader(body), &req, MaxBody); err != nil {
		return nil, err
	}
	if req.KeyID == "" {
		return nil, errorf(fleet.CodeRequired, "keyId", "the key from POST /v1/keys")
	}
	if req.PublicKey == "" {
		return nil, errorf(fleet.CodeRequired, "publicKey", "the device's WireGuard public key")
	}
	key, err := parseKey("publicKey", req.PublicKey)
	if err != nil {
		return nil, err
	}
	sig, err := decodeBase64(apiv1.HeaderCardSignature, r.Header.Get(apiv1.HeaderCardSignature))
	if err != nil {
		return nil, err
	}
	card, err := h.svc.CheckCardSignature(ctx, controlplane.CardSignedRequest{KeyID: req.KeyID, Path: r.URL.Path,
		Timestamp: r.Header.Get(apiv1.HeaderCardTimestamp), Body: body, Signature: sig, Form: controlplane.SignatureHMAC})
	if err != nil {
		return nil, err
	}
	sim, sess, err := h.svc.CardBootstrap(ctx, card, controlplane.CardBootstrapRequest{PublicKey: key, KeyProof: req.KeyProof, Name: req.Name})
	if err != nil {
		return nil, err
	}
	return apiv1.BootstrapResponse{SIM: sim, Session: sess}, nil
}
