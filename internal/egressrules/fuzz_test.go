// SPDX-License-Identifier: Apache-2.0

package egressrules

import (
	"encoding/binary"
	"net/netip"
	"strings"
	"testing"
)

// FuzzPattern: any input is accepted or refused without a panic; an
// accepted pattern parses again to itself, and matches the names it
// should.
func FuzzPattern(f *testing.F) {
	for _, s := range []string{"api.example.com", "*.example.com", "bücher.example", "*.", "a.*.b", "xn--bcher-kva.example", "_s._tcp.x", "A.B.", "*.*.x", "\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParsePattern(s)
		if err != nil {
			return
		}
		again, err := ParsePattern(p.String())
		if err != nil || again != p {
			t.Fatalf("%q → %q → %v %v", s, p, again, err)
		}
		if p.wildcard {
			if p.Match(p.name) || !p.Match("x."+p.name) || !p.Match(strings.ToUpper("x."+p.name)+".") {
				t.Fatalf("%q matches wrongly", p)
			}
		} else if !p.Match(p.name) || p.Match("x."+p.name) {
			t.Fatalf("%q matches wrongly", p)
		}
	})
}

// FuzzTable: rules and a packet drawn from bytes; the compiled table
// decides as the rules read in order.
func FuzzTable(f *testing.F) {
	f.Add([]byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25})
	f.Add([]byte{255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) < 12 {
			return
		}
		pkt, b := b[:12], b[12:]
		var rules []Rule
		for len(b) >= 8 && len(rules) < 64 {
			c := b[:8]
			b = b[8:]
			var r Rule
			r.Allow = c[0]&1 == 1
			if c[0]&2 == 0 {
				a := netip.AddrFrom4([4]byte{c[1] & 0x0f, c[2] & 0x03, c[3], c[4]})
				if c[0]&4 != 0 {
					var a16 [16]byte
					a16[0], a16[1], a16[15] = 0x20, c[1]&0x0f, c[4]
					a = netip.AddrFrom16(a16)
				}
				r.Prefix = netip.PrefixFrom(a, int(c[5])%(a.BitLen()+1))
			} else {
				r.FQDN, _ = ParsePattern([]string{"a.x", "*.x", "b.a.x", "*.a.x"}[c[1]%4])
			}
			r.Proto = []uint8{AnyProto, TCP, UDP, ICMP}[c[6]%4]
			r.PortLo, r.PortHi = 0, 65535
			if r.Proto == TCP || r.Proto == UDP {
				if c[7]&0x80 != 0 {
					r.PortLo = uint16(c[7] & 0x1f)
					r.PortHi = r.PortLo + uint16(c[6]>>4)
				}
			}
			rules = append(rules, r)
		}
		tab, err := Compile(rules)
		if err != nil {
			t.Fatal(err)
		}
		dst := netip.AddrFrom4([4]byte{pkt[0] & 0x0f, pkt[1] & 0x03, pkt[2], pkt[3]})
		if pkt[4]&1 != 0 {
			var a16 [16]byte
			a16[0], a16[1], a16[15] = 0x20, pkt[0]&0x0f, pkt[3]
			dst = netip.AddrFrom16(a16)
		}
		proto := []uint8{1, 6, 17, 47, 58}[pkt[5]%5]
		port := binary.BigEndian.Uint16(pkt[6:8]) & 0x3f
		var names []string
		if pkt[8]%3 != 0 {
			names = []string{[]string{"a.x", "b.a.x", "c.b.a.x", "x"}[pkt[9]%4]}
		}
		if got, want := tab.Match(dst, proto, port, names), linear(rules, dst, proto, port, names); got != want {
			t.Fatalf("%s proto %d port %d names %v: table %+v, in order %+v; rules %+v", dst, proto, port, names, got, want, rules)
		}
	})
}
