// SPDX-License-Identifier: Apache-2.0

package agent

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/wirefleet/wirefleet/controlplane/api/apiv1"
	"github.com/wirefleet/wirefleet/controlplane/arcapi/arcwire"
	"github.com/wirefleet/wirefleet/usim"
)

// Card references name how the agent reaches the device's SIM card:
//
//	at:/dev/ttyUSB2[?baud=115200]   a cellular modem's AT port (AT+CSIM)
//	pcsc:[reader name part]          a PC/SC reader (pcscd); the first when empty

// OpenCard opens the SIM card ref names.
func OpenCard(ref string) (*usim.Card, error) {
	kind, rest, _ := strings.Cut(ref, ":")
	switch kind {
	case "at":
		path, query, _ := strings.Cut(rest, "?")
		baud := 0
		if query != "" {
			q, err := url.ParseQuery(query)
			if err != nil {
				return nil, fmt.Errorf("agent: card %q: %w", ref, err)
			}
			if v := q.Get("baud"); v != "" {
				if baud, err = strconv.Atoi(v); err != nil || baud <= 0 {
					return nil, fmt.Errorf("agent: card %q: baud %q", ref, v)
				}
			}
		}
		if path == "" {
			return nil, fmt.Errorf("agent: card %q: at:<serial port>", ref)
		}
		m, err := usim.OpenModem(path, baud)
		if err != nil {
			return nil, err
		}
		return usim.Open(m), nil
	case "pcsc":
		p, err := usim.OpenPCSC(rest)
		if err != nil {
			return nil, err
		}
		return usim.Open(p), nil
	}
	return nil, fmt.Errorf("agent: card %q: want at:<serial port> or pcsc:[reader]", ref)
}

// BootstrapCard obtains the device's SIM with its SIM card as the only
// credential: the platform challenges the card (POST /v1/keys), the card
// answers (AUTHENTICATE; a resynchronisation when it asks), the answer is
// verified, and the bootstrap request — the device's own public key, with
// a proof that it holds it — is signed with the key both sides derived
// (CK). Nothing of the card's leaves the device but RES and the IMSI.
func BootstrapCard(ctx context.Context, o BootstrapOptions, card *usim.Card) (*Config, error) {
	if o.Server == "" {
		return nil, errors.New("agent: bootstrap needs a server")
	}
	o = o.withDefaults()
	imsi, err := card.ReadIMSI()
	if err != nil {
		return nil, fmt.Errorf("agent: reading the SIM card: %w", err)
	}
	keyID, ck, err := cardAKA(ctx, o, card, imsi)
	if err != nil {
		return nil, err
	}
	ks, proof, err := provenKey(ctx, o)
	if err != nil {
		return nil, err
	}
	defer CloseKeyStore(ks)
	body, _ := json.Marshal(apiv1.CardBootstrapRequest{KeyID: keyID, PublicKey: ks.PublicKey().String(), Name: o.Name, KeyProof: proof})
	const path = "/api/v1/bootstrap/sim-card"
	ts := strconv.FormatInt(time.Now().UnixMilli(), 10)
	hdr := http.Header{}
	hdr.Set(apiv1.HeaderCardTimestamp, ts)
	hdr.Set(apiv1.HeaderCardSignature, base64.StdEncoding.EncodeToString(apiv1.CardSignature(ck, path, ts, body)))
	var raw json.RawMessage
	if err := post(ctx, o, path, body, hdr, http.StatusOK, &raw); err != nil {
		return nil, err
	}
	return o.saveAnswer(raw)
}

// cardAKA runs the challenge and answer with the card: the verified
// key's id and CK.
func cardAKA(ctx context.Context, o BootstrapOptions, card *usim.Card, imsi string) (string, []byte, error) {
	req := arcwire.KeysRequest{IMSI: imsi}
	for attempt := 0; ; attempt++ {
		var ch arcwire.KeysResponse
		if err := postJSON(ctx, o, "/v1/keys", req, http.StatusOK, &ch); err != nil {
			return "", nil, err
		}
		rnd, err1 := base64.StdEncoding.DecodeString(ch.RAND)
		autn, err2 := base64.StdEncoding.DecodeString(ch.AUTN)
		if err1 != nil || err2 != nil || ch.KeyID == "" {
			return "", nil, errors.New("agent: /v1/keys: a malformed challenge")
		}
		a, err := card.Authenticate(rnd, autn)
		var se *usim.SyncError
		switch {
		case errors.As(err, &se) && attempt == 0:
			// The card is ahead of the platform: it tells where (AUTS), and
			// the next challenge continues from there.
			req = arcwire.KeysRequest{IMSI: imsi, RAND: ch.RAND, AUTS: base64.StdEncoding.EncodeToString(se.AUTS)}
			continue
		case errors.Is(err, usim.ErrMAC):
			return "", nil, errors.New("agent: the SIM card refused the platform's challenge: the platform does not hold this card's keys")
		case err != nil:
			return "", nil, fmt.Errorf("agent: the SIM card's answer: %w", err)
		}
		var ok struct{}
		if err := postJSON(ctx, o, "/v1/keys/"+url.PathEscape(ch.KeyID)+"/verify", arcwire.VerifyRequest{RES: base64.StdEncoding.EncodeToString(a.RES)}, http.StatusOK, &ok); err != nil {
			return "", nil, err
		}
		return ch.KeyID, a.CK, nil
	}
}
