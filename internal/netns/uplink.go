// SPDX-License-Identifier: Apache-2.0

package netns

import (
	"net/netip"
)

// Uplink is a veth between a namespace and the root namespace in a subnet of
// the test's choosing: the root end takes the subnet's first address, the
// namespace end the second. It is how a namespaced peer reaches an engine that
// runs in the test process, in the root namespace.
type Uplink struct {
	Root  *Link // end in the root namespace
	Inner *Link // end in the namespace
	ns    *NS
}

// Uplink creates an uplink from n to the root namespace in subnet (an IPv4
// prefix of /30 or wider, e.g. 10.204.1.0/30: root 10.204.1.1, n 10.204.1.2).
func (e *Env) Uplink(n *NS, subnet netip.Prefix) *Uplink {
	e.t.Helper()
	subnet = subnet.Masked()
	first := subnet.Addr().Next()
	second := first.Next()
	if !subnet.Addr().Is4() || subnet.Bits() > 30 {
		e.t.Fatalf("netns: uplink subnet %v: want an IPv4 /30 or wider", subnet)
	}
	root, inner := e.Veth(nil, netip.PrefixFrom(first, subnet.Bits()), n, netip.PrefixFrom(second, subnet.Bits()))
	return &Uplink{Root: root, Inner: inner, ns: n}
}

// RootAddr is the root end's address: where an engine in the test process
// can be reached from the namespace.
func (u *Uplink) RootAddr() netip.Addr { return u.Root.Addr() }

// InnerAddr is the namespace end's address: the source the engine sees.
func (u *Uplink) InnerAddr() netip.Addr { return u.Inner.Addr() }

// RouteTo makes the namespace reach dst (typically another uplink's RootAddr,
// where the engine listens) through this uplink.
func (u *Uplink) RouteTo(dst netip.Addr) {
	u.ns.env.t.Helper()
	u.ns.env.ReplaceRoute(u.ns, netip.PrefixFrom(dst, 32).String(), "via", u.RootAddr().String(), "dev", u.Inner.Name)
}

// Cut removes the namespace end's addresses: the namespace can no longer send
// from, or be reached at, this uplink. With RouteTo on a second uplink it is a
// roaming move, as a device switching from Wi-Fi to cellular makes.
func (u *Uplink) Cut() {
	u.ns.env.t.Helper()
	for _, a := range u.Inner.Addrs() {
		u.Inner.DelAddr(a)
	}
}
