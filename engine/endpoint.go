// SPDX-License-Identifier: Apache-2.0

package engine

import (
	"net/netip"

	"github.com/wirefleet/wirefleet/engine/udpbind"
	"golang.zx2c4.com/wireguard/conn"
)

// endpointAddr returns the destination address of ep without allocating
// for the standard bind.
func endpointAddr(ep conn.Endpoint) netip.AddrPort {
	switch s := ep.(type) {
	case *udpbind.Endpoint:
		return s.Dst
	case *conn.StdNetEndpoint:
		return s.AddrPort
	}
	a, _ := netip.ParseAddrPort(ep.DstToString())
	return a
}
