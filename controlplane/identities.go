// SPDX-License-Identifier: Apache-2.0

package controlplane

import (
	"context"
	"errors"
	"fmt"

	"github.com/wirefleet/wirefleet/attest"
	"github.com/wirefleet/wirefleet/controlplane/store"
	"github.com/wirefleet/wirefleet/fleet"
)

// MaxIdentitiesPerCall bounds the keys one import call registers (the API
// body limit bounds it further); larger batches are sent in parts with
// AddIdentities.
const MaxIdentitiesPerCall = 10_000

// IdentityBatchSpec describes a batch of device identity keys to register.
type IdentityBatchSpec struct {
	Name    string
	GroupID string            // the group their SIMs join ("" for none)
	Tags    map[string]string // given to their SIMs
	Keys    []attest.PublicKey
}

// ImportIdentities registers a batch of identity public keys from
// manufacturing, all or nothing: a key already registered (in any batch)
// fails the whole call with a conflict on publicKeys[i].
func (s *Service) ImportIdentities(ctx context.Context, a Actor, sp IdentityBatchSpec) (fleet.IdentityBatch, error) {
	if err := require(a, fleet.RoleOperator); err != nil {
		return fleet.IdentityBatch{}, err
	}
	if sp.Name == "" {
		return fleet.IdentityBatch{}, fleet.Errorf(fleet.CodeRequired, "name", "name the batch (a production lot)")
	}
	if err := fleet.ValidateLabel("name", sp.Name, 128); err != nil {
		return fleet.IdentityBatch{}, err
	}
	if err := fleet.ValidateTags("tags", sp.Tags); err != nil {
		return fleet.IdentityBatch{}, err
	}
	now := s.now()
	b := fleet.IdentityBatch{ID: newID("ib", now), Name: sp.Name, GroupID: sp.GroupID, Tags: sp.Tags, Created: now}
	if b.Tags == nil {
		b.Tags = map[string]string{}
	}
	err := s.st.Update(ctx, func(tx store.Tx) error {
		if sp.GroupID != "" {
			if _, err := tx.Group(ctx, sp.GroupID); err != nil {
				return storeErr(err, "groupId")
			}
		}
		if err := tx.InsertIdentityBatch(ctx, b); err != nil {
			return err
		}
		if err := s.insertIdentities(ctx, tx, b.ID, sp.Keys, true); err != nil {
			return err
		}
		return s.event(ctx, tx, a, "identity_batch.create", "identity_batch", b.ID, map[string]any{"name": b.Name, "groupId": b.GroupID, "keys": len(sp.Keys)})
	})
	if err != nil {
		return fleet.IdentityBatch{}, storeErr(err, "")
	}
	s.log.Info("identity batch imported", "batch", b.ID, "keys", len(sp.Keys), "group", b.GroupID, "actor", a.String())
	return s.st.IdentityBatch(ctx, b.ID)
}

// AddIdentities registers more keys in an existing, unrevoked batch (a
// batch too large for one call is sent in parts).
func (s *Service) AddIdentities(ctx context.Context, a Actor, batchID string, keys []attest.PublicKey) (fleet.IdentityBatch, error) {
	if err := require(a, fleet.RoleOperator); err != nil {
		return fleet.IdentityBatch{}, err
	}
	err := s.st.Update(ctx, func(tx store.Tx) error {
		b, err := tx.IdentityBatch(ctx, batchID)
		if err != nil {
			return storeErr(err, "id")
		}
		if b.Revoked {
			return fleet.Errorf(fleet.CodeBadState, "id", "the batch is revoked")
		}
		if err := s.insertIdentities(ctx, tx, b.ID, keys, false); err != nil {
			return err
		}
		return s.event(ctx, tx, a, "identity_batch.add", "identity_batch", b.ID, map[string]any{"keys": len(keys)})
	})
	if err != nil {
		return fleet.IdentityBatch{}, storeErr(err, "id")
	}
	s.log.Info("identities added", "batch", batchID, "keys", len(keys), "actor", a.String())
	return s.st.IdentityBatch(ctx, batchID)
}

func (s *Service) insertIdentities(ctx context.Context, tx store.Tx, batchID string, keys []attest.PublicKey, allowEmpty bool) error {
	if len(keys) == 0 && !allowEmpty {
		return fleet.Errorf(fleet.CodeRequired, "publicKeys", "no keys")
	}
	if len(keys) > MaxIdentitiesPerCall {
		return fleet.Errorf(fleet.CodeInvalid, "publicKeys", "at most %d keys per call; add the rest to the batch in further calls", MaxIdentitiesPerCall)
	}
	now := s.now()
	seen := make(map[string]int, len(keys))
	for i, k := range keys {
		field := fmt.Sprintf("publicKeys[%d]", i)
		if k.IsZero() {
			return fleet.Errorf(fleet.CodeRequired, field, "empty key")
		}
		id := k.Fingerprint()
		if j, dup := seen[id]; dup {
			return fleet.Errorf(fleet.CodeInvalid, field, "the same key as publicKeys[%d]", j)
		}
		seen[id] = i
		err := tx.InsertIdentity(ctx, fleet.Identity{ID: id, PublicKey: k.String(), BatchID: batchID, Status: fleet.IdentityActive, Created: now, Updated: now})
		var ce *store.ConflictError
		if errors.As(err, &ce) {
			return fleet.Errorf(fleet.CodeConflict, field, "key already registered (identity %s)", id)
		} else if err != nil {
			return err
		}
	}
	return nil
}

// GetIdentityBatch reads a batch with its counts.
func (s *Service) GetIdentityBatch(ctx context.Context, a Actor, id string) (fleet.IdentityBatch, error) {
	if err := require(a, fleet.RoleViewer); err != nil {
		return fleet.IdentityBatch{}, err
	}
	b, err := s.st.IdentityBatch(ctx, id)
	return b, storeErr(err, "id")
}

// ListIdentityBatches lists batches.
func (s *Service) ListIdentityBatches(ctx context.Context, a Actor, p store.PageRequest) (store.Page[fleet.IdentityBatch], error) {
	if err := require(a, fleet.RoleViewer); err != nil {
		return store.Page[fleet.IdentityBatch]{}, err
	}
	return s.st.ListIdentityBatches(ctx, p)
}

// GetIdentity reads an identity by its id (fingerprint) or its public key
// in any form attest.ParsePublicKey reads.
func (s *Service) GetIdentity(ctx context.Context, a Actor, ref string) (fleet.Identity, error) {
	if err := require(a, fleet.RoleViewer); err != nil {
		return fleet.Identity{}, err
	}
	i, err := findIdentity(ctx, s.st, ref)
	return i, storeErr(err, "id")
}

// findIdentity looks ref up as a fingerprint, then as a key. (A fingerprint
// is 64 hex digits, which may also read as an Ed25519 key in hex: the
// fingerprint reading comes first.)
func findIdentity(ctx context.Context, r store.Reader, ref string) (fleet.Identity, error) {
	i, err := r.Identity(ctx, ref)
	if !errors.Is(err, store.ErrNotFound) {
		return i, err
	}
	if k, perr := attest.ParsePublicKey(ref); perr == nil {
		return r.Identity(ctx, k.Fingerprint())
	}
	return i, err
}

// ListIdentities lists identities, by batch and status.
func (s *Service) ListIdentities(ctx context.Context, a Actor, f store.IdentityFilter) (store.Page[fleet.Identity], error) {
	if err := require(a, fleet.RoleViewer); err != nil {
		return store.Page[fleet.Identity]{}, err
	}
	if f.Status != "" && !f.Status.Valid() {
		return store.Page[fleet.Identity]{}, fleet.Errorf(fleet.CodeInvalid, "status", "must be active, used or revoked")
	}
	return s.st.ListIdentities(ctx, f)
}

// RevokeIdentity refuses the identity from now on; a SIM it created
// stays (suspend or terminate it separately).
func (s *Service) RevokeIdentity(ctx context.Context, a Actor, ref string) error {
	if err := require(a, fleet.RoleOperator); err != nil {
		return err
	}
	err := s.st.Update(ctx, func(tx store.Tx) error {
		i, err := findIdentity(ctx, tx, ref)
		if err != nil {
			return storeErr(err, "id")
		}
		if i.Status == fleet.IdentityRevoked {
			return nil
		}
		i.Status, i.Updated = fleet.IdentityRevoked, s.now()
		if err := tx.UpdateIdentity(ctx, i); err != nil {
			return err
		}
		return s.event(ctx, tx, a, "identity.revoke", "identity", i.ID, map[string]any{"batchId": i.BatchID, "simId": i.SIMID})
	})
	return storeErr(err, "id")
}

// RevokeIdentityBatch revokes a batch and every identity in it (a lot
// found compromised); SIMs they created stay.
func (s *Service) RevokeIdentityBatch(ctx context.Context, a Actor, id string) error {
	if err := require(a, fleet.RoleOperator); err != nil {
		return err
	}
	err := s.st.Update(ctx, func(tx store.Tx) error {
		if err := tx.RevokeIdentityBatch(ctx, id, s.now()); err != nil {
			return storeErr(err, "id")
		}
		return s.event(ctx, tx, a, "identity_batch.revoke", "identity_batch", id, nil)
	})
	if err == nil {
		s.log.Info("identity batch revoked", "batch", id, "actor", a.String())
	}
	return storeErr(err, "id")
}
