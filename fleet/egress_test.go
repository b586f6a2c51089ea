// SPDX-License-Identifier: Apache-2.0

package fleet

import (
	"errors"
	"strings"
	"testing"
)

func TestEgressRefuses(t *testing.T) {
	many := make([]EgressRule, MaxEgressRules+1)
	for i := range many {
		many[i] = EgressRule{Action: "allow", Prefix: "192.0.2.0/24"}
	}
	for name, c := range map[string]struct {
		e     EgressSettings
		field string
		says  string
	}{
		"action":        {EgressSettings{Rules: []EgressRule{{Action: "permit", Prefix: "192.0.2.0/24"}}}, "settings.egress.rules[0].action", "allow"},
		"neither":       {EgressSettings{Rules: []EgressRule{{Action: "allow"}}}, "settings.egress.rules[0]", "either prefix or fqdn"},
		"both":          {EgressSettings{Rules: []EgressRule{{Action: "allow", Prefix: "192.0.2.0/24", FQDN: "a.example"}}}, "settings.egress.rules[0]", "either prefix or fqdn"},
		"bad prefix":    {EgressSettings{Rules: []EgressRule{{Action: "deny", Prefix: "192.0.2.0/33"}}}, "settings.egress.rules[0].prefix", "not an IPv4 or IPv6 prefix"},
		"host bits":     {EgressSettings{Rules: []EgressRule{{Action: "deny", Prefix: "2001:db8::1/32"}}}, "settings.egress.rules[0].prefix", "did you mean 2001:db8::/32"},
		"mapped":        {EgressSettings{Rules: []EgressRule{{Action: "deny", Prefix: "::ffff:192.0.2.0/120"}}}, "settings.egress.rules[0].prefix", "not an IPv4 or IPv6 prefix"},
		"deny by name":  {EgressSettings{Rules: []EgressRule{{Action: "deny", FQDN: "a.example"}}}, "settings.egress.rules[0].fqdn", "allow only"},
		"bad pattern":   {EgressSettings{Rules: []EgressRule{{Action: "allow", FQDN: "a.*.example"}}}, "settings.egress.rules[0].fqdn", "wildcard"},
		"protocol":      {EgressSettings{Rules: []EgressRule{{Action: "allow", Prefix: "192.0.2.0/24", Protocol: "sctp"}}}, "settings.egress.rules[0].protocol", "tcp, udp, icmp"},
		"ports no tcp":  {EgressSettings{Rules: []EgressRule{{Action: "allow", Prefix: "192.0.2.0/24", Ports: "80"}}}, "settings.egress.rules[0].ports", "tcp or udp"},
		"port 0":        {EgressSettings{Rules: []EgressRule{{Action: "allow", Prefix: "192.0.2.0/24", Protocol: "tcp", Ports: "0"}}}, "settings.egress.rules[0].ports", "1 to 65535"},
		"port range":    {EgressSettings{Rules: []EgressRule{{Action: "allow", Prefix: "192.0.2.0/24", Protocol: "tcp", Ports: "90-80"}}}, "settings.egress.rules[0].ports", "above"},
		"port too big":  {EgressSettings{Rules: []EgressRule{{Action: "allow", Prefix: "192.0.2.0/24", Protocol: "udp", Ports: "1-65536"}}}, "settings.egress.rules[0].ports", "1 to 65535"},
		"too many":      {EgressSettings{Rules: many}, "settings.egress.rules", "at most 1024"},
		"resolve alone": {EgressSettings{ResolveAllowedOnly: true}, "settings.egress.resolveAllowedOnly", "only with breakout"},
	} {
		err := c.e.Normalize("settings.egress")
		var fe *Error
		if !errors.As(err, &fe) || fe.Field != c.field || !strings.Contains(fe.Message, c.says) {
			t.Errorf("%s: %v, want %s saying %q", name, err, c.field, c.says)
		}
	}
}

func TestEgressNormalizes(t *testing.T) {
	e := EgressSettings{Breakout: true, Rules: []EgressRule{
		{Action: "ALLOW", FQDN: "*.Bücher.example.", Protocol: "TCP", Ports: "443"},
		{Action: "allow", Prefix: "2001:DB8::/32", Protocol: "udp", Ports: "5000-5999"},
		{Action: "deny", Prefix: "0.0.0.0/0", Protocol: "any"},
	}}
	if err := e.Normalize("egress"); err != nil {
		t.Fatal(err)
	}
	r := e.Rules
	if r[0].Action != "allow" || r[0].FQDN != "*.xn--bcher-kva.example" || r[0].Protocol != "tcp" || r[1].Prefix != "2001:db8::/32" || r[2].Protocol != "" {
		t.Fatalf("normalized: %+v", r)
	}
	tab, err := e.Compile()
	if err != nil || tab.Len() != 3 {
		t.Fatalf("compile: %v %v", tab, err)
	}
	if none, err := (EgressSettings{}).Compile(); none != nil || err != nil {
		t.Fatalf("no rules compiled to %v %v", none, err)
	}
}

func TestMirrorPeersRefused(t *testing.T) {
	for name, c := range map[string]struct {
		m     Mirroring
		field string
	}{
		"not an address": {Mirroring{Peers: []MirrorPeer{{IPAddress: "collector.example"}}}, "m.peers[0].ipAddress"},
		"multicast":      {Mirroring{Peers: []MirrorPeer{{IPAddress: "239.1.1.1"}}}, "m.peers[0].ipAddress"},
		"broadcast":      {Mirroring{Peers: []MirrorPeer{{IPAddress: "255.255.255.255"}}}, "m.peers[0].ipAddress"},
		"unspecified":    {Mirroring{Peers: []MirrorPeer{{IPAddress: "::"}}}, "m.peers[0].ipAddress"},
		"link-local":     {Mirroring{Peers: []MirrorPeer{{IPAddress: "fe80::1"}}}, "m.peers[0].ipAddress"},
		"protocol":       {Mirroring{Peers: []MirrorPeer{{IPAddress: "192.0.2.9", Protocol: "erspan"}}}, "m.peers[0].protocol"},
		"port on gre":    {Mirroring{Peers: []MirrorPeer{{IPAddress: "192.0.2.9", Port: 4754}}}, "m.peers[0].port"},
		"too many":       {Mirroring{Peers: make([]MirrorPeer, MaxMirrorPeers+1)}, "m.peers"},
	} {
		err := c.m.Normalize("m")
		var fe *Error
		if !errors.As(err, &fe) || fe.Field != c.field || fe.Code != CodeInvalid {
			t.Errorf("%s: %v, want invalid %s", name, err, c.field)
		}
	}
	m := Mirroring{Peers: []MirrorPeer{{IPAddress: "::ffff:192.0.2.9", Enabled: true}}}
	if err := m.Normalize("m"); err != nil || m.Peers[0].IPAddress != "192.0.2.9" || m.Peers[0].Protocol != MirrorGRE {
		t.Fatalf("normalized: %+v %v", m, err)
	}
}
