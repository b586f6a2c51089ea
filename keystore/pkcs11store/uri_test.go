// SPDX-License-Identifier: Apache-2.0

package pkcs11store_test

import (
	"strings"
	"testing"

	"github.com/wirefleet/wirefleet/keystore/pkcs11store"
)

func TestParseURI(t *testing.T) {
	u, err := pkcs11store.ParseURI("pkcs11:token=fleet%20a;object=wg-1;type=private?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=/etc/wf/pin")
	if err != nil {
		t.Fatal(err)
	}
	want := pkcs11store.URI{Token: "fleet a", Object: "wg-1", ModulePath: "/usr/lib/softhsm/libsofthsm2.so", PINSource: "/etc/wf/pin"}
	if u != want {
		t.Fatalf("got %+v", u)
	}
	back, err := pkcs11store.ParseURI(u.String())
	if err != nil || back != want {
		t.Fatalf("round trip %q: %+v, %v", u.String(), back, err)
	}
	for _, c := range []struct{ in, why string }{
		{"file:/etc/key", "not a pkcs11: URI"},
		{"pkcs11:token=a", "must name both"},
		{"pkcs11:object=b", "must name both"},
		{"pkcs11:token=a;object=b;type=public", "type=private"},
		{"pkcs11:token=a;object=b;serial=1", `"serial" is not supported`},
		{"pkcs11:token=a;object=b?pin-value=1234", "pin-source"},
		{"pkcs11:token=a;object=b?foo=1", `"foo" is not supported`},
		{"pkcs11:token=a;object", "not name=value"},
		{"pkcs11:token=a%zz;object=b", "token"},
	} {
		_, err := pkcs11store.ParseURI(c.in)
		if err == nil || !strings.Contains(err.Error(), c.why) {
			t.Errorf("%q: err = %v, want one saying %q", c.in, err, c.why)
		}
		if err != nil && strings.Contains(err.Error(), "1234") {
			t.Errorf("%q: error %q repeats the PIN", c.in, err)
		}
	}
}
