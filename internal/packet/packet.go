// SPDX-License-Identifier: Apache-2.0

// Package packet decodes the headers of an inner IP packet (IPv4 or IPv6)
// once, into a Parsed view that the engine's source check, the router,
// policy and the monitor share, and holds the Internet checksum helpers
// (RFC 1071, with the incremental update of RFC 1624 for address
// translation).
//
// Decode reads headers only and never allocates; it refuses what no
// well-formed packet has, and reports transport fields only where they are
// present (the first fragment, a header long enough).
package packet

import (
	"encoding/binary"
	"errors"
	"net/netip"
)

// Transport protocol numbers (IANA).
const (
	ICMP   = 1
	TCP    = 6
	UDP    = 17
	ICMPv6 = 58
)

// TCP flags, as in the 14th byte of the TCP header.
const (
	TCPFin = 0x01
	TCPSyn = 0x02
	TCPRst = 0x04
	TCPAck = 0x10
)

// ICMP message types and codes the platform acts on.
const (
	ICMPEchoReply       = 0
	ICMPUnreachable     = 3
	ICMPHostUnreachable = 1 // a code of ICMPUnreachable
	ICMPEchoRequest     = 8
	ICMPv6EchoRequest   = 128
	// ICMPv6Unreachable is destination unreachable; ICMPv6AddressUnreachable
	// its code for a destination that does not answer (RFC 4443 §3.1).
	ICMPv6Unreachable        = 1
	ICMPv6AddressUnreachable = 3
)

// Fixed header lengths.
const (
	IPv4HeaderLen = 20
	IPv6HeaderLen = 40
	// IPv6MinMTU is the link MTU every IPv6 path carries (RFC 8200 §5):
	// ICMPv6 errors fit in it.
	IPv6MinMTU = 1280
)

// maxIPv6ExtensionChain bounds the extension headers Decode walks: no
// honest packet has more, and a crafted chain must not cost more.
const maxIPv6ExtensionChain = 8

// Errors of Decode.
var (
	ErrTruncated = errors.New("packet: shorter than its headers")
	ErrVersion   = errors.New("packet: neither IPv4 nor IPv6")
	ErrHeader    = errors.New("packet: inconsistent IP header")
)

// Parsed is the decoded view of one IP packet. Its zero value (Version 0)
// is no packet.
type Parsed struct {
	// Version is 4 or 6.
	Version uint8
	// Src and Dst are the IP addresses.
	Src, Dst netip.Addr
	// Proto is the transport protocol: for IPv6, the header after the
	// extension headers.
	Proto uint8
	// HeaderLen is the IP header's length: IPv4 options and IPv6
	// extension headers included. The transport header starts there.
	HeaderLen int
	// Length is the packet's length as its header says; the bytes after
	// it (padding a tunnel adds) are not part of the packet.
	Length int
	// FragOffset is the fragment's offset in bytes; MoreFragments its MF
	// flag. A packet that is not a fragment has both zero.
	FragOffset    int
	MoreFragments bool
	// SrcPort and DstPort are the TCP or UDP ports, zero when absent
	// (another protocol, a later fragment, a header cut short).
	SrcPort, DstPort uint16
	// TCPFlags are the TCP flags (zero when the header is cut short).
	TCPFlags uint8
	// ICMPType and ICMPCode are set when HasTransport and Proto is ICMP or
	// ICMPv6.
	ICMPType, ICMPCode uint8
	// HasTransport reports whether the transport fields above were read:
	// a TCP, UDP, ICMP or ICMPv6 first fragment with at least its ports
	// (or ICMP type and code).
	HasTransport bool
}

// Decode parses b's IP and transport headers into p. On error p is left
// with Version 0.
func (p *Parsed) Decode(b []byte) error {
	*p = Parsed{}
	if len(b) < 1 {
		return ErrTruncated
	}
	var err error
	switch b[0] >> 4 {
	case 4:
		err = p.decode4(b)
	case 6:
		err = p.decode6(b)
	default:
		return ErrVersion
	}
	if err != nil {
		*p = Parsed{}
		return err
	}
	p.decodeTransport(b[p.HeaderLen:p.Length])
	return nil
}

func (p *Parsed) decode4(b []byte) error {
	if len(b) < IPv4HeaderLen {
		return ErrTruncated
	}
	ihl := int(b[0]&0x0f) * 4
	n := int(binary.BigEndian.Uint16(b[2:4]))
	if n > len(b) {
		return ErrTruncated
	}
	if ihl < IPv4HeaderLen || n < ihl {
		return ErrHeader
	}
	frag := binary.BigEndian.Uint16(b[6:8])
	*p = Parsed{
		Version: 4, Proto: b[9], HeaderLen: ihl, Length: n,
		Src: netip.AddrFrom4([4]byte(b[12:16])), Dst: netip.AddrFrom4([4]byte(b[16:20])),
		FragOffset: int(frag&0x1fff) * 8, MoreFragments: frag&0x2000 != 0,
	}
	return nil
}

func (p *Parsed) decode6(b []byte) error {
	if len(b) < IPv6HeaderLen {
		return ErrTruncated
	}
	n := IPv6HeaderLen + int(binary.BigEndian.Uint16(b[4:6]))
	if n > len(b) {
		return ErrTruncated
	}
	*p = Parsed{
		Version: 6, Length: n,
		Src: netip.AddrFrom16([16]byte(b[8:24])), Dst: netip.AddrFrom16([16]byte(b[24:40])),
	}
	next, off := b[6], IPv6HeaderLen
	for range maxIPv6ExtensionChain {
		var hl int
		switch next {
		case 0, 43, 60: // hop-by-hop, routing, destination options
			if off+8 > n {
				return ErrTruncated
			}
			hl = (int(b[off+1]) + 1) * 8
		case 44: // fragment
			if off+8 > n {
				return ErrTruncated
			}
			hl = 8
			fo := binary.BigEndian.Uint16(b[off+2 : off+4])
			p.FragOffset, p.MoreFragments = int(fo&0xfff8), fo&1 != 0
		case 51: // authentication header
			if off+8 > n {
				return ErrTruncated
			}
			hl = (int(b[off+1]) + 2) * 4
		default:
			p.Proto, p.HeaderLen = next, off
			return nil
		}
		if off+hl > n {
			return ErrTruncated
		}
		next, off = b[off], off+hl
	}
	return ErrHeader // a chain longer than any honest packet has
}

// decodeTransport reads the transport fields from t, the bytes after the
// IP header, when this is the first fragment: ports from the first 4 bytes,
// TCP flags from the first 14, ICMP type and code from the first 2.
func (p *Parsed) decodeTransport(t []byte) {
	if p.FragOffset != 0 {
		return
	}
	switch p.Proto {
	case TCP, UDP:
		if len(t) < 4 {
			return
		}
		p.SrcPort = binary.BigEndian.Uint16(t[0:2])
		p.DstPort = binary.BigEndian.Uint16(t[2:4])
		if p.Proto == TCP && len(t) >= 14 {
			p.TCPFlags = t[13]
		}
	case ICMP, ICMPv6:
		if len(t) < 2 {
			return
		}
		p.ICMPType, p.ICMPCode = t[0], t[1]
	default:
		return
	}
	p.HasTransport = true
}

// IsFragment reports whether the packet is a fragment of a larger one.
func (p *Parsed) IsFragment() bool { return p.FragOffset != 0 || p.MoreFragments }

// IsTCPSyn reports a TCP connection request: SYN without ACK.
func (p *Parsed) IsTCPSyn() bool {
	return p.HasTransport && p.Proto == TCP && p.TCPFlags&(TCPSyn|TCPAck) == TCPSyn
}

// IsTCPSynAck reports a TCP connection acceptance: SYN and ACK.
func (p *Parsed) IsTCPSynAck() bool {
	return p.HasTransport && p.Proto == TCP && p.TCPFlags&(TCPSyn|TCPAck) == TCPSyn|TCPAck
}

// IsEchoRequest reports an ICMP (or ICMPv6) echo request.
func (p *Parsed) IsEchoRequest() bool {
	return p.HasTransport && (p.Proto == ICMP && p.ICMPType == ICMPEchoRequest || p.Proto == ICMPv6 && p.ICMPType == ICMPv6EchoRequest)
}

// Destination returns the destination address of an IPv4 or IPv6 packet
// from its fixed header alone: the route lookup of the outbound path needs
// no more.
func Destination(b []byte) (netip.Addr, bool) {
	switch {
	case len(b) >= IPv4HeaderLen && b[0]>>4 == 4:
		return netip.AddrFrom4([4]byte(b[16:20])), true
	case len(b) >= IPv6HeaderLen && b[0]>>4 == 6:
		return netip.AddrFrom16([16]byte(b[24:40])), true
	}
	return netip.Addr{}, false
}
