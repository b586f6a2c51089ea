// SPDX-License-Identifier: Apache-2.0

package controlplane

import (
	"context"
	"strconv"

	"github.com/wirefleet/wirefleet/controlplane/store"
	"github.com/wirefleet/wirefleet/fleet"
)

// Monitor alerts are audit events ("device.alert", written by the gateway
// for the SIM); acknowledging one is an event of its own on the alert
// ("alert.acknowledge", object "alert" with the alert event's id).
const (
	AlertAction       = "device.alert"
	AlertAckAction    = "alert.acknowledge"
	alertObjectType   = "alert"
	maxAlertsPerQuery = 100
)

// ListAlerts pages the monitor's alerts, newest first, each with its
// acknowledgement.
func (s *Service) ListAlerts(ctx context.Context, a Actor, p store.PageRequest) (store.Page[fleet.Alert], error) {
	return s.alertsPage(ctx, a, "", p)
}

// SIMAlerts pages the alerts about one SIM, newest first.
func (s *Service) SIMAlerts(ctx context.Context, a Actor, simID string, p store.PageRequest) (store.Page[fleet.Alert], error) {
	return s.alertsPage(ctx, a, simID, p)
}

// alertsPage pages the alerts (about simID, if set) for a viewer or above.
func (s *Service) alertsPage(ctx context.Context, a Actor, simID string, p store.PageRequest) (store.Page[fleet.Alert], error) {
	if err := require(a, fleet.RoleViewer); err != nil {
		return store.Page[fleet.Alert]{}, err
	}
	if p.Limit <= 0 || p.Limit > maxAlertsPerQuery {
		p.Limit = maxAlertsPerQuery
	}
	if err := checkEventCursor(p.Cursor); err != nil {
		return store.Page[fleet.Alert]{}, err
	}
	return s.listAlerts(ctx, store.EventFilter{PageRequest: p, Action: AlertAction, ObjectID: simID})
}

// listAlerts reads the alert events f selects, with their acknowledgements.
func (s *Service) listAlerts(ctx context.Context, f store.EventFilter) (store.Page[fleet.Alert], error) {
	evs, err := s.st.ListEvents(ctx, f)
	if err != nil {
		return store.Page[fleet.Alert]{}, err
	}
	out := store.Page[fleet.Alert]{Items: make([]fleet.Alert, len(evs.Items)), Next: evs.Next}
	for i, e := range evs.Items {
		out.Items[i].Event = e
		// One indexed lookup per alert on the page (events by object).
		acks, err := s.st.ListEvents(ctx, store.EventFilter{PageRequest: store.PageRequest{Limit: 1}, ObjectID: alertObjectID(e.ID), Action: AlertAckAction})
		if err != nil {
			return store.Page[fleet.Alert]{}, err
		}
		if len(acks.Items) > 0 {
			out.Items[i].Ack = &acks.Items[0]
		}
	}
	return out, nil
}

func alertObjectID(id int64) string { return "alert:" + strconv.FormatInt(id, 10) }

// alert reads one alert by its event id.
func (s *Service) alert(ctx context.Context, r store.Reader, id int64) (fleet.Event, error) {
	evs, err := r.ListEvents(ctx, store.EventFilter{PageRequest: store.PageRequest{Limit: 1, Cursor: strconv.FormatInt(id+1, 10)}, Action: AlertAction})
	if err != nil {
		return fleet.Event{}, err
	}
	if len(evs.Items) == 0 || evs.Items[0].ID != id {
		return fleet.Event{}, fleet.Errorf(fleet.CodeNotFound, "id", "no such alert")
	}
	return evs.Items[0], nil
}

// AcknowledgeAlert records that an operator has seen an alert; a second
// acknowledgement is a no-op.
func (s *Service) AcknowledgeAlert(ctx context.Context, a Actor, id int64) error {
	if err := require(a, fleet.RoleOperator); err != nil {
		return err
	}
	err := s.st.Update(ctx, func(tx store.Tx) error {
		al, err := s.alert(ctx, tx, id)
		if err != nil {
			return err
		}
		// One acknowledgement per alert, however many operators click at once.
		if err := tx.Lock(ctx, alertObjectID(id)); err != nil {
			return err
		}
		acks, err := tx.ListEvents(ctx, store.EventFilter{PageRequest: store.PageRequest{Limit: 1}, ObjectID: alertObjectID(id), Action: AlertAckAction})
		if err != nil || len(acks.Items) > 0 {
			return err
		}
		return s.event(ctx, tx, a, AlertAckAction, alertObjectType, alertObjectID(id), map[string]any{"sim": al.ObjectID, "kind": al.Details["kind"]})
	})
	return storeErr(err, "id")
}

// QuarantineOrigin is the group a SIM was in before its last move, from
// the audit trail ("" when it was in none, or never moved): where a
// release sends it back.
func (s *Service) QuarantineOrigin(ctx context.Context, a Actor, simID string) (string, bool, error) {
	if err := require(a, fleet.RoleViewer); err != nil {
		return "", false, err
	}
	evs, err := s.st.ListEvents(ctx, store.EventFilter{PageRequest: store.PageRequest{Limit: 1}, ObjectID: simID, Action: "sim.set_group"})
	if err != nil || len(evs.Items) == 0 {
		return "", false, err
	}
	from, ok := evs.Items[0].Details["from"].(string)
	return from, ok, nil
}
