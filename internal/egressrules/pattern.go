// SPDX-License-Identifier: Apache-2.0

package egressrules

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"golang.org/x/net/idna"
)

// Pattern is an FQDN rule's name: an exact name ("api.example.com") or
// one leading wildcard label ("*.example.com", any name below
// example.com, at any depth, not example.com itself). Held in lower-case
// ASCII: an internationalised name is turned into its punycode form
// (IDNA 2008 lookup rules), the form DNS questions carry.
type Pattern struct {
	name     string // without the wildcard label, no trailing dot
	wildcard bool
}

// idnaProfile maps a name as a resolver would before it asks: case
// folded, Unicode to punycode, the DNS length limits checked.
var idnaProfile = idna.New(idna.MapForLookup(), idna.Transitional(false), idna.VerifyDNSLength(true), idna.StrictDomainName(false))

// ParsePattern checks and normalises an FQDN pattern.
func ParsePattern(s string) (Pattern, error) {
	s = strings.TrimSuffix(strings.TrimSpace(s), ".")
	if s == "" {
		return Pattern{}, errors.New("empty name")
	}
	var p Pattern
	if rest, ok := strings.CutPrefix(s, "*."); ok {
		p.wildcard, s = true, rest
	}
	if strings.Contains(s, "*") {
		return Pattern{}, fmt.Errorf("%q: a wildcard may only be the whole first label (*.example.com)", s)
	}
	if !utf8.ValidString(s) {
		return Pattern{}, fmt.Errorf("%q is not UTF-8", s)
	}
	ascii, err := idnaProfile.ToASCII(s)
	if err != nil {
		return Pattern{}, fmt.Errorf("%q is not a domain name: %v", s, err)
	}
	// The punycode form must be a name in its own right (the form rules
	// are stored and compared in): a Unicode label that maps to an invalid
	// A-label is refused here, not later.
	if again, err := idnaProfile.ToASCII(ascii); err != nil || again != ascii {
		return Pattern{}, fmt.Errorf("%q is not a domain name: its ASCII form %q is not one", s, ascii)
	}
	if err := checkName(ascii); err != nil {
		return Pattern{}, err
	}
	p.name = ascii
	return p, nil
}

// checkName checks an ASCII name's labels: letters, digits, hyphens and
// underscores (service labels), no hyphen at either end, 1 to 63 each,
// 253 in all.
func checkName(n string) error {
	if len(n) > 253 {
		return fmt.Errorf("%q is longer than 253 characters", n)
	}
	for _, l := range strings.Split(n, ".") {
		if l == "" || len(l) > 63 {
			return fmt.Errorf("%q: labels are 1 to 63 characters", n)
		}
		if l[0] == '-' || l[len(l)-1] == '-' {
			return fmt.Errorf("%q: a label starts or ends with a hyphen", n)
		}
		for i := 0; i < len(l); i++ {
			c := l[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return fmt.Errorf("%q: %q is not allowed in a name", n, c)
			}
		}
	}
	return nil
}

// String returns the pattern as it is matched ("*.example.com").
func (p Pattern) String() string {
	if p.wildcard {
		return "*." + p.name
	}
	return p.name
}

// Match reports whether a DNS question name (any case, with or without
// the trailing dot) is one the pattern allows.
func (p Pattern) Match(name string) bool {
	name = strings.ToLower(strings.TrimSuffix(name, "."))
	if !p.wildcard {
		return name == p.name
	}
	return len(name) > len(p.name)+1 && strings.HasSuffix(name, p.name) && name[len(name)-len(p.name)-1] == '.'
}

// keys are the lookup keys of a question name: the name itself, then
// "*." and each of its parents, nearest first ("a.b.c" → "a.b.c",
// "*.b.c", "*.c").
func keys(name string, visit func(key string) bool) {
	name = strings.ToLower(strings.TrimSuffix(name, "."))
	if !visit(name) {
		return
	}
	for i := 0; i < len(name); i++ {
		if name[i] == '.' && i+1 < len(name) {
			if !visit("*." + name[i+1:]) {
				return
			}
		}
	}
}
