package pkcs11store_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wirefleet/wirefleet/keystore/pkcs11store"
	"github.com/wirefleet/wirefleet/keystore/pkcs11store/softhsmtest"
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

// A URI with module-path and pin-source opens its key; a PIN file others
// can read is refused.
func TestURIOpens(t *testing.T) {
	cfg := softhsmtest.NewToken(t, "uri")
	tok, err := pkcs11store.OpenToken(cfg)
	if err != nil {
		t.Fatal(err)
	}
	k, err := tok.Generate("wg-uri")
	tok.Close()
	if err != nil {
		t.Fatal(err)
	}
	pinFile := filepath.Join(t.TempDir(), "pin")
	os.WriteFile(pinFile, []byte(softhsmtest.PIN+"\n"), 0o600)
	u, err := pkcs11store.ParseURI("pkcs11:token=uri;object=wg-uri?module-path=" + cfg.Module + "&pin-source=" + pinFile)
	if err != nil {
		t.Fatal(err)
	}
	c, err := u.Config("")
	if err != nil {
		t.Fatal(err)
	}
	tok, err = pkcs11store.OpenToken(c)
	if err != nil {
		t.Fatal(err)
	}
	defer tok.Close()
	k2, err := tok.Open(u.Object)
	if err != nil || k2.PublicKey() != k.PublicKey() {
		t.Fatalf("key by URI: %v", err)
	}
	os.Chmod(pinFile, 0o640)
	if _, err := u.Config(""); err == nil || !strings.Contains(err.Error(), "0600") {
		t.Fatalf("group-readable PIN file: %v", err)
	}
	if _, err := (pkcs11store.URI{Token: "a", Object: "b"}).Config(""); err == nil {
		t.Fatal("no module anywhere was accepted")
	}
}
