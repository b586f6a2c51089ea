package gateway

import (
	"context"
	"net/netip"

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

// Caller returns the SIM sending from addr, read fresh from the store. The
// router has already checked that a packet's source is its sender's own
// address, so a connection's remote address identifies the device.
func (h *ServiceHost) Caller(ctx context.Context, addr netip.Addr) (Caller, bool) {
	sim, ok := h.s.callerSIM(ctx, addr)
	if !ok {
		return Caller{}, false
	}
	c := Caller{SIM: sim}
	if sim.GroupID != "" {
		h.s.g.policies.ensure(ctx, h.s.g.st, sim.GroupID)
		if grp := h.s.g.policies.get(sim.GroupID); grp != nil {
			c.GroupName, c.Group = grp.name, grp.settings
		}
	}
	return c, true
}

// Online reports whether a SIM has a live session on this gateway.
func (h *ServiceHost) Online(simID string) bool {
	return h.s.g.Connection(simID).Online
}
