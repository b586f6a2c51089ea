// SPDX-License-Identifier: Apache-2.0

package fleet

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
// device-to-device policy instead). Package internal/egressrules checks
// them (Normalize) and compiles them (FromSettings): kept out of this
// package, the model — and what links it, the device agent — carries no
// IDNA tables.
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
