// SPDX-License-Identifier: Apache-2.0

package controlplane

import (
	"context"
	"time"

	"github.com/wirefleet/wirefleet/controlplane/store"
	"github.com/wirefleet/wirefleet/fleet"
)

// AuthKeySpec describes an auth key to create.
type AuthKeySpec struct {
	Description string
	GroupID     string
	Tags        map[string]string
	// TTL until expiry; DefaultAuthKeyTTL if zero, at most MaxAuthKeyTTL.
	TTL time.Duration
	// MaxUses: 1 for a one-time key, n for n bootstraps, 0 unlimited.
	MaxUses int
}

// Auth key lifetimes.
const (
	DefaultAuthKeyTTL = 24 * time.Hour
	MaxAuthKeyTTL     = 365 * 24 * time.Hour
)

// CreateAuthKey makes an auth key; the secret is returned once.
func (s *Service) CreateAuthKey(ctx context.Context, a Actor, sp AuthKeySpec) (fleet.AuthKey, string, error) {
	if err := require(a, fleet.RoleOperator); err != nil {
		return fleet.AuthKey{}, "", err
	}
	if err := fleet.ValidateLabel("description", sp.Description, 256); err != nil {
		return fleet.AuthKey{}, "", err
	}
	if err := fleet.ValidateTags("tags", sp.Tags); err != nil {
		return fleet.AuthKey{}, "", err
	}
	if sp.TTL == 0 {
		sp.TTL = DefaultAuthKeyTTL
	}
	if sp.TTL < 0 || sp.TTL > MaxAuthKeyTTL {
		return fleet.AuthKey{}, "", fleet.Errorf(fleet.CodeInvalid, "ttlSeconds", "must be between 1 and %d", int(MaxAuthKeyTTL.Seconds()))
	}
	if sp.MaxUses < 0 {
		return fleet.AuthKey{}, "", fleet.Errorf(fleet.CodeInvalid, "maxUses", "must be 0 (unlimited) or more")
	}
	secret := newSecret(AuthKeyPrefix)
	now := s.now()
	k := fleet.AuthKey{ID: newID("ak", now), Description: sp.Description, GroupID: sp.GroupID, Tags: sp.Tags, Hash: HashSecret(secret),
		Expires: now.Add(sp.TTL), MaxUses: sp.MaxUses, Created: now}
	if k.Tags == nil {
		k.Tags = map[string]string{}
	}
	err := s.st.Update(ctx, func(tx store.Tx) error {
		if sp.GroupID != "" {
			if _, err := tx.Group(ctx, sp.GroupID); err != nil {
				return storeErr(err, "groupId")
			}
		}
		if err := tx.InsertAuthKey(ctx, k); err != nil {
			return err
		}
		return s.event(ctx, tx, a, "authkey.create", "authkey", k.ID, map[string]any{"groupId": k.GroupID, "maxUses": k.MaxUses})
	})
	if err != nil {
		return fleet.AuthKey{}, "", storeErr(err, "")
	}
	s.log.Info("auth key created", "authkey", k.ID, "group", k.GroupID, "actor", a.String())
	return k, secret, nil
}

// GetAuthKey reads an auth key (never its secret).
func (s *Service) GetAuthKey(ctx context.Context, a Actor, id string) (fleet.AuthKey, error) {
	if err := require(a, fleet.RoleViewer); err != nil {
		return fleet.AuthKey{}, err
	}
	k, err := s.st.AuthKey(ctx, id)
	return k, storeErr(err, "id")
}

// ListAuthKeys lists auth keys.
func (s *Service) ListAuthKeys(ctx context.Context, a Actor, p store.PageRequest) (store.Page[fleet.AuthKey], error) {
	if err := require(a, fleet.RoleViewer); err != nil {
		return store.Page[fleet.AuthKey]{}, err
	}
	return s.st.ListAuthKeys(ctx, p)
}

// RevokeAuthKey revokes an auth key; SIMs it bootstrapped stay.
func (s *Service) RevokeAuthKey(ctx context.Context, a Actor, id string) error {
	if err := require(a, fleet.RoleOperator); err != nil {
		return err
	}
	err := s.st.Update(ctx, func(tx store.Tx) error {
		if err := tx.RevokeAuthKey(ctx, id); err != nil {
			return storeErr(err, "id")
		}
		return s.event(ctx, tx, a, "authkey.revoke", "authkey", id, nil)
	})
	return storeErr(err, "id")
}
