// SPDX-License-Identifier: Apache-2.0

package arcapi

import (
	"encoding/base64"
	"net/http"

	"github.com/wirefleet/wirefleet/fleet"
	"github.com/wirefleet/wirefleet/internal/tokenbucket"
)

// SORACOM Krypton's keys API, for bootstrap by SIM card: the device asks
// for a challenge for its card's IMSI, the card answers it, and the key
// both derive (CK) signs the device's later provisioning requests. The
// platform's side of AKA is controlplane.ChallengeCard / VerifyCardKey.

type keysRequest struct {
	IMSI string `json:"imsi"`
	RAND string `json:"rand,omitempty"` // with AUTS: the challenge it answers
	AUTS string `json:"auts,omitempty"`
}

type keysResponse struct {
	KeyID string `json:"keyId"`
	RAND  string `json:"rand"`
	AUTN  string `json:"autn"`
}

type verifyRequest struct {
	RES string `json:"res"`
}

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
	var req keysRequest
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
	writeJSON(w, http.StatusOK, keysResponse{KeyID: ch.KeyID, RAND: base64.StdEncoding.EncodeToString(ch.RAND), AUTN: base64.StdEncoding.EncodeToString(ch.AUTN)})
}

// verifyKey serves POST /v1/keys/{keyId}/verify: the card's RES.
func (h *Handler) verifyKey(w http.ResponseWriter, r *http.Request) {
	var req verifyRequest
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
