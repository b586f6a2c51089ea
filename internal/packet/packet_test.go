// SPDX-License-Identifier: Apache-2.0

package packet

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"testing"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"
)

var (
	a4 = netip.MustParseAddr("10.128.0.2")
	b4 = netip.MustParseAddr("10.128.0.3")
	a6 = netip.MustParseAddr("fd00::2")
	b6 = netip.MustParseAddr("fd00::3")
)

// ipv4 builds an IPv4 packet: options of optLen bytes, fragment field
// frag, then payload.
func ipv4(proto uint8, optLen int, frag uint16, payload []byte) []byte {
	hl := 20 + optLen
	b := make([]byte, hl+len(payload))
	b[0] = 0x40 | byte(hl/4)
	binary.BigEndian.PutUint16(b[2:], uint16(len(b)))
	binary.BigEndian.PutUint16(b[6:], frag)
	b[8], b[9] = 64, proto
	copy(b[12:], a4.AsSlice())
	copy(b[16:], b4.AsSlice())
	binary.BigEndian.PutUint16(b[10:], Checksum(b[:hl]))
	copy(b[hl:], payload)
	return b
}

// ipv6 builds an IPv6 packet with the given extension headers (each
// {next header, bytes}) before the transport payload.
func ipv6(proto uint8, ext [][]byte, payload []byte) []byte {
	b := make([]byte, 40)
	b[0] = 0x60
	copy(b[8:], a6.AsSlice())
	copy(b[24:], b6.AsSlice())
	for _, e := range ext {
		b = append(b, e...)
	}
	b = append(b, payload...)
	binary.BigEndian.PutUint16(b[4:], uint16(len(b)-40))
	// Chain the next-header fields: IPv6 header → ext[0] → … → proto.
	next, at := &b[6], 40
	for _, e := range ext {
		*next = e[0] // the ext's own type is carried in its first byte by the caller
		next = &b[at]
		at += len(e)
	}
	*next = proto
	return b
}

// ext6 is an IPv6 extension header of type typ and 8*(units+1) bytes; its
// first byte is overwritten with the next header when chained.
func ext6(typ byte, units int) []byte {
	e := make([]byte, 8*(units+1))
	e[0], e[1] = typ, byte(units)
	return e
}

func tcp(sport, dport uint16, flags byte) []byte {
	t := make([]byte, 20)
	binary.BigEndian.PutUint16(t[0:], sport)
	binary.BigEndian.PutUint16(t[2:], dport)
	t[12], t[13] = 5<<4, flags
	return t
}

func udp(sport, dport uint16, data string) []byte {
	u := make([]byte, 8+len(data))
	binary.BigEndian.PutUint16(u[0:], sport)
	binary.BigEndian.PutUint16(u[2:], dport)
	binary.BigEndian.PutUint16(u[4:], uint16(len(u)))
	copy(u[8:], data)
	return u
}

func TestDecode(t *testing.T) {
	fragHdr := func(offset int, more bool) []byte {
		e := make([]byte, 8)
		e[0] = 44
		v := uint16(offset)
		if more {
			v |= 1
		}
		binary.BigEndian.PutUint16(e[2:], v)
		return e
	}
	padded := append(ipv4(UDP, 0, 0, udp(1, 2, "x")), 0, 0, 0) // a tunnel's padding
	cases := []struct {
		name string
		pkt  []byte
		want Parsed
	}{
		{"ipv4 tcp syn", ipv4(TCP, 0, 0, tcp(40000, 443, TCPSyn)),
			Parsed{Version: 4, Src: a4, Dst: b4, Proto: TCP, HeaderLen: 20, Length: 40, SrcPort: 40000, DstPort: 443, TCPFlags: TCPSyn, HasTransport: true}},
		{"ipv4 options", ipv4(UDP, 8, 0, udp(53000, 53, "q")),
			Parsed{Version: 4, Src: a4, Dst: b4, Proto: UDP, HeaderLen: 28, Length: 37, SrcPort: 53000, DstPort: 53, HasTransport: true}},
		{"ipv4 padding", padded,
			Parsed{Version: 4, Src: a4, Dst: b4, Proto: UDP, HeaderLen: 20, Length: 29, SrcPort: 1, DstPort: 2, HasTransport: true}},
		{"ipv4 icmp echo", ipv4(ICMP, 0, 0, []byte{8, 0, 0, 0, 0, 1, 0, 1}),
			Parsed{Version: 4, Src: a4, Dst: b4, Proto: ICMP, HeaderLen: 20, Length: 28, ICMPType: 8, HasTransport: true}},
		{"ipv4 first fragment", ipv4(UDP, 0, 0x2000, udp(7, 9, "abcdefgh")),
			Parsed{Version: 4, Src: a4, Dst: b4, Proto: UDP, HeaderLen: 20, Length: 36, MoreFragments: true, SrcPort: 7, DstPort: 9, HasTransport: true}},
		{"ipv4 later fragment", ipv4(TCP, 0, 3, tcp(7, 9, TCPSyn)), // offset 24 bytes: no ports, no flags
			Parsed{Version: 4, Src: a4, Dst: b4, Proto: TCP, HeaderLen: 20, Length: 40, FragOffset: 24}},
		{"ipv4 tcp cut short", ipv4(TCP, 0, 0, tcp(5, 6, TCPSyn)[:10]),
			Parsed{Version: 4, Src: a4, Dst: b4, Proto: TCP, HeaderLen: 20, Length: 30, SrcPort: 5, DstPort: 6, HasTransport: true}},
		{"ipv4 other protocol", ipv4(47, 0, 0, []byte{1, 2, 3, 4}),
			Parsed{Version: 4, Src: a4, Dst: b4, Proto: 47, HeaderLen: 20, Length: 24}},
		{"ipv6 udp", ipv6(UDP, nil, udp(1000, 2000, "hi")),
			Parsed{Version: 6, Src: a6, Dst: b6, Proto: UDP, HeaderLen: 40, Length: 50, SrcPort: 1000, DstPort: 2000, HasTransport: true}},
		{"ipv6 hop-by-hop and dest options", ipv6(TCP, [][]byte{ext6(0, 0), ext6(60, 1)}, tcp(1, 22, TCPSyn|TCPAck)),
			Parsed{Version: 6, Src: a6, Dst: b6, Proto: TCP, HeaderLen: 64, Length: 84, SrcPort: 1, DstPort: 22, TCPFlags: TCPSyn | TCPAck, HasTransport: true}},
		{"ipv6 first fragment", ipv6(UDP, [][]byte{fragHdr(0, true)}, udp(3, 4, "")),
			Parsed{Version: 6, Src: a6, Dst: b6, Proto: UDP, HeaderLen: 48, Length: 56, MoreFragments: true, SrcPort: 3, DstPort: 4, HasTransport: true}},
		{"ipv6 later fragment", ipv6(UDP, [][]byte{fragHdr(1232, false)}, udp(3, 4, "")),
			Parsed{Version: 6, Src: a6, Dst: b6, Proto: UDP, HeaderLen: 48, Length: 56, FragOffset: 1232}},
		{"ipv6 echo", ipv6(ICMPv6, nil, []byte{128, 0, 0, 0, 0, 1, 0, 1}),
			Parsed{Version: 6, Src: a6, Dst: b6, Proto: ICMPv6, HeaderLen: 40, Length: 48, ICMPType: 128, HasTransport: true}},
	}
	for _, c := range cases {
		var p Parsed
		if err := p.Decode(c.pkt); err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if p != c.want {
			t.Errorf("%s:\n got %+v\nwant %+v", c.name, p, c.want)
		}
	}
}

func TestDecodeRefuses(t *testing.T) {
	good4 := ipv4(UDP, 0, 0, udp(1, 2, "x"))
	mod := func(b []byte, f func([]byte)) []byte {
		c := append([]byte(nil), b...)
		f(c)
		return c
	}
	long := make([][]byte, maxIPv6ExtensionChain+1)
	for i := range long {
		long[i] = ext6(60, 0)
	}
	cases := []struct {
		name string
		pkt  []byte
		want error
	}{
		{"empty", nil, ErrTruncated},
		{"version 5", mod(good4, func(b []byte) { b[0] = 0x55 }), ErrVersion},
		{"ipv4 short", good4[:19], ErrTruncated},
		{"ipv4 total length beyond the data", mod(good4, func(b []byte) { b[3]++ }), ErrTruncated},
		{"ipv4 ihl 4", mod(good4, func(b []byte) { b[0] = 0x44 }), ErrHeader},
		{"ipv4 ihl beyond total length", mod(good4, func(b []byte) { b[0] = 0x4f }), ErrHeader},
		{"ipv4 total length below 20", mod(good4, func(b []byte) { b[2], b[3] = 0, 10 }), ErrHeader},
		{"ipv6 short", ipv6(UDP, nil, nil)[:39], ErrTruncated},
		{"ipv6 payload length beyond the data", mod(ipv6(UDP, nil, udp(1, 2, "")), func(b []byte) { b[5] += 8 }), ErrTruncated},
		{"ipv6 extension cut", ipv6(UDP, [][]byte{ext6(0, 0)}, nil)[:44], ErrTruncated},
		{"ipv6 extension longer than the packet", mod(ipv6(UDP, [][]byte{ext6(0, 0)}, nil), func(b []byte) { b[41] = 3 }), ErrTruncated},
		{"ipv6 extension chain too long", ipv6(UDP, long, nil), ErrHeader},
	}
	for _, c := range cases {
		var p Parsed
		if err := p.Decode(c.pkt); !errors.Is(err, c.want) || p.Version != 0 {
			t.Errorf("%s: err %v (want %v), version %d", c.name, err, c.want, p.Version)
		}
	}
}

func TestPredicates(t *testing.T) {
	var p Parsed
	for _, c := range []struct {
		pkt                     []byte
		syn, synAck, echo, frag bool
	}{
		{ipv4(TCP, 0, 0, tcp(1, 2, TCPSyn)), true, false, false, false},
		{ipv4(TCP, 0, 0, tcp(1, 2, TCPSyn|TCPAck)), false, true, false, false},
		{ipv4(TCP, 0, 0, tcp(1, 2, TCPAck)), false, false, false, false},
		{ipv4(TCP, 0, 2, tcp(1, 2, TCPSyn)), false, false, false, true}, // a later fragment's bytes are no flags
		{ipv4(ICMP, 0, 0, []byte{8, 0, 0, 0}), false, false, true, false},
		{ipv4(ICMP, 0, 0, []byte{0, 0, 0, 0}), false, false, false, false},
		{ipv6(ICMPv6, nil, []byte{128, 0, 0, 0}), false, false, true, false},
		{ipv4(UDP, 0, 0x2000, udp(1, 2, "")), false, false, false, true},
	} {
		if err := p.Decode(c.pkt); err != nil {
			t.Fatal(err)
		}
		if p.IsTCPSyn() != c.syn || p.IsTCPSynAck() != c.synAck || p.IsEchoRequest() != c.echo || p.IsFragment() != c.frag {
			t.Errorf("%+v: syn %v synack %v echo %v frag %v", p, p.IsTCPSyn(), p.IsTCPSynAck(), p.IsEchoRequest(), p.IsFragment())
		}
	}
}

// The checksums agree with gVisor's (the stack the services run on), and
// the incremental update with a full recomputation.
func TestChecksums(t *testing.T) {
	// RFC 1071 section 3's example words sum to 0xddf2.
	if got := Checksum([]byte{0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7}); got != ^uint16(0xddf2) {
		t.Fatalf("RFC 1071 example: %#x", got)
	}
	pkt := ipv4(UDP, 0, 0, udp(5353, 53, "odd"))
	if Checksum(pkt[:20]) != 0 {
		t.Fatal("a header with its checksum does not sum to zero")
	}
	for _, data := range [][]byte{{}, {1}, {1, 2, 3}, pkt} {
		if got, want := Checksum(data), ^checksum.Checksum(data, 0); got != want {
			t.Errorf("Checksum(%x) = %#x, gVisor %#x", data, got, want)
		}
	}
	for _, fam := range [][2]netip.Addr{{a4, b4}, {a6, b6}} {
		seg := udp(1, 2, "hello")
		got := TransportChecksum(UDP, fam[0], fam[1], seg)
		x := header.PseudoHeaderChecksum(header.UDPProtocolNumber, tcpip.AddrFromSlice(fam[0].AsSlice()), tcpip.AddrFromSlice(fam[1].AsSlice()), uint16(len(seg)))
		if want := ^checksum.Checksum(seg, x); got != want {
			t.Errorf("%v: transport checksum %#x, gVisor %#x", fam[0], got, want)
		}
	}
	// Rewrite the source address: the updated header checksum is the
	// recomputed one, and so is the updated UDP checksum.
	for _, to := range []netip.Addr{netip.MustParseAddr("192.168.1.20"), netip.MustParseAddr("0.0.0.0"), netip.MustParseAddr("255.255.255.255")} {
		h := append([]byte(nil), pkt...)
		seg := h[20:]
		binary.BigEndian.PutUint16(seg[6:], TransportChecksum(UDP, a4, b4, seg))
		ipSum, udpSum := binary.BigEndian.Uint16(h[10:]), binary.BigEndian.Uint16(seg[6:])
		copy(h[12:16], to.AsSlice())
		binary.BigEndian.PutUint16(h[10:], 0)
		full := Checksum(h[:20])
		if got := UpdateChecksumAddr(ipSum, a4, to); got != full {
			t.Errorf("to %v: incremental header checksum %#x, full %#x", to, got, full)
		}
		binary.BigEndian.PutUint16(seg[6:], 0)
		fullUDP := TransportChecksum(UDP, to, b4, seg)
		if got := UpdateChecksumAddr(udpSum, a4, to); got != fullUDP && !(got == 0xffff && fullUDP == 0) && !(got == 0 && fullUDP == 0xffff) {
			t.Errorf("to %v: incremental UDP checksum %#x, full %#x", to, got, fullUDP)
		}
	}
}
