// SPDX-License-Identifier: Apache-2.0

package egressrules

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/wirefleet/wirefleet/fleet"
)

// Normalize validates a group's egress settings and puts each rule in its
// canonical form (lower case, punycode names, masked prefixes); errors are
// fleet errors naming the field under prefix.
func Normalize(e *fleet.EgressSettings, prefix string) error {
	if len(e.Rules) > fleet.MaxEgressRules {
		return fleet.Errorf(fleet.CodeInvalid, prefix+".rules", "at most %d rules (%d given)", fleet.MaxEgressRules, len(e.Rules))
	}
	for i := range e.Rules {
		if _, err := normalizeRule(&e.Rules[i], fmt.Sprintf("%s.rules[%d]", prefix, i)); err != nil {
			return err
		}
	}
	if e.ResolveAllowedOnly && !e.Breakout {
		return fleet.Errorf(fleet.CodeInvalid, prefix+".resolveAllowedOnly", "only with breakout (without it the gateway resolves no outside names)")
	}
	return nil
}

// normalize checks one rule and returns it compiled.
func normalizeRule(r *fleet.EgressRule, field string) (Rule, error) {
	var out Rule
	r.Action = strings.ToLower(r.Action)
	switch r.Action {
	case fleet.EgressAllow:
		out.Allow = true
	case fleet.EgressDeny:
	default:
		return out, fleet.Errorf(fleet.CodeInvalid, field+".action", "must be %q or %q", fleet.EgressAllow, fleet.EgressDeny)
	}
	switch {
	case (r.Prefix == "") == (r.FQDN == ""):
		return out, fleet.Errorf(fleet.CodeInvalid, field, "give either prefix or fqdn")
	case r.Prefix != "":
		p, err := netip.ParsePrefix(r.Prefix)
		if err != nil || p.Addr().Is4In6() || p.Addr().Zone() != "" {
			return out, fleet.Errorf(fleet.CodeInvalid, field+".prefix", "not an IPv4 or IPv6 prefix: %q", r.Prefix)
		}
		if p != p.Masked() {
			return out, fleet.Errorf(fleet.CodeInvalid, field+".prefix", "prefix has host bits set; did you mean %s?", p.Masked())
		}
		r.Prefix, out.Prefix = p.String(), p
	default:
		if !out.Allow {
			return out, fleet.Errorf(fleet.CodeInvalid, field+".fqdn", "FQDN rules allow only: a name's addresses are known only from the answers the gateway gave, so a deny by name could be walked around; deny by prefix")
		}
		pat, err := ParsePattern(r.FQDN)
		if err != nil {
			return out, fleet.Errorf(fleet.CodeInvalid, field+".fqdn", "%v", err)
		}
		r.FQDN, out.FQDN = pat.String(), pat
	}
	r.Protocol = strings.ToLower(r.Protocol)
	switch r.Protocol {
	case "", "any":
		r.Protocol, out.Proto = "", AnyProto
	case "tcp":
		out.Proto = TCP
	case "udp":
		out.Proto = UDP
	case "icmp":
		out.Proto = ICMP
	default:
		return out, fleet.Errorf(fleet.CodeInvalid, field+".protocol", "must be tcp, udp, icmp or empty (any): %q", r.Protocol)
	}
	out.PortLo, out.PortHi = 0, 65535
	if r.Ports != "" {
		if out.Proto != TCP && out.Proto != UDP {
			return out, fleet.Errorf(fleet.CodeInvalid, field+".ports", "ports need protocol tcp or udp")
		}
		lo, hi, err := parsePortRange(r.Ports)
		if err != nil {
			return out, fleet.Errorf(fleet.CodeInvalid, field+".ports", "%v", err)
		}
		out.PortLo, out.PortHi = lo, hi
		if lo == hi {
			r.Ports = strconv.Itoa(int(lo))
		} else {
			r.Ports = fmt.Sprintf("%d-%d", lo, hi)
		}
	}
	if err := fleet.ValidateLabel(field+".description", r.Description, 200); err != nil {
		return out, err
	}
	return out, nil
}

// parsePortRange reads "443" or "8000-8100" (1 to 65535, low ≤ high).
func parsePortRange(s string) (lo, hi uint16, err error) {
	a, b, isRange := strings.Cut(s, "-")
	parse := func(v string) (uint16, error) {
		n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 16)
		if err != nil || n == 0 {
			return 0, fmt.Errorf("%q: ports are 1 to 65535, one or a range low-high", s)
		}
		return uint16(n), nil
	}
	if lo, err = parse(a); err != nil {
		return 0, 0, err
	}
	hi = lo
	if isRange {
		if hi, err = parse(b); err != nil {
			return 0, 0, err
		}
	}
	if lo > hi {
		return 0, 0, fmt.Errorf("%q: the range's low port is above its high one", s)
	}
	return lo, hi, nil
}

// FromSettings returns a group's rules as the data path holds them (nil
// when there are none). The settings must have been normalized.
func FromSettings(e fleet.EgressSettings) (*Table, error) {
	if len(e.Rules) == 0 {
		return nil, nil
	}
	rules := make([]Rule, len(e.Rules))
	for i := range e.Rules {
		r := e.Rules[i]
		c, err := normalizeRule(&r, fmt.Sprintf("rules[%d]", i))
		if err != nil {
			return nil, err
		}
		rules[i] = c
	}
	return Compile(rules)
}
