// SPDX-License-Identifier: Apache-2.0

// Package platform is the narrow interface between the gateway and the
// platform services it hosts on its in-tunnel network stack (data store,
// forwarders, unified endpoint, remote access): a service sees who is
// calling, can listen and dial on the stack and ask whether a SIM is
// online — and nothing else of the gateway or the control plane.
package platform

import (
	"context"
	"net"
	"net/netip"

	"github.com/wirefleet/wirefleet/fleet"
)

// Service is a service hosted on the gateway's in-tunnel network stack.
// The gateway gives its addresses to the stack, starts it after the
// built-in services and closes it on Close.
type Service interface {
	// Addrs lists the addresses, inside the platform range, the service
	// listens on or dials from.
	Addrs() []netip.Addr
	// Start begins serving through host and returns without blocking.
	Start(host Host) error
	// Close stops serving and waits for the service's goroutines.
	Close() error
}

// Dialer is implemented by a service that opens connections to devices
// from the stack (remote access). The stack does not let a TCP dial choose
// its local address; for IPv4 gVisor picks the address sharing the longest
// prefix with the destination, the first one on a tie — and every platform
// address ties for a device's overlay address. So the gateway gives the
// dialer's source address to the stack before all others, and the device
// sees connections come from it.
type Dialer interface {
	Service
	// DialSource is the address connections to devices come from.
	DialSource() netip.Addr
}

// Host is what a service gets from the gateway.
type Host interface {
	// Listen opens TCP listeners on tcpPorts and UDP sockets on udpPorts
	// of addr on the stack, in that order; on any failure it closes what
	// it opened, so a service's Start has nothing to undo.
	Listen(addr netip.Addr, tcpPorts, udpPorts []uint16) ([]net.Listener, []net.PacketConn, error)
	// DialTCP connects to a device's address and port through its tunnel.
	DialTCP(ctx context.Context, to netip.AddrPort) (net.Conn, error)
	// Caller returns the SIM sending from addr, a tunnel source address
	// the gateway has checked is its sender's own.
	Caller(ctx context.Context, addr netip.Addr) (Caller, bool)
	// Online reports whether a SIM has a live session on this gateway.
	Online(simID string) bool
	// Reachable returns the active SIM simID when device-to-device
	// policy lets from reach it (both groups admit each other).
	Reachable(ctx context.Context, from fleet.SIM, simID string) (fleet.SIM, bool)
}

// Caller is the device behind a tunnel source address.
type Caller struct {
	SIM fleet.SIM
	// GroupName and Group are the SIM's group ("" and zero settings when
	// the SIM has none), as the gateway holds them (kept current by the
	// change feed).
	GroupName string
	Group     fleet.GroupSettings
}
