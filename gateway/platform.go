// SPDX-License-Identifier: Apache-2.0

package gateway

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"slices"

	"github.com/wirefleet/wirefleet/controlplane"
	"github.com/wirefleet/wirefleet/fleet"
	"golang.zx2c4.com/wireguard/tun/netstack"
)

// PlatformService is a service hosted on the gateway's in-tunnel network
// stack (a data store, a forwarder, a remote-access dialer). The gateway
// gives its addresses to the stack, starts it after the built-in services
// (DNS, metadata) and closes it on Close. Services live in packages of their
// own and see the gateway only through a ServiceHost.
type PlatformService interface {
	// Addrs lists the addresses, inside the platform range, the service
	// listens on or dials from.
	Addrs() []netip.Addr
	// Start begins serving on host's stack and returns without blocking.
	Start(host *ServiceHost) error
	// Close stops serving and waits for the service's goroutines.
	Close() error
}

// ServiceHost is what a platform service gets from the gateway: the
// userspace network stack and the identity behind a tunnel address.
type ServiceHost struct {
	s *services
}

// Net returns the in-tunnel network stack: listeners on it are reached by
// devices, and connections dialled from it reach devices through their
// tunnels.
func (h *ServiceHost) Net() *netstack.Net { return h.s.net }

// Service returns the control plane.
func (h *ServiceHost) Service() *controlplane.Service { return h.s.g.svc }

// Caller is the device behind a tunnel source address.
type Caller struct {
	SIM fleet.SIM
	// GroupName and Group are the SIM's group ("" and zero settings when
	// the SIM has none), as the gateway holds them (kept current by the
	// change feed).
	GroupName string
	Group     fleet.GroupSettings
}

// Caller returns the SIM sending from addr. The router has already checked
// that a packet's source is its sender's own address, so a connection's
// remote address identifies the device. The record is the gateway's own
// copy, which the store's change feed replaces on every change of the SIM
// (tags, group, status) within milliseconds: no database read per request.
func (h *ServiceHost) Caller(ctx context.Context, addr netip.Addr) (Caller, bool) {
	addr = addr.Unmap()
	p := h.s.g.router.peerFor(addr)
	if p == nil {
		return Caller{}, false
	}
	st := stateOf(p)
	if st == nil || st.revoked.Load() {
		return Caller{}, false
	}
	var c Caller
	if st.stale.Load() {
		// A change could not be read: ask the store itself.
		sim, ok := h.s.callerSIM(ctx, addr)
		if !ok {
			return Caller{}, false
		}
		c.SIM = sim
	} else {
		sim := st.SIM()
		if sim == nil || sim.Address != addr || sim.Status != fleet.StatusActive {
			return Caller{}, false
		}
		c.SIM = *sim
	}
	if c.SIM.GroupID != "" {
		if err := h.s.g.policies.ensure(ctx, h.s.g.st, c.SIM.GroupID); err != nil {
			return Caller{}, false // without its group's settings, a service cannot decide
		}
		if grp := h.s.g.policies.get(c.SIM.GroupID); grp != nil {
			c.GroupName, c.Group = grp.name, grp.settings
		}
	}
	return c, true
}

// Online reports whether a SIM has a live session on this gateway.
func (h *ServiceHost) Online(simID string) bool {
	return h.s.g.Connection(simID).Online
}

// Dialer is implemented by a platform service that opens connections to
// devices from the stack (remote access). The stack does not let a TCP dial
// choose its local address; for IPv4 gVisor picks the address sharing the
// longest prefix with the destination, the first one on a tie — and every
// platform address ties for a device's overlay address. So the gateway
// gives the dialer's source address to the stack before all others, and
// the device sees connections come from it.
type Dialer interface {
	PlatformService
	// DialSource is the address connections to devices come from.
	DialSource() netip.Addr
}

// stackAddrs lists the stack's addresses: the one dialer's source first,
// then the built-in services', then the other services'.
func stackAddrs(services []PlatformService) ([]netip.Addr, error) {
	var addrs []netip.Addr
	for _, ps := range services {
		if d, ok := ps.(Dialer); ok {
			if len(addrs) > 0 {
				return nil, fmt.Errorf("gateway: two platform services dial devices (%s and %s); only one source address can be the stack's first", addrs[0], d.DialSource())
			}
			addrs = append(addrs, d.DialSource())
		}
	}
	add := func(a netip.Addr) {
		if !slices.Contains(addrs, a) {
			addrs = append(addrs, a)
		}
	}
	for _, a := range DNSAddrs {
		add(a)
	}
	add(MetadataAddr)
	add(RouterAddr)
	for _, ps := range services {
		for _, a := range ps.Addrs() {
			add(a)
		}
	}
	return addrs, nil
}

// Listen opens TCP listeners on tcpPorts and UDP sockets on udpPorts of
// addr on the stack, in that order; on any failure it closes what it
// opened, so a service's Start has nothing to undo.
func (h *ServiceHost) Listen(addr netip.Addr, tcpPorts, udpPorts []uint16) ([]net.Listener, []net.PacketConn, error) {
	var (
		tcp []net.Listener
		udp []net.PacketConn
	)
	undo := func(err error) ([]net.Listener, []net.PacketConn, error) {
		for _, l := range tcp {
			l.Close()
		}
		for _, c := range udp {
			c.Close()
		}
		return nil, nil, err
	}
	for _, p := range tcpPorts {
		l, err := h.s.net.ListenTCPAddrPort(netip.AddrPortFrom(addr, p))
		if err != nil {
			return undo(fmt.Errorf("listening on %s TCP %d: %w", addr, p, err))
		}
		tcp = append(tcp, l)
	}
	for _, p := range udpPorts {
		c, err := h.s.net.ListenUDPAddrPort(netip.AddrPortFrom(addr, p))
		if err != nil {
			return undo(fmt.Errorf("listening on %s UDP %d: %w", addr, p, err))
		}
		udp = append(udp, c)
	}
	return tcp, udp, nil
}
