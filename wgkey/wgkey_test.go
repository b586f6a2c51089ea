// SPDX-License-Identifier: Apache-2.0

package wgkey

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"golang.org/x/crypto/curve25519"
)

func TestRoundTripAndClamp(t *testing.T) {
	k, err := NewPrivate()
	if err != nil {
		t.Fatal(err)
	}
	if k[0]&7 != 0 || k[31]&128 != 0 || k[31]&64 == 0 {
		t.Fatalf("key not clamped: %x", k)
	}
	p, err := ParsePrivate(k.Base64())
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

// Moved from fleet when its Key type became Public and Private here.
func TestGeneratedKeysAreClampedAndRoundTrip(t *testing.T) {
	for range 32 {
		k, err := NewPrivate()
		if err != nil {
			t.Fatal(err)
		}
		if k[0]&7 != 0 || k[31]&128 != 0 || k[31]&64 == 0 {
			t.Fatalf("not clamped: %x", k[:])
		}
		p, err := ParsePrivate(k.Base64())
		if err != nil || p != k {
			t.Fatalf("round trip: %v", err)
		}
	}
	for _, bad := range []string{"", "abc", strings.Repeat("A", 43) + "=", "!" + strings.Repeat("A", 42) + "="} {
		if _, err := ParsePublic(bad); err == nil {
			t.Errorf("ParsePublic(%q) accepted", bad)
		}
	}
	var s struct {
		K Public `json:"k,omitzero"`
	}
	if b, _ := json.Marshal(s); string(b) != "{}" {
		t.Fatalf("zero key marshals as %s", b)
	}
	if err := json.Unmarshal([]byte(`{"k":"nope"}`), &s); err == nil {
		t.Fatal("bad key unmarshalled")
	}
}

// A private or preshared key printed with any fmt verb, or logged with
// log/slog (text or JSON), shows a placeholder; only Base64 and the text
// encoding (the wire, key files) write it.
func TestSecretKeysDoNotPrint(t *testing.T) {
	priv, _ := NewPrivate()
	psk, _ := NewPreshared()
	secrets := []string{priv.Base64(), psk.Base64(), hex.EncodeToString(priv[:]), hex.EncodeToString(psk[:]), fmt.Sprint(priv[:]), fmt.Sprint(psk[:])}
	var out strings.Builder
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%T"} {
		fmt.Fprintf(&out, verb+"\n", priv)
		fmt.Fprintf(&out, verb+"\n", psk)
		fmt.Fprintf(&out, verb+"\n", struct{ K Private }{priv})
		fmt.Fprintf(&out, verb+"\n", &priv)
	}
	fmt.Fprintln(&out, priv, psk, priv.String(), psk.String())
	for _, h := range []slog.Handler{slog.NewTextHandler(&out, nil), slog.NewJSONHandler(&out, nil)} {
		slog.New(h).Info("keys", "private", priv, "psk", psk, "ptr", &priv)
	}
	for _, s := range secrets {
		if strings.Contains(out.String(), s) {
			t.Fatalf("a secret key was printed:\n%s", out.String())
		}
	}
	if !strings.Contains(out.String(), "(secret key)") {
		t.Fatalf("no placeholder printed:\n%s", out.String())
	}
	b, _ := json.Marshal(struct{ K Private }{priv})
	if !strings.Contains(string(b), priv.Base64()) {
		t.Fatalf("the wire encoding lost the key: %s", b)
	}
}

// The all-zero public key is no key: parsing refuses it, encoding writes "".
func TestZeroPublic(t *testing.T) {
	var z Public
	if _, err := ParsePublic(base64.StdEncoding.EncodeToString(z[:])); !errors.Is(err, ErrZeroKey) {
		t.Fatalf("zero key parsed: %v", err)
	}
	if z.String() != "" || z.Short() == "" {
		t.Fatalf("zero key text %q short %q", z.String(), z.Short())
	}
	var back Public
	if err := back.UnmarshalText(nil); err != nil || !back.IsZero() {
		t.Fatalf("empty text: %v", err)
	}
}

// The small-order table is right: X25519 with a clamped scalar fails (an
// all-zero result) for every entry and its other spellings, and for no
// other key of a large sample (random keys, every single-byte key, the
// neighbours of each entry, every coordinate from p up); Validate refuses
// exactly the entries among canonical keys, and every other spelling.
func TestSmallOrderTable(t *testing.T) {
	probe := [32]byte{0: 8, 31: 64} // a clamped scalar
	mult := func(k Public) bool {
		_, err := curve25519.X25519(probe[:], k[:])
		return err != nil
	}
	for i, k := range smallOrder {
		if !mult(k) {
			t.Errorf("table entry %d (%x) is not of small order", i, k[:])
		}
	}
	var sample []Public
	for i := range 32 {
		for _, b := range []byte{1, 2, 0x80 >> 1, 0xff} {
			var k Public
			k[i] = b
			sample = append(sample, k)
		}
	}
	for _, s := range smallOrder {
		for _, d := range []int{-1, 1} {
			k := s
			k[0] = byte(int(k[0]) + d)
			sample = append(sample, k)
		}
	}
	for range 5000 {
		var k Public
		rand.Read(k[:])
		k[31] &= 0x7f
		sample = append(sample, k)
	}
	for _, s := range smallOrder { // other spellings: the top bit, + p
		k := s
		k[31] |= 0x80
		sample = append(sample, k)
	}
	for b := 0xed; b <= 0xff; b++ { // p … 2^255−1, that is 0 … 18
		k := smallOrder[4]
		k[0] = byte(b)
		sample = append(sample, k)
	}
	for _, k := range sample {
		if got, want := k.LowOrder(), mult(k); got != want {
			t.Errorf("%x: LowOrder %v, multiplication says %v", k[:], got, want)
		}
		if k.nonCanonical() || k[31]&0x80 != 0 {
			if k.Validate() == nil {
				t.Errorf("%x: a non-canonical spelling accepted", k[:])
			}
			continue
		}
		if (k.Validate() != nil) != (k.LowOrder() || k.IsZero()) {
			t.Errorf("%x: Validate %v, LowOrder %v", k[:], k.Validate(), k.LowOrder())
		}
	}
}
