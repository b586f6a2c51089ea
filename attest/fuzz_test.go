// SPDX-License-Identifier: Apache-2.0

package attest

import (
	"bytes"
	"testing"
)

// FuzzParsePublicKey: any input either fails with ErrBadKey or gives a key
// whose canonical form parses back to the same key.
//
//	go test -run XXX -fuzz FuzzParsePublicKey ./attest
func FuzzParsePublicKey(f *testing.F) {
	f.Add("ed25519:11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=")
	f.Add("p256:BGsX0fLhLEJH+Lzm5WOkQPJ3A32BLeszoPShOUXYmMKWT+NC4v4af5uO5+tKfA+eFivOM1drMV7Oy7ZAaDe/UfU=")
	f.Add("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
	f.Add("-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=\n-----END PUBLIC KEY-----\n")
	f.Add("0100000000000000000000000000000000000000000000000000000000000000")
	f.Add("036b17d1f2e12c4247f8bce6e563a440f277037d812deb33a0f4a13945d898c296")
	f.Fuzz(func(t *testing.T, s string) {
		k, err := ParsePublicKey(s)
		if err != nil {
			if k != (PublicKey{}) {
				t.Fatalf("error %v with a key", err)
			}
			return
		}
		again, err := ParsePublicKey(k.String())
		if err != nil || again != k {
			t.Fatalf("canonical form %q of %q does not round-trip: %v", k, s, err)
		}
		if pem, err := ParsePublicKey(k.PEM()); err != nil || pem != k {
			t.Fatalf("PEM of %q does not round-trip: %v", s, err)
		}
	})
}

// FuzzParseKeyList: a list parses to distinct keys or fails; never panics.
//
//	go test -run XXX -fuzz FuzzParseKeyList ./attest
func FuzzParseKeyList(f *testing.F) {
	f.Add([]byte("# keys\ned25519:11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=\n"))
	f.Add([]byte(`["ed25519:11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=",{"publicKey":"d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"}]`))
	f.Add([]byte("-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=\n-----END PUBLIC KEY-----\n-----BEGIN PUBLIC KEY-----\n"))
	f.Add([]byte("[{}]"))
	f.Fuzz(func(t *testing.T, b []byte) {
		keys, err := ParseKeyList(b)
		if err != nil {
			return
		}
		seen := map[PublicKey]bool{}
		for _, k := range keys {
			if k.IsZero() || seen[k] {
				t.Fatalf("zero or duplicate key in %q", b)
			}
			seen[k] = true
		}
		if len(keys) == 0 || bytes.Count(b, nil) == 0 {
			t.Fatal("no keys without an error")
		}
	})
}
