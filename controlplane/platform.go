// SPDX-License-Identifier: Apache-2.0

package controlplane

import (
	"context"

	"github.com/wirefleet/wirefleet/controlplane/store"
	"github.com/wirefleet/wirefleet/fleet"
)

// The reads and writes the platform itself makes (the gateway recording
// sessions, remote access following its mappings: no operator behind them,
// so no role check), named here so that no caller needs the store.

// Changes subscribes to the fleet's change feed; a closed channel means
// "subscribe again and re-read".
func (s *Service) Changes() (<-chan fleet.Change, func()) { return s.st.Subscribe() }

// MappingsPage returns one page (store.MaxLimit) of every port mapping,
// expired ones included, from cursor.
func (s *Service) MappingsPage(ctx context.Context, cursor string) (store.Page[fleet.Mapping], error) {
	return s.st.ListMappings(ctx, store.MappingFilter{PageRequest: store.PageRequest{Limit: store.MaxLimit, Cursor: cursor}})
}

// MappingRecord returns a mapping as stored (store.ErrNotFound when gone).
func (s *Service) MappingRecord(ctx context.Context, id string) (fleet.Mapping, error) {
	return s.st.Mapping(ctx, id)
}

// SIMRecord returns a SIM as stored (store.ErrNotFound when gone).
func (s *Service) SIMRecord(ctx context.Context, id string) (fleet.SIM, error) {
	return s.st.SIM(ctx, id)
}

// PresenceWrite is one change of a gateway's session records: the
// session set, or (Clear) the SIM's session on Presence.Gateway ended.
type PresenceWrite struct {
	Presence store.Presence
	Clear    bool
}

// WritePresences applies a gateway's session changes in one transaction
// (a reconnecting fleet is one commit per batch, not per device); each
// session set tells the other gateways sharing the store (a change of
// kind presence). Should
// the batch fail, each change is tried on its own, so one bad change does
// not lose the others; the first error is returned.
func (s *Service) WritePresences(ctx context.Context, ws []PresenceWrite) error {
	apply := func(tx store.Tx, w PresenceWrite) error {
		if w.Clear {
			tx.Publish(fleet.Change{Kind: fleet.ChangePresence, ID: w.Presence.SIMID})
			return tx.ClearPresence(ctx, w.Presence.SIMID, w.Presence.Gateway)
		}
		tx.Publish(fleet.Change{Kind: fleet.ChangePresence, ID: w.Presence.SIMID})
		return tx.SetPresence(ctx, w.Presence)
	}
	return updateBatch(ctx, s.st, ws, apply)
}

// updateBatch applies every item in one transaction; should that fail,
// each item in a transaction of its own, so one bad item does not lose
// the others (the first error is returned). A gateway's batches go so.
func updateBatch[T any](ctx context.Context, st store.Store, items []T, apply func(store.Tx, T) error) error {
	err := st.Update(ctx, func(tx store.Tx) error {
		for _, it := range items {
			if err := apply(tx, it); err != nil {
				return err
			}
		}
		return nil
	})
	if err == nil || len(items) == 1 || ctx.Err() != nil {
		return err
	}
	var first error
	for _, it := range items {
		if err := st.Update(ctx, func(tx store.Tx) error { return apply(tx, it) }); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// ClearPresence removes a SIM's session on a gateway; simID "" removes all
// of that gateway's, as a gateway does when it starts.
func (s *Service) ClearPresence(ctx context.Context, simID, gateway string) error {
	return s.st.Update(ctx, func(tx store.Tx) error { return tx.ClearPresence(ctx, simID, gateway) })
}
