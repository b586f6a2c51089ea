// SPDX-License-Identifier: Apache-2.0

package arcapi

import (
	"bytes"
	"encoding/base64"
	"errors"
	"io"
	"net/http"
	"strings"

	"github.com/wirefleet/wirefleet/controlplane"
	"github.com/wirefleet/wirefleet/controlplane/api/apiv1"
	"github.com/wirefleet/wirefleet/controlplane/arcapi/arcwire"
	"github.com/wirefleet/wirefleet/fleet"
	"github.com/wirefleet/wirefleet/internal/jsonbody"
	"github.com/wirefleet/wirefleet/internal/tokenbucket"
)

// SORACOM Krypton's keys API, for bootstrap by SIM card: the device asks
// for a challenge for its card's IMSI, the card answers it, and the key
// both derive (CK) signs the device's later provisioning requests. The
// platform's side of AKA is controlplane.ChallengeCard / VerifyCardKey.

// imsiLimit bounds challenges per IMSI (on top of the per-source limit):
// a card answers a few a minute; a flood for one IMSI would only burn
// its SQN range.
func newIMSILimit() *tokenbucket.Set[string] { return tokenbucket.NewSet[string](0.2, 10, 65536) }

func b64(field, s string, n int) ([]byte, error) {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil || len(b) != n {
		return nil, fleet.Errorf(fleet.CodeInvalid, field, "%d bytes in standard base64", n)
	}
	return b, nil
}

// keys serves POST /v1/keys: a challenge for the card of an IMSI, or —
// with rand and auts — the next one after resynchronising to the card.
func (h *Handler) keys(w http.ResponseWriter, r *http.Request) {
	var req arcwire.KeysRequest
	if err := decode(r, &req); err != nil {
		h.fail(w, r, err)
		return
	}
	if req.IMSI == "" {
		h.fail(w, r, fleet.Errorf(fleet.CodeRequired, "imsi", "the card's IMSI"))
		return
	}
	if ok, _ := h.imsiLimit.Allow(req.IMSI); !ok {
		writeErr429(w, "too many challenges for this IMSI; retry later")
		return
	}
	var rnd, auts []byte
	if req.AUTS != "" || req.RAND != "" {
		var err error
		if rnd, err = b64("rand", req.RAND, 16); err != nil {
			h.fail(w, r, err)
			return
		}
		if auts, err = b64("auts", req.AUTS, 14); err != nil {
			h.fail(w, r, err)
			return
		}
	}
	ch, err := h.svc.ChallengeCard(r.Context(), req.IMSI, rnd, auts)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, arcwire.KeysResponse{KeyID: ch.KeyID, RAND: base64.StdEncoding.EncodeToString(ch.RAND), AUTN: base64.StdEncoding.EncodeToString(ch.AUTN)})
}

// verifyKey serves POST /v1/keys/{keyId}/verify: the card's RES.
func (h *Handler) verifyKey(w http.ResponseWriter, r *http.Request) {
	var req arcwire.VerifyRequest
	if err := decode(r, &req); err != nil {
		h.fail(w, r, err)
		return
	}
	res, err := base64.StdEncoding.DecodeString(req.RES)
	if err != nil || len(res) < 4 || len(res) > 16 {
		h.fail(w, r, fleet.Errorf(fleet.CodeInvalid, "res", "4 to 16 bytes in standard base64"))
		return
	}
	if err := h.svc.VerifyCardKey(r.Context(), r.PathValue("keyId"), res); err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, struct {
		KeyID string `json:"keyId"`
	}{r.PathValue("keyId")})
}

func writeErr429(w http.ResponseWriter, msg string) {
	w.Header().Set("Retry-After", "5")
	writeJSON(w, http.StatusTooManyRequests, fleet.Errorf(fleet.CodeRateLimited, "", "%s", msg))
}

// Headers of a request signed with a SIM card's CK.
const (
	headerTimestamp = "X-Soracom-Timestamp"        // Unix milliseconds
	headerDigest    = "X-Soracom-Digest-Algorithm" // "SHA-256"
	headerSignature = "X-Soracom-Signature"        // base64(SHA-256(body ‖ timestamp ‖ CK))
)

// signedRequest is the body of a signed provisioning request.
type signedRequest struct {
	KeyID             string         `json:"keyId"`
	RequestParameters map[string]any `json:"requestParameters,omitempty"`
}

// signedCard reads a signed provisioning request and returns its card.
func (h *Handler) signedCard(r *http.Request) (fleet.SIMCard, error) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return fleet.SIMCard{}, fleet.Errorf(fleet.CodeTooLarge, "", "body larger than %d bytes", maxBody)
	}
	var req signedRequest
	if err := jsonbody.Decode(bytes.NewReader(body), &req, maxBody); err != nil {
		return fleet.SIMCard{}, err
	}
	if req.KeyID == "" {
		return fleet.SIMCard{}, fleet.Errorf(fleet.CodeRequired, "keyId", "the key from POST /v1/keys")
	}
	form, sigB64, ts := controlplane.SignatureSORACOM, r.Header.Get(headerSignature), r.Header.Get(headerTimestamp)
	if v := r.Header.Get(apiv1.HeaderCardSignature); v != "" { // our form (apiv1.CardSignature)
		form, sigB64 = controlplane.SignatureHMAC, v
		if t := r.Header.Get(apiv1.HeaderCardTimestamp); t != "" {
			ts = t
		}
	} else if alg := r.Header.Get(headerDigest); alg != "" && !strings.EqualFold(alg, "SHA-256") {
		return fleet.SIMCard{}, fleet.Errorf(fleet.CodeInvalid, "x-soracom-digest-algorithm", "%q: only SHA-256", alg)
	}
	if sigB64 == "" {
		return fleet.SIMCard{}, fleet.Errorf(fleet.CodeUnauthorized, "signature", "the request is not signed (%s)", headerSignature)
	}
	sig, err := base64.StdEncoding.DecodeString(sigB64)
	if err != nil || len(sig) != 32 {
		return fleet.SIMCard{}, fleet.Errorf(fleet.CodeInvalid, "signature", "32 bytes in standard base64")
	}
	return h.svc.CheckCardSignature(r.Context(), controlplane.CardSignedRequest{KeyID: req.KeyID, Path: r.URL.Path, Timestamp: ts, Body: body, Signature: sig, Form: form})
}

// failSigned answers a signed provisioning request's failure. Krypton's
// client takes any status up to 400 as success (it prints the body as the
// result), so a refusal there is never 400: a malformed request is 422.
func (h *Handler) failSigned(w http.ResponseWriter, r *http.Request, err error) {
	var fe *fleet.Error
	if errors.As(err, &fe) && statusOf[fe.Code] == http.StatusBadRequest {
		writeJSON(w, http.StatusUnprocessableEntity, fe)
		return
	}
	h.fail(w, r, err)
}

// cardBootstrap serves a signed POST /v1/provisioning/soracom/arc/bootstrap:
// the card's virtual SIM and its Arc session.
func (h *Handler) cardBootstrap(w http.ResponseWriter, r *http.Request) {
	card, err := h.signedCard(r)
	if err != nil {
		h.failSigned(w, r, err)
		return
	}
	sim, sess, err := h.svc.CardBootstrap(r.Context(), card, controlplane.CardBootstrapRequest{})
	if err != nil {
		h.failSigned(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, toSession(sim, sess))
}

// cardSubscriber is the answer of subscriber_metadata: the card, and its
// virtual SIM once it has one. (SORACOM answers with the card's Air
// subscriber; ours has no Air record, so the card and the SIM it made.)
type cardSubscriber struct {
	IMSI      string            `json:"imsi"`
	ICCID     string            `json:"iccid"`
	Status    fleet.CardStatus  `json:"status"`
	GroupID   string            `json:"groupId,omitempty"`
	SIMID     string            `json:"simId,omitempty"`
	Name      string            `json:"name,omitempty"`
	IPAddress string            `json:"ipAddress,omitempty"`
	Tags      map[string]string `json:"tags"`
}

// cardSubscriberMetadata serves a signed POST
// /v1/provisioning/soracom/air/subscriber_metadata.
func (h *Handler) cardSubscriberMetadata(w http.ResponseWriter, r *http.Request) {
	card, err := h.signedCard(r)
	if err != nil {
		h.failSigned(w, r, err)
		return
	}
	sim, _, err := h.svc.CardSubscriber(r.Context(), card)
	if err != nil {
		h.failSigned(w, r, err)
		return
	}
	out := cardSubscriber{IMSI: card.IMSI, ICCID: card.ICCID, Status: card.Status, GroupID: card.GroupID, Tags: map[string]string{}}
	if sim.ID != "" {
		out.SIMID, out.Name, out.IPAddress, out.GroupID = sim.ID, sim.Name, sim.Address.String(), sim.GroupID
		if sim.Tags != nil {
			out.Tags = sim.Tags
		}
	}
	writeJSON(w, http.StatusOK, out)
}

// cardUserData serves a signed POST /v1/provisioning/soracom/air/userdata:
// the user data of the group the card's SIM is in (text, as the in-tunnel
// metadata's GET /v1/userdata).
func (h *Handler) cardUserData(w http.ResponseWriter, r *http.Request) {
	card, err := h.signedCard(r)
	if err != nil {
		h.failSigned(w, r, err)
		return
	}
	_, group, err := h.svc.CardSubscriber(r.Context(), card)
	if err != nil {
		h.failSigned(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	io.WriteString(w, group.Settings.UserData)
}
