// SPDX-License-Identifier: Apache-2.0

package store

import (
	"context"
	"time"
)

// Presence is a SIM's live session on one gateway. Gateways sharing a
// database record theirs, so a key live on two gateways at once (a cloned
// key, two devices reaching two gateways) can be noticed.
type Presence struct {
	SIMID    string
	Gateway  string // the gateway's id
	Endpoint string // the device's outer address there
	Since    time.Time
}

// PresenceReader reads presences.
type PresenceReader interface {
	// Presences lists the gateways recording a live session of simID.
	Presences(ctx context.Context, simID string) ([]Presence, error)
	// PresencesAt lists the sessions recorded from one device endpoint
	// ("addr:port"), newest first: which SIM a gateway that receives
	// packets it cannot place from there had a session elsewhere.
	PresencesAt(ctx context.Context, endpoint string) ([]Presence, error)
}

// PresenceWriter records presences.
type PresenceWriter interface {
	// SetPresence records (or replaces) p's SIM's session on p's gateway.
	SetPresence(ctx context.Context, p Presence) error
	// ClearPresence removes a SIM's session on a gateway; gateway alone
	// (simID "") removes all of that gateway's, as a gateway does when it
	// starts: the sessions it held before do not exist any more.
	ClearPresence(ctx context.Context, simID, gateway string) error
}
