// SPDX-License-Identifier: Apache-2.0

// Package apiv1 holds the wire types of the REST API (/api/v1) that the
// server (package api), the operator CLI and the device agent share, so
// that no side mirrors the other by hand. It links no server code.
package apiv1

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"mime"
	"net/netip"
	"strings"
	"time"

	"github.com/wirefleet/wirefleet/fleet"
	"github.com/wirefleet/wirefleet/keyproof"
	"github.com/wirefleet/wirefleet/wgkey"
)

// Page is one page of a list; Next is the cursor of the next ("" at the end).
type Page[T any] struct {
	Items []T    `json:"items"`
	Next  string `json:"next,omitempty"`
}

// Secret is a created object with its secret, shown once (only a hash of
// it is stored).
type Secret[T any] struct {
	Item   T      `json:"item"`
	Secret string `json:"secret"`
}

// SIM is a SIM as the API shows it: with its live connection when the
// gateway knows it, and, once, the private key the platform generated.
type SIM struct {
	fleet.SIM
	// Address6 is the SIM's IPv6 overlay address, the twin of Address
	// (fleet.Overlay6); absent in a fleet without IPv6.
	Address6   netip.Addr        `json:"address6,omitzero"`
	PrivateKey wgkey.Private     `json:"privateKey,omitzero"`
	Connection *fleet.Connection `json:"connection,omitempty"`
}

// BootstrapRequest is the body of POST /api/v1/bootstrap: a device
// exchanges an auth key and its public key (a string, so that a bad one is
// reported with its field name) for its SIM, proving it holds the key.
type BootstrapRequest struct {
	AuthKey     string          `json:"authKey"`
	PublicKey   string          `json:"publicKey"`
	GenerateKey bool            `json:"generateKey"`
	Name        string          `json:"name"`
	KeyProof    *keyproof.Reply `json:"keyProof"`
}

// CardBootstrapRequest is the body of POST /api/v1/bootstrap/sim-card: the
// agent's bootstrap by SIM card, signed with the card's CK (CardSignature).
// PublicKey is the device's own key (it may live in a secure element);
// KeyProof proves it holds it.
type CardBootstrapRequest struct {
	KeyID     string          `json:"keyId"`
	PublicKey string          `json:"publicKey"`
	Name      string          `json:"name,omitempty"`
	KeyProof  *keyproof.Reply `json:"keyProof,omitempty"`
}

// Headers of a request signed with a SIM card's CK in our form.
const (
	HeaderCardTimestamp = "X-Wirefleet-Timestamp" // Unix milliseconds
	HeaderCardSignature = "X-Wirefleet-Signature" // base64 of CardSignature
)

// CardSignature is our form of a request's signature with a SIM card's CK:
// HMAC-SHA256 keyed by CK over the path, the timestamp and the body, each
// part ended by a newline but the body. Unlike Krypton's keyed hash
// (SHA-256 of body ‖ timestamp ‖ CK) it is a MAC, and it binds the route.
func CardSignature(ck []byte, path, timestamp string, body []byte) []byte {
	m := hmac.New(sha256.New, ck)
	m.Write([]byte(path + "\n" + timestamp + "\n"))
	m.Write(body)
	return m.Sum(nil)
}

// BootstrapResponse answers a bootstrap (auth key or attestation).
type BootstrapResponse struct {
	SIM     fleet.SIM     `json:"sim"`
	Session fleet.Session `json:"session"`
}

// DataRecord is a data-store record as the API shows it: a JSON payload
// inline, any other payload in base64.
type DataRecord struct {
	ID            int64           `json:"id"`
	SIMID         string          `json:"simId"`
	GroupID       string          `json:"groupId"`
	Time          time.Time       `json:"time"`
	Received      time.Time       `json:"received"`
	Category      string          `json:"category"`
	ContentType   string          `json:"contentType"`
	Size          int             `json:"size"`
	Payload       json.RawMessage `json:"payload,omitempty"`
	PayloadBase64 string          `json:"payloadBase64,omitempty"`
}

// NewDataRecord converts a stored record.
func NewDataRecord(r fleet.Record) DataRecord {
	d := DataRecord{ID: r.ID, SIMID: r.SIMID, GroupID: r.GroupID, Time: r.Time, Received: r.Received, Category: r.Category, ContentType: r.ContentType, Size: len(r.Payload)}
	mt, _, _ := mime.ParseMediaType(r.ContentType)
	if (mt == "application/json" || strings.HasSuffix(mt, "+json")) && json.Valid(r.Payload) {
		d.Payload = json.RawMessage(r.Payload)
	} else {
		d.PayloadBase64 = base64.StdEncoding.EncodeToString(r.Payload)
	}
	return d
}

// Capture is a packet capture session as the API shows it: its duration
// in seconds.
type Capture struct {
	fleet.Capture
	Duration int64 `json:"duration"`
}

// CaptureOf is c as the API shows it.
func CaptureOf(c fleet.Capture) Capture {
	return Capture{Capture: c, Duration: int64(c.Duration / time.Second)}
}

// Node is a wirefleetd node of the installation as GET /api/v1/nodes
// answers it: its registry record, and whether it is up now (heartbeat
// seen within fleet.NodeStaleAfter).
type Node struct {
	fleet.Node
	Up bool `json:"up"`
}
