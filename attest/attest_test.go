// SPDX-License-Identifier: Apache-2.0

package attest

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func genEd(t testing.TB) (ed25519.PrivateKey, PublicKey) {
	t.Helper()
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	k, err := FromCrypto(pub)
	if err != nil {
		t.Fatal(err)
	}
	return priv, k
}

func genP256(t testing.TB) (*ecdsa.PrivateKey, PublicKey) {
	t.Helper()
	priv, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	k, err := FromCrypto(&priv.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return priv, k
}

// Every accepted form of one key parses to the same key, whose canonical
// form parses back to itself.
func TestParsePublicKeyForms(t *testing.T) {
	_, ed := genEd(t)
	p, pk := genP256(t)
	spkiPEM := func(k PublicKey) string { return k.PEM() }
	compressed := elliptic.MarshalCompressed(elliptic.P256(), p.X, p.Y)
	for _, c := range []struct {
		name string
		in   string
		want PublicKey
	}{
		{"ed canonical", ed.String(), ed},
		{"ed pem", spkiPEM(ed), ed},
		{"ed hex", hex.EncodeToString(ed.Bytes()), ed},
		{"ed HEX", strings.ToUpper(hex.EncodeToString(ed.Bytes())), ed},
		{"ed base64", base64.StdEncoding.EncodeToString(ed.Bytes()), ed},
		{"ed base64 raw url", base64.RawURLEncoding.EncodeToString(ed.Bytes()), ed},
		{"ed der base64", base64.StdEncoding.EncodeToString(ed.SPKI()), ed},
		{"ed der hex", hex.EncodeToString(ed.SPKI()), ed},
		{"p256 canonical", pk.String(), pk},
		{"p256 pem", spkiPEM(pk), pk},
		{"p256 hex uncompressed", hex.EncodeToString(pk.Bytes()), pk},
		{"p256 hex compressed", hex.EncodeToString(compressed), pk},
		{"p256 base64 compressed", base64.StdEncoding.EncodeToString(compressed), pk},
		{"p256 der base64", base64.StdEncoding.EncodeToString(pk.SPKI()), pk},
		{"surrounding blanks", "  " + ed.String() + "\n", ed},
	} {
		got, err := ParsePublicKey(c.in)
		if err != nil || got != c.want {
			t.Errorf("%s: %v %v", c.name, got, err)
		}
	}
	for _, k := range []PublicKey{ed, pk} {
		again, err := ParsePublicKey(k.String())
		if err != nil || again != k || again.Fingerprint() != k.Fingerprint() || len(k.Fingerprint()) != 64 {
			t.Fatalf("round trip of %s: %v %v", k, again, err)
		}
		var j PublicKey
		if err := j.UnmarshalText([]byte(k.String())); err != nil || j != k {
			t.Fatal(err)
		}
	}
	if ed.Fingerprint() == pk.Fingerprint() {
		t.Fatal("fingerprints collide")
	}
}

func TestParsePublicKeyRefuses(t *testing.T) {
	_, ed := genEd(t)
	rsaPEM := "-----BEGIN PUBLIC KEY-----\nMFwwDQYJKoZIhvcNAQEBBQADSwAwSAJBAMeP2J6+gZJ6Tn0TWOfAK0wcjlypSrdCOzeSx4uVN4CZCjWn3GOdfHZ8j9RdwpW5U4fT2F6MwS6jSb0VFTdWHKkCAwEAAQ==\n-----END PUBLIC KEY-----\n"
	identity := make([]byte, 32)
	identity[0] = 1
	offCurve := append([]byte{4}, bytes.Repeat([]byte{1}, 64)...)
	for name, in := range map[string]string{
		"empty":                  "",
		"garbage":                "not a key!",
		"short":                  hex.EncodeToString(make([]byte, 31)),
		"odd hex":                "abc",
		"ed small order (zero)":  hex.EncodeToString(make([]byte, 32)),
		"ed identity point":      hex.EncodeToString(identity),
		"p256 off curve":         hex.EncodeToString(offCurve),
		"unknown alg":            "rsa:" + base64.StdEncoding.EncodeToString(ed.Bytes()),
		"p256 canonical short":   "p256:" + base64.StdEncoding.EncodeToString(make([]byte, 33)),
		"bad canonical base64":   "ed25519:!!!",
		"rsa pem":                rsaPEM,
		"two pem blocks":         ed.PEM() + ed.PEM(),
		"private key pem":        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
		"too long":               strings.Repeat("a", MaxKeyText+2),
		"certificate-ish header": "-----BEGIN PUBLIC KEY-----\nProc-Type: 4,ENCRYPTED\n\n" + base64.StdEncoding.EncodeToString(ed.SPKI()) + "\n-----END PUBLIC KEY-----\n",
	} {
		if k, err := ParsePublicKey(in); err == nil || !errors.Is(err, ErrBadKey) {
			t.Errorf("%s: accepted as %v (err %v)", name, k, err)
		}
	}
}

func TestParseKeyList(t *testing.T) {
	_, a := genEd(t)
	_, b := genP256(t)
	_, c := genEd(t)
	want := []PublicKey{a, b, c}
	lists := map[string]string{
		"lines":        "# batch 7\n" + a.String() + "\n\n" + hex.EncodeToString(b.Bytes()) + "\r\n" + base64.StdEncoding.EncodeToString(c.Bytes()) + "\n",
		"pem":          a.PEM() + "\n" + b.PEM() + c.PEM(),
		"json strings": `["` + a.String() + `","` + hex.EncodeToString(b.Bytes()) + `","` + c.String() + `"]`,
		"json objects": `[{"serial":"SN1","publicKey":"` + a.String() + `"},{"publicKey":"` + b.String() + `"},{"publicKey":` + jsonString(c.PEM()) + `}]`,
	}
	for name, in := range lists {
		got, err := ParseKeyList([]byte(in))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if len(got) != len(want) {
			t.Fatalf("%s: %d keys", name, len(got))
		}
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("%s: key %d differs", name, i)
			}
		}
	}
	for name, c := range map[string]struct{ in, where string }{
		"empty":             {"\n# nothing\n", "no key"},
		"bad line":          {a.String() + "\nnope\n", "line 2"},
		"duplicate line":    {a.String() + "\n" + hex.EncodeToString(a.Bytes()) + "\n", "line 2: the same key as line 1"},
		"duplicate json":    {`["` + a.String() + `","` + a.String() + `"]`, "item 1: the same key as item 0"},
		"json wrong shape":  {`{"keys":[]}`, "want an array"},
		"json bad object":   {`[{"key":"x"}]`, "item 0"},
		"json bad key":      {`["x"]`, "item 0"},
		"pem with junk":     {a.PEM() + "junk\n" + b.PEM(), "PEM block 2"},
		"pem wrong type":    {a.PEM() + "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", "PEM block 2"},
		"pem truncated":     {a.PEM() + "-----BEGIN PUBLIC KEY-----\nAAAA\n", "PEM block 2"},
		"duplicate pem":     {a.PEM() + a.PEM(), "PEM block 2: the same key as PEM block 1"},
		"json trailing":     {`["` + a.String() + `"] x`, "JSON"},
		"json null element": {`[null]`, "item 0"},
	} {
		_, err := ParseKeyList([]byte(c.in))
		if err == nil || !strings.Contains(err.Error(), c.where) {
			t.Errorf("%s: error %v, want it to name %q", name, err, c.where)
		}
	}
}

func jsonString(s string) string {
	return `"` + strings.ReplaceAll(s, "\n", `\n`) + `"`
}

// A signature over the message verifies only for the same nonce, identity
// and WireGuard key; Ed25519 and P-256 (DER and raw r‖s) alike.
func TestMessageAndVerify(t *testing.T) {
	edPriv, ed := genEd(t)
	pPriv, pk := genP256(t)
	nonce := bytes.Repeat([]byte{7}, NonceSize)
	var wg, wg2 [32]byte
	wg[0], wg2[0] = 1, 2
	for _, c := range []struct {
		signer crypto.Signer
		key    PublicKey
		other  PublicKey
	}{{edPriv, ed, pk}, {pPriv, pk, ed}} {
		msg, err := Message(nonce, c.key, wg)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.HasPrefix(msg, []byte(Domain+"\x00")) {
			t.Fatal("message does not start with the domain")
		}
		sig, err := Sign(c.signer, msg)
		if err != nil {
			t.Fatal(err)
		}
		if !Verify(c.key, msg, sig) {
			t.Fatalf("%s: own signature refused", c.key.Algorithm())
		}
		otherNonce := bytes.Repeat([]byte{8}, NonceSize)
		for name, m := range map[string][]byte{
			"other nonce":    must(Message(otherNonce, c.key, wg)),
			"other wg key":   must(Message(nonce, c.key, wg2)),
			"other identity": must(Message(nonce, c.other, wg)),
		} {
			if Verify(c.key, m, sig) {
				t.Fatalf("%s: signature verifies for %s", c.key.Algorithm(), name)
			}
		}
		if Verify(c.other, msg, sig) {
			t.Fatal("signature verifies under another key")
		}
		bad := bytes.Clone(sig)
		bad[len(bad)-1] ^= 1
		if Verify(c.key, msg, bad) || Verify(c.key, msg, nil) || Verify(PublicKey{}, msg, sig) {
			t.Fatal("a tampered, empty or keyless signature verifies")
		}
	}
	// P-256 raw r‖s, the PKCS#11 form.
	msg, _ := Message(nonce, pk, wg)
	der, _ := Sign(pPriv, msg)
	raw := derToRaw(t, der)
	if !Verify(pk, msg, raw) {
		t.Fatal("raw r‖s signature refused")
	}
	back, err := RawToASN1(raw)
	if err != nil || !Verify(pk, msg, back) {
		t.Fatalf("RawToASN1: %v", err)
	}
	if _, err := Message(nonce[:31], ed, wg); err == nil {
		t.Fatal("short nonce accepted")
	}
	if _, err := Message(nonce, PublicKey{}, wg); err == nil {
		t.Fatal("zero identity accepted")
	}
}

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}

func derToRaw(t *testing.T, der []byte) []byte {
	t.Helper()
	r, s, ok := parseDERSig(der)
	if !ok {
		t.Fatal("bad DER signature")
	}
	out := make([]byte, 64)
	r.FillBytes(out[:32])
	s.FillBytes(out[32:])
	return out
}

func TestFileKeys(t *testing.T) {
	dir := t.TempDir()
	for _, alg := range []Algorithm{Ed25519, P256} {
		path := filepath.Join(dir, string(alg), "identity.pem")
		s, err := GenerateFile(path, alg)
		if err != nil {
			t.Fatal(err)
		}
		fi, _ := os.Stat(path)
		if fi.Mode().Perm() != 0o600 {
			t.Fatalf("mode %v", fi.Mode())
		}
		if _, err := GenerateFile(path, alg); err == nil {
			t.Fatal("an existing identity key was overwritten")
		}
		l, err := LoadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		a, _ := FromCrypto(s.Public())
		b, _ := FromCrypto(l.Public())
		if a != b || a.Algorithm() != alg {
			t.Fatalf("loaded key differs")
		}
		os.Chmod(path, 0o644)
		if _, err := LoadFile(path); err == nil {
			t.Fatal("a world-readable key file was accepted")
		}
	}
	if _, err := GenerateFile(filepath.Join(dir, "x.pem"), "rsa"); err == nil {
		t.Fatal("unknown algorithm accepted")
	}
	// Another curve is refused.
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	der, _ := x509.MarshalPKCS8PrivateKey(p384)
	path := filepath.Join(dir, "p384.pem")
	os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600)
	if _, err := LoadFile(path); err == nil {
		t.Fatal("a P-384 key was accepted")
	}
}
