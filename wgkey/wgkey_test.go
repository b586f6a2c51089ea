package wgkey

import "testing"

func TestRoundTripAndClamp(t *testing.T) {
	k, err := NewPrivate()
	if err != nil {
		t.Fatal(err)
	}
	if k[0]&7 != 0 || k[31]&128 != 0 || k[31]&64 == 0 {
		t.Fatalf("key not clamped: %x", k)
	}
	p, err := ParsePrivate(k.String())
	if err != nil || p != k {
		t.Fatalf("private round trip: %v", err)
	}
	pub := k.Public()
	q, err := ParsePublic(pub.String())
	if err != nil || q != pub {
		t.Fatalf("public round trip: %v", err)
	}
	h, err := ParsePublicHex(pub.Hex())
	if err != nil || h != pub {
		t.Fatalf("hex round trip: %v", err)
	}
}

func TestKnownPublic(t *testing.T) {
	// RFC 7748 section 6.1: Alice's private and public key.
	priv := Private{0x77, 0x07, 0x6d, 0x0a, 0x73, 0x18, 0xa5, 0x7d, 0x3c, 0x16, 0xc1, 0x72, 0x51, 0xb2, 0x66, 0x45, 0xdf, 0x4c, 0x2f, 0x87, 0xeb, 0xc0, 0x99, 0x2a, 0xb1, 0x77, 0xfb, 0xa5, 0x1d, 0xb9, 0x2c, 0x2a}
	want := "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a"
	if got := priv.Public().Hex(); got != want {
		t.Fatalf("public = %s, want %s", got, want)
	}
}

func TestParseRejects(t *testing.T) {
	for _, s := range []string{"", "abc", "AAAA", "not base64!!", "YWJj" + "YWJjYWJjYWJjYWJjYWJjYWJjYWJjYWJjYWJjYWJjYWJj"} {
		if _, err := ParsePublic(s); err == nil {
			t.Errorf("ParsePublic(%q) accepted", s)
		}
	}
	if _, err := ParsePublicHex("zz"); err == nil {
		t.Error("ParsePublicHex accepted garbage")
	}
}
