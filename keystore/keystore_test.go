// SPDX-License-Identifier: Apache-2.0

package keystore

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/wirefleet/wirefleet/wgkey"
)

func TestMemoryDHAgrees(t *testing.T) {
	a, _ := GenerateMemory()
	b, _ := GenerateMemory()
	ab, err := a.DH(context.Background(), DHRequest{Purpose: StaticStatic, Peer: b.PublicKey()})
	if err != nil {
		t.Fatal(err)
	}
	ba, err := b.DH(context.Background(), DHRequest{Purpose: StaticStatic, Peer: a.PublicKey()})
	if err != nil {
		t.Fatal(err)
	}
	if ab != ba || ab == ([32]byte{}) {
		t.Fatal("DH results differ or are zero")
	}
}

func TestLowOrderRejected(t *testing.T) {
	a, _ := GenerateMemory()
	// The all-zero point and the point of order 8 both force a zero result.
	for _, p := range []wgkey.Public{{}, {1}} {
		if _, err := a.DH(context.Background(), DHRequest{Purpose: ResponderES, Peer: p}); !errors.Is(err, ErrLowOrder) {
			t.Errorf("peer %x: err = %v, want ErrLowOrder", p[:2], err)
		}
	}
}

func TestInitiatorOnlyRefusesResponderES(t *testing.T) {
	a, _ := GenerateMemory()
	b, _ := GenerateMemory()
	s := InitiatorOnly{a}
	if _, err := s.DH(context.Background(), DHRequest{Purpose: ResponderES, Peer: b.PublicKey()}); !errors.Is(err, ErrRefused) {
		t.Fatalf("responder-es: err = %v, want ErrRefused", err)
	}
	for _, p := range []Purpose{StaticStatic, InitiatorSE} {
		if _, err := s.DH(context.Background(), DHRequest{Purpose: p, Peer: b.PublicKey()}); err != nil {
			t.Fatalf("%v refused: %v", p, err)
		}
	}
}

func TestFileStore(t *testing.T) {
	path := filepath.Join(t.TempDir(), "key")
	a, err := CreateFile(path)
	if err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(path)
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, want 0600", fi.Mode().Perm())
	}
	if _, err := CreateFile(path); err == nil {
		t.Fatal("CreateFile overwrote an existing key")
	}
	b, err := LoadOrCreateFile(path)
	if err != nil || b.PublicKey() != a.PublicKey() {
		t.Fatalf("reload: %v", err)
	}
	os.Chmod(path, 0o644)
	if _, err := LoadFile(path); err == nil {
		t.Fatal("a world-readable key file was accepted")
	}
	os.WriteFile(path, []byte("garbage"), 0o600)
	os.Chmod(path, 0o600)
	if _, err := LoadFile(path); err == nil {
		t.Fatal("a garbage key file was accepted")
	}
}
