// SPDX-License-Identifier: Apache-2.0

package siit

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/wirefleet/wirefleet/internal/packet"
)

var (
	c6 = netip.MustParseAddr("fd00:1:2::a80:5")
	h6 = netip.MustParseAddr("fd00:1:2:1:a80:7:c0a8:10a")
	c4 = netip.MustParseAddr("10.128.0.5")
	h4 = netip.MustParseAddr("192.168.1.10")
)

// build6 makes an IPv6 packet with a transport segment whose checksum is
// right.
func build6(proto uint8, seg []byte) []byte {
	p := make([]byte, 40+len(seg))
	p[0], p[1] = 0x6b, 0x80 // traffic class 0xb8
	binary.BigEndian.PutUint16(p[4:], uint16(len(seg)))
	p[6], p[7] = proto, 61
	s, d := c6.As16(), h6.As16()
	copy(p[8:], s[:])
	copy(p[24:], d[:])
	copy(p[40:], seg)
	at := map[uint8]int{packet.TCP: 16, packet.UDP: 6, packet.ICMPv6: 2}[proto]
	binary.BigEndian.PutUint16(p[40+at:], packet.TransportChecksum(proto, c6, h6, p[40:]))
	return p
}

func tcpSeg() []byte {
	s := make([]byte, 20+11)
	binary.BigEndian.PutUint16(s[0:], 40000)
	binary.BigEndian.PutUint16(s[2:], 80)
	s[12], s[13] = 5<<4, packet.TCPSyn
	copy(s[20:], "hello there")
	return s
}

func udpSeg() []byte {
	s := make([]byte, 8+5)
	binary.BigEndian.PutUint16(s[0:], 5353)
	binary.BigEndian.PutUint16(s[2:], 53)
	binary.BigEndian.PutUint16(s[4:], uint16(len(s)))
	copy(s[8:], "query")
	return s
}

func echoSeg(typ byte) []byte {
	s := []byte{typ, 0, 0, 0, 0x12, 0x34, 0, 7, 'p', 'i', 'n', 'g'}
	return s
}

// valid4 checks an IPv4 packet's header and transport checksums.
func valid4(t *testing.T, b []byte) *packet.Parsed {
	t.Helper()
	var ip packet.Parsed
	if err := ip.Decode(b); err != nil || ip.Version != 4 {
		t.Fatalf("not IPv4: %v", err)
	}
	if packet.Checksum(b[:20]) != 0 {
		t.Fatal("IPv4 header checksum wrong")
	}
	seg := b[20:ip.Length]
	if ip.Proto == packet.ICMP {
		if packet.Checksum(seg) != 0 {
			t.Fatal("ICMP checksum wrong")
		}
	} else if packet.TransportChecksum(ip.Proto, ip.Src, ip.Dst, seg) != 0 {
		t.Fatalf("proto %d checksum wrong", ip.Proto)
	}
	return &ip
}

func TestRoundTrip(t *testing.T) {
	for name, c := range map[string]struct {
		proto uint8
		seg   []byte
		back  uint8
	}{
		"tcp":  {packet.TCP, tcpSeg(), packet.TCP},
		"udp":  {packet.UDP, udpSeg(), packet.UDP},
		"echo": {packet.ICMPv6, echoSeg(128), packet.ICMP},
	} {
		p6 := build6(c.proto, c.seg)
		orig := append([]byte(nil), p6...) // To4 works in place
		var ip packet.Parsed
		if err := ip.Decode(p6); err != nil {
			t.Fatal(err)
		}
		out, ok := To4(p6, &ip, c4, h4)
		if !ok {
			t.Fatalf("%s: not translated", name)
		}
		got := valid4(t, out)
		if got.Src != c4 || got.Dst != h4 || got.Proto != c.back || out[8] != 61 || out[1] != 0xb8 || got.SrcPort != ip.SrcPort || got.DstPort != ip.DstPort {
			t.Fatalf("%s: translated to %+v, ttl %d tos %#x", name, got, out[8], out[1])
		}
		if c.proto == packet.ICMPv6 && (got.ICMPType != 8 || !bytes.Equal(out[24:], c.seg[4:])) {
			t.Fatalf("echo: type %d, body %q", got.ICMPType, out[24:])
		}
		// And back: the reply direction.
		back, ok := To6(nil, out, got, h6, c6)
		if !ok {
			t.Fatalf("%s: not translated back", name)
		}
		var ip6 packet.Parsed
		if err := ip6.Decode(back); err != nil || ip6.Version != 6 || ip6.Src != h6 || ip6.Dst != c6 || ip6.Proto != c.proto || back[7] != 61 {
			t.Fatalf("%s: back as %+v %v", name, ip6, err)
		}
		if packet.TransportChecksum(c.proto, h6, c6, back[40:]) != 0 {
			t.Fatalf("%s: checksum wrong after the way back", name)
		}
		if c.proto != packet.ICMPv6 && !bytes.Equal(back[40:], orig[40:]) {
			t.Fatalf("%s: the segment changed on the round trip", name)
		}
	}
}

func TestRefuses(t *testing.T) {
	var ip packet.Parsed
	// ICMPv6 other than echo (a neighbour solicitation).
	p := build6(packet.ICMPv6, []byte{135, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16})
	ip.Decode(p)
	if _, ok := To4(p, &ip, c4, h4); ok {
		t.Error("a neighbour solicitation was translated")
	}
	// A fragment header.
	p = build6(packet.UDP, udpSeg())
	f := make([]byte, len(p)+8)
	copy(f, p[:40])
	f[6] = 44
	binary.BigEndian.PutUint16(f[4:], uint16(len(p)-40+8))
	f[40] = packet.UDP
	copy(f[48:], p[40:])
	ip.Decode(f)
	if _, ok := To4(f, &ip, c4, h4); ok {
		t.Error("an IPv6 fragment was translated")
	}
	// Wrong families.
	p = build6(packet.TCP, tcpSeg())
	ip.Decode(p)
	if _, ok := To4(p, &ip, c6, h4); ok {
		t.Error("translated to an IPv6 source")
	}
	if _, ok := To6(nil, p, &ip, h6, c6); ok {
		t.Error("To6 took an IPv6 packet")
	}
}

// FuzzTranslate: whatever To4 takes becomes a valid IPv4 packet, and To6
// of that a valid IPv6 one with the same body.
func FuzzTranslate(f *testing.F) {
	f.Add(build6(packet.TCP, tcpSeg()))
	f.Add(build6(packet.UDP, udpSeg()))
	f.Add(build6(packet.ICMPv6, echoSeg(129)))
	f.Add([]byte{0x60})
	f.Fuzz(func(t *testing.T, b []byte) {
		var ip packet.Parsed
		if ip.Decode(b) != nil {
			return
		}
		in := append([]byte(nil), b...)
		out, ok := To4(in, &ip, c4, h4)
		if !ok {
			return
		}
		got := valid4(t, out)
		back, ok := To6(nil, out, got, h6, c6)
		if !ok {
			t.Fatalf("translated one way, not back: %x", b)
		}
		var ip6 packet.Parsed
		if err := ip6.Decode(back); err != nil || ip6.Length != ip.Length {
			t.Fatalf("back: %v, length %d want %d", err, ip6.Length, ip.Length)
		}
		// The body past the transport header's checksum is untouched.
		from := 40 + 18
		if ip.Proto != packet.TCP {
			from = 40 + 8
		}
		if !bytes.Equal(back[from:], b[from:ip.Length]) {
			t.Fatalf("body changed")
		}
	})
}
