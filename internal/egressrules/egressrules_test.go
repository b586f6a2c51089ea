// SPDX-License-Identifier: Apache-2.0

package egressrules

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"
)

// linear is the meaning of a table: the first rule, in order, that takes
// the packet.
func linear(rules []Rule, dst netip.Addr, proto uint8, port uint16, names []string) Verdict {
	class := Class(proto)
	for i := range rules {
		r := &rules[i]
		if !r.matches(class, port) {
			continue
		}
		if r.isFQDN() {
			for _, n := range names {
				if r.FQDN.Match(n) {
					return Verdict{Allow: r.Allow, Rule: i}
				}
			}
			continue
		}
		if r.Prefix.Masked().Contains(dst.Unmap()) {
			return Verdict{Allow: r.Allow, Rule: i}
		}
	}
	return Verdict{Rule: none}
}

func mustPattern(t testing.TB, s string) Pattern {
	p, err := ParsePattern(s)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestFirstMatchWins(t *testing.T) {
	rules := []Rule{
		{Allow: false, Prefix: netip.MustParsePrefix("203.0.113.66/32"), PortLo: 0, PortHi: 65535},
		{Allow: true, Prefix: netip.MustParsePrefix("203.0.113.0/24"), Proto: TCP, PortLo: 443, PortHi: 443},
		{Allow: true, FQDN: mustPattern(t, "*.example.com"), Proto: TCP, PortLo: 80, PortHi: 443},
		{Allow: true, Prefix: netip.MustParsePrefix("2001:db8::/32"), Proto: UDP, PortLo: 5000, PortHi: 5999},
		{Allow: true, Prefix: netip.MustParsePrefix("198.51.100.0/24"), Proto: ICMP, PortLo: 0, PortHi: 65535},
		{Allow: false, Prefix: netip.MustParsePrefix("0.0.0.0/0"), PortLo: 0, PortHi: 65535},
	}
	tab, err := Compile(rules)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		dst   string
		proto uint8
		port  uint16
		names []string
		want  Verdict
	}{
		{"203.0.113.66", 6, 443, nil, Verdict{false, 0}},
		{"203.0.113.7", 6, 443, nil, Verdict{true, 1}},
		{"203.0.113.7", 6, 444, nil, Verdict{false, 5}},
		{"203.0.113.7", 17, 443, nil, Verdict{false, 5}},
		{"192.0.2.10", 6, 80, []string{"www.example.com."}, Verdict{true, 2}},
		{"192.0.2.10", 6, 80, []string{"example.com"}, Verdict{false, 5}}, // the wildcard is not the parent
		{"192.0.2.10", 6, 8080, []string{"www.example.com"}, Verdict{false, 5}},
		{"203.0.113.66", 6, 80, []string{"www.example.com"}, Verdict{false, 0}}, // a deny before the name rule
		{"2001:db8::5", 17, 5353, nil, Verdict{true, 3}},
		{"2001:db8::5", 17, 6000, nil, Verdict{Rule: none}},
		{"2001:db9::5", 6, 443, nil, Verdict{Rule: none}},
		{"198.51.100.9", 1, 0, nil, Verdict{true, 4}},
		{"198.51.100.9", 6, 22, nil, Verdict{false, 5}},
		{"198.51.100.9", 47, 0, nil, Verdict{false, 5}},
		{"::ffff:203.0.113.7", 6, 443, nil, Verdict{true, 1}},
	} {
		got := tab.Match(netip.MustParseAddr(c.dst), c.proto, c.port, c.names)
		if got != c.want {
			t.Errorf("%s proto %d port %d names %v: %+v, want %+v", c.dst, c.proto, c.port, c.names, got, c.want)
		}
		if lin := linear(rules, netip.MustParseAddr(c.dst), c.proto, c.port, c.names); lin != got {
			t.Errorf("%s: the table says %+v, the rules in order %+v", c.dst, got, lin)
		}
	}
	hits, miss := tab.Hits()
	if hits[5] != 6 || hits[0] != 2 || miss != 2 {
		t.Errorf("counters: %v, unmatched %d", hits, miss)
	}
}

func TestCompileRefuses(t *testing.T) {
	if _, err := Compile([]Rule{{Prefix: netip.MustParsePrefix("10.0.0.0/8"), PortLo: 10, PortHi: 9}}); err == nil {
		t.Error("an empty port range compiled")
	}
	if _, err := Compile([]Rule{{Allow: true}}); err == nil {
		t.Error("a rule with neither prefix nor name compiled")
	}
}

// randomRules makes rules that overlap a lot: few prefixes, nested, both
// families, port ranges, names.
func randomRules(r *rand.Rand, n int) []Rule {
	prefixes := []string{"0.0.0.0/0", "10.0.0.0/8", "10.1.0.0/16", "10.1.2.0/24", "10.1.2.3/32", "192.0.2.0/24", "192.0.2.128/25",
		"::/0", "2001:db8::/32", "2001:db8:1::/48", "2001:db8:1::1/128", "fd00::/8"}
	names := []string{"a.example.com", "*.example.com", "*.b.example.com", "example.net"}
	out := make([]Rule, n)
	for i := range out {
		rl := &out[i]
		rl.Allow = r.IntN(2) == 0
		if r.IntN(5) == 0 {
			rl.FQDN, _ = ParsePattern(names[r.IntN(len(names))])
		} else {
			rl.Prefix = netip.MustParsePrefix(prefixes[r.IntN(len(prefixes))])
		}
		rl.Proto = []uint8{AnyProto, TCP, UDP, ICMP}[r.IntN(4)]
		rl.PortLo, rl.PortHi = 0, 65535
		if (rl.Proto == TCP || rl.Proto == UDP) && r.IntN(2) == 0 {
			lo := uint16(r.IntN(100))
			rl.PortLo, rl.PortHi = lo, lo+uint16(r.IntN(20))
		}
	}
	return out
}

// The compiled table decides exactly as the rules read in order.
func TestTableIsFirstMatch(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	dsts := []string{"10.1.2.3", "10.1.2.4", "10.1.3.1", "10.2.0.0", "11.0.0.0", "192.0.2.1", "192.0.2.200", "0.0.0.0", "255.255.255.255",
		"2001:db8:1::1", "2001:db8:1::2", "2001:db8:2::", "fd12::1", "::", "ffff::1"}
	for round := 0; round < 300; round++ {
		rules := randomRules(r, 1+r.IntN(40))
		tab, err := Compile(rules)
		if err != nil {
			t.Fatal(err)
		}
		for k := 0; k < 200; k++ {
			dst := netip.MustParseAddr(dsts[r.IntN(len(dsts))])
			proto := []uint8{1, 6, 17, 47, 58}[r.IntN(5)]
			port := uint16(r.IntN(130))
			var names []string
			if r.IntN(2) == 0 {
				names = []string{[]string{"a.example.com", "x.b.example.com", "example.com", "example.net"}[r.IntN(4)]}
			}
			if got, want := tab.Match(dst, proto, port, names), linear(rules, dst, proto, port, names); got != want {
				t.Fatalf("round %d: %s proto %d port %d names %v: table %+v, in order %+v\nrules %+v", round, dst, proto, port, names, got, want, rules)
			}
		}
	}
}

func TestPatterns(t *testing.T) {
	for in, want := range map[string]string{
		"API.Example.COM.":  "api.example.com",
		"*.example.com":     "*.example.com",
		"bücher.example":    "xn--bcher-kva.example",
		"*.BÜCHER.example":  "*.xn--bcher-kva.example",
		"_mqtt._tcp.ex.com": "_mqtt._tcp.ex.com",
	} {
		p, err := ParsePattern(in)
		if err != nil || p.String() != want {
			t.Errorf("%q: %v %v, want %s", in, p, err, want)
		}
	}
	for _, bad := range []string{"", "*", "*.", "a.*.com", "**.example.com", "*example.com", "-a.example.com", "a..b", "exa mple.com", "a/b.com",
		string(make([]byte, 300))} {
		if p, err := ParsePattern(bad); err == nil {
			t.Errorf("%q accepted as %v", bad, p)
		}
	}
	w := mustPattern(t, "*.example.com")
	for name, want := range map[string]bool{"a.example.com": true, "A.B.Example.com.": true, "example.com": false, "aexample.com": false, "a.example.com.evil": false, ".example.com": false} {
		if w.Match(name) != want {
			t.Errorf("*.example.com matching %q: %v", name, !want)
		}
	}
	if e := mustPattern(t, "example.com"); e.Match("a.example.com") || !e.Match("EXAMPLE.com.") {
		t.Error("an exact pattern matches like a wildcard")
	}
}

// BenchmarkMatch: one lookup among n rules (the figure's shape is what
// matters: it grows with log n, not n). The linear case is the same rules
// read in order, for comparison.
func BenchmarkMatch(b *testing.B) {
	for _, n := range []int{10, 100, 1000} {
		rules := make([]Rule, n)
		for i := range rules {
			// Distinct /24s, a port each, the last a catch-all deny.
			rules[i] = Rule{Allow: true, Prefix: netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i >> 8), byte(i), 0}), 24), Proto: TCP, PortLo: uint16(1000 + i), PortHi: uint16(1000 + i)}
		}
		rules[n-1] = Rule{Prefix: netip.MustParsePrefix("0.0.0.0/0"), PortHi: 65535}
		tab, err := Compile(rules)
		if err != nil {
			b.Fatal(err)
		}
		dst := netip.AddrFrom4([4]byte{10, byte((n - 2) >> 8), byte(n - 2), 9}) // the last specific rule
		port := uint16(1000 + n - 2)
		if v := tab.Match(dst, 6, port, nil); !v.Allow || v.Rule != n-2 {
			b.Fatalf("%+v", v)
		}
		b.Run(fmt.Sprintf("table/rules=%d", n), func(b *testing.B) {
			for b.Loop() {
				tab.Match(dst, 6, port, nil)
			}
		})
		b.Run(fmt.Sprintf("linear/rules=%d", n), func(b *testing.B) {
			for b.Loop() {
				linear(rules, dst, 6, port, nil)
			}
		})
	}
}
