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
// advertised together); MaxHostsPerRoute the named hosts of one route.
const (
	MaxRoutesPerSIM  = 64
	MaxHostsPerRoute = 256
)

// ValidateHostName checks a LAN host's DNS label: letters, digits and
// hyphens, not at either end, at most 63 characters.
func ValidateHostName(field, name string) error {
	if name == "" || len(name) > 63 || name[0] == '-' || name[len(name)-1] == '-' {
		return Errorf(CodeInvalid, field, "%q: a DNS label of 1 to 63 letters, digits and inner hyphens", name)
	}
	for _, c := range name {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return Errorf(CodeInvalid, field, "%q: a DNS label of lower-case letters, digits and inner hyphens", name)
		}
	}
	return nil
}

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
	Mapped netip.Prefix `json:"mappedPrefix,omitzero"`
	// Hosts are LAN hosts the operator names (inside Prefix): the
	// platform DNS answers <host>.<sim-id>.lan.<zone> with the address the
	// fleet reaches them by.
	Hosts   map[string]netip.Addr `json:"hosts,omitempty"`
	Status  RouteStatus           `json:"status"`
	Source  string                `json:"source"` // RouteByOperator or RouteByDevice
	Created time.Time             `json:"created"`
	Updated time.Time             `json:"updated"`
}

// Reach is the prefix others send to: Mapped when set, else Prefix.
func (r Route) Reach() netip.Prefix {
	if r.Mapped.IsValid() {
		return r.Mapped
	}
	return r.Prefix
}

// GatePeer is a host outside the fleet joined to the device subnet over
// VXLAN (the SORACOM Gate peer shape): the host configures a Linux vxlan
// interface towards the gateway with plain `ip` commands; the gateway
// answers ARP for device addresses on that segment and routes between it
// and the tunnels, under its group's device-to-device policy.
type GatePeer struct {
	ID      string `json:"id"`
	Name    string `json:"name,omitempty"`
	GroupID string `json:"groupId,omitempty"`
	// OuterAddress is the host's own (underlay) address: VXLAN packets
	// from anywhere else are dropped.
	OuterAddress netip.Addr `json:"outerAddress"`
	// InnerAddress is the host's address on the device subnet, allocated
	// from the SIM pool (never a SIM's).
	InnerAddress netip.Addr `json:"innerAddress"`
	// VNI is the VXLAN network identifier (1–16777215).
	VNI     uint32    `json:"vni"`
	Created time.Time `json:"created"`
}

// MaxVNI is the largest VXLAN network identifier (24 bits).
const MaxVNI = 1<<24 - 1
