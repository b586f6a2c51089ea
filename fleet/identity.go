// SPDX-License-Identifier: Apache-2.0

package fleet

import "time"

// IdentityStatus is the state of a device identity key.
type IdentityStatus string

// Identity statuses.
const (
	// IdentityActive: registered, not used yet; may bootstrap once.
	IdentityActive IdentityStatus = "active"
	// IdentityUsed: it created its SIM (SIMID). It may repeat the same
	// bootstrap (same WireGuard key, a device that lost the answer) and
	// nothing else.
	IdentityUsed IdentityStatus = "used"
	// IdentityRevoked: refused from now on. A SIM it created stays.
	IdentityRevoked IdentityStatus = "revoked"
)

// Valid reports whether s is a known status.
func (s IdentityStatus) Valid() bool {
	return s == IdentityActive || s == IdentityUsed || s == IdentityRevoked
}

// IdentityBatch is a set of device identity keys registered together by
// manufacturing (one production lot), bound to the group their SIMs join.
type IdentityBatch struct {
	ID      string            `json:"id"`
	Name    string            `json:"name"`
	GroupID string            `json:"groupId,omitempty"`
	Tags    map[string]string `json:"tags,omitempty"` // given to the SIMs its identities create
	Revoked bool              `json:"revoked"`
	Created time.Time         `json:"created"`
	// Count and Used are computed when read: identities in the batch, and
	// those that created their SIM.
	Count int `json:"count"`
	Used  int `json:"used"`
}

// Identity is one device's identity public key (Ed25519 or ECDSA P-256,
// held in its secure element), with which it proves itself at attestation
// bootstrap. No secret of it is ever known to the platform.
type Identity struct {
	// ID is the key's fingerprint: lowercase hex SHA-256 of its DER
	// SubjectPublicKeyInfo.
	ID string `json:"id"`
	// PublicKey is the canonical text form, "ed25519:<base64>" or
	// "p256:<base64 of the uncompressed point>".
	PublicKey string         `json:"publicKey"`
	BatchID   string         `json:"batchId"`
	Status    IdentityStatus `json:"status"`
	// SIMID is the SIM the identity created, once used.
	SIMID   string    `json:"simId,omitempty"`
	Created time.Time `json:"created"`
	Updated time.Time `json:"updated"`
}
