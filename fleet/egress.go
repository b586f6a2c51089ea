// SPDX-License-Identifier: Apache-2.0

package fleet

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/wirefleet/wirefleet/internal/egressrules"
)

// MaxEgressRules bounds a group's egress rules: enough for an allow list of
// cloud endpoints, small enough that compiling them on a change is quick.
const MaxEgressRules = 1024

// Egress rule actions and protocols.
const (
	EgressAllow = "allow"
	EgressDeny  = "deny"
)

// EgressSettings say where a group's devices may send beyond the fleet
// (the platform range, other SIMs and the LANs behind SIMs follow the
// device-to-device policy instead).
type EgressSettings struct {
	// Breakout lets allowed traffic to destinations outside the fleet
	// leave through the gateway host, from the host's address. Off: such
	// traffic has no route, whatever the rules say.
	Breakout bool `json:"breakout,omitempty"`
	// Rules are read in order; the first that matches a packet decides;
	// a packet no rule matches is denied.
	Rules []EgressRule `json:"rules,omitempty"`
	// ResolveAllowedOnly makes the gateway's DNS refuse names no FQDN
	// rule matches, so devices cannot tunnel data out through DNS
	// queries. Off: any name resolves (only matching ones grant
	// addresses).
	ResolveAllowedOnly bool `json:"resolveAllowedOnly,omitempty"`
}

// EgressRule is one uplink rule: a destination prefix or an FQDN pattern
// (allow only), a protocol and a destination port range.
type EgressRule struct {
	Action string `json:"action"`
	// Prefix is an IPv4 or IPv6 prefix; FQDN, instead, a name ("api.example.com")
	// or one leading wildcard label ("*.example.com": any name below it).
	Prefix string `json:"prefix,omitempty"`
	FQDN   string `json:"fqdn,omitempty"`
	// Protocol is "tcp", "udp", "icmp" (ICMP and ICMPv6) or "" for any.
	Protocol string `json:"protocol,omitempty"`
	// Ports is a destination port or range ("443", "8000-8100"), TCP and
	// UDP only; empty for every port.
	Ports       string `json:"ports,omitempty"`
	Description string `json:"description,omitempty"`
}

// Normalize validates the settings and puts each rule in its canonical
// form (lower case, punycode names, masked prefixes).
func (e *EgressSettings) Normalize(prefix string) error {
	if len(e.Rules) > MaxEgressRules {
		return Errorf(CodeInvalid, prefix+".rules", "at most %d rules (%d given)", MaxEgressRules, len(e.Rules))
	}
	for i := range e.Rules {
		if _, err := e.Rules[i].normalize(fmt.Sprintf("%s.rules[%d]", prefix, i)); err != nil {
			return err
		}
	}
	if e.ResolveAllowedOnly && !e.Breakout {
		return Errorf(CodeInvalid, prefix+".resolveAllowedOnly", "only with breakout (without it the gateway resolves no outside names)")
	}
	return nil
}

// normalize checks one rule and returns it compiled.
func (r *EgressRule) normalize(field string) (egressrules.Rule, error) {
	var out egressrules.Rule
	r.Action = strings.ToLower(r.Action)
	switch r.Action {
	case EgressAllow:
		out.Allow = true
	case EgressDeny:
	default:
		return out, Errorf(CodeInvalid, field+".action", "must be %q or %q", EgressAllow, EgressDeny)
	}
	switch {
	case (r.Prefix == "") == (r.FQDN == ""):
		return out, Errorf(CodeInvalid, field, "give either prefix or fqdn")
	case r.Prefix != "":
		p, err := netip.ParsePrefix(r.Prefix)
		if err != nil || p.Addr().Is4In6() || p.Addr().Zone() != "" {
			return out, Errorf(CodeInvalid, field+".prefix", "not an IPv4 or IPv6 prefix: %q", r.Prefix)
		}
		if p != p.Masked() {
			return out, Errorf(CodeInvalid, field+".prefix", "prefix has host bits set; did you mean %s?", p.Masked())
		}
		r.Prefix, out.Prefix = p.String(), p
	default:
		if !out.Allow {
			return out, Errorf(CodeInvalid, field+".fqdn", "FQDN rules allow only: a name's addresses are known only from the answers the gateway gave, so a deny by name could be walked around; deny by prefix")
		}
		pat, err := egressrules.ParsePattern(r.FQDN)
		if err != nil {
			return out, Errorf(CodeInvalid, field+".fqdn", "%v", err)
		}
		r.FQDN, out.FQDN = pat.String(), pat
	}
	r.Protocol = strings.ToLower(r.Protocol)
	switch r.Protocol {
	case "", "any":
		r.Protocol, out.Proto = "", egressrules.AnyProto
	case "tcp":
		out.Proto = egressrules.TCP
	case "udp":
		out.Proto = egressrules.UDP
	case "icmp":
		out.Proto = egressrules.ICMP
	default:
		return out, Errorf(CodeInvalid, field+".protocol", "must be tcp, udp, icmp or empty (any): %q", r.Protocol)
	}
	out.PortLo, out.PortHi = 0, 65535
	if r.Ports != "" {
		if out.Proto != egressrules.TCP && out.Proto != egressrules.UDP {
			return out, Errorf(CodeInvalid, field+".ports", "ports need protocol tcp or udp")
		}
		lo, hi, err := parsePortRange(r.Ports)
		if err != nil {
			return out, Errorf(CodeInvalid, field+".ports", "%v", err)
		}
		out.PortLo, out.PortHi = lo, hi
		if lo == hi {
			r.Ports = strconv.Itoa(int(lo))
		} else {
			r.Ports = fmt.Sprintf("%d-%d", lo, hi)
		}
	}
	if err := ValidateLabel(field+".description", r.Description, 200); err != nil {
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

// Compile returns the rules as the data path holds them (nil when there
// are none). The settings must have been normalized.
func (e EgressSettings) Compile() (*egressrules.Table, error) {
	if len(e.Rules) == 0 {
		return nil, nil
	}
	rules := make([]egressrules.Rule, len(e.Rules))
	for i := range e.Rules {
		r := e.Rules[i]
		c, err := r.normalize(fmt.Sprintf("rules[%d]", i))
		if err != nil {
			return nil, err
		}
		rules[i] = c
	}
	return egressrules.Compile(rules)
}
