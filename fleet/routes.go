// SPDX-License-Identifier: Apache-2.0

package fleet

import (
	"net/netip"
	"time"
)

// RouteStatus says whether a route behind a SIM is in effect.
type RouteStatus string

// Route statuses. Only approved routes are routed; a device's advertised
// prefixes wait for an operator.
const (
	RouteApproved   RouteStatus = "approved"
	RouteAdvertised RouteStatus = "advertised"
)

// Route sources: who asked for the route.
const (
	RouteByOperator = "operator"
	RouteByDevice   = "device"
)

// MaxRoutesPerSIM bounds the prefixes behind one SIM (approved and
// advertised together).
const MaxRoutesPerSIM = 64

// Route is a LAN prefix behind a SIM: the gateway routes packets for it
// into the SIM's tunnel and accepts packets from it out of that tunnel.
//
// A route with a Mapped prefix (same size) is reached by the fleet only
// through it: the gateway translates 1:1 and statelessly, destination on
// the way to the LAN and source on the way out, so that SIMs with the
// same LAN (every site on 192.168.1.0/24) are all reachable.
type Route struct {
	SIMID  string       `json:"simId"`
	Prefix netip.Prefix `json:"prefix"`
	// Mapped is the prefix the fleet reaches the LAN by; zero for an
	// unmapped route, reached by Prefix itself.
	Mapped  netip.Prefix `json:"mappedPrefix,omitzero"`
	Status  RouteStatus  `json:"status"`
	Source  string       `json:"source"` // RouteByOperator or RouteByDevice
	Created time.Time    `json:"created"`
	Updated time.Time    `json:"updated"`
}

// Reach is the prefix others send to: Mapped when set, else Prefix.
func (r Route) Reach() netip.Prefix {
	if r.Mapped.IsValid() {
		return r.Mapped
	}
	return r.Prefix
}
