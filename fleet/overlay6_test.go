// SPDX-License-Identifier: Apache-2.0

package fleet

import (
	"bytes"
	"errors"
	"net/netip"
	"strings"
	"testing"
)

func TestParseOverlay6Refuses(t *testing.T) {
	for in, want := range map[string]string{
		"fd00:1:2::/64":        "is a /64",
		"fd00:1::/32":          "is a /32",
		"2001:db8:1::/48":      "not a unique local prefix",
		"fc00:1:2::/48":        "not a unique local prefix", // fc00::/8 has no assignment procedure
		"fd00:1:2:3::/48":      "bits set beyond /48",
		"10.0.0.0/8":           "not an IPv6 prefix",
		"::ffff:10.0.0.0/104":  "not an IPv6 prefix", // a mapped IPv4 prefix
		"fd00:1:2::":           "not an IPv6 prefix",
		"":                     "not an IPv6 prefix",
		"fd00:1:2::/48garbage": "not an IPv6 prefix",
	} {
		_, err := ParseOverlay6("ulaPrefix", in)
		var fe *Error
		if !errors.As(err, &fe) || fe.Field != "ulaPrefix" || fe.Code != CodeInvalid || !strings.Contains(fe.Message, want) {
			t.Errorf("%q: %v, want an invalid ulaPrefix error saying %q", in, err, want)
		}
	}
}

func TestOverlay6Twins(t *testing.T) {
	o, err := ParseOverlay6("", "fd3c:91e2:7a10::/48")
	if err != nil {
		t.Fatal(err)
	}
	a4 := netip.MustParseAddr("10.128.0.5")
	a6 := o.Addr(a4)
	if a6 != netip.MustParseAddr("fd3c:91e2:7a10::a80:5") {
		t.Fatalf("twin of %s: %s", a4, a6)
	}
	if back, ok := o.V4(a6); !ok || back != a4 {
		t.Fatalf("V4(%s) = %s %v", a6, back, ok)
	}
	if _, ok := o.V4(netip.MustParseAddr("fd3c:91e2:7a10:1::a80:5")); ok {
		t.Fatal("an address outside the /96 view has an IPv4 twin")
	}
	if _, ok := o.V4(netip.MustParseAddr("10.128.0.5")); ok {
		t.Fatal("an IPv4 address has an IPv4 twin")
	}
	if p := o.PrefixOf(netip.MustParsePrefix("100.127.0.0/16")); p != netip.MustParsePrefix("fd3c:91e2:7a10::647f:0/112") {
		t.Fatalf("twin of the platform range: %s", p)
	}
	if !o.PrefixOf(netip.MustParsePrefix("10.128.0.0/9")).Contains(a6) {
		t.Fatal("the pool's twin does not hold the SIM's twin")
	}
	var off Overlay6
	if off.Enabled() || off.Addr(a4).IsValid() || off.String() != "" || off.PrefixOf(netip.MustParsePrefix("10.0.0.0/8")).IsValid() {
		t.Fatal("the zero plan gives IPv6 addresses")
	}
}

func TestGenerateOverlay6(t *testing.T) {
	o, err := GenerateOverlay6(bytes.NewReader([]byte{1, 2, 3, 4, 5}))
	if err != nil || o.String() != "fd01:203:405::/48" {
		t.Fatalf("%v %v", o, err)
	}
	if _, err := NewOverlay6("", o.Prefix()); err != nil {
		t.Fatalf("a generated prefix does not pass the check: %v", err)
	}
	a, _ := GenerateOverlay6(nil)
	b, _ := GenerateOverlay6(nil)
	if a == b {
		t.Fatal("two random prefixes are the same")
	}
	if _, err := GenerateOverlay6(bytes.NewReader([]byte{1})); err == nil {
		t.Fatal("a short random source gave a prefix")
	}
}

func TestVia6(t *testing.T) {
	o, _ := ParseOverlay6("", "fd3c:91e2:7a10::/48")
	site, host := netip.MustParseAddr("10.128.0.7"), netip.MustParseAddr("192.168.1.10")
	a := o.Via6Addr(site, host)
	if a != netip.MustParseAddr("fd3c:91e2:7a10:1:a80:7:c0a8:10a") {
		t.Fatalf("4via6 address: %s", a)
	}
	if s, h, ok := o.SplitVia6(a); !ok || s != site || h != host {
		t.Fatalf("split: %s %s %v", s, h, ok)
	}
	if p := o.Via6Prefix(site, netip.MustParsePrefix("192.168.1.0/24")); p.String() != "fd3c:91e2:7a10:1:a80:7:c0a8:100/120" || !p.Contains(a) {
		t.Fatalf("4via6 prefix: %s", p)
	}
	if o.Via6().Overlaps(o.View()) {
		t.Fatal("the 4via6 view overlaps the overlay's view")
	}
	if _, _, ok := o.SplitVia6(o.Addr(site)); ok {
		t.Fatal("an overlay address split as 4via6")
	}
}
