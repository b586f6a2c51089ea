// SPDX-License-Identifier: Apache-2.0

// Package netmap translates IPv4 packets 1:1 between two prefixes of one
// size, statelessly, as iptables' NETMAP target does: a host keeps its host
// bits and changes its network bits. The gateway uses it to reach
// identical LANs behind different SIMs through distinct mapped prefixes.
//
// Checksums are updated incrementally (RFC 1624): the IPv4 header's, the
// TCP or UDP checksum over the pseudo-header, and in an ICMP error the
// quoted packet's addresses with its checksums and the ICMP checksum, so
// that traceroute and path-MTU discovery work across the translation. No
// state is kept per flow: a translation costs no memory per connection.
package netmap

import (
	"encoding/binary"
	"net/netip"

	"github.com/wirefleet/wirefleet/internal/packet"
)

// Map is one translation: an address in From becomes the address with the
// same host bits in To. From and To are IPv4 prefixes of the same length.
type Map struct {
	From, To netip.Prefix
}

// Valid reports whether m translates: two IPv4 prefixes of one size.
func (m Map) Valid() bool {
	return m.From.IsValid() && m.To.IsValid() && m.From.Addr().Is4() && m.To.Addr().Is4() && m.From.Bits() == m.To.Bits()
}

// Inverse is the translation back.
func (m Map) Inverse() Map { return Map{From: m.To, To: m.From} }

// Addr translates a, which must be inside m.From.
func (m Map) Addr(a netip.Addr) netip.Addr {
	host := uint32(1)<<(32-m.From.Bits()) - 1
	if m.From.Bits() == 0 {
		host = ^uint32(0)
	}
	av, to := a.As4(), m.To.Masked().Addr().As4()
	v := binary.BigEndian.Uint32(to[:])&^host | binary.BigEndian.Uint32(av[:])&host
	var out [4]byte
	binary.BigEndian.PutUint32(out[:], v)
	return netip.AddrFrom4(out)
}

// IPv4 header offsets of the addresses.
const (
	srcOff = 12
	dstOff = 16
)

// Dst rewrites the destination of pkt (decoded as ip, an IPv4 packet whose
// destination is in m.From) and updates ip.Dst. In an ICMP error the
// quoted packet is one the destination sent, so its source is rewritten
// too.
func Dst(pkt []byte, ip *packet.Parsed, m Map) {
	ip.Dst = rewrite(pkt, ip, dstOff, m.Addr(ip.Dst))
	quoted(pkt, ip, srcOff, m)
}

// Src rewrites the source of pkt (decoded as ip, an IPv4 packet whose
// source is in m.From) and updates ip.Src. In an ICMP error the quoted
// packet is one sent to the source, so its destination is rewritten too.
func Src(pkt []byte, ip *packet.Parsed, m Map) {
	ip.Src = rewrite(pkt, ip, srcOff, m.Addr(ip.Src))
	quoted(pkt, ip, dstOff, m)
}

// QuotedDst rewrites, in an ICMP error, only the quoted packet's
// destination when it is in m.From: the error a LAN router sends from its
// own (untranslated) tunnel address about a packet to a mapped LAN host,
// a traceroute's hop. It reports whether it translated.
func QuotedDst(pkt []byte, ip *packet.Parsed, m Map) bool {
	return quoted(pkt, ip, dstOff, m)
}

// IsICMPError reports whether ip is an ICMPv4 error message, which quotes
// the packet it is about.
func IsICMPError(ip *packet.Parsed) bool {
	if ip.Version != 4 || ip.Proto != packet.ICMP || !ip.HasTransport {
		return false
	}
	switch ip.ICMPType {
	case 3, 4, 5, 11, 12: // unreachable, source quench, redirect, time exceeded, parameter problem
		return true
	}
	return false
}

// rewrite puts addr at off in pkt's IPv4 header and updates the header's
// and (in a first fragment) the transport's checksum; it returns addr.
func rewrite(pkt []byte, ip *packet.Parsed, off int, addr netip.Addr) netip.Addr {
	old := netip.AddrFrom4([4]byte(pkt[off : off+4]))
	if old == addr {
		return addr
	}
	a := addr.As4()
	copy(pkt[off:off+4], a[:])
	putSum(pkt[10:], packet.UpdateChecksumAddr(sumAt(pkt[10:]), old, addr))
	if ip.FragOffset != 0 {
		return addr // later fragments carry no transport header
	}
	t := pkt[ip.HeaderLen:ip.Length]
	transportSum(t, ip.Proto, old, addr)
	return addr
}

// transportSum updates the TCP or UDP checksum of segment t for a
// pseudo-header address changing from old to new. A UDP checksum of zero
// means none was sent, and stays zero.
func transportSum(t []byte, proto uint8, old, new netip.Addr) (oldSum, newSum uint16, at int) {
	switch proto {
	case packet.TCP:
		at = 16
	case packet.UDP:
		at = 6
	default:
		return 0, 0, -1
	}
	if len(t) < at+2 {
		return 0, 0, -1 // cut short (in a quote): nothing to fix
	}
	oldSum = sumAt(t[at:])
	if proto == packet.UDP && oldSum == 0 {
		return 0, 0, -1
	}
	newSum = packet.UpdateChecksumAddr(oldSum, old, new)
	if proto == packet.UDP && newSum == 0 {
		newSum = 0xffff // RFC 768: a computed zero is sent as all ones
	}
	putSum(t[at:], newSum)
	return oldSum, newSum, at
}

// quoted translates, in an ICMP error, the address at off (source or
// destination) of the quoted IPv4 packet when it is in m.From, with the
// quoted header's and transport's checksums, and the ICMP checksum for
// every word it changed. It reports whether it translated.
func quoted(pkt []byte, ip *packet.Parsed, off int, m Map) bool {
	if !IsICMPError(ip) {
		return false
	}
	icmp := pkt[ip.HeaderLen:ip.Length]
	if len(icmp) < 8+packet.IPv4HeaderLen {
		return false
	}
	in := icmp[8:]
	ihl := int(in[0]&0x0f) * 4
	if in[0]>>4 != 4 || ihl < packet.IPv4HeaderLen || len(in) < ihl {
		return false
	}
	old := netip.AddrFrom4([4]byte(in[off : off+4]))
	if !m.From.Contains(old) {
		return false
	}
	addr := m.Addr(old)
	a := addr.As4()
	copy(in[off:off+4], a[:])
	icmpSum := packet.UpdateChecksumAddr(sumAt(icmp[2:]), old, addr)
	oldHdr := sumAt(in[10:])
	newHdr := packet.UpdateChecksumAddr(oldHdr, old, addr)
	putSum(in[10:], newHdr)
	icmpSum = packet.UpdateChecksum(icmpSum, oldHdr, newHdr)
	if binary.BigEndian.Uint16(in[6:8])&0x1fff == 0 { // the quote starts its transport header
		if o, n, at := transportSum(in[ihl:], in[9], old, addr); at >= 0 {
			icmpSum = packet.UpdateChecksum(icmpSum, o, n)
		}
	}
	putSum(icmp[2:], icmpSum)
	return true
}

func sumAt(b []byte) uint16     { return binary.BigEndian.Uint16(b) }
func putSum(b []byte, s uint16) { binary.BigEndian.PutUint16(b, s) }
