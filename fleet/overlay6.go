// SPDX-License-Identifier: Apache-2.0

package fleet

import (
	"crypto/rand"
	"io"
	"net/netip"
)

// Overlay6 is the fleet's IPv6 address plan: a unique local /48 (RFC 4193)
// drawn once per installation. Its first /96 is an IPv6 view of the IPv4
// overlay: the IPv6 address of a SIM, or of a platform service, is the
// prefix with the IPv4 address in the low 32 bits (a SIM at 10.128.0.5 is
// P::a80:5, DNS at 100.127.0.53 is P::647f:35). A SIM's two addresses are
// one identity, the IPv6 one is stable for as long as the IPv4 one is, and
// existing SIMs have one without a row being written. The zero value is a
// fleet without IPv6.
type Overlay6 struct {
	prefix netip.Prefix
}

// Overlay6Bits is the size of a fleet's ULA prefix.
const Overlay6Bits = 48

// ulaLocal is the locally assigned half of fc00::/7 (RFC 4193 §3.1, L = 1):
// the other half has no assignment procedure.
var ulaLocal = netip.MustParsePrefix("fd00::/8")

// ParseOverlay6 parses and checks an operator's ULA prefix: a /48 inside
// fd00::/8 with no bits set beyond its length. field names the setting in
// the error.
func ParseOverlay6(field, s string) (Overlay6, error) {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return Overlay6{}, Errorf(CodeInvalid, field, "%q is not an IPv6 prefix (want a /48 of fd00::/8, e.g. fd3c:91e2:7a10::/48)", s)
	}
	return NewOverlay6(field, p)
}

// NewOverlay6 checks p as ParseOverlay6 does.
func NewOverlay6(field string, p netip.Prefix) (Overlay6, error) {
	switch {
	case !p.Addr().Is6() || p.Addr().Is4In6():
		return Overlay6{}, Errorf(CodeInvalid, field, "%s is not an IPv6 prefix (want a /48 of fd00::/8)", p)
	case p.Bits() != Overlay6Bits:
		return Overlay6{}, Errorf(CodeInvalid, field, "%s is a /%d; the fleet's ULA prefix is a /48", p, p.Bits())
	case !ulaLocal.Contains(p.Addr()):
		return Overlay6{}, Errorf(CodeInvalid, field, "%s is not a unique local prefix: want a /48 of fd00::/8 (RFC 4193)", p)
	case p.Masked() != p:
		return Overlay6{}, Errorf(CodeInvalid, field, "%s has bits set beyond /48; did you mean %s?", p, p.Masked())
	}
	return Overlay6{prefix: p}, nil
}

// GenerateOverlay6 draws a ULA /48 with a random 40-bit global ID (RFC 4193
// §3.2), from r (crypto/rand when nil).
func GenerateOverlay6(r io.Reader) (Overlay6, error) {
	if r == nil {
		r = rand.Reader
	}
	var a [16]byte
	a[0] = 0xfd
	if _, err := io.ReadFull(r, a[1:6]); err != nil {
		return Overlay6{}, err
	}
	return Overlay6{prefix: netip.PrefixFrom(netip.AddrFrom16(a), Overlay6Bits)}, nil
}

// Enabled reports whether the fleet has an IPv6 plan.
func (o Overlay6) Enabled() bool { return o.prefix.IsValid() }

// Prefix returns the /48 (zero when not enabled).
func (o Overlay6) Prefix() netip.Prefix { return o.prefix }

// String returns the /48, or "" when not enabled.
func (o Overlay6) String() string {
	if !o.Enabled() {
		return ""
	}
	return o.prefix.String()
}

// View returns the /96 that mirrors the IPv4 overlay.
func (o Overlay6) View() netip.Prefix {
	if !o.Enabled() {
		return netip.Prefix{}
	}
	return netip.PrefixFrom(o.prefix.Addr(), 96)
}

// Addr returns the IPv6 twin of an IPv4 overlay or platform address (zero
// when not enabled or a4 is not IPv4).
func (o Overlay6) Addr(a4 netip.Addr) netip.Addr {
	if !o.Enabled() || !a4.Is4() {
		return netip.Addr{}
	}
	a := o.prefix.Addr().As16()
	v := a4.As4()
	copy(a[12:], v[:])
	return netip.AddrFrom16(a)
}

// PrefixOf returns the IPv6 twin of an IPv4 prefix: the view with the
// prefix's bits after it (10.128.0.0/9 → P::a80:0/105).
func (o Overlay6) PrefixOf(p4 netip.Prefix) netip.Prefix {
	if !o.Enabled() || !p4.Addr().Is4() {
		return netip.Prefix{}
	}
	return netip.PrefixFrom(o.Addr(p4.Masked().Addr()), 96+p4.Bits())
}

// V4 returns the IPv4 address whose twin a6 is; false when a6 is outside
// the view.
func (o Overlay6) V4(a6 netip.Addr) (netip.Addr, bool) {
	if !o.Enabled() || !o.View().Contains(a6) {
		return netip.Addr{}, false
	}
	a := a6.As16()
	return netip.AddrFrom4([4]byte(a[12:])), true
}

// Via6 returns the 4via6 view of the fleet: P:1::/64, where the IPv4 LANs
// behind SIMs have IPv6 addresses that embed the SIM's IPv4 address as its
// site number and the LAN host's IPv4 address: P:1:<SIM>:<host>. IPv6
// clients reach overlapping IPv4 LANs this way without a mapped prefix.
func (o Overlay6) Via6() netip.Prefix {
	if !o.Enabled() {
		return netip.Prefix{}
	}
	a := o.prefix.Addr().As16()
	a[7] = 1
	return netip.PrefixFrom(netip.AddrFrom16(a), 64)
}

// Via6Addr returns the 4via6 address of host (IPv4, on a LAN behind the
// SIM at site).
func (o Overlay6) Via6Addr(site, host netip.Addr) netip.Addr {
	if !o.Enabled() || !site.Is4() || !host.Is4() {
		return netip.Addr{}
	}
	a := o.Via6().Addr().As16()
	s, h := site.As4(), host.As4()
	copy(a[8:12], s[:])
	copy(a[12:], h[:])
	return netip.AddrFrom16(a)
}

// Via6Prefix returns the 4via6 view of a LAN prefix behind the SIM at
// site.
func (o Overlay6) Via6Prefix(site netip.Addr, lan netip.Prefix) netip.Prefix {
	a := o.Via6Addr(site, lan.Masked().Addr())
	if !a.IsValid() {
		return netip.Prefix{}
	}
	return netip.PrefixFrom(a, 96+lan.Bits())
}

// SplitVia6 returns the site and host a 4via6 address names; false when
// a6 is outside the view.
func (o Overlay6) SplitVia6(a6 netip.Addr) (site, host netip.Addr, ok bool) {
	if !o.Enabled() || !o.Via6().Contains(a6) {
		return netip.Addr{}, netip.Addr{}, false
	}
	a := a6.As16()
	return netip.AddrFrom4([4]byte(a[8:12])), netip.AddrFrom4([4]byte(a[12:])), true
}
