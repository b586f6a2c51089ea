// SPDX-License-Identifier: Apache-2.0

package sqlstore

import (
	"context"

	"github.com/wirefleet/wirefleet/fleet"
)

// ---- the node registry ----

func (r reader) ListNodes(ctx context.Context) ([]fleet.Node, error) {
	rows, err := r.q.QueryContext(ctx, `SELECT name, endpoint, api, version, sessions, started, seen, degraded FROM nodes ORDER BY name`)
	if err != nil {
		return nil, r.mapErr(err)
	}
	defer rows.Close()
	out := []fleet.Node{}
	for rows.Next() {
		var n fleet.Node
		var started, seen int64
		if err := rows.Scan(&n.Name, &n.Endpoint, &n.API, &n.Version, &n.Sessions, &started, &seen, &n.Degraded); err != nil {
			return nil, err
		}
		n.Started, n.Seen = fromNanos(started), fromNanos(seen)
		out = append(out, n)
	}
	return out, rows.Err()
}

func (t *tx) PutNode(ctx context.Context, n fleet.Node) error {
	_, err := t.exec(ctx, `INSERT INTO nodes (name, endpoint, api, version, sessions, started, seen, degraded) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (name) DO UPDATE SET endpoint = excluded.endpoint, api = excluded.api, version = excluded.version, sessions = excluded.sessions, started = excluded.started, seen = excluded.seen, degraded = excluded.degraded`,
		n.Name, n.Endpoint, n.API, n.Version, n.Sessions, nanos(n.Started), nanos(n.Seen), n.Degraded)
	return err
}

func (t *tx) DeleteNode(ctx context.Context, name string) error {
	return affected(t.exec(ctx, `DELETE FROM nodes WHERE name = ?`, name))
}
