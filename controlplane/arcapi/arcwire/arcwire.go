// SPDX-License-Identifier: Apache-2.0

// Package arcwire holds the wire types of the SORACOM Arc-compatible
// routes (/v1, package arcapi) that the device agent reads too, so that
// neither side mirrors the other by hand. It links no server code.
package arcwire

// Session is the Arc session a bootstrap answers with (and a virtual
// SIM's arcSessionStatus): where the gateway is, its key, the device's
// address and routes, and — only when the platform generated the key —
// the device's private key.
type Session struct {
	ServerEndpoint   string   `json:"arcServerEndpoint"`
	ServerPublicKey  string   `json:"arcServerPeerPublicKey"`
	ClientIPAddress  string   `json:"arcClientPeerIpAddress"`
	ClientPublicKey  string   `json:"arcClientPeerPublicKey"`
	AllowedIPs       []string `json:"arcAllowedIPs"`
	ClientPrivateKey string   `json:"arcClientPeerPrivateKey,omitempty"`
}

// KeysRequest is the body of POST /v1/keys (SORACOM Krypton's keys API):
// a challenge for the card of IMSI, or, with RAND and AUTS (base64), the
// next one after resynchronising to the card.
type KeysRequest struct {
	IMSI string `json:"imsi"`
	RAND string `json:"rand,omitempty"`
	AUTS string `json:"auts,omitempty"`
}

// KeysResponse is a challenge: the key's id and RAND and AUTN (base64).
type KeysResponse struct {
	KeyID string `json:"keyId"`
	RAND  string `json:"rand"`
	AUTN  string `json:"autn"`
}

// VerifyRequest is the body of POST /v1/keys/{keyId}/verify: the card's
// RES (base64).
type VerifyRequest struct {
	RES string `json:"res"`
}
