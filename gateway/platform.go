// SPDX-License-Identifier: Apache-2.0

package gateway

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"path"
	"reflect"
	"slices"

	"github.com/wirefleet/wirefleet/controlplane"
	"github.com/wirefleet/wirefleet/controlplane/store"
	"github.com/wirefleet/wirefleet/fleet"
	"github.com/wirefleet/wirefleet/internal/fairshare"
	"github.com/wirefleet/wirefleet/services/metadata"
	"github.com/wirefleet/wirefleet/services/platform"
	"github.com/wirefleet/wirefleet/wgkey"
)

// serviceHost is the platform.Host the gateway gives its services: the
// in-tunnel stack and the identity behind a tunnel address.
type serviceHost struct {
	s *stack
	// share is the service's, one account per SIM: every connection and
	// datagram it is handed counts against its sender's (fairshare).
	share *fairshare.Share
}

// hostFor returns the host of service ps, with a share of its own named
// after its package (forwarder, datastore, dns, ...).
func (s *stack) hostFor(ps platform.Service) *serviceHost {
	name := "service"
	if t := reflect.TypeOf(ps); t != nil {
		for t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		name = path.Base(t.PkgPath())
	}
	return &serviceHost{s: s, share: fairshare.New(name, s.g.cfg.ServiceShare, s.g.shares)}
}

// shareKey names the SIM behind a source address for the shares: its
// IPv4 and IPv6 addresses and the hosts of its LANs are one account.
func (s *stack) shareKey(a netip.Addr) string {
	a = a.Unmap()
	if a.Is6() {
		if a4, ok := s.g.o6.V4(a); ok {
			a = a4
		}
	}
	if p := s.g.router.peerFor(a); p != nil {
		if st := stateOf(p); st != nil {
			return st.id
		}
	}
	if r := s.g.lans.lookup(a); r != nil {
		return r.sim
	}
	return a.String()
}

var _ platform.Host = (*serviceHost)(nil)

// DialTCP implements platform.Host.
func (h *serviceHost) DialTCP(ctx context.Context, to netip.AddrPort) (net.Conn, error) {
	return h.s.net.DialContextTCPAddrPort(ctx, to)
}

// Caller implements platform.Host: the SIM sending from addr. The router has already checked
// that a packet's source is its sender's own address, so a connection's
// remote address identifies the device. The record is the gateway's own
// copy, which the store's change feed replaces on every change of the SIM
// (tags, group, status) within milliseconds: no database read per request.
func (h *serviceHost) Caller(ctx context.Context, addr netip.Addr) (platform.Caller, bool) {
	addr = addr.Unmap()
	if addr.Is6() {
		// A SIM's IPv6 twin: the same SIM (the router checked the
		// source against the twin of the sender's IPv4 address).
		a4, ok := h.s.g.o6.V4(addr)
		if !ok {
			return platform.Caller{}, false
		}
		addr = a4
	}
	p := h.s.g.router.peerFor(addr)
	if p == nil {
		return platform.Caller{}, false
	}
	st := stateOf(p)
	if st == nil || st.revoked.Load() {
		return platform.Caller{}, false
	}
	var c platform.Caller
	if st.stale.Load() {
		// A change could not be read: ask the store itself.
		sim, ok := h.s.callerSIM(ctx, addr)
		if !ok {
			return platform.Caller{}, false
		}
		c.SIM = sim
	} else {
		sim := st.SIM()
		if sim == nil || sim.Address != addr || sim.Status != fleet.StatusActive {
			return platform.Caller{}, false
		}
		c.SIM = *sim
	}
	if c.SIM.GroupID != "" {
		if err := h.s.g.policies.ensure(ctx, h.s.g.st, c.SIM.GroupID); err != nil {
			return platform.Caller{}, false // without its group's settings, a service cannot decide
		}
		if grp := h.s.g.policies.get(c.SIM.GroupID); grp != nil {
			c.GroupName, c.Group = grp.name, grp.settings
		}
	}
	return c, true
}

// Reachable implements platform.Host: the SIM's record from the store,
// and both groups' policies from the gateway's cache.
func (h *serviceHost) Reachable(ctx context.Context, from fleet.SIM, simID string) (fleet.SIM, bool) {
	g := h.s.g
	target, err := g.st.SIM(ctx, simID)
	if err != nil || target.Status != fleet.StatusActive {
		return fleet.SIM{}, false
	}
	if err := g.policies.ensure(ctx, g.st, target.GroupID); err != nil {
		return fleet.SIM{}, false
	}
	if !mutual(g.policies.get(from.GroupID), g.policies.get(target.GroupID)) {
		return fleet.SIM{}, false
	}
	return target, true
}

// Online implements platform.Host.
func (h *serviceHost) Online(simID string) bool {
	return h.s.g.Connection(simID).Online
}

// stackAddrs lists the stack's addresses: the one dialer's source first,
// then the built-in services', then the other services'.
func stackAddrs(services []platform.Service) ([]netip.Addr, error) {
	var addrs []netip.Addr
	for _, ps := range services {
		if d, ok := ps.(platform.Dialer); ok {
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

// Listen implements platform.Host.
func (h *serviceHost) Listen(addr netip.Addr, tcpPorts, udpPorts []uint16) ([]net.Listener, []net.PacketConn, error) {
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
	// An IPv4 platform address is served on its IPv6 twin too, through
	// the same listener (duallisten.go).
	twin := h.s.g.o6.Addr(addr)
	for _, p := range tcpPorts {
		var l net.Listener
		l, err := h.s.net.ListenTCPAddrPort(netip.AddrPortFrom(addr, p))
		if err != nil {
			return undo(fmt.Errorf("listening on %s TCP %d: %w", addr, p, err))
		}
		if twin.IsValid() {
			l6, err := h.s.net.ListenTCPAddrPort(netip.AddrPortFrom(twin, p))
			if err != nil {
				l.Close()
				return undo(fmt.Errorf("listening on %s TCP %d: %w", twin, p, err))
			}
			l = newDualListener(l, l6)
		}
		tcp = append(tcp, h.share.Listener(l, h.s.shareKey))
	}
	for _, p := range udpPorts {
		var c net.PacketConn
		c, err := h.s.net.ListenUDPAddrPort(netip.AddrPortFrom(addr, p))
		if err != nil {
			return undo(fmt.Errorf("listening on %s UDP %d: %w", addr, p, err))
		}
		if twin.IsValid() {
			c6, err := h.s.net.ListenUDPAddrPort(netip.AddrPortFrom(twin, p))
			if err != nil {
				c.Close()
				return undo(fmt.Errorf("listening on %s UDP %d: %w", twin, p, err))
			}
			c = newDualPacketConn(c, c6)
		}
		udp = append(udp, h.share.PacketConn(c, h.s.shareKey))
	}
	return tcp, udp, nil
}

// deviceSelf is the metadata service's view of the control plane: the
// calling device acting on its own SIM, with its tunnel as credential.
type deviceSelf struct {
	svc *controlplane.Service
	st  store.View
}

var _ metadata.ControlPlane = deviceSelf{}

func (d deviceSelf) actor(simID string) controlplane.Actor {
	return controlplane.Actor{Kind: "sim", ID: simID, Role: fleet.RoleOperator}
}

// SIM implements metadata.ControlPlane.
func (d deviceSelf) SIM(ctx context.Context, id string) (fleet.SIM, error) {
	return d.st.SIM(ctx, id)
}

// SetTags implements metadata.ControlPlane.
func (d deviceSelf) SetTags(ctx context.Context, simID string, tags map[string]string) (fleet.SIM, error) {
	return d.svc.SetSIMTags(ctx, d.actor(simID), simID, tags)
}

// AllowedIPs implements metadata.ControlPlane.
func (d deviceSelf) AllowedIPs(ctx context.Context, simID string) ([]string, error) {
	_, sess, err := d.svc.SessionFor(ctx, d.actor(simID), simID)
	return sess.AllowedIPs, err
}

// Routes implements metadata.ControlPlane.
func (d deviceSelf) Routes(ctx context.Context, simID string) ([]fleet.Route, error) {
	return d.st.SIMRoutes(ctx, simID)
}

// AdvertiseRoutes implements metadata.ControlPlane.
func (d deviceSelf) AdvertiseRoutes(ctx context.Context, simID string, prefixes []netip.Prefix) ([]fleet.Route, error) {
	return d.svc.AdvertiseRoutes(ctx, d.actor(simID), simID, prefixes)
}

// ReportAgent implements metadata.ControlPlane.
func (d deviceSelf) ReportAgent(ctx context.Context, simID, agent string) error {
	return d.svc.ReportAgent(ctx, simID, agent)
}

// AnnounceKey implements metadata.ControlPlane.
func (d deviceSelf) AnnounceKey(ctx context.Context, simID string, key wgkey.Public) (fleet.SIM, error) {
	sim, _, err := d.svc.SetSIMKey(ctx, d.actor(simID), simID, controlplane.KeySpec{PublicKey: key, Next: true})
	return sim, err
}
