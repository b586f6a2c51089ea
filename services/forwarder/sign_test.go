// SPDX-License-Identifier: Apache-2.0

package forwarder

import (
	"strings"
	"testing"
)

// The example SORACOM publishes for Beam signatures.
func TestBeamSignaturePublishedExample(t *testing.T) {
	id := Identity{IMEI: "860000012345678", IMSI: "295000012345678"}
	// Listed out of order on purpose: the signing order is fixed.
	sig, headers := BeamSignature("mysecretkey", []string{"imsi", "imei"}, id, 1445587157992)
	if !strings.HasPrefix(sig, "95c8e34d") || !strings.HasSuffix(sig, "21a721a5") {
		t.Fatalf("signature %s, want 95c8e34d…21a721a5", sig)
	}
	if sig != "95c8e34d68e2bd76502c1e403108dc1bd7008964c31081d0415adb9f21a721a5" {
		t.Fatalf("signature %s", sig)
	}
	want := [][2]string{{"X-Soracom-Imei", "860000012345678"}, {"X-Soracom-Imsi", "295000012345678"}, {"X-Soracom-Timestamp", "1445587157992"}}
	if len(headers) != len(want) {
		t.Fatalf("headers %v", headers)
	}
	for i := range want {
		if headers[i] != want[i] {
			t.Fatalf("headers %v, want %v", headers, want)
		}
	}
	// Another field set signs another string.
	if other, _ := BeamSignature("mysecretkey", []string{"imsi"}, id, 1445587157992); other == sig {
		t.Fatal("the field set does not change the signature")
	}
}

func TestCanonicalString(t *testing.T) {
	id := Identity{SIMID: "sim-1", IMSI: "999990000000001", Group: "meters"}
	got := CanonicalString(id, 1700000000123, "POST", "/in/a?x=1", []byte("hello"))
	want := "wirefleet-signature-v1\n1700000000123\nsim-1\n999990000000001\nmeters\nPOST\n/in/a?x=1\n2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
	if got != want {
		t.Fatalf("canonical string\n%s\nwant\n%s", got, want)
	}
	// HMAC-SHA256 test vector (RFC 4231, case 2).
	if s := Sign("Jefe", "what do ya want for nothing?"); s != "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843" {
		t.Fatalf("HMAC %s", s)
	}
}
