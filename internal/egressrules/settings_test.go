// SPDX-License-Identifier: Apache-2.0

package egressrules

import (
	"errors"
	"strings"
	"testing"

	"github.com/wirefleet/wirefleet/fleet"
)

func TestEgressRefuses(t *testing.T) {
	many := make([]fleet.EgressRule, fleet.MaxEgressRules+1)
	for i := range many {
		many[i] = fleet.EgressRule{Action: "allow", Prefix: "192.0.2.0/24"}
	}
	for name, c := range map[string]struct {
		e     fleet.EgressSettings
		field string
		says  string
	}{
		"action":        {fleet.EgressSettings{Rules: []fleet.EgressRule{{Action: "permit", Prefix: "192.0.2.0/24"}}}, "settings.egress.rules[0].action", "allow"},
		"neither":       {fleet.EgressSettings{Rules: []fleet.EgressRule{{Action: "allow"}}}, "settings.egress.rules[0]", "either prefix or fqdn"},
		"both":          {fleet.EgressSettings{Rules: []fleet.EgressRule{{Action: "allow", Prefix: "192.0.2.0/24", FQDN: "a.example"}}}, "settings.egress.rules[0]", "either prefix or fqdn"},
		"bad prefix":    {fleet.EgressSettings{Rules: []fleet.EgressRule{{Action: "deny", Prefix: "192.0.2.0/33"}}}, "settings.egress.rules[0].prefix", "not an IPv4 or IPv6 prefix"},
		"host bits":     {fleet.EgressSettings{Rules: []fleet.EgressRule{{Action: "deny", Prefix: "2001:db8::1/32"}}}, "settings.egress.rules[0].prefix", "did you mean 2001:db8::/32"},
		"mapped":        {fleet.EgressSettings{Rules: []fleet.EgressRule{{Action: "deny", Prefix: "::ffff:192.0.2.0/120"}}}, "settings.egress.rules[0].prefix", "not an IPv4 or IPv6 prefix"},
		"deny by name":  {fleet.EgressSettings{Rules: []fleet.EgressRule{{Action: "deny", FQDN: "a.example"}}}, "settings.egress.rules[0].fqdn", "allow only"},
		"bad pattern":   {fleet.EgressSettings{Rules: []fleet.EgressRule{{Action: "allow", FQDN: "a.*.example"}}}, "settings.egress.rules[0].fqdn", "wildcard"},
		"protocol":      {fleet.EgressSettings{Rules: []fleet.EgressRule{{Action: "allow", Prefix: "192.0.2.0/24", Protocol: "sctp"}}}, "settings.egress.rules[0].protocol", "tcp, udp, icmp"},
		"ports no tcp":  {fleet.EgressSettings{Rules: []fleet.EgressRule{{Action: "allow", Prefix: "192.0.2.0/24", Ports: "80"}}}, "settings.egress.rules[0].ports", "tcp or udp"},
		"port 0":        {fleet.EgressSettings{Rules: []fleet.EgressRule{{Action: "allow", Prefix: "192.0.2.0/24", Protocol: "tcp", Ports: "0"}}}, "settings.egress.rules[0].ports", "1 to 65535"},
		"port range":    {fleet.EgressSettings{Rules: []fleet.EgressRule{{Action: "allow", Prefix: "192.0.2.0/24", Protocol: "tcp", Ports: "90-80"}}}, "settings.egress.rules[0].ports", "above"},
		"port too big":  {fleet.EgressSettings{Rules: []fleet.EgressRule{{Action: "allow", Prefix: "192.0.2.0/24", Protocol: "udp", Ports: "1-65536"}}}, "settings.egress.rules[0].ports", "1 to 65535"},
		"too many":      {fleet.EgressSettings{Rules: many}, "settings.egress.rules", "at most 1024"},
		"resolve alone": {fleet.EgressSettings{ResolveAllowedOnly: true}, "settings.egress.resolveAllowedOnly", "only with breakout"},
	} {
		err := Normalize(&c.e, "settings.egress")
		var fe *fleet.Error
		if !errors.As(err, &fe) || fe.Field != c.field || !strings.Contains(fe.Message, c.says) {
			t.Errorf("%s: %v, want %s saying %q", name, err, c.field, c.says)
		}
	}
}

func TestEgressNormalizes(t *testing.T) {
	e := fleet.EgressSettings{Breakout: true, Rules: []fleet.EgressRule{
		{Action: "ALLOW", FQDN: "*.Bücher.example.", Protocol: "TCP", Ports: "443"},
		{Action: "allow", Prefix: "2001:DB8::/32", Protocol: "udp", Ports: "5000-5999"},
		{Action: "deny", Prefix: "0.0.0.0/0", Protocol: "any"},
	}}
	if err := Normalize(&e, "egress"); err != nil {
		t.Fatal(err)
	}
	r := e.Rules
	if r[0].Action != "allow" || r[0].FQDN != "*.xn--bcher-kva.example" || r[0].Protocol != "tcp" || r[1].Prefix != "2001:db8::/32" || r[2].Protocol != "" {
		t.Fatalf("normalized: %+v", r)
	}
	tab, err := FromSettings(e)
	if err != nil || tab.Len() != 3 {
		t.Fatalf("compile: %v %v", tab, err)
	}
	if none, err := FromSettings(fleet.EgressSettings{}); none != nil || err != nil {
		t.Fatalf("no rules compiled to %v %v", none, err)
	}
}
