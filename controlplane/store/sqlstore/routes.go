// SPDX-License-Identifier: Apache-2.0

package sqlstore

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/wirefleet/wirefleet/controlplane/store"
	"github.com/wirefleet/wirefleet/fleet"
)

// ---- LAN routes behind SIMs ----

const routeCols = `sim_id, prefix, mapped, status, source, created, updated, hosts`

func scanRoute(s scanner) (fleet.Route, error) {
	var (
		r                fleet.Route
		prefix, mapped   string
		status, hosts    string
		created, updated int64
	)
	if err := s.Scan(&r.SIMID, &prefix, &mapped, &status, &r.Source, &created, &updated, &hosts); err != nil {
		return r, err
	}
	if hosts != "" && hosts != "{}" {
		if err := json.Unmarshal([]byte(hosts), &r.Hosts); err != nil {
			return r, fmt.Errorf("route of %s: hosts: %w", r.SIMID, err)
		}
	}
	var err error
	if r.Prefix, err = netip.ParsePrefix(prefix); err != nil {
		return r, fmt.Errorf("route of %s: prefix: %w", r.SIMID, err)
	}
	if mapped != "" {
		if r.Mapped, err = netip.ParsePrefix(mapped); err != nil {
			return r, fmt.Errorf("route of %s: mapped prefix: %w", r.SIMID, err)
		}
	}
	r.Status = fleet.RouteStatus(status)
	r.Created, r.Updated = fromNanos(created), fromNanos(updated)
	return r, nil
}

// bounds returns p's first and last IPv4 address as numbers.
func bounds(p netip.Prefix) (lo, hi int64, err error) {
	if p.Addr().Is6() && !p.Addr().Is4In6() {
		return bounds6(p), bounds6(lastOf6(p)), nil
	}
	if !p.Addr().Is4() {
		return 0, 0, fmt.Errorf("sqlstore: route prefix %s: not an IP prefix", p)
	}
	a := p.Masked().Addr().As4()
	first := binary.BigEndian.Uint32(a[:])
	last := first | uint32((uint64(1)<<(32-p.Bits()))-1)
	return int64(first), int64(last), nil
}

func (r reader) routes(ctx context.Context, where string, args ...any) ([]fleet.Route, error) {
	rows, err := r.q.QueryContext(ctx, r.rebind(`SELECT `+routeCols+` FROM sim_routes WHERE `+where), args...)
	if err != nil {
		return nil, r.mapErr(err)
	}
	defer rows.Close()
	var out []fleet.Route
	for rows.Next() {
		rt, err := scanRoute(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, rt)
	}
	return out, rows.Err()
}

func (r reader) SIMRoutes(ctx context.Context, simID string) ([]fleet.Route, error) {
	return r.routes(ctx, `sim_id = ? ORDER BY prefix`, simID)
}

func (r reader) RoutesReaching(ctx context.Context, p netip.Prefix) ([]fleet.Route, error) {
	lo, hi, err := bounds(p)
	if err != nil {
		return nil, err
	}
	rs, err := r.routes(ctx, `reach_lo <= ? AND reach_hi >= ?`, hi, lo)
	if err != nil || p.Addr().Is4() {
		return rs, err
	}
	// IPv6 bounds are /63 coarse: keep the routes that overlap exactly.
	return slices.DeleteFunc(rs, func(x fleet.Route) bool { return !x.Reach().Overlaps(p) }), nil
}

// bounds6 places an IPv6 prefix's first address on the same int64 line
// as IPv4 numbers, below them: its top 63 bits, offset to the negative
// half. Order is kept, so the indexed range query finds every overlap;
// prefixes longer than /63 may be found that do not overlap, and
// RoutesReaching drops them.
func bounds6(p netip.Prefix) int64 {
	a := p.Masked().Addr().As16()
	return int64(binary.BigEndian.Uint64(a[:8])>>1) - 1<<62 - 1<<62
}

// lastOf6 returns the /128 of a prefix's last address.
func lastOf6(p netip.Prefix) netip.Prefix {
	a := p.Masked().Addr().As16()
	for i := p.Bits(); i < 128; i++ {
		a[i/8] |= 0x80 >> (i % 8)
	}
	return netip.PrefixFrom(netip.AddrFrom16(a), 128)
}

// ListRoutes pages by "sim_id prefix": the cursor is the last row's key.
func (r reader) ListRoutes(ctx context.Context, f store.RouteFilter) (store.Page[fleet.Route], error) {
	sim, prefix, _ := strings.Cut(f.Cursor, " ")
	q := `SELECT ` + routeCols + ` FROM sim_routes WHERE (sim_id > ? OR (sim_id = ? AND prefix > ?))`
	args := []any{sim, sim, prefix}
	if f.Status != "" {
		q += ` AND status = ?`
		args = append(args, string(f.Status))
	}
	if f.Unmapped {
		q += ` AND mapped = ''`
	}
	return list(ctx, r, q+` ORDER BY sim_id, prefix LIMIT ?`, args, limit(f.PageRequest), scanRoute, func(rt fleet.Route) string { return rt.SIMID + " " + rt.Prefix.String() })
}

func (t *tx) PutRoute(ctx context.Context, rt fleet.Route) error {
	lo, hi, err := bounds(rt.Reach())
	if err != nil {
		return err
	}
	if _, _, err := bounds(rt.Prefix); err != nil {
		return err
	}
	mapped := ""
	if rt.Mapped.IsValid() {
		mapped = rt.Mapped.String()
	}
	if _, err := t.exec(ctx, `DELETE FROM sim_routes WHERE sim_id = ? AND prefix = ?`, rt.SIMID, rt.Prefix.String()); err != nil {
		return err
	}
	hosts := "{}"
	if len(rt.Hosts) > 0 {
		hosts = marshal(rt.Hosts)
	}
	_, err = t.exec(ctx, `INSERT INTO sim_routes (`+routeCols+`, reach_lo, reach_hi) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		rt.SIMID, rt.Prefix.String(), mapped, string(rt.Status), rt.Source, nanos(rt.Created), nanos(rt.Updated), hosts, lo, hi)
	return err
}

func (t *tx) DeleteRoute(ctx context.Context, simID string, prefix netip.Prefix) error {
	return affected(t.exec(ctx, `DELETE FROM sim_routes WHERE sim_id = ? AND prefix = ?`, simID, prefix.String()))
}

// ---- VXLAN Gate peers ----

const gatePeerCols = `id, name, group_id, outer_address, inner_address, vni, created`

func scanGatePeer(s scanner) (fleet.GatePeer, error) {
	var (
		g            fleet.GatePeer
		outer, inner string
		vni, created int64
	)
	if err := s.Scan(&g.ID, &g.Name, &g.GroupID, &outer, &inner, &vni, &created); err != nil {
		return g, err
	}
	var err error
	if g.OuterAddress, err = netip.ParseAddr(outer); err != nil {
		return g, fmt.Errorf("gate peer %s: outer address: %w", g.ID, err)
	}
	if g.InnerAddress, err = netip.ParseAddr(inner); err != nil {
		return g, fmt.Errorf("gate peer %s: inner address: %w", g.ID, err)
	}
	g.VNI, g.Created = uint32(vni), fromNanos(created)
	return g, nil
}

func (r reader) GatePeer(ctx context.Context, id string) (fleet.GatePeer, error) {
	g, err := scanGatePeer(r.q.QueryRowContext(ctx, r.rebind(`SELECT `+gatePeerCols+` FROM gate_peers WHERE id = ?`), id))
	return g, r.mapErr(err)
}

func (r reader) GatePeerByInner(ctx context.Context, a netip.Addr) (fleet.GatePeer, error) {
	g, err := scanGatePeer(r.q.QueryRowContext(ctx, r.rebind(`SELECT `+gatePeerCols+` FROM gate_peers WHERE inner_address = ?`), a.String()))
	return g, r.mapErr(err)
}

func (r reader) ListGatePeers(ctx context.Context, p store.PageRequest) (store.Page[fleet.GatePeer], error) {
	return list(ctx, r, `SELECT `+gatePeerCols+` FROM gate_peers WHERE id > ? ORDER BY id LIMIT ?`, []any{p.Cursor}, limit(p), scanGatePeer, func(g fleet.GatePeer) string { return g.ID })
}

func (t *tx) InsertGatePeer(ctx context.Context, g fleet.GatePeer) error {
	_, err := t.exec(ctx, `INSERT INTO gate_peers (`+gatePeerCols+`) VALUES (?, ?, ?, ?, ?, ?, ?)`,
		g.ID, g.Name, g.GroupID, g.OuterAddress.String(), g.InnerAddress.String(), int64(g.VNI), nanos(g.Created))
	return err
}

func (t *tx) DeleteGatePeer(ctx context.Context, id string) error {
	return affected(t.exec(ctx, `DELETE FROM gate_peers WHERE id = ?`, id))
}
