// SPDX-License-Identifier: Apache-2.0

// Package siit translates packets between IPv6 and IPv4 headers (the
// header translation of RFC 7915), for the 4via6 view of IPv4 LANs: TCP,
// UDP and ICMP echo, unfragmented, without IPv6 extension headers or IPv4
// options. Anything else is refused (false), for the caller to drop with
// a reason: a translator that guesses is a hole.
package siit

import (
	"encoding/binary"
	"net/netip"

	"github.com/wirefleet/wirefleet/internal/packet"
)

// ICMP echo types of either family.
const (
	echoRequest4, echoReply4 = 8, 0
	echoRequest6, echoReply6 = 128, 129
)

// To4 rewrites the IPv6 packet pkt (decoded as ip) as an IPv4 packet from
// src to dst, in place: the result is pkt[20:ip.Length]. Hop limit becomes
// TTL, traffic class becomes TOS; the transport checksum is computed anew
// (the pseudo-header changed), ICMPv6 echo becomes ICMP echo. ok is false
// for a packet it does not translate.
func To4(pkt []byte, ip *packet.Parsed, src, dst netip.Addr) (out []byte, ok bool) {
	if ip.Version != 6 || ip.HeaderLen != packet.IPv6HeaderLen || ip.IsFragment() || !ip.HasTransport || !src.Is4() || !dst.Is4() || ip.Length > len(pkt) {
		return nil, false
	}
	payload := ip.Length - packet.IPv6HeaderLen
	if payload+packet.IPv4HeaderLen > 0xffff {
		return nil, false
	}
	proto := ip.Proto
	switch proto {
	case packet.TCP, packet.UDP:
	case packet.ICMPv6:
		if ip.ICMPType != echoRequest6 && ip.ICMPType != echoReply6 || ip.ICMPCode != 0 || payload < 8 {
			return nil, false
		}
		proto = packet.ICMP
	default:
		return nil, false
	}
	tos := pkt[0]<<4 | pkt[1]>>4
	ttl := pkt[7]
	out = pkt[packet.IPv6HeaderLen-packet.IPv4HeaderLen : ip.Length]
	h := out[:packet.IPv4HeaderLen]
	h[0], h[1] = 0x45, tos
	binary.BigEndian.PutUint16(h[2:], uint16(len(out)))
	binary.BigEndian.PutUint32(h[4:], 0x4000) // no id, don't fragment: the path's MTU is IPv6's
	h[8], h[9] = ttl, proto
	h[10], h[11] = 0, 0
	s, d := src.As4(), dst.As4()
	copy(h[12:16], s[:])
	copy(h[16:20], d[:])
	binary.BigEndian.PutUint16(h[10:], packet.Checksum(h))
	seg := out[packet.IPv4HeaderLen:]
	if !transport(seg, proto, src, dst) {
		return nil, false
	}
	return out, true
}

// To6 returns the IPv4 packet pkt (decoded as ip) as an IPv6 packet from
// src to dst, written into buf (grown when too small): TTL becomes hop
// limit, TOS traffic class, ICMP echo ICMPv6 echo, the transport checksum
// computed anew (UDP's is required in IPv6). ok is false for a packet it
// does not translate.
func To6(buf, pkt []byte, ip *packet.Parsed, src, dst netip.Addr) (out []byte, ok bool) {
	if ip.Version != 4 || ip.HeaderLen != packet.IPv4HeaderLen || ip.IsFragment() || !ip.HasTransport || !src.Is6() || !dst.Is6() || ip.Length > len(pkt) {
		return nil, false
	}
	proto := ip.Proto
	switch proto {
	case packet.TCP, packet.UDP:
	case packet.ICMP:
		if ip.ICMPType != echoRequest4 && ip.ICMPType != echoReply4 || ip.ICMPCode != 0 {
			return nil, false
		}
		proto = packet.ICMPv6
	default:
		return nil, false
	}
	payload := ip.Length - packet.IPv4HeaderLen
	n := packet.IPv6HeaderLen + payload
	if cap(buf) < n {
		buf = make([]byte, n)
	}
	out = buf[:n]
	copy(out[packet.IPv6HeaderLen:], pkt[packet.IPv4HeaderLen:ip.Length])
	tos := pkt[1]
	out[0], out[1], out[2], out[3] = 0x60|tos>>4, tos<<4, 0, 0
	binary.BigEndian.PutUint16(out[4:], uint16(payload))
	out[6], out[7] = proto, pkt[8]
	s, d := src.As16(), dst.As16()
	copy(out[8:24], s[:])
	copy(out[24:40], d[:])
	if !transport(out[packet.IPv6HeaderLen:], proto, src, dst) {
		return nil, false
	}
	return out, true
}

// transport fixes a translated transport segment: echo types mapped, the
// checksum computed for the new family.
func transport(seg []byte, proto uint8, src, dst netip.Addr) bool {
	var at int
	switch proto {
	case packet.TCP:
		if len(seg) < 20 {
			return false
		}
		at = 16
	case packet.UDP:
		if len(seg) < 8 {
			return false
		}
		at = 6
	case packet.ICMP, packet.ICMPv6:
		if len(seg) < 8 {
			return false
		}
		at = 2
		switch seg[0] {
		case echoRequest6:
			seg[0] = echoRequest4
		case echoReply6:
			seg[0] = echoReply4
		case echoRequest4:
			seg[0] = echoRequest6
		case echoReply4:
			seg[0] = echoReply6
		}
	}
	seg[at], seg[at+1] = 0, 0
	var sum uint16
	if proto == packet.ICMP {
		sum = packet.Checksum(seg) // no pseudo-header for ICMPv4
	} else {
		sum = packet.TransportChecksum(proto, src, dst, seg)
		if proto == packet.UDP && sum == 0 {
			sum = 0xffff // 0 means "no checksum" in UDP
		}
	}
	binary.BigEndian.PutUint16(seg[at:], sum)
	return true
}
