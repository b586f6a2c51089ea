// SPDX-License-Identifier: Apache-2.0

// Package udpbind is the engine's UDP layer on Linux: a conn.Bind that
// answers every peer from the local address its packets arrived on.
//
// Why not conn.StdNetBind: it keeps a datagram's local address (its
// IP_PKTINFO) only while UDP GRO is off; with GRO on — the kernels it
// runs on — the datagrams split out of a coalesced read lose it, so
// replies leave from whatever address the kernel's route prefers. On a
// host with a second address (a virtual address that keepalived moves
// between gateway nodes, or a multi-homed host) a standard WireGuard
// client then follows the reply to the host's own address and never uses
// the virtual one again: failover breaks. This bind reads each
// datagram's local address through GRO and sends from it (PKTINFO with
// the interface left to the route, so the address may move between
// interfaces), and keeps batching (recvmmsg/sendmmsg) and UDP GRO/GSO.
package udpbind

import (
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"strconv"

	"golang.zx2c4.com/wireguard/conn"
)

// Endpoint is a peer's address and the local address its datagrams
// arrived on (the zero Addr: not known, the kernel chooses).
type Endpoint struct {
	Dst netip.AddrPort
	Src netip.Addr
	// ifindex is the arrival interface, kept only for an IPv6 link-local
	// source (an address that means nothing without its interface).
	ifindex uint32
}

var _ conn.Endpoint = (*Endpoint)(nil)

// ClearSrc forgets the local address.
func (e *Endpoint) ClearSrc() { e.Src, e.ifindex = netip.Addr{}, 0 }

// SrcToString is the local address, "" when not known.
func (e *Endpoint) SrcToString() string {
	if !e.Src.IsValid() {
		return ""
	}
	return e.Src.String()
}

// DstToString is the peer's address and port.
func (e *Endpoint) DstToString() string { return e.Dst.String() }

// DstToBytes is the peer's address and port as bytes (cookie MACs).
func (e *Endpoint) DstToBytes() []byte {
	b, _ := e.Dst.MarshalBinary()
	return b
}

// DstIP is the peer's address.
func (e *Endpoint) DstIP() netip.Addr { return e.Dst.Addr() }

// SrcIP is the local address (the zero Addr when not known).
func (e *Endpoint) SrcIP() netip.Addr { return e.Src }

// ParseEndpoint reads "addr:port" as an endpoint without a local address.
func ParseEndpoint(s string) (*Endpoint, error) {
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		return nil, err
	}
	return &Endpoint{Dst: netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())}, nil
}

// errNoSocket is a send to a family the bind has no socket for.
var errNoSocket = errors.New("udpbind: no socket for this address family")

// portOf is a listener's port.
func portOf(c net.PacketConn) uint16 {
	_, p, _ := net.SplitHostPort(c.LocalAddr().String())
	n, _ := strconv.Atoi(p)
	return uint16(n)
}

var nativeEndian = binary.NativeEndian
