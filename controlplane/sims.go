// SPDX-License-Identifier: Apache-2.0

package controlplane

import (
	"context"
	"errors"
	"net/netip"
	"time"

	"github.com/wirefleet/wirefleet/controlplane/store"
	"github.com/wirefleet/wirefleet/fleet"
	"github.com/wirefleet/wirefleet/wgkey"
)

// SIMSpec describes a SIM to create.
type SIMSpec struct {
	Name    string
	Tags    map[string]string
	GroupID string
	// Address pins the overlay address; zero allocates one from the pool.
	Address netip.Addr
	// PublicKey is the device's key. With GenerateKey the platform makes
	// the pair instead and returns the private key once, never storing it.
	PublicKey   wgkey.Public
	GenerateKey bool
	// Kind is fleet.KindDevice (default) or fleet.KindSite: a network
	// joined as a WireGuard peer, given no IMSI.
	Kind fleet.SIMKind
}

func (s *Service) validateSIMSpec(ctx context.Context, r store.Reader, sp *SIMSpec) error {
	if err := fleet.ValidateLabel("name", sp.Name, 128); err != nil {
		return err
	}
	if err := fleet.ValidateTags("tags", sp.Tags); err != nil {
		return err
	}
	if sp.Address.IsValid() && (!s.cfg.Pool.Contains(sp.Address) || offset(s.cfg.Pool, sp.Address) < 2) {
		return fleet.Errorf(fleet.CodeInvalid, "address", "must be in the SIM pool %s (and not its first two addresses)", s.cfg.Pool)
	}
	return nil
}

func offset(p netip.Prefix, a netip.Addr) uint32 {
	x, y := p.Masked().Addr().As4(), a.As4()
	return (uint32(y[0])<<24 | uint32(y[1])<<16 | uint32(y[2])<<8 | uint32(y[3])) -
		(uint32(x[0])<<24 | uint32(x[1])<<16 | uint32(x[2])<<8 | uint32(x[3]))
}

// newSIM allocates and inserts a SIM inside tx; authKeyID is the auth key
// bootstrapping it ("" for none).
func (s *Service) newSIM(ctx context.Context, tx store.Tx, sp SIMSpec, authKeyID string) (fleet.SIM, error) {
	if !sp.PublicKey.IsZero() {
		if err := fleet.ValidatePublicKey("publicKey", sp.PublicKey); err != nil {
			return fleet.SIM{}, err
		}
	}
	if err := useGroup(ctx, tx, sp.GroupID); err != nil {
		return fleet.SIM{}, storeErr(err, "groupId")
	}
	var imsi string
	var err error
	switch sp.Kind {
	case fleet.KindDevice:
		if imsi, err = tx.NextIMSI(ctx); err != nil {
			return fleet.SIM{}, storeErr(err, "imsi")
		}
	case fleet.KindSite:
	default:
		return fleet.SIM{}, fleet.Errorf(fleet.CodeInvalid, "kind", "%q: \"\" (a device) or \"site\"", sp.Kind)
	}
	addr := sp.Address
	if !addr.IsValid() {
		if addr, err = tx.AllocateAddress(ctx, s.cfg.Pool); err != nil {
			return fleet.SIM{}, storeErr(err, "address")
		}
	} else if _, err := tx.GatePeerByInner(ctx, addr); err == nil {
		return fleet.SIM{}, fleet.Errorf(fleet.CodeConflict, "address", "%s is a Gate peer's address", addr)
	} else if !errors.Is(err, store.ErrNotFound) {
		return fleet.SIM{}, err
	}
	now := s.now()
	tags := sp.Tags
	if tags == nil {
		tags = map[string]string{}
	}
	sim := fleet.SIM{ID: newID("sim", now), Kind: sp.Kind, IMSI: imsi, Name: sp.Name, Tags: tags, GroupID: sp.GroupID, Status: fleet.StatusActive,
		Address: addr, PublicKey: sp.PublicKey, Created: now, Updated: now, KeySet: now, AuthKeyID: authKeyID}
	if err := tx.InsertSIM(ctx, sim); err != nil {
		return fleet.SIM{}, storeErr(err, "")
	}
	tx.Publish(fleet.Change{Kind: fleet.ChangeSIM, ID: sim.ID})
	return sim, nil
}

// CreateSIM creates a SIM. priv is set only when the platform generated
// the key pair.
func (s *Service) CreateSIM(ctx context.Context, a Actor, sp SIMSpec) (sim fleet.SIM, priv wgkey.Private, err error) {
	if err := require(a, fleet.RoleOperator); err != nil {
		return sim, priv, err
	}
	if sp.GenerateKey && !sp.PublicKey.IsZero() {
		return sim, priv, fleet.Errorf(fleet.CodeInvalid, "generateKey", "give either publicKey or generateKey, not both")
	}
	if sp.GenerateKey {
		if priv, err = wgkey.NewPrivate(); err != nil {
			return sim, priv, err
		}
		sp.PublicKey = priv.Public()
	}
	err = s.st.Update(ctx, func(tx store.Tx) error {
		if err := s.validateSIMSpec(ctx, tx, &sp); err != nil {
			return err
		}
		var err error
		if sim, err = s.newSIM(ctx, tx, sp, ""); err != nil {
			return err
		}
		return s.event(ctx, tx, a, "sim.create", "sim", sim.ID, map[string]any{"imsi": sim.IMSI, "address": sim.Address.String()})
	})
	if err != nil {
		return fleet.SIM{}, wgkey.Private{}, storeErr(err, "")
	}
	s.log.Info("sim created", "sim", sim.ID, "imsi", sim.IMSI, "address", sim.Address, "actor", a.String())
	return sim, priv, nil
}

// GetSIM reads one SIM.
func (s *Service) GetSIM(ctx context.Context, a Actor, id string) (fleet.SIM, error) {
	if err := require(a, fleet.RoleViewer); err != nil {
		return fleet.SIM{}, err
	}
	sim, err := s.st.SIM(ctx, id)
	return sim, storeErr(err, "id")
}

// FindSIM finds a SIM by IMSI, overlay address or public key, whichever
// ref is; "" matches nothing.
func (s *Service) FindSIM(ctx context.Context, a Actor, ref string) (fleet.SIM, error) {
	if err := require(a, fleet.RoleViewer); err != nil {
		return fleet.SIM{}, err
	}
	var sim fleet.SIM
	var err error
	if fleet.ValidIMSI(ref) {
		sim, err = s.st.SIMByIMSI(ctx, ref)
	} else if addr, perr := netip.ParseAddr(ref); perr == nil {
		if addr.Is6() {
			// An IPv6 overlay address stands for its IPv4 twin.
			o6, oerr := s.Overlay6(ctx)
			if oerr != nil {
				return sim, oerr
			}
			a4, ok := o6.V4(addr)
			if !ok {
				return sim, fleet.Errorf(fleet.CodeNotFound, "ref", "%s is outside the fleet's IPv6 overlay %s", addr, o6.View())
			}
			addr = a4
		}
		sim, err = s.st.SIMByAddress(ctx, addr)
	} else if key, perr := wgkey.ParsePublic(ref); perr == nil {
		sim, err = s.st.SIMByPublicKey(ctx, key)
	} else {
		return sim, fleet.Errorf(fleet.CodeInvalid, "ref", "not an IMSI, an overlay address (IPv4 or IPv6) or a public key")
	}
	return sim, storeErr(err, "ref")
}

// ListSIMs lists SIMs.
func (s *Service) ListSIMs(ctx context.Context, a Actor, f store.SIMFilter) (store.Page[fleet.SIM], error) {
	if err := require(a, fleet.RoleViewer); err != nil {
		return store.Page[fleet.SIM]{}, err
	}
	if f.Status != "" && !f.Status.Valid() {
		return store.Page[fleet.SIM]{}, fleet.Errorf(fleet.CodeInvalid, "status", "must be active, suspended or terminated")
	}
	if f.NamePrefix != "" {
		if err := fleet.ValidateLabel("name", f.NamePrefix, 128); err != nil {
			return store.Page[fleet.SIM]{}, err
		}
		if _, _, err := store.ParseSIMNameCursor(f.Cursor); f.Cursor != "" && err != nil {
			return store.Page[fleet.SIM]{}, fleet.Errorf(fleet.CodeInvalid, "cursor", "not a cursor of a list by name")
		}
	}
	return s.st.ListSIMs(ctx, f)
}

// modifySIM applies fn to a SIM in one transaction, records the event and
// publishes the change. Terminated SIMs cannot be modified.
func (s *Service) modifySIM(ctx context.Context, a Actor, id, action string, details map[string]any, fn func(tx store.Tx, sim *fleet.SIM) error) (fleet.SIM, error) {
	if err := require(a, fleet.RoleOperator); err != nil {
		return fleet.SIM{}, err
	}
	var sim fleet.SIM
	err := s.st.Update(ctx, func(tx store.Tx) error {
		var err error
		if sim, err = tx.SIM(ctx, id); err != nil {
			return storeErr(err, "id")
		}
		if sim.Status == fleet.StatusTerminated {
			return fleet.Errorf(fleet.CodeBadState, "status", "SIM is terminated")
		}
		oldKey := sim.PublicKey
		if err := fn(tx, &sim); err != nil {
			return err
		}
		sim.Updated = s.now()
		if sim.PublicKey != oldKey { // as the store does: a new key is a new age
			sim.KeySet, sim.RotateBy = sim.Updated, time.Time{}
		}
		if err := tx.UpdateSIM(ctx, sim); err != nil {
			return storeErr(err, "")
		}
		tx.Publish(fleet.Change{Kind: fleet.ChangeSIM, ID: sim.ID})
		return s.event(ctx, tx, a, action, "sim", sim.ID, details)
	})
	if err != nil {
		return fleet.SIM{}, storeErr(err, "")
	}
	s.log.Info("sim changed", "sim", sim.ID, "action", action, "actor", a.String())
	return sim, nil
}

// SetSIMStatus suspends, resumes (active) or terminates a SIM.
// Termination is final.
func (s *Service) SetSIMStatus(ctx context.Context, a Actor, id string, to fleet.Status) (fleet.SIM, error) {
	if !to.Valid() {
		return fleet.SIM{}, fleet.Errorf(fleet.CodeInvalid, "status", "must be active, suspended or terminated")
	}
	action := map[fleet.Status]string{fleet.StatusActive: "sim.resume", fleet.StatusSuspended: "sim.suspend", fleet.StatusTerminated: "sim.terminate"}[to]
	return s.modifySIM(ctx, a, id, action, nil, func(tx store.Tx, sim *fleet.SIM) error {
		sim.Status = to
		if to == fleet.StatusTerminated {
			// A terminated SIM keeps its address forever, not its LANs:
			// their prefixes are free for other SIMs.
			if err := tx.Lock(ctx, routesLock); err != nil {
				return err
			}
			rs, err := tx.SIMRoutes(ctx, id)
			if err != nil {
				return err
			}
			for _, r := range rs {
				if err := tx.DeleteRoute(ctx, id, r.Prefix); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

// SetSIMGroup moves a SIM to a group ("" for none). The event names the
// group it came from ("from"), so that a quarantine can be undone.
func (s *Service) SetSIMGroup(ctx context.Context, a Actor, id, groupID string) (fleet.SIM, error) {
	details := map[string]any{"groupId": groupID}
	return s.modifySIM(ctx, a, id, "sim.set_group", details, func(tx store.Tx, sim *fleet.SIM) error {
		if err := useGroup(ctx, tx, groupID); err != nil {
			return storeErr(err, "groupId")
		}
		details["from"] = sim.GroupID
		sim.GroupID = groupID
		return nil
	})
}

// SetSIMTags replaces a SIM's tags.
func (s *Service) SetSIMTags(ctx context.Context, a Actor, id string, tags map[string]string) (fleet.SIM, error) {
	if err := fleet.ValidateTags("tags", tags); err != nil {
		return fleet.SIM{}, err
	}
	if tags == nil {
		tags = map[string]string{}
	}
	return s.modifySIM(ctx, a, id, "sim.set_tags", nil, func(_ store.Tx, sim *fleet.SIM) error {
		if a.Kind == "sim" { // the device itself, over the metadata service
			for _, k := range fleet.IdentityTags {
				if tags[k] != sim.Tags[k] {
					return fleet.Errorf(fleet.CodeForbidden, "tags", "the %q tag is signed as the device's identity: only an operator sets it", k)
				}
			}
		}
		sim.Tags = tags
		return nil
	})
}

// AddSIMTags sets the given tags on a SIM and keeps its others, in one
// transaction (a device writing its own tags meanwhile loses nothing).
func (s *Service) AddSIMTags(ctx context.Context, a Actor, id string, tags map[string]string) (fleet.SIM, error) {
	if err := fleet.ValidateTags("tags", tags); err != nil {
		return fleet.SIM{}, err
	}
	return s.modifySIM(ctx, a, id, "sim.add_tags", map[string]any{"tags": tags}, func(tx store.Tx, sim *fleet.SIM) error {
		merged := make(map[string]string, len(sim.Tags)+len(tags))
		for k, v := range sim.Tags {
			merged[k] = v
		}
		for k, v := range tags {
			merged[k] = v
		}
		if err := fleet.ValidateTags("tags", merged); err != nil {
			return err
		}
		sim.Tags = merged
		return nil
	})
}

// SetSIMName renames a SIM.
func (s *Service) SetSIMName(ctx context.Context, a Actor, id, name string) (fleet.SIM, error) {
	if err := fleet.ValidateLabel("name", name, 128); err != nil {
		return fleet.SIM{}, err
	}
	return s.modifySIM(ctx, a, id, "sim.rename", nil, func(_ store.Tx, sim *fleet.SIM) error {
		sim.Name = name
		return nil
	})
}

// KeySpec is a key change.
type KeySpec struct {
	PublicKey   wgkey.Public
	GenerateKey bool
	// Next announces the key as the SIM's next key (rotation): both keys
	// are accepted until the next key is made current. Otherwise the key
	// replaces the current one at once and any next key is dropped.
	Next bool
}

// SetSIMKey changes a SIM's key; priv is set when the platform generated it.
func (s *Service) SetSIMKey(ctx context.Context, a Actor, id string, ks KeySpec) (sim fleet.SIM, priv wgkey.Private, err error) {
	if ks.GenerateKey == !ks.PublicKey.IsZero() {
		return sim, priv, fleet.Errorf(fleet.CodeInvalid, "publicKey", "give either publicKey or generateKey")
	}
	if ks.GenerateKey {
		if priv, err = wgkey.NewPrivate(); err != nil {
			return sim, priv, err
		}
		ks.PublicKey = priv.Public()
	} else if err := fleet.ValidatePublicKey("publicKey", ks.PublicKey); err != nil {
		return sim, priv, err
	}
	sim, err = s.modifySIM(ctx, a, id, "sim.set_key", map[string]any{"publicKey": ks.PublicKey.String(), "next": ks.Next}, func(_ store.Tx, sim *fleet.SIM) error {
		if ks.Next {
			sim.NextPublicKey = ks.PublicKey
		} else {
			sim.PublicKey, sim.NextPublicKey = ks.PublicKey, wgkey.Public{}
		}
		return nil
	})
	if err != nil {
		return fleet.SIM{}, wgkey.Private{}, err
	}
	return sim, priv, nil
}

// SIMPatch changes several SIM fields at once; nil fields are kept.
type SIMPatch struct {
	Name    *string
	Tags    *map[string]string
	GroupID *string
}

// PatchSIM applies a SIMPatch in one transaction: all of it or none.
func (s *Service) PatchSIM(ctx context.Context, a Actor, id string, p SIMPatch) (fleet.SIM, error) {
	if p.Name != nil {
		if err := fleet.ValidateLabel("name", *p.Name, 128); err != nil {
			return fleet.SIM{}, err
		}
	}
	if p.Tags != nil {
		if err := fleet.ValidateTags("tags", *p.Tags); err != nil {
			return fleet.SIM{}, err
		}
	}
	return s.modifySIM(ctx, a, id, "sim.update", nil, func(tx store.Tx, sim *fleet.SIM) error {
		if p.GroupID != nil {
			if err := useGroup(ctx, tx, *p.GroupID); err != nil {
				return storeErr(err, "groupId")
			}
			sim.GroupID = *p.GroupID
		}
		if p.Name != nil {
			sim.Name = *p.Name
		}
		if p.Tags != nil {
			tags := *p.Tags
			if tags == nil {
				tags = map[string]string{}
			}
			sim.Tags = tags
		}
		return nil
	})
}

// MinRotationWindow is the least time a required key rotation allows: the
// agent asks every 10 minutes by default, and must have a few chances.
const MinRotationWindow = 30 * time.Minute

// MaxRotationWindow bounds the time a required key rotation may allow.
const MaxRotationWindow = fleet.MaxRotateWithinHours * time.Hour

// RequireKeyRotation gives the SIM's device until now+within to replace its
// key (announcing a next key over the tunnel does it, as the agent's
// rotation does); a next key announced before is dropped. After the deadline the gateway refuses the current key.
// An earlier deadline already set is kept; a new key clears it.
func (s *Service) RequireKeyRotation(ctx context.Context, a Actor, id string, within time.Duration) (fleet.SIM, error) {
	if within < MinRotationWindow || within > MaxRotationWindow {
		return fleet.SIM{}, fleet.Errorf(fleet.CodeInvalid, "within", "between %v and %v", MinRotationWindow, MaxRotationWindow)
	}
	return s.modifySIM(ctx, a, id, "sim.require_rotation", map[string]any{"within": within.String()}, func(_ store.Tx, sim *fleet.SIM) error {
		if sim.PublicKey.IsZero() {
			return fleet.Errorf(fleet.CodeBadState, "publicKey", "the SIM has no key to rotate")
		}
		by := s.now().Add(within)
		if sim.RotateBy.IsZero() || by.Before(sim.RotateBy) {
			sim.RotateBy = by
		}
		// A next key announced before the requirement does not satisfy
		// it: whoever announced it (perhaps a clone) must not decide.
		sim.NextPublicKey = wgkey.Public{}
		return nil
	})
}

// SIMSessions lists the live sessions of a SIM: one per gateway node
// holding it, with the device's outer endpoint there (presence).
func (s *Service) SIMSessions(ctx context.Context, a Actor, simID string) ([]store.Presence, error) {
	if err := require(a, fleet.RoleViewer); err != nil {
		return nil, err
	}
	ps, err := s.st.Presences(ctx, simID)
	return ps, storeErr(err, "id")
}
