// SPDX-License-Identifier: Apache-2.0

package sqlstore

import (
	"context"

	"github.com/wirefleet/wirefleet/controlplane/store"
)

// Presences implements store.PresenceReader.
func (r reader) Presences(ctx context.Context, simID string) ([]store.Presence, error) {
	return r.presences(ctx, `SELECT sim_id, gateway, endpoint, since FROM sim_presence WHERE sim_id = ? ORDER BY since`, simID)
}

// PresencesAt implements store.PresenceReader.
func (r reader) PresencesAt(ctx context.Context, endpoint string) ([]store.Presence, error) {
	return r.presences(ctx, `SELECT sim_id, gateway, endpoint, since FROM sim_presence WHERE endpoint = ? ORDER BY since DESC LIMIT 16`, endpoint)
}

func (r reader) presences(ctx context.Context, query, arg string) ([]store.Presence, error) {
	rows, err := r.q.QueryContext(ctx, r.rebind(query), arg)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []store.Presence
	for rows.Next() {
		var p store.Presence
		var since int64
		if err := rows.Scan(&p.SIMID, &p.Gateway, &p.Endpoint, &since); err != nil {
			return nil, err
		}
		p.Since = fromNanos(since)
		out = append(out, p)
	}
	return out, rows.Err()
}

// SetPresence implements store.PresenceWriter.
func (t *tx) SetPresence(ctx context.Context, p store.Presence) error {
	_, err := t.exec(ctx, `INSERT INTO sim_presence (sim_id, gateway, endpoint, since) VALUES (?, ?, ?, ?)
		ON CONFLICT (sim_id, gateway) DO UPDATE SET endpoint = excluded.endpoint, since = excluded.since`, p.SIMID, p.Gateway, p.Endpoint, nanos(p.Since))
	return err
}

// ClearPresence implements store.PresenceWriter.
func (t *tx) ClearPresence(ctx context.Context, simID, gateway string) error {
	if simID == "" {
		_, err := t.exec(ctx, `DELETE FROM sim_presence WHERE gateway = ?`, gateway)
		return err
	}
	_, err := t.exec(ctx, `DELETE FROM sim_presence WHERE sim_id = ? AND gateway = ?`, simID, gateway)
	return err
}
