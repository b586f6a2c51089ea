// SPDX-License-Identifier: Apache-2.0

package netmap

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/wirefleet/wirefleet/internal/packet"
)

var (
	lan    = netip.MustParsePrefix("192.168.1.0/24")
	mapped = netip.MustParsePrefix("10.64.1.0/24")
	toLAN  = Map{From: mapped, To: lan} // the way in: destination
	outLAN = Map{From: lan, To: mapped} // the way out: source
	site   = netip.MustParseAddr("10.200.0.5")
	host   = netip.MustParseAddr("192.168.1.10")
	hostM  = netip.MustParseAddr("10.64.1.10")
	router = netip.MustParseAddr("10.128.0.7") // the LAN router's tunnel address
)

// ipv4 builds a packet with correct header and transport checksums.
func ipv4(src, dst netip.Addr, proto uint8, seg []byte) []byte {
	pkt := make([]byte, 20+len(seg))
	pkt[0], pkt[8], pkt[9] = 0x45, 64, proto
	binary.BigEndian.PutUint16(pkt[2:], uint16(len(pkt)))
	s, d := src.As4(), dst.As4()
	copy(pkt[12:], s[:])
	copy(pkt[16:], d[:])
	copy(pkt[20:], seg)
	t := pkt[20:]
	switch proto {
	case packet.TCP:
		binary.BigEndian.PutUint16(t[16:], 0)
		binary.BigEndian.PutUint16(t[16:], packet.TransportChecksum(proto, src, dst, t))
	case packet.UDP:
		if binary.BigEndian.Uint16(t[6:]) != 0xdead { // 0xdead: leave "no checksum"
			binary.BigEndian.PutUint16(t[6:], 0)
			binary.BigEndian.PutUint16(t[6:], packet.TransportChecksum(proto, src, dst, t))
		} else {
			binary.BigEndian.PutUint16(t[6:], 0)
		}
	case packet.ICMP:
		binary.BigEndian.PutUint16(t[2:], 0)
		binary.BigEndian.PutUint16(t[2:], packet.Checksum(t))
	}
	binary.BigEndian.PutUint16(pkt[10:], packet.Checksum(pkt[:20]))
	return pkt
}

func tcpSeg(sport, dport uint16, payload string) []byte {
	t := make([]byte, 20+len(payload))
	binary.BigEndian.PutUint16(t[0:], sport)
	binary.BigEndian.PutUint16(t[2:], dport)
	t[12], t[13] = 5<<4, packet.TCPSyn|packet.TCPAck
	copy(t[20:], payload)
	return t
}

func udpSeg(sport, dport uint16, payload string, noSum bool) []byte {
	u := make([]byte, 8+len(payload))
	binary.BigEndian.PutUint16(u[0:], sport)
	binary.BigEndian.PutUint16(u[2:], dport)
	binary.BigEndian.PutUint16(u[4:], uint16(len(u)))
	if noSum {
		binary.BigEndian.PutUint16(u[6:], 0xdead)
	}
	copy(u[8:], payload)
	return u
}

func icmpSeg(typ, code uint8, body []byte) []byte {
	m := make([]byte, 8+len(body))
	m[0], m[1] = typ, code
	copy(m[8:], body)
	return m
}

func decode(t *testing.T, pkt []byte) *packet.Parsed {
	t.Helper()
	var ip packet.Parsed
	if err := ip.Decode(pkt); err != nil {
		t.Fatal(err)
	}
	return &ip
}

// checksOut verifies every checksum of pkt the way a receiver would: the
// IPv4 header, TCP/UDP with the pseudo-header, ICMP, and in an ICMP error
// the quoted header and (when whole) its UDP checksum.
func checksOut(t *testing.T, what string, pkt []byte) {
	t.Helper()
	if packet.Checksum(pkt[:20]) != 0 {
		t.Errorf("%s: IPv4 header checksum wrong", what)
	}
	ip := decode(t, pkt)
	seg := pkt[ip.HeaderLen:ip.Length]
	switch ip.Proto {
	case packet.TCP, packet.UDP:
		if ip.Proto == packet.UDP && binary.BigEndian.Uint16(seg[6:]) == 0 {
			return
		}
		if packet.TransportChecksum(ip.Proto, ip.Src, ip.Dst, seg) != 0 {
			t.Errorf("%s: transport checksum wrong", what)
		}
	case packet.ICMP:
		if packet.Checksum(seg) != 0 {
			t.Errorf("%s: ICMP checksum wrong", what)
		}
		if IsICMPError(ip) {
			in := seg[8:]
			if packet.Checksum(in[:20]) != 0 {
				t.Errorf("%s: quoted IPv4 header checksum wrong", what)
			}
			if in[9] == packet.UDP && int(binary.BigEndian.Uint16(in[2:])) == len(in) {
				q := decode(t, in)
				if packet.TransportChecksum(packet.UDP, q.Src, q.Dst, in[20:]) != 0 {
					t.Errorf("%s: quoted UDP checksum wrong", what)
				}
			}
		}
	}
}

func TestMapAddr(t *testing.T) {
	for _, c := range []struct{ from, to, in, want string }{
		{"192.168.1.0/24", "10.64.1.0/24", "192.168.1.10", "10.64.1.10"},
		{"172.16.0.0/22", "10.64.4.0/22", "172.16.3.200", "10.64.7.200"},
		{"192.168.1.7/32", "10.64.0.9/32", "192.168.1.7", "10.64.0.9"},
	} {
		m := Map{From: netip.MustParsePrefix(c.from), To: netip.MustParsePrefix(c.to)}
		if got := m.Addr(netip.MustParseAddr(c.in)); got.String() != c.want {
			t.Errorf("%s via %s→%s: %s, want %s", c.in, c.from, c.to, got, c.want)
		}
		if back := m.Inverse().Addr(m.Addr(netip.MustParseAddr(c.in))); back.String() != c.in {
			t.Errorf("inverse of %s: %s", c.in, back)
		}
	}
	if (Map{From: lan, To: netip.MustParsePrefix("10.64.0.0/23")}).Valid() || !toLAN.Valid() {
		t.Error("Valid is wrong about sizes")
	}
}

// Each kind of packet translated one way and back: checksums stay right
// at every step, and the way back gives the original bytes.
func TestRoundTrip(t *testing.T) {
	for _, c := range []struct {
		name string
		pkt  []byte
	}{
		{"tcp", ipv4(site, hostM, packet.TCP, tcpSeg(40000, 80, "GET / HTTP/1.1\r\n"))},
		{"udp", ipv4(site, hostM, packet.UDP, udpSeg(40000, 53, "query", false))},
		{"udp without checksum", ipv4(site, hostM, packet.UDP, udpSeg(40000, 53, "query", true))},
		{"odd-length udp", ipv4(site, hostM, packet.UDP, udpSeg(40000, 53, "odd", false))},
		{"icmp echo", ipv4(site, hostM, packet.ICMP, icmpSeg(packet.ICMPEchoRequest, 0, []byte("abcdefgh")))},
	} {
		orig := bytes.Clone(c.pkt)
		ip := decode(t, c.pkt)
		Dst(c.pkt, ip, toLAN)
		if ip.Dst != host || decode(t, c.pkt).Dst != host {
			t.Fatalf("%s: destination %s, want %s", c.name, ip.Dst, host)
		}
		checksOut(t, c.name+" in", c.pkt)
		if c.name == "udp without checksum" && binary.BigEndian.Uint16(c.pkt[26:]) != 0 {
			t.Errorf("a UDP datagram without checksum got one")
		}
		Dst(c.pkt, ip, toLAN.Inverse())
		if !bytes.Equal(c.pkt, orig) {
			t.Errorf("%s: way back differs:\n%x\n%x", c.name, c.pkt, orig)
		}
		// And a reply from the LAN host, out.
		reply := ipv4(host, site, ip.Proto, c.pkt[20:])
		checksOut(t, c.name+" reply before", reply)
		rip := decode(t, reply)
		Src(reply, rip, outLAN)
		if rip.Src != hostM {
			t.Errorf("%s: reply source %s", c.name, rip.Src)
		}
		checksOut(t, c.name+" reply out", reply)
	}
}

// An ICMP error from the LAN host about a datagram sent to it (port
// unreachable): the outer source and the quoted destination are both
// translated, every checksum with them.
func TestICMPErrorFromLAN(t *testing.T) {
	probe := ipv4(site, host, packet.UDP, udpSeg(33434, 33435, "traceroute probe", false)) // as the host received it
	pkt := ipv4(host, site, packet.ICMP, icmpSeg(3, 3, probe))
	checksOut(t, "before", pkt)
	ip := decode(t, pkt)
	Src(pkt, ip, outLAN)
	checksOut(t, "after", pkt)
	in := decode(t, pkt[28:])
	if ip.Src != hostM || in.Dst != hostM || in.Src != site {
		t.Fatalf("outer source %s, quoted %s → %s", ip.Src, in.Src, in.Dst)
	}
	// A quote cut after 8 bytes of UDP (what most routers send).
	short := ipv4(host, site, packet.ICMP, icmpSeg(3, 3, probe[:28]))
	binary.BigEndian.PutUint16(short[28+2:], uint16(len(probe))) // the quoted header keeps the original length
	binary.BigEndian.PutUint16(short[28+10:], 0)
	binary.BigEndian.PutUint16(short[28+10:], packet.Checksum(short[28:48]))
	binary.BigEndian.PutUint16(short[22:], 0)
	binary.BigEndian.PutUint16(short[22:], packet.Checksum(short[20:]))
	sip := decode(t, short)
	Src(short, sip, outLAN)
	checksOut(t, "short quote", short)
}

// A time-exceeded from the LAN router's own tunnel address (a traceroute
// hop): only the quoted destination is translated.
func TestQuotedDstOnly(t *testing.T) {
	probe := ipv4(site, host, packet.UDP, udpSeg(33434, 33435, "probe", false))
	pkt := ipv4(router, site, packet.ICMP, icmpSeg(11, 0, probe))
	ip := decode(t, pkt)
	QuotedDst(pkt, ip, outLAN)
	checksOut(t, "time exceeded", pkt)
	if ip.Src != router || decode(t, pkt[28:]).Dst != hostM {
		t.Fatalf("source %s, quoted destination %s", ip.Src, decode(t, pkt[28:]).Dst)
	}
	// Not an error: nothing quoted to change.
	echo := ipv4(router, site, packet.ICMP, icmpSeg(packet.ICMPEchoReply, 0, probe))
	before := bytes.Clone(echo)
	QuotedDst(echo, decode(t, echo), outLAN)
	if !bytes.Equal(echo, before) {
		t.Error("an echo reply's payload was translated")
	}
}

// A later fragment has no transport header: only the IP header changes.
func TestLaterFragment(t *testing.T) {
	pkt := ipv4(site, hostM, packet.UDP, []byte("0123456789abcdef"))
	binary.BigEndian.PutUint16(pkt[6:], 185) // offset 1480
	binary.BigEndian.PutUint16(pkt[10:], 0)
	binary.BigEndian.PutUint16(pkt[10:], packet.Checksum(pkt[:20]))
	payload := bytes.Clone(pkt[20:])
	ip := decode(t, pkt)
	Dst(pkt, ip, toLAN)
	if packet.Checksum(pkt[:20]) != 0 || !bytes.Equal(pkt[20:], payload) || ip.Dst != host {
		t.Fatalf("later fragment: %x", pkt)
	}
}

// Whatever the input, translation does not panic, keeps the length, and
// keeps every checksum that was right right.
func FuzzTranslate(f *testing.F) {
	f.Add(ipv4(site, hostM, packet.TCP, tcpSeg(1, 2, "x")))
	f.Add(ipv4(host, site, packet.ICMP, icmpSeg(3, 3, ipv4(site, host, packet.UDP, udpSeg(1, 2, "q", false)))))
	f.Add(ipv4(host, site, packet.ICMP, icmpSeg(11, 0, []byte{0x45, 0, 0, 20})))
	f.Fuzz(func(t *testing.T, b []byte) {
		var ip packet.Parsed
		if ip.Decode(b) != nil || ip.Version != 4 {
			return
		}
		hdrOK := packet.Checksum(b[:ip.HeaderLen]) == 0
		n := len(b)
		m := Map{From: netip.PrefixFrom(ip.Src, 24).Masked(), To: mapped}
		Src(b, &ip, m)
		QuotedDst(b, &ip, m)
		m = Map{From: netip.PrefixFrom(ip.Dst, 20).Masked(), To: netip.MustParsePrefix("10.64.16.0/20")}
		Dst(b, &ip, m)
		if len(b) != n {
			t.Fatal("length changed")
		}
		if hdrOK && packet.Checksum(b[:ip.HeaderLen]) != 0 {
			t.Fatal("a right IPv4 header checksum went wrong")
		}
	})
}

// Translation keeps no state: it allocates nothing, whatever the flow.
func TestTranslateAllocatesNothing(t *testing.T) {
	pkt := ipv4(site, hostM, packet.TCP, tcpSeg(40000, 80, string(make([]byte, 1380))))
	ip := decode(t, pkt)
	port := uint16(0)
	allocs := testing.AllocsPerRun(1000, func() {
		port++
		binary.BigEndian.PutUint16(pkt[20:], port) // a new flow each time
		Dst(pkt, ip, toLAN)
		Dst(pkt, ip, toLAN.Inverse())
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per translation", allocs)
	}
}

// BenchmarkTranslate is one destination rewrite of a 1420-byte TCP
// segment and its way back (header and TCP checksums updated), per op.
func BenchmarkTranslate(b *testing.B) {
	pkt := ipv4(site, hostM, packet.TCP, tcpSeg(40000, 80, string(make([]byte, 1380))))
	var ip packet.Parsed
	if err := ip.Decode(pkt); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(pkt)))
	b.ReportAllocs()
	for b.Loop() {
		Dst(pkt, &ip, toLAN)
		Dst(pkt, &ip, toLAN.Inverse())
	}
}
