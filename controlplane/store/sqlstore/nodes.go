// SPDX-License-Identifier: Apache-2.0

package sqlstore

import (
	"context"
	"time"

	"github.com/wirefleet/wirefleet/fleet"
	"github.com/wirefleet/wirefleet/wgkey"
)

// ---- the node registry ----

func (r reader) ListNodes(ctx context.Context) ([]fleet.Node, error) {
	rows, err := r.q.QueryContext(ctx, `SELECT name, endpoint, api, version, sessions, started, seen, degraded, mesh_key, mesh_endpoint FROM nodes ORDER BY name`)
	if err != nil {
		return nil, r.mapErr(err)
	}
	defer rows.Close()
	out := []fleet.Node{}
	for rows.Next() {
		var n fleet.Node
		var started, seen int64
		var meshKey string
		if err := rows.Scan(&n.Name, &n.Endpoint, &n.API, &n.Version, &n.Sessions, &started, &seen, &n.Degraded, &meshKey, &n.MeshEndpoint); err != nil {
			return nil, err
		}
		if meshKey != "" {
			if k, err := wgkey.ParsePublic(meshKey); err == nil {
				n.MeshKey = k
			}
		}
		n.Started, n.Seen = fromNanos(started), fromNanos(seen)
		out = append(out, n)
	}
	return out, rows.Err()
}

func (t *tx) PutNode(ctx context.Context, n fleet.Node) error {
	meshKey := ""
	if !n.MeshKey.IsZero() {
		meshKey = n.MeshKey.String()
	}
	_, err := t.exec(ctx, `INSERT INTO nodes (name, endpoint, api, version, sessions, started, seen, degraded, mesh_key, mesh_endpoint) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (name) DO UPDATE SET endpoint = excluded.endpoint, api = excluded.api, version = excluded.version, sessions = excluded.sessions, started = excluded.started, seen = excluded.seen, degraded = excluded.degraded, mesh_key = excluded.mesh_key, mesh_endpoint = excluded.mesh_endpoint`,
		n.Name, n.Endpoint, n.API, n.Version, n.Sessions, nanos(n.Started), nanos(n.Seen), n.Degraded, meshKey, n.MeshEndpoint)
	return err
}

func (t *tx) DeleteNode(ctx context.Context, name string) error {
	return affected(t.exec(ctx, `DELETE FROM nodes WHERE name = ?`, name))
}

// ---- the cluster-wide jobs' leases ----

func (r reader) ListLeases(ctx context.Context) ([]fleet.Lease, error) {
	rows, err := r.q.QueryContext(ctx, `SELECT job, holder, until FROM leases ORDER BY job`)
	if err != nil {
		return nil, r.mapErr(err)
	}
	defer rows.Close()
	out := []fleet.Lease{}
	for rows.Next() {
		var l fleet.Lease
		var until int64
		if err := rows.Scan(&l.Job, &l.Holder, &until); err != nil {
			return nil, err
		}
		l.Until = fromNanos(until)
		out = append(out, l)
	}
	return out, rows.Err()
}

// TakeLease is one statement: the upsert's condition is checked under the
// row's lock (PostgreSQL) or the single writer (SQLite), so of two nodes
// taking a lapsed lease at once one updates the row and the other finds
// it held.
func (t *tx) TakeLease(ctx context.Context, job, holder string, now, until time.Time) (bool, error) {
	res, err := t.exec(ctx, `INSERT INTO leases (job, holder, until) VALUES (?, ?, ?)
ON CONFLICT (job) DO UPDATE SET holder = excluded.holder, until = excluded.until
WHERE leases.holder = excluded.holder OR leases.until <= ?`, job, holder, nanos(until), nanos(now))
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

func (t *tx) ReleaseLease(ctx context.Context, job, holder string) error {
	_, err := t.exec(ctx, `DELETE FROM leases WHERE job = ? AND holder = ?`, job, holder)
	return err
}
