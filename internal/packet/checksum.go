// SPDX-License-Identifier: Apache-2.0

package packet

import (
	"encoding/binary"
	"net/netip"
)

// Checksum returns the Internet checksum (RFC 1071) of b: the one's
// complement of the one's-complement sum of its 16-bit words.
func Checksum(b []byte) uint16 { return ^fold(sum(0, b)) }

// PseudoHeaderSum returns the partial sum of the TCP/UDP pseudo-header
// (RFC 768, RFC 793; RFC 8200 section 8.1 for IPv6) for a transport
// segment of length n. Add it to the segment's sum (TransportChecksum does both).
func PseudoHeaderSum(proto uint8, src, dst netip.Addr, n int) uint32 {
	var s uint32
	if src.Is4() {
		a, b := src.As4(), dst.As4()
		s = sum(sum(0, a[:]), b[:])
	} else {
		a, b := src.As16(), dst.As16()
		s = sum(sum(0, a[:]), b[:])
	}
	return s + uint32(proto) + uint32(n>>16) + uint32(n&0xffff)
}

// TransportChecksum returns the checksum of a TCP, UDP or ICMPv6 segment
// (its checksum field zeroed) with its pseudo-header.
func TransportChecksum(proto uint8, src, dst netip.Addr, segment []byte) uint16 {
	return ^fold(sum(PseudoHeaderSum(proto, src, dst, len(segment)), segment))
}

// UpdateChecksum returns checksum updated for one 16-bit word of the
// covered data changing from old to new, by RFC 1624 equation 3:
// HC' = ~(~HC + ~m + m'). Address translation calls it once per word it
// rewrites instead of summing the packet again.
func UpdateChecksum(checksum, old, new uint16) uint16 {
	return ^fold(uint32(^checksum) + uint32(^old) + uint32(new))
}

// UpdateChecksumAddr updates checksum for an address it covers (the IPv4
// header's, or a pseudo-header's) changing from old to new; both are of
// one family.
func UpdateChecksumAddr(checksum uint16, old, new netip.Addr) uint16 {
	var o, n []byte
	if old.Is4() {
		a, b := old.As4(), new.As4()
		o, n = a[:], b[:]
	} else {
		a, b := old.As16(), new.As16()
		o, n = a[:], b[:]
	}
	for i := 0; i+1 < len(o); i += 2 {
		checksum = UpdateChecksum(checksum, binary.BigEndian.Uint16(o[i:]), binary.BigEndian.Uint16(n[i:]))
	}
	return checksum
}

// sum adds b's big-endian 16-bit words (an odd last byte padded with zero)
// to s without folding.
func sum(s uint32, b []byte) uint32 {
	for len(b) >= 2 {
		s += uint32(binary.BigEndian.Uint16(b))
		b = b[2:]
	}
	if len(b) == 1 {
		s += uint32(b[0]) << 8
	}
	return s
}

func fold(s uint32) uint16 {
	for s>>16 != 0 {
		s = s&0xffff + s>>16
	}
	return uint16(s)
}
