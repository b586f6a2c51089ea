// SPDX-License-Identifier: Apache-2.0

package store

import (
	"context"
	"time"

	"github.com/wirefleet/wirefleet/fleet"
)

// IdentityReader reads device identities of the attestation bootstrap.
type IdentityReader interface {
	IdentityBatch(ctx context.Context, id string) (fleet.IdentityBatch, error)
	ListIdentityBatches(ctx context.Context, p PageRequest) (Page[fleet.IdentityBatch], error)
	// Identity finds an identity by its id (the key's fingerprint).
	Identity(ctx context.Context, id string) (fleet.Identity, error)
	ListIdentities(ctx context.Context, f IdentityFilter) (Page[fleet.Identity], error)
}

// IdentityTx writes device identities and attestation challenges.
type IdentityTx interface {
	InsertIdentityBatch(ctx context.Context, b fleet.IdentityBatch) error
	// InsertIdentity fails with a ConflictError when the key is already
	// registered (in any batch).
	InsertIdentity(ctx context.Context, i fleet.Identity) error
	// UpdateIdentity writes status, SIM and updated time.
	UpdateIdentity(ctx context.Context, i fleet.Identity) error
	// RevokeIdentityBatch marks the batch and every identity in it revoked.
	RevokeIdentityBatch(ctx context.Context, id string, now time.Time) error

	// InsertChallenge stores an attestation challenge by the hash of its
	// nonce, valid until expires.
	InsertChallenge(ctx context.Context, hash string, expires time.Time) error
	// ConsumeChallenge deletes the challenge and succeeds only if it
	// existed and had not expired at now (ErrNotFound otherwise): a
	// challenge is used at most once, even by concurrent callers.
	ConsumeChallenge(ctx context.Context, hash string, now time.Time) error
	// DeleteExpiredChallenges removes challenges expired at now.
	DeleteExpiredChallenges(ctx context.Context, now time.Time) (int64, error)
}

// IdentityFilter selects identities, by id.
type IdentityFilter struct {
	PageRequest
	BatchID string
	Status  fleet.IdentityStatus
}
