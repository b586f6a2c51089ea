// SPDX-License-Identifier: Apache-2.0

package store

import (
	"context"
	"net/netip"

	"github.com/wirefleet/wirefleet/fleet"
)

// RouteReader reads the LAN routes behind SIMs.
type RouteReader interface {
	// SIMRoutes lists one SIM's routes by prefix.
	SIMRoutes(ctx context.Context, simID string) ([]fleet.Route, error)
	// ListRoutes lists every SIM's routes, by SIM then prefix; Cursor is
	// the previous page's Next.
	ListRoutes(ctx context.Context, f RouteFilter) (Page[fleet.Route], error)
	// RoutesReaching lists the routes whose Reach overlaps p (the conflict
	// check before a write). IPv4 only.
	RoutesReaching(ctx context.Context, p netip.Prefix) ([]fleet.Route, error)
}

// RouteWriter writes routes. The writer publishes a ChangeSIM of the
// route's SIM: gateways re-read a SIM's routes with the SIM.
type RouteWriter interface {
	// PutRoute inserts or replaces the route (SIMID, Prefix).
	PutRoute(ctx context.Context, r fleet.Route) error
	// DeleteRoute removes the route (simID, prefix); ErrNotFound if none.
	DeleteRoute(ctx context.Context, simID string, prefix netip.Prefix) error
}

// GatePeerReader reads VXLAN Gate peers.
type GatePeerReader interface {
	GatePeer(ctx context.Context, id string) (fleet.GatePeer, error)
	GatePeerByInner(ctx context.Context, addr netip.Addr) (fleet.GatePeer, error)
	// ListGatePeers lists them by id.
	ListGatePeers(ctx context.Context, p PageRequest) (Page[fleet.GatePeer], error)
}

// GatePeerWriter writes VXLAN Gate peers.
type GatePeerWriter interface {
	// InsertGatePeer stores g; an (outer address, VNI) or inner address
	// already used is a *ConflictError.
	InsertGatePeer(ctx context.Context, g fleet.GatePeer) error
	DeleteGatePeer(ctx context.Context, id string) error
}

// RouteFilter selects routes.
type RouteFilter struct {
	PageRequest
	Status fleet.RouteStatus // "" for all
	// Unmapped keeps only routes reached by their own prefix.
	Unmapped bool
}
