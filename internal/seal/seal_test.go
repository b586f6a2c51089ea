// SPDX-License-Identifier: Apache-2.0

package seal

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSealOpen(t *testing.T) {
	k, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	s1, err := k.Seal("hunter2-credential")
	if err != nil {
		t.Fatal(err)
	}
	s2, _ := k.Seal("hunter2-credential")
	if s1 == s2 {
		t.Fatal("two seals of one secret are equal: nonce reuse")
	}
	if strings.Contains(s1, "hunter2") || !IsSealed(s1) {
		t.Fatalf("sealed value %q", s1)
	}
	if pt, err := k.Open(s1); err != nil || pt != "hunter2-credential" {
		t.Fatalf("open: %q %v", pt, err)
	}
	other, _ := GenerateKey()
	if _, err := other.Open(s1); err == nil {
		t.Fatal("opened with another key")
	}
	b := []byte(s1)
	b[len(b)-3] ^= 1
	if _, err := k.Open(string(b)); err == nil {
		t.Fatal("opened an altered value")
	}
	for _, bad := range []string{"", "plain", prefix, prefix + "!!!", prefix + "AAAA"} {
		if _, err := k.Open(bad); err == nil {
			t.Errorf("opened %q", bad)
		}
	}
}

func TestLoadOrCreateKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), KeyFile)
	k1, err := LoadOrCreateKey(path)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v %v", fi.Mode(), err)
	}
	k2, err := LoadOrCreateKey(path)
	if err != nil {
		t.Fatal(err)
	}
	s, _ := k1.Seal("x")
	if pt, err := k2.Open(s); err != nil || pt != "x" {
		t.Fatal("reloaded key differs")
	}
	os.Chmod(path, 0o644)
	if _, err := LoadOrCreateKey(path); err == nil {
		t.Fatal("accepted a world-readable key file")
	}
	os.Chmod(path, 0o600)
	os.WriteFile(path, []byte("short"), 0o600)
	if _, err := LoadOrCreateKey(path); err == nil {
		t.Fatal("accepted a short key file")
	}
}

func TestDerive(t *testing.T) {
	k, _ := GenerateKey()
	k2, _ := GenerateKey()
	a, b := k.Derive("one"), k.Derive("two")
	if len(a) != 32 || bytes.Equal(a, b) || !bytes.Equal(a, k.Derive("one")) || bytes.Equal(a, k2.Derive("one")) {
		t.Fatalf("derived values: not 32 bytes, not stable, or not separated by label and key")
	}
}
