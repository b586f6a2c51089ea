// SPDX-License-Identifier: Apache-2.0

package controlplane

import (
	"context"
	"encoding/hex"
	"errors"
	"io"

	"github.com/wirefleet/wirefleet/controlplane/store"
	"github.com/wirefleet/wirefleet/fleet"
)

// CardImport is the result of ImportSIMCards.
type CardImport struct {
	Imported int `json:"imported"`
}

// ImportSIMCards registers the cards of a vendor's CSV (fleet.ParseCardCSV),
// their Ki and OPc sealed with the settings key, all or nothing: a card
// whose ICCID or IMSI is already registered fails the whole import. New
// virtual SIMs of the cards join groupID ("" for none). Admins only: the
// keys are each card's master secret. The keys are never logged, never
// returned, and the audit event counts the cards without naming a key.
func (s *Service) ImportSIMCards(ctx context.Context, a Actor, csv io.Reader, groupID string) (CardImport, error) {
	if err := require(a, fleet.RoleAdmin); err != nil {
		return CardImport{}, err
	}
	if s.cfg.Secrets == nil {
		return CardImport{}, fleet.Errorf(fleet.CodeBadState, "", "this platform has no settings key to seal the cards' keys with (wirefleetd --settings-key)")
	}
	cards, err := fleet.ParseCardCSV(csv)
	if err != nil {
		return CardImport{}, err
	}
	now := s.now()
	err = s.st.Update(ctx, func(tx store.Tx) error {
		if groupID != "" {
			if _, err := tx.Group(ctx, groupID); err != nil {
				return storeErr(err, "groupId")
			}
		}
		for _, k := range cards {
			ki, err := s.cfg.Secrets.Seal(hex.EncodeToString(k.Ki))
			if err != nil {
				return err
			}
			opc, err := s.cfg.Secrets.Seal(hex.EncodeToString(k.OPc))
			if err != nil {
				return err
			}
			err = tx.InsertSIMCard(ctx, fleet.SIMCard{ICCID: k.ICCID, IMSI: k.IMSI, KiSealed: ki, OPcSealed: opc, Status: fleet.CardActive, GroupID: groupID, Created: now, Updated: now})
			var ce *store.ConflictError
			if errors.As(err, &ce) {
				v := k.ICCID
				if ce.Field == "imsi" {
					v = k.IMSI
				}
				return fleet.Errorf(fleet.CodeConflict, ce.Field, "%s is already registered", v)
			} else if err != nil {
				return err
			}
		}
		return s.event(ctx, tx, a, "sim_card.import", "sim_card", "", map[string]any{"cards": len(cards), "groupId": groupID})
	})
	if err != nil {
		return CardImport{}, storeErr(err, "")
	}
	s.log.Info("SIM cards imported", "cards", len(cards), "group", groupID, "actor", a.String())
	return CardImport{Imported: len(cards)}, nil
}

// GetSIMCard reads a card by ICCID (never its keys).
func (s *Service) GetSIMCard(ctx context.Context, a Actor, iccid string) (fleet.SIMCard, error) {
	if err := require(a, fleet.RoleViewer); err != nil {
		return fleet.SIMCard{}, err
	}
	c, err := s.st.SIMCard(ctx, iccid)
	return c, storeErr(err, "iccid")
}

// ListSIMCards lists cards by ICCID (the export: never with keys).
func (s *Service) ListSIMCards(ctx context.Context, a Actor, p store.PageRequest) (store.Page[fleet.SIMCard], error) {
	if err := require(a, fleet.RoleViewer); err != nil {
		return store.Page[fleet.SIMCard]{}, err
	}
	return s.st.ListSIMCards(ctx, p)
}

// SIMCardUpdate changes what an operator may change of a card.
type SIMCardUpdate struct {
	Status  *fleet.CardStatus `json:"status"`
	GroupID *string           `json:"groupId"`
}

// UpdateSIMCard suspends or reactivates a card, or changes the group its
// next virtual SIM joins.
func (s *Service) UpdateSIMCard(ctx context.Context, a Actor, iccid string, u SIMCardUpdate) (fleet.SIMCard, error) {
	if err := require(a, fleet.RoleOperator); err != nil {
		return fleet.SIMCard{}, err
	}
	var out fleet.SIMCard
	err := s.st.Update(ctx, func(tx store.Tx) error {
		c, err := tx.SIMCard(ctx, iccid)
		if err != nil {
			return storeErr(err, "iccid")
		}
		if u.Status != nil {
			if *u.Status != fleet.CardActive && *u.Status != fleet.CardSuspended {
				return fleet.Errorf(fleet.CodeInvalid, "status", "%q: active or suspended", *u.Status)
			}
			c.Status = *u.Status
		}
		if u.GroupID != nil {
			if *u.GroupID != "" {
				if _, err := tx.Group(ctx, *u.GroupID); err != nil {
					return storeErr(err, "groupId")
				}
			}
			c.GroupID = *u.GroupID
		}
		c.Updated = s.now()
		if err := tx.UpdateSIMCard(ctx, c); err != nil {
			return err
		}
		out = c
		return s.event(ctx, tx, a, "sim_card.update", "sim_card", c.ICCID, map[string]any{"status": c.Status, "groupId": c.GroupID})
	})
	return out, storeErr(err, "iccid")
}

// DeleteSIMCard forgets a card and its keys (its virtual SIM stays).
// Admins only, like the import.
func (s *Service) DeleteSIMCard(ctx context.Context, a Actor, iccid string) error {
	if err := require(a, fleet.RoleAdmin); err != nil {
		return err
	}
	err := s.st.Update(ctx, func(tx store.Tx) error {
		if err := tx.DeleteSIMCard(ctx, iccid); err != nil {
			return storeErr(err, "iccid")
		}
		return s.event(ctx, tx, a, "sim_card.delete", "sim_card", iccid, nil)
	})
	return storeErr(err, "iccid")
}
