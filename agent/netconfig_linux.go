// SPDX-License-Identifier: Apache-2.0

package agent

import (
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
)

// configureInterface gives the TUN its overlay address, brings it up and
// routes the allowed IPs through it. Routes live on the interface, so they
// vanish with it when the tunnel closes.
func configureInterface(name string, addr netip.Prefix, allowed []netip.Prefix) error {
	link, err := netlink.LinkByName(name)
	if err != nil {
		return fmt.Errorf("agent: finding %s: %w", name, err)
	}
	if err := netlink.AddrAdd(link, &netlink.Addr{IPNet: ipNet(addr)}); err != nil {
		return fmt.Errorf("agent: address %v on %s: %w", addr, name, err)
	}
	if err := netlink.LinkSetUp(link); err != nil {
		return fmt.Errorf("agent: bringing %s up: %w", name, err)
	}
	for _, p := range allowed {
		if p.Contains(addr.Addr()) && p.Bits() == addr.Bits() {
			continue
		}
		r := &netlink.Route{LinkIndex: link.Attrs().Index, Dst: ipNet(p.Masked()), Scope: netlink.SCOPE_LINK}
		if err := netlink.RouteReplace(r); err != nil {
			return fmt.Errorf("agent: route %v via %s: %w", p, name, err)
		}
	}
	return nil
}

func ipNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

// replaceRoutes moves the TUN's routes from old to next: routes to
// prefixes only in next are added, those only in old removed. The
// interface's own address is never routed.
func replaceRoutes(name string, addr netip.Prefix, old, next []netip.Prefix) error {
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
		if in(old, p) || p.Contains(addr.Addr()) && p.Bits() == addr.Bits() {
			continue
		}
		r := &netlink.Route{LinkIndex: link.Attrs().Index, Dst: ipNet(p.Masked()), Scope: netlink.SCOPE_LINK}
		if err := netlink.RouteReplace(r); err != nil {
			return fmt.Errorf("agent: route %v via %s: %w", p, name, err)
		}
	}
	for _, p := range old {
		if in(next, p) || p.Contains(addr.Addr()) && p.Bits() == addr.Bits() {
			continue
		}
		r := &netlink.Route{LinkIndex: link.Attrs().Index, Dst: ipNet(p.Masked()), Scope: netlink.SCOPE_LINK}
		if err := netlink.RouteDel(r); err != nil {
			return fmt.Errorf("agent: removing route %v via %s: %w", p, name, err)
		}
	}
	return nil
}
