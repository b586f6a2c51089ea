// SPDX-License-Identifier: Apache-2.0

package sqlstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/wirefleet/wirefleet/controlplane/store"
	"github.com/wirefleet/wirefleet/fleet"
)

// ---- remote-access port mappings ----

const mappingCols = `id, sim_id, port, host, public_port, allowed_sources, tls, max_connections, created, expires, created_by, target`

func scanMapping(s scanner) (fleet.Mapping, error) {
	var (
		m                fleet.Mapping
		sources          string
		tls              int
		created, expires int64
		target           string
	)
	if err := s.Scan(&m.ID, &m.SIMID, &m.Port, &m.Host, &m.PublicPort, &sources, &tls, &m.MaxConnections, &created, &expires, &m.CreatedBy, &target); err != nil {
		return m, err
	}
	if target != "" {
		var err error
		if m.Target, err = netip.ParseAddr(target); err != nil {
			return m, fmt.Errorf("mapping %s: target: %w", m.ID, err)
		}
	}
	if err := json.Unmarshal([]byte(sources), &m.AllowedSources); err != nil {
		return m, fmt.Errorf("mapping %s: allowed sources: %w", m.ID, err)
	}
	m.TLS = tls != 0
	m.Created, m.Expires = fromNanos(created), fromNanos(expires)
	return m, nil
}

func (r reader) Mapping(ctx context.Context, id string) (fleet.Mapping, error) {
	m, err := scanMapping(r.q.QueryRowContext(ctx, r.rebind(`SELECT `+mappingCols+` FROM port_mappings WHERE id = ?`), id))
	return m, r.mapErr(err)
}

func (r reader) ListMappings(ctx context.Context, f store.MappingFilter) (store.Page[fleet.Mapping], error) {
	q := `SELECT ` + mappingCols + ` FROM port_mappings WHERE id > ?`
	args := []any{f.Cursor}
	if f.SIMID != "" {
		q += ` AND sim_id = ?`
		args = append(args, f.SIMID)
	}
	return list(ctx, r, q+` ORDER BY id LIMIT ?`, args, limit(f.PageRequest), scanMapping, func(m fleet.Mapping) string { return m.ID })
}

func (t *tx) InsertMapping(ctx context.Context, m fleet.Mapping) error {
	tls := 0
	if m.TLS {
		tls = 1
	}
	target := ""
	if m.Target.IsValid() {
		target = m.Target.String()
	}
	_, err := t.exec(ctx, `INSERT INTO port_mappings (`+mappingCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		m.ID, m.SIMID, m.Port, m.Host, m.PublicPort, marshal(m.AllowedSources), tls, m.MaxConnections, nanos(m.Created), nanos(m.Expires), m.CreatedBy, target)
	if ce := (*store.ConflictError)(nil); errors.As(err, &ce) {
		// The id is random: the unique column that collides is the port.
		return &store.ConflictError{Field: "publicPort"}
	}
	return err
}

func (t *tx) DeleteMapping(ctx context.Context, id string) error {
	return affected(t.exec(ctx, `DELETE FROM port_mappings WHERE id = ?`, id))
}

func (t *tx) UsedPublicPorts(ctx context.Context, now time.Time) (map[int]bool, error) {
	rows, err := t.q.QueryContext(ctx, t.rebind(`SELECT public_port FROM port_mappings WHERE expires > ?`), nanos(now))
	if err != nil {
		return nil, t.mapErr(err)
	}
	defer rows.Close()
	used := map[int]bool{}
	for rows.Next() {
		var p int
		if err := rows.Scan(&p); err != nil {
			return nil, err
		}
		used[p] = true
	}
	return used, rows.Err()
}

func (t *tx) DeleteExpiredMappingsOnPort(ctx context.Context, port int, now time.Time) ([]string, error) {
	rows, err := t.q.QueryContext(ctx, t.rebind(`SELECT id FROM port_mappings WHERE public_port = ? AND expires <= ?`), port, nanos(now))
	if err != nil {
		return nil, t.mapErr(err)
	}
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return nil, err
		}
		ids = append(ids, id)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	for _, id := range ids {
		if _, err := t.exec(ctx, `DELETE FROM port_mappings WHERE id = ?`, id); err != nil {
			return nil, err
		}
	}
	return ids, nil
}
