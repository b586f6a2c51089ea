// SPDX-License-Identifier: Apache-2.0

// Package egressrules holds a group's egress rules compiled for the data
// path: an ordered list, first match wins, nothing matching is a denial.
// A rule matches by destination (a prefix of either family, or an FQDN
// pattern whose addresses the gateway's DNS has answered), protocol and
// destination port range.
//
// Lookup is a binary search, not a scan: the address space of each family
// is cut into the elementary intervals the rules' prefixes bound, and each
// interval holds, per protocol, the first static rule that matches every
// port range of it — so a packet costs two binary searches (interval,
// port) whatever the number of rules. FQDN rules depend on what DNS
// answered each device, so they are looked up by name from the grants the
// caller passes (a map, by exact name and by each parent for wildcards)
// and win when they come before the static match.
package egressrules

import (
	"cmp"
	"container/heap"
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"sync/atomic"
)

// Protocol classes rules name.
const (
	AnyProto = 0
	TCP      = 6
	UDP      = 17
	// ICMP stands for ICMP and ICMPv6 alike.
	ICMP = 1
)

// Rule is one rule as the table takes it.
type Rule struct {
	Allow bool
	// Prefix, or else FQDN, is what the destination must be in.
	Prefix netip.Prefix
	FQDN   Pattern
	// Proto is AnyProto, TCP, UDP or ICMP; PortLo..PortHi the destination
	// ports (TCP and UDP only; 0..65535 for any).
	Proto          uint8
	PortLo, PortHi uint16
}

// isFQDN reports whether the rule matches by name.
func (r *Rule) isFQDN() bool { return !r.Prefix.IsValid() }

// matches reports whether the rule's protocol and ports take a packet.
func (r *Rule) matches(class uint8, port uint16) bool {
	if r.Proto != AnyProto && r.Proto != class {
		return false
	}
	if class == TCP || class == UDP {
		return port >= r.PortLo && port <= r.PortHi
	}
	return r.PortLo == 0 && r.PortHi == 65535 // a port range never matches a portless protocol
}

// none is the index of "no rule matched".
const none = -1

// Table is a compiled rule list. It is immutable but for its counters: a
// change compiles a new table, which the data path swaps in.
type Table struct {
	rules []Rule
	hits  []atomic.Uint64 // per rule
	miss  atomic.Uint64   // packets no rule matched
	v4    family
	v6    family
	// names and wildcards index the FQDN rules: exact name or "*.parent"
	// to the rules' indices, ascending.
	names map[string][]int
}

// family is one address family's elementary intervals: interval i starts
// at starts[i] (ascending; the first is the family's first address) and
// its decisions are segs[i].
type family struct {
	starts []netip.Addr
	segs   []*decision
}

// decision is what one interval decides: the first static rule per
// portless class, and per port range for TCP and UDP.
type decision struct {
	icmp, other int
	tcp, udp    ports
}

// ports is a port partition: range i starts at lo[i], its rule is rule[i].
type ports struct {
	lo   []uint16
	rule []int
}

func (p *ports) lookup(port uint16) int {
	i := sort.Search(len(p.lo), func(i int) bool { return p.lo[i] > port }) - 1
	return p.rule[i]
}

// Compile builds a table. It reports a rule that can never match.
func Compile(rules []Rule) (*Table, error) {
	t := &Table{rules: slices.Clone(rules), hits: make([]atomic.Uint64, len(rules)), names: map[string][]int{}}
	var static4, static6 []int
	for i := range t.rules {
		r := &t.rules[i]
		if r.PortLo > r.PortHi {
			return nil, fmt.Errorf("rule %d: port range %d-%d is empty", i, r.PortLo, r.PortHi)
		}
		if r.isFQDN() {
			if r.FQDN.name == "" {
				return nil, fmt.Errorf("rule %d: neither a prefix nor a name", i)
			}
			t.names[r.FQDN.String()] = append(t.names[r.FQDN.String()], i)
			continue
		}
		r.Prefix = r.Prefix.Masked()
		if r.Prefix.Addr().Is4() {
			static4 = append(static4, i)
		} else {
			static6 = append(static6, i)
		}
	}
	t.v4 = t.build(static4, netip.IPv4Unspecified())
	t.v6 = t.build(static6, netip.IPv6Unspecified())
	return t, nil
}

// build cuts a family's address space at every rule prefix's bounds and
// decides each interval. Intervals with the same covering rules share one
// decision, and adjacent ones merge.
func (t *Table) build(idx []int, first netip.Addr) family {
	bounds := []netip.Addr{first}
	for _, i := range idx {
		p := t.rules[i].Prefix
		bounds = append(bounds, p.Addr())
		if next := lastOf(p).Next(); next.IsValid() {
			bounds = append(bounds, next)
		}
	}
	slices.SortFunc(bounds, netip.Addr.Compare)
	bounds = slices.Compact(bounds)
	var f family
	shared := map[string]*decision{}
	var prev *decision
	for _, start := range bounds {
		var cover []int
		for _, i := range idx {
			if t.rules[i].Prefix.Contains(start) {
				cover = append(cover, i) // ascending: idx is in rule order
			}
		}
		key := fmt.Sprint(cover)
		d := shared[key]
		if d == nil {
			d = t.decide(cover)
			shared[key] = d
		}
		if d == prev {
			continue
		}
		f.starts = append(f.starts, start)
		f.segs = append(f.segs, d)
		prev = d
	}
	return f
}

// lastOf returns a prefix's last address.
func lastOf(p netip.Prefix) netip.Addr {
	a := p.Addr().AsSlice()
	bits := p.Bits()
	for i := range a {
		for b := 0; b < 8; b++ {
			if i*8+b >= bits {
				a[i] |= 0x80 >> b
			}
		}
	}
	last, _ := netip.AddrFromSlice(a)
	return last
}

// decide finds the first rule among cover for every class and port.
func (t *Table) decide(cover []int) *decision {
	d := &decision{icmp: none, other: none}
	for _, i := range cover {
		r := &t.rules[i]
		if d.icmp == none && r.matches(ICMP, 0) {
			d.icmp = i
		}
		if d.other == none && r.matches(AnyProto, 0) {
			d.other = i
		}
	}
	d.tcp = t.portTable(cover, TCP)
	d.udp = t.portTable(cover, UDP)
	return d
}

// portTable cuts the port space at every bound of the rules of a class,
// and sweeps it once: the rules whose range holds the current port wait
// in a heap by index, so the first of them is at hand (O(m log m)).
func (t *Table) portTable(cover []int, class uint8) ports {
	var byLo []int
	bounds := []uint16{0}
	for _, i := range cover {
		r := &t.rules[i]
		if r.Proto != AnyProto && r.Proto != class {
			continue
		}
		byLo = append(byLo, i)
		bounds = append(bounds, r.PortLo)
		if r.PortHi < 65535 {
			bounds = append(bounds, r.PortHi+1)
		}
	}
	slices.SortStableFunc(byLo, func(a, b int) int { return cmp.Compare(t.rules[a].PortLo, t.rules[b].PortLo) })
	slices.Sort(bounds)
	bounds = slices.Compact(bounds)
	var (
		p      ports
		active indexHeap
		next   int
	)
	for _, lo := range bounds {
		for next < len(byLo) && t.rules[byLo[next]].PortLo <= lo {
			heap.Push(&active, byLo[next])
			next++
		}
		for active.Len() > 0 && t.rules[active[0]].PortHi < lo {
			heap.Pop(&active) // ended before this range: it never comes back
		}
		rule := none
		if active.Len() > 0 {
			rule = active[0]
		}
		if n := len(p.rule); n > 0 && p.rule[n-1] == rule {
			continue
		}
		p.lo = append(p.lo, lo)
		p.rule = append(p.rule, rule)
	}
	return p
}

// indexHeap is a min-heap of rule indices.
type indexHeap []int

func (h indexHeap) Len() int           { return len(h) }
func (h indexHeap) Less(i, j int) bool { return h[i] < h[j] }
func (h indexHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *indexHeap) Push(x any)        { *h = append(*h, x.(int)) }
func (h *indexHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// Class returns the rule class of an IP protocol number.
func Class(proto uint8) uint8 {
	switch proto {
	case 6:
		return TCP
	case 17:
		return UDP
	case 1, 58:
		return ICMP
	}
	return AnyProto
}

// Verdict is the outcome of a lookup.
type Verdict struct {
	Allow bool
	// Rule is the deciding rule's index; -1 when none matched.
	Rule int
}

// Match decides a packet to dst with IP protocol proto and destination
// port (0 when it has none). names are the names the device's DNS
// answers gave dst (still within their lifetime); nil when none did.
func (t *Table) Match(dst netip.Addr, proto uint8, port uint16, names []string) Verdict {
	class := Class(proto)
	rule := t.static(dst.Unmap(), class, port)
	if len(names) > 0 && len(t.names) > 0 {
		for _, n := range names {
			keys(n, func(k string) bool {
				for _, i := range t.names[k] {
					if rule != none && i > rule {
						break
					}
					if t.rules[i].matches(class, port) {
						rule = i
						break
					}
				}
				return true
			})
		}
	}
	if rule == none {
		t.miss.Add(1)
		return Verdict{Rule: none}
	}
	t.hits[rule].Add(1)
	return Verdict{Allow: t.rules[rule].Allow, Rule: rule}
}

// static is the first static rule matching, or none.
func (t *Table) static(dst netip.Addr, class uint8, port uint16) int {
	f := &t.v6
	if dst.Is4() {
		f = &t.v4
	}
	i := sort.Search(len(f.starts), func(i int) bool { return f.starts[i].Compare(dst) > 0 }) - 1
	if i < 0 {
		return none
	}
	d := f.segs[i]
	switch class {
	case TCP:
		return d.tcp.lookup(port)
	case UDP:
		return d.udp.lookup(port)
	case ICMP:
		return d.icmp
	}
	return d.other
}

// HasNames reports whether the table has FQDN rules: without them a
// lookup needs no grants.
func (t *Table) HasNames() bool { return len(t.names) > 0 }

// Len returns the number of rules.
func (t *Table) Len() int { return len(t.rules) }

// Hits returns how many packets each rule decided, and how many no rule
// matched.
func (t *Table) Hits() (perRule []uint64, unmatched uint64) {
	perRule = make([]uint64, len(t.hits))
	for i := range t.hits {
		perRule[i] = t.hits[i].Load()
	}
	return perRule, t.miss.Load()
}

// WantsName reports whether a name matches any FQDN rule: only answers
// for such names are worth remembering.
func (t *Table) WantsName(name string) bool {
	found := false
	keys(name, func(k string) bool {
		found = len(t.names[k]) > 0
		return !found
	})
	return found
}
