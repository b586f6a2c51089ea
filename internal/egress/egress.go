// SPDX-License-Identifier: Apache-2.0

// Package egress decides which addresses the platform's own outbound
// connections may reach: forwarders, MQTT upstream brokers and alert
// webhooks. Their destinations come from group settings an operator below
// admin may write, and devices choose when to use them — without a check,
// one group's route to 127.0.0.1:8080 lets its devices read the gateway
// host's own API. The check runs on the address actually dialled (after
// DNS, for every connection, so on every redirect too), which no DNS
// rebinding gets around.
package egress

import (
	"fmt"
	"net"
	"net/netip"
	"syscall"
)

// Denied are the ranges refused unless a Policy allows them: this host and
// its networks, private and shared address space, link-local, multicast
// and reserved addresses.
var Denied = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),
	netip.MustParsePrefix("10.0.0.0/8"),
	netip.MustParsePrefix("100.64.0.0/10"), // CGNAT, and the platform's 100.127.0.0/16
	netip.MustParsePrefix("127.0.0.0/8"),
	netip.MustParsePrefix("169.254.0.0/16"), // link-local, cloud metadata endpoints
	netip.MustParsePrefix("172.16.0.0/12"),
	netip.MustParsePrefix("192.0.0.0/24"),
	netip.MustParsePrefix("192.168.0.0/16"),
	netip.MustParsePrefix("198.18.0.0/15"),
	netip.MustParsePrefix("224.0.0.0/3"), // multicast and reserved
	netip.MustParsePrefix("::/127"),      // unspecified and loopback
	netip.MustParsePrefix("64:ff9b::/96"),
	netip.MustParsePrefix("fc00::/7"),
	netip.MustParsePrefix("fe80::/10"),
	netip.MustParsePrefix("ff00::/8"),
}

// Policy is the check. Its zero value denies Denied and this host's own
// addresses.
type Policy struct {
	// Allow lists prefixes reached although denied by default: an admin's
	// explicit choice (wirefleetd --egress-allow), e.g. a broker on the
	// operator's private network.
	Allow []netip.Prefix
	// HostAddrs returns this host's addresses; default: the interfaces'.
	HostAddrs func() []netip.Addr
	// HostPrefixes returns this host's addresses with their networks'
	// lengths (CheckOnLink); default: the interfaces'.
	HostPrefixes func() []netip.Prefix
}

// DeniedError is a destination the policy refuses.
type DeniedError struct {
	Addr netip.Addr
}

// Error implements error.
func (e *DeniedError) Error() string {
	return fmt.Sprintf("egress: %s is a private, local or reserved address, not allowed for forwarding (wirefleetd --egress-allow)", e.Addr)
}

// Check returns a *DeniedError when a may not be reached.
func (p Policy) Check(a netip.Addr) error {
	a = a.Unmap()
	for _, pfx := range p.Allow {
		if pfx.Contains(a) {
			return nil
		}
	}
	for _, pfx := range Denied {
		if pfx.Contains(a) {
			return &DeniedError{Addr: a}
		}
	}
	host := p.HostAddrs
	if host == nil {
		host = interfaceAddrs
	}
	for _, h := range host() {
		if h == a {
			return &DeniedError{Addr: a}
		}
	}
	return nil
}

// Control is a net.Dialer Control function enforcing the policy on the
// address being dialled.
func (p Policy) Control(network, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("egress: dialling %q: %w", address, err)
	}
	return p.Check(ap.Addr())
}

// Dialer returns d with the policy enforced on every connection.
func (p Policy) Dialer(d net.Dialer) *net.Dialer {
	d.Control = p.Control
	return &d
}

// CheckOnLink is Check, and also refuses the networks this host is on
// (its interfaces' prefixes): for traffic the platform carries for
// devices (breakout), which must not reach the hosts beside the gateway
// — a cloud VPC's public IPv6 subnet, say — that trust it as local,
// unless Allow names them.
func (p Policy) CheckOnLink(a netip.Addr) error {
	nets := p.HostPrefixes
	if nets == nil {
		nets = interfacePrefixes
	}
	ns := nets()
	if p.HostAddrs == nil {
		// One read of the interfaces serves both checks: the host's own
		// addresses are its prefixes' addresses.
		p.HostAddrs = func() []netip.Addr {
			out := make([]netip.Addr, len(ns))
			for i, n := range ns {
				out[i] = n.Addr()
			}
			return out
		}
	}
	if err := p.Check(a); err != nil {
		return err
	}
	a = a.Unmap()
	for _, pfx := range p.Allow {
		if pfx.Contains(a) {
			return nil
		}
	}
	for _, n := range ns {
		if n.Masked().Contains(a) {
			return &DeniedError{Addr: a}
		}
	}
	return nil
}

func interfacePrefixes() []netip.Prefix {
	as, err := net.InterfaceAddrs()
	if err != nil {
		return nil
	}
	out := make([]netip.Prefix, 0, len(as))
	for _, a := range as {
		if n, ok := a.(*net.IPNet); ok {
			if ip, ok := netip.AddrFromSlice(n.IP); ok {
				ones, _ := n.Mask.Size()
				out = append(out, netip.PrefixFrom(ip.Unmap(), ones-(len(n.Mask)*8-ip.Unmap().BitLen()))) // the interface's address, with its network's length
			}
		}
	}
	return out
}

func interfaceAddrs() []netip.Addr {
	as, err := net.InterfaceAddrs()
	if err != nil {
		return nil
	}
	out := make([]netip.Addr, 0, len(as))
	for _, a := range as {
		if n, ok := a.(*net.IPNet); ok {
			if ip, ok := netip.AddrFromSlice(n.IP); ok {
				out = append(out, ip.Unmap())
			}
		}
	}
	return out
}
