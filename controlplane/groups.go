// SPDX-License-Identifier: Apache-2.0

package controlplane

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"time"

	"github.com/wirefleet/wirefleet/controlplane/store"
	"github.com/wirefleet/wirefleet/fleet"
	"github.com/wirefleet/wirefleet/internal/egressrules"
	"github.com/wirefleet/wirefleet/internal/seal"
)

// normalizeSettings checks a group's settings whole: the model's own
// checks, then the egress rules'.
func normalizeSettings(settings *fleet.GroupSettings) error {
	if err := settings.Normalize("settings"); err != nil {
		return err
	}
	return egressrules.Normalize(&settings.Egress, "settings.egress")
}

// CreateGroup creates a group.
func (s *Service) CreateGroup(ctx context.Context, a Actor, name string, settings fleet.GroupSettings) (fleet.Group, error) {
	if err := require(a, fleet.RoleOperator); err != nil {
		return fleet.Group{}, err
	}
	if err := fleet.ValidateName("name", name); err != nil {
		return fleet.Group{}, err
	}
	if err := normalizeSettings(&settings); err != nil {
		return fleet.Group{}, err
	}
	if err := settings.Forwarders.SealSecrets("settings.forwarders", nil, s.cfg.Secrets); err != nil {
		return fleet.Group{}, err
	}
	if err := s.sealWebhookSecret(&settings.Security); err != nil {
		return fleet.Group{}, err
	}
	now := s.now()
	g := fleet.Group{ID: newID("grp", now), Name: name, Settings: settings, Created: now, Updated: now}
	err := s.st.Update(ctx, func(tx store.Tx) error {
		if err := checkRedirection(ctx, tx, settings.Redirection); err != nil {
			return err
		}
		if err := tx.InsertGroup(ctx, g); err != nil {
			return err
		}
		tx.Publish(fleet.Change{Kind: fleet.ChangeGroup, ID: g.ID})
		return s.event(ctx, tx, a, "group.create", "group", g.ID, map[string]any{"name": name})
	})
	g.Settings = g.Settings.Redacted()
	return g, storeErr(err, "")
}

// GetGroup reads a group.
func (s *Service) GetGroup(ctx context.Context, a Actor, id string) (fleet.Group, error) {
	if err := require(a, fleet.RoleViewer); err != nil {
		return fleet.Group{}, err
	}
	g, err := s.st.Group(ctx, id)
	g.Settings = g.Settings.Redacted()
	return g, storeErr(err, "id")
}

// ListGroups lists groups.
func (s *Service) ListGroups(ctx context.Context, a Actor, p store.PageRequest) (store.Page[fleet.Group], error) {
	if err := require(a, fleet.RoleViewer); err != nil {
		return store.Page[fleet.Group]{}, err
	}
	page, err := s.st.ListGroups(ctx, p)
	for i := range page.Items {
		page.Items[i].Settings = page.Items[i].Settings.Redacted()
	}
	return page, err
}

// UpdateGroup renames a group and/or replaces its settings (nil: keep).
func (s *Service) UpdateGroup(ctx context.Context, a Actor, id string, name *string, settings *fleet.GroupSettings) (fleet.Group, error) {
	return s.UpdateGroupIfUnchanged(ctx, a, id, name, settings, "")
}

// UpdateGroupIfUnchanged is UpdateGroup that refuses, with a conflict on
// "version" and nothing written, when the group is no longer as the caller
// read it: read is GroupVersion of what it read ("" skips the check). A
// form edited while someone else saved the group cannot overwrite them.
func (s *Service) UpdateGroupIfUnchanged(ctx context.Context, a Actor, id string, name *string, settings *fleet.GroupSettings, read string) (fleet.Group, error) {
	if err := require(a, fleet.RoleOperator); err != nil {
		return fleet.Group{}, err
	}
	if name != nil {
		if err := fleet.ValidateName("name", *name); err != nil {
			return fleet.Group{}, err
		}
	}
	var g fleet.Group
	err := s.st.Update(ctx, func(tx store.Tx) error {
		var err error
		if g, err = tx.Group(ctx, id); err != nil {
			return storeErr(err, "id")
		}
		if read != "" {
			cur := g
			cur.Settings = g.Settings.Redacted()
			if GroupVersion(cur) != read {
				return fleet.Errorf(fleet.CodeConflict, "version", "the group was changed (at %s) after this form was loaded: nothing was saved; reload to see the changes", g.Updated.Format(time.RFC3339))
			}
		}
		if name != nil {
			g.Name = *name
		}
		if settings != nil {
			// Answers never carry the webhook secret, so settings read,
			// edited and written back keep the stored one.
			kept := false
			if sec := &settings.Security; sec.WebhookSecret == "" && sec.WebhookURL != "" && sec.WebhookURL == g.Settings.Security.WebhookURL {
				sec.WebhookSecret, kept = g.Settings.Security.WebhookSecret, true
			}
			if err := normalizeSettings(settings); err != nil {
				return err
			}
			if err := checkRedirection(ctx, tx, settings.Redirection); err != nil {
				return err
			}
			if err := settings.Forwarders.SealSecrets("settings.forwarders", &g.Settings.Forwarders, s.cfg.Secrets); err != nil {
				return err
			}
			// A kept secret is stored sealed already, unless it predates
			// sealing: then it is sealed now, when a key is there.
			if !kept || (!seal.IsSealed(settings.Security.WebhookSecret) && s.cfg.Secrets != nil) {
				if err := s.sealWebhookSecret(&settings.Security); err != nil {
					return err
				}
			}
			g.Settings = *settings
		}
		g.Updated = s.now()
		if err := tx.UpdateGroup(ctx, g); err != nil {
			return err
		}
		tx.Publish(fleet.Change{Kind: fleet.ChangeGroup, ID: g.ID})
		return s.event(ctx, tx, a, "group.update", "group", g.ID, nil)
	})
	g.Settings = g.Settings.Redacted()
	return g, storeErr(err, "")
}

// GroupVersion names the content of a group as GetGroup answers it (its
// name and redacted settings): equal versions, equal groups. It is what
// UpdateGroupIfUnchanged compares — content, not a timestamp, so two
// saves within one clock tick still conflict.
func GroupVersion(g fleet.Group) string {
	b, err := json.Marshal(struct {
		Name     string
		Settings fleet.GroupSettings
	}{g.Name, g.Settings})
	if err != nil {
		panic(err) // settings always marshal
	}
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:16])
}

// DeleteGroup deletes an empty group.
func (s *Service) DeleteGroup(ctx context.Context, a Actor, id string) error {
	if err := require(a, fleet.RoleOperator); err != nil {
		return err
	}
	err := s.st.Update(ctx, func(tx store.Tx) error {
		// Exclusive against useGroup's shared lock: no SIM can join the
		// group between the emptiness check and the delete.
		if err := tx.Lock(ctx, groupLock(id)); err != nil {
			return err
		}
		p, err := tx.ListSIMs(ctx, store.SIMFilter{GroupID: id, PageRequest: store.PageRequest{Limit: 1}})
		if err != nil {
			return err
		}
		if len(p.Items) > 0 {
			return fleet.Errorf(fleet.CodeBadState, "id", "group still has SIMs; move them first")
		}
		if err := tx.DeleteGroup(ctx, id); err != nil {
			return storeErr(err, "id")
		}
		tx.Publish(fleet.Change{Kind: fleet.ChangeGroup, ID: id})
		return s.event(ctx, tx, a, "group.delete", "group", id, nil)
	})
	return storeErr(err, "id")
}

func groupLock(id string) string { return "group:" + id }

// useGroup is for a transaction about to put a SIM into group id ("" for
// none): it takes the group's lock in shared mode, so DeleteGroup waits for
// it, and checks the group exists (store.ErrNotFound otherwise).
func useGroup(ctx context.Context, tx store.Tx, id string) error {
	if id == "" {
		return nil
	}
	if err := tx.LockShared(ctx, groupLock(id)); err != nil {
		return err
	}
	_, err := tx.Group(ctx, id)
	return err
}

// sealWebhookSecret seals a webhook secret given in clear, as forwarder
// secrets are: a database dump must not let anyone sign alerts.
func (s *Service) sealWebhookSecret(sec *fleet.SecurityProfile) error {
	if sec.WebhookSecret == "" {
		return nil
	}
	if s.cfg.Secrets == nil {
		return fleet.Errorf(fleet.CodeInvalid, "settings.security.webhookSecret", "this server has no key to store secrets with")
	}
	sealed, err := s.cfg.Secrets.Seal(sec.WebhookSecret)
	if err != nil {
		return fleet.Errorf(fleet.CodeInternal, "settings.security.webhookSecret", "sealing the secret failed")
	}
	sec.WebhookSecret = sealed
	return nil
}

// checkRedirection refuses a redirection whose next hop is no Gate peer.
func checkRedirection(ctx context.Context, tx store.Tx, r fleet.Redirection) error {
	if r.GatePeerID == "" {
		return nil
	}
	if err := tx.Lock(ctx, gatePeersLock); err != nil {
		return err
	}
	_, err := tx.GatePeer(ctx, r.GatePeerID)
	if errors.Is(err, store.ErrNotFound) {
		return fleet.Errorf(fleet.CodeInvalid, "settings.redirection.gatePeerId", "%q is no Gate peer", r.GatePeerID)
	}
	return err
}
