// SPDX-License-Identifier: Apache-2.0

package agent

import (
	"fmt"
	"log/slog"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// configureInterface gives the TUN its overlay addresses, brings it up and
// routes the allowed IPs through it. Routes live on the interface, so they
// vanish with it when the tunnel closes. IPv6 is best effort: on a host
// with IPv6 turned off the tunnel comes up with IPv4 alone (logged), never
// not at all.
func configureInterface(name string, addrs, allowed []netip.Prefix, log *slog.Logger) error {
	link, err := netlink.LinkByName(name)
	if err != nil {
		return fmt.Errorf("agent: finding %s: %w", name, err)
	}
	no6 := false
	for _, a := range addrs {
		na := &netlink.Addr{IPNet: ipNet(a)}
		if a.Addr().Is6() {
			na.Flags = unix.IFA_F_NODAD // a point-to-point tunnel has no neighbour to ask
		}
		if err := netlink.AddrAdd(link, na); err != nil {
			if a.Addr().Is6() {
				log.Warn("the TUN has no IPv6 address; IPv4 only", "address", a, "err", err)
				no6 = true
				continue
			}
			return fmt.Errorf("agent: address %v on %s: %w", a, name, err)
		}
	}
	if err := netlink.LinkSetUp(link); err != nil {
		return fmt.Errorf("agent: bringing %s up: %w", name, err)
	}
	for _, p := range allowed {
		if own(addrs, p) || no6 && p.Addr().Is6() {
			continue
		}
		r := &netlink.Route{LinkIndex: link.Attrs().Index, Dst: ipNet(p.Masked()), Scope: netlink.SCOPE_LINK}
		if err := netlink.RouteReplace(r); err != nil {
			if p.Addr().Is6() {
				log.Warn("no IPv6 route through the tunnel", "prefix", p, "err", err)
				continue
			}
			return fmt.Errorf("agent: route %v via %s: %w", p, name, err)
		}
	}
	return nil
}

// own reports whether p is one of the tunnel's own addresses (never routed:
// the address is on the interface).
func own(addrs []netip.Prefix, p netip.Prefix) bool {
	for _, a := range addrs {
		if p.Contains(a.Addr()) && p.Bits() == a.Bits() {
			return true
		}
	}
	return false
}

func ipNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

// replaceRoutes moves the TUN's routes from old to next: routes to
// prefixes only in next are added, those only in old removed. The
// interface's own addresses are never routed.
func replaceRoutes(name string, addrs, old, next []netip.Prefix) error {
	link, err := netlink.LinkByName(name)
	if err != nil {
		return fmt.Errorf("agent: finding %s: %w", name, err)
	}
	in := func(list []netip.Prefix, p netip.Prefix) bool {
		for _, q := range list {
			if q.Masked() == p.Masked() {
				return true
			}
		}
		return false
	}
	for _, p := range next {
		if in(old, p) || own(addrs, p) {
			continue
		}
		r := &netlink.Route{LinkIndex: link.Attrs().Index, Dst: ipNet(p.Masked()), Scope: netlink.SCOPE_LINK}
		if err := netlink.RouteReplace(r); err != nil {
			return fmt.Errorf("agent: route %v via %s: %w", p, name, err)
		}
	}
	for _, p := range old {
		if in(next, p) || own(addrs, p) {
			continue
		}
		r := &netlink.Route{LinkIndex: link.Attrs().Index, Dst: ipNet(p.Masked()), Scope: netlink.SCOPE_LINK}
		if err := netlink.RouteDel(r); err != nil {
			return fmt.Errorf("agent: removing route %v via %s: %w", p, name, err)
		}
	}
	return nil
}
