// SPDX-License-Identifier: Apache-2.0

package store

import (
	"context"
	"time"

	"github.com/wirefleet/wirefleet/fleet"
)

// SIMCardReader reads physical SIM cards (SIM-card bootstrap).
type SIMCardReader interface {
	SIMCard(ctx context.Context, iccid string) (fleet.SIMCard, error)
	SIMCardByIMSI(ctx context.Context, imsi string) (fleet.SIMCard, error)
	// ListSIMCards pages by ICCID.
	ListSIMCards(ctx context.Context, p PageRequest) (Page[fleet.SIMCard], error)
	// CardKey reads a key of the AKA exchange by id.
	CardKey(ctx context.Context, id string) (fleet.CardKey, error)
}

// SIMCardWriter writes them.
type SIMCardWriter interface {
	// InsertSIMCard fails with a ConflictError ("iccid" or "imsi") when
	// either is taken.
	InsertSIMCard(ctx context.Context, c fleet.SIMCard) error
	// UpdateSIMCard writes status, group, SIM and updated time (not the
	// keys, not the SQN).
	UpdateSIMCard(ctx context.Context, c fleet.SIMCard) error
	// AdvanceCardSQN sets the card's SQN to next if it is still prev, and
	// fails with ErrStale otherwise: two challenges never carry one
	// SQN, even from two nodes at once.
	AdvanceCardSQN(ctx context.Context, iccid string, prev, next uint64) error
	DeleteSIMCard(ctx context.Context, iccid string) error

	InsertCardKey(ctx context.Context, k fleet.CardKey) error
	// UpdateCardKey writes verified and expires.
	UpdateCardKey(ctx context.Context, k fleet.CardKey) error
	DeleteCardKey(ctx context.Context, id string) error
	// UseCardSignature records that a signature of key keyID at timestamp
	// ts (the client's milliseconds) was accepted, until expires; a second
	// use fails with a ConflictError: each is accepted once.
	UseCardSignature(ctx context.Context, keyID string, ts int64, expires time.Time) error
	// DeleteExpiredCardKeys removes keys and signature records expired at
	// now.
	DeleteExpiredCardKeys(ctx context.Context, now time.Time) (int64, error)
}
