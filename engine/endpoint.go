// SPDX-License-Identifier: Apache-2.0

package engine

import (
	"net/netip"

	"golang.zx2c4.com/wireguard/conn"
)

// endpointAddr returns the destination address of ep without allocating
// for the standard bind.
func endpointAddr(ep conn.Endpoint) netip.AddrPort {
	if s, ok := ep.(*conn.StdNetEndpoint); ok {
		return s.AddrPort
	}
	a, _ := netip.ParseAddrPort(ep.DstToString())
	return a
}
