// SPDX-License-Identifier: Apache-2.0

//go:build cgo

package pkcs11store_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wirefleet/wirefleet/keystore"
	"github.com/wirefleet/wirefleet/keystore/agentstore"
	"github.com/wirefleet/wirefleet/keystore/pkcs11store"
	"github.com/wirefleet/wirefleet/keystore/pkcs11store/softhsmtest"
	"github.com/wirefleet/wirefleet/wgkey"
)

func TestMain(m *testing.M) { softhsmtest.Main(m) }

func openToken(t testing.TB, label string, mod func(*pkcs11store.Config)) *pkcs11store.Token {
	t.Helper()
	cfg := softhsmtest.NewToken(t, label)
	if mod != nil {
		mod(&cfg)
	}
	tok, err := pkcs11store.OpenToken(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tok.Close() })
	return tok
}

func dh(t testing.TB, s keystore.Store, p keystore.Purpose, peer wgkey.Public) [32]byte {
	t.Helper()
	r, err := s.DH(context.Background(), keystore.DHRequest{Purpose: p, Peer: peer})
	if err != nil {
		t.Fatalf("%v DH: %v", p, err)
	}
	return r
}

// The key made on the token is a real X25519 key: a software peer computing
// DH with its public key gets the same secret as the token does with the
// peer's public key.
func TestGenerateAgreesWithMemory(t *testing.T) {
	tok := openToken(t, "agree", nil)
	k, err := tok.Generate("wg-a")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("key type on SoftHSM: %s", k.KeyType())
	if k.PublicKey() == (wgkey.Public{}) {
		t.Fatal("zero public key")
	}
	for i, p := range []keystore.Purpose{keystore.StaticStatic, keystore.ResponderES, keystore.InitiatorSE} {
		peer, _ := keystore.GenerateMemory()
		got := dh(t, k, p, peer.PublicKey())
		want := dh(t, peer, p, k.PublicKey())
		if got != want {
			t.Fatalf("round %d: token DH %x != software DH %x", i, got[:4], want[:4])
		}
	}
}

// The private key is sensitive and non-extractable, the token says so, and
// asking for its value fails.
func TestKeyNotExtractable(t *testing.T) {
	tok := openToken(t, "noextract", nil)
	k, err := tok.Generate("wg-a")
	if err != nil {
		t.Fatal(err)
	}
	ne, err := k.NonExtractable()
	if err != nil || !ne {
		t.Fatalf("NonExtractable = %v, %v; want true", ne, err)
	}
	if v, err := pkcs11store.ReadPrivateValue(k); err == nil {
		t.Fatalf("the token released CKA_VALUE of the private key (%d bytes)", len(v))
	} else {
		t.Logf("reading CKA_VALUE: %v", err)
	}
}

// A key persists on the token: reopening the token and the label gives the
// same public key and the same DH results.
func TestOpenAfterReopen(t *testing.T) {
	cfg := softhsmtest.NewToken(t, "reopen")
	tok, err := pkcs11store.OpenToken(cfg)
	if err != nil {
		t.Fatal(err)
	}
	k, err := tok.Generate("wg-a")
	if err != nil {
		tok.Close()
		t.Fatal(err)
	}
	peer, _ := keystore.GenerateMemory()
	before := dh(t, k, keystore.StaticStatic, peer.PublicKey())
	tok.Close()

	tok, err = pkcs11store.OpenToken(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer tok.Close()
	k2, err := tok.Open("wg-a")
	if err != nil {
		t.Fatal(err)
	}
	if k2.PublicKey() != k.PublicKey() {
		t.Fatal("reopened key has another public key")
	}
	if after := dh(t, k2, keystore.StaticStatic, peer.PublicKey()); after != before {
		t.Fatal("reopened key computes another DH")
	}
	if u := k2.URI().String(); u != "pkcs11:token="+cfg.Token+";object=wg-a" {
		t.Fatalf("URI %q", u)
	}
}

// Low-order peer points yield ErrLowOrder, as the memory store does.
func TestLowOrderPeer(t *testing.T) {
	tok := openToken(t, "loworder", nil)
	k, err := tok.Generate("wg-a")
	if err != nil {
		t.Fatal(err)
	}
	// 0, 1, and a point of order 8 (from the Curve25519 small-order list).
	order8 := wgkey.Public{0xe0, 0xeb, 0x7a, 0x7c, 0x3b, 0x41, 0xb8, 0xae, 0x16, 0x56, 0xe3, 0xfa, 0xf1, 0x9f, 0xc4, 0x6a, 0xda, 0x09, 0x8d, 0xeb, 0x9c, 0x32, 0xb1, 0xfd, 0x86, 0x62, 0x05, 0x16, 0x5f, 0x49, 0xb8, 0x00}
	for _, p := range []wgkey.Public{{}, {1}, order8} {
		if _, err := k.DH(context.Background(), keystore.DHRequest{Purpose: keystore.ResponderES, Peer: p}); !errors.Is(err, keystore.ErrLowOrder) {
			t.Errorf("peer %x…: err = %v, want ErrLowOrder", p[:4], err)
		}
	}
}

// A wrong PIN fails clearly, and the error does not carry the PIN.
func TestWrongPIN(t *testing.T) {
	cfg := softhsmtest.NewToken(t, "wrongpin")
	cfg.PIN = "not-the-pin-4242"
	tok, err := pkcs11store.OpenToken(cfg)
	if err == nil {
		tok.Close()
		t.Fatal("login with a wrong PIN succeeded")
	}
	if !errors.Is(err, pkcs11store.ErrWrongPIN) {
		t.Fatalf("err = %v, want ErrWrongPIN", err)
	}
	if strings.Contains(err.Error(), cfg.PIN) {
		t.Fatalf("error %q carries the PIN", err)
	}
}

// Missing tokens and objects fail with ErrNotFound and name what is missing.
func TestNotFound(t *testing.T) {
	tok := openToken(t, "notfound", nil)
	if _, err := tok.Open("no-such-key"); !errors.Is(err, pkcs11store.ErrNotFound) || !strings.Contains(err.Error(), "no-such-key") {
		t.Fatalf("Open of a missing key: %v", err)
	}
	if err := tok.Delete("no-such-key"); !errors.Is(err, pkcs11store.ErrNotFound) {
		t.Fatalf("Delete of a missing key: %v", err)
	}
	cfg := softhsmtest.NewToken(t, "notfound-2")
	cfg.Token = "no-such-token"
	if _, err := pkcs11store.OpenToken(cfg); !errors.Is(err, pkcs11store.ErrNotFound) || !strings.Contains(err.Error(), "no-such-token") {
		t.Fatalf("OpenToken of a missing token: %v", err)
	}
	cfg.Module = "/nonexistent/libpkcs11.so"
	if _, err := pkcs11store.OpenToken(cfg); err == nil || !strings.Contains(err.Error(), cfg.Module) {
		t.Fatalf("OpenToken of a missing module: %v", err)
	}
}

// Rotation by slot: a second label holds a second key; deleting the first
// leaves the second working; a label is never reused while taken.
func TestGenerateDeleteBySlot(t *testing.T) {
	tok := openToken(t, "slots", nil)
	a, err := tok.Generate("slot-a")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tok.Generate("slot-a"); !errors.Is(err, pkcs11store.ErrExists) {
		t.Fatalf("second Generate on a taken label: %v", err)
	}
	b, err := tok.Generate("slot-b")
	if err != nil {
		t.Fatal(err)
	}
	if a.PublicKey() == b.PublicKey() {
		t.Fatal("two slots, one key")
	}
	if err := tok.Delete("slot-a"); err != nil {
		t.Fatal(err)
	}
	if _, err := tok.Open("slot-a"); !errors.Is(err, pkcs11store.ErrNotFound) {
		t.Fatalf("deleted key still opens: %v", err)
	}
	peer, _ := keystore.GenerateMemory()
	if _, err := a.DH(context.Background(), keystore.DHRequest{Purpose: keystore.StaticStatic, Peer: peer.PublicKey()}); err == nil {
		t.Fatal("a deleted key still computes DH")
	}
	if dh(t, b, keystore.StaticStatic, peer.PublicKey()) != dh(t, peer, keystore.StaticStatic, b.PublicKey()) {
		t.Fatal("surviving slot disagrees")
	}
}

// Many goroutines share two sessions; every result is right (run with -race).
func TestConcurrentDH(t *testing.T) {
	tok := openToken(t, "concurrent", func(c *pkcs11store.Config) { c.Sessions = 2 })
	k, err := tok.Generate("wg-a")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 20; i++ {
				peer, _ := keystore.GenerateMemory()
				got, err := k.DH(context.Background(), keystore.DHRequest{Purpose: keystore.InitiatorSE, Peer: peer.PublicKey()})
				want, _ := peer.DH(context.Background(), keystore.DHRequest{Peer: k.PublicKey()})
				if err != nil || got != want {
					errs <- errors.Join(err, errors.New("wrong DH under concurrency"))
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// The test delay makes the store slow, and a caller's deadline still holds.
func TestDelayHonoursContext(t *testing.T) {
	tok := openToken(t, "slow", func(c *pkcs11store.Config) { c.DHDelay = 300 * time.Millisecond })
	k, err := tok.Generate("wg-a")
	if err != nil {
		t.Fatal(err)
	}
	peer, _ := keystore.GenerateMemory()
	start := time.Now()
	dh(t, k, keystore.StaticStatic, peer.PublicKey())
	if d := time.Since(start); d < 300*time.Millisecond {
		t.Fatalf("slow store answered in %v", d)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	start = time.Now()
	if _, err := k.DH(ctx, keystore.DHRequest{Purpose: keystore.StaticStatic, Peer: peer.PublicKey()}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 200*time.Millisecond {
		t.Fatalf("cancelled DH took %v", d)
	}
}

func TestParseECPoint(t *testing.T) {
	var raw [32]byte
	for i := range raw {
		raw[i] = byte(i + 1)
	}
	for _, in := range [][]byte{raw[:], append([]byte{0x04, 0x20}, raw[:]...)} {
		pk, err := pkcs11store.ParseECPoint(in)
		if err != nil || !bytes.Equal(pk[:], raw[:]) {
			t.Fatalf("%x: %x, %v", in[:3], pk[:3], err)
		}
	}
	for _, in := range [][]byte{nil, raw[:31], append([]byte{0x03, 0x20}, raw[:]...), append([]byte{0x04, 0x21}, raw[:]...)} {
		if _, err := pkcs11store.ParseECPoint(in); err == nil {
			t.Fatalf("%x accepted", in)
		}
	}
}

// BenchmarkDH compares one static-static DH in memory, on SoftHSM, and
// through a key agent (in this process, over a real Unix socket) backed by
// memory and by SoftHSM.
func BenchmarkDH(b *testing.B) {
	peer, _ := keystore.GenerateMemory()
	req := keystore.DHRequest{Purpose: keystore.StaticStatic, Peer: peer.PublicKey()}
	run := func(b *testing.B, s keystore.Store) {
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if _, err := s.DH(context.Background(), req); err != nil {
				b.Fatal(err)
			}
		}
	}
	token := func(b *testing.B) *pkcs11store.Token {
		return openToken(b, "bench", nil) // a token per run: b.N ramps up over several
	}
	agent := func(b *testing.B, backend agentstore.Backend) keystore.Store {
		sock := filepath.Join(b.TempDir(), "keyd.sock")
		ln, err := agentstore.Listen(sock)
		if err != nil {
			b.Fatal(err)
		}
		srv := agentstore.NewServer(backend, agentstore.Policy{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		go srv.Serve(ln)
		b.Cleanup(func() { srv.Close() })
		c, err := agentstore.Generate(sock, "wg")
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { c.Close() })
		return c
	}
	b.Run("memory", func(b *testing.B) {
		m, _ := keystore.GenerateMemory()
		run(b, m)
	})
	b.Run("softhsm", func(b *testing.B) {
		k, err := token(b).Generate("wg-bench")
		if err != nil {
			b.Fatal(err)
		}
		run(b, k)
	})
	b.Run("agent-memory", func(b *testing.B) {
		run(b, agent(b, &agentstore.MemoryBackend{}))
	})
	b.Run("agent-softhsm", func(b *testing.B) {
		run(b, agent(b, agentstore.BackendOf[*pkcs11store.Key](token(b))))
	})
}

// When the token drops its sessions (reset, reinsertion) or logs the
// process out, the store opens new sessions, logs in again and finds its
// key again, instead of failing every DH until restarted.
func TestRecoversLostSessions(t *testing.T) {
	for _, c := range []struct {
		name   string
		break_ func(*pkcs11store.Token) error
	}{
		{"closed", pkcs11store.CloseAllSessions},
		{"logout", pkcs11store.Logout},
	} {
		t.Run(c.name, func(t *testing.T) {
			tok := openToken(t, "recover-"+c.name, func(cfg *pkcs11store.Config) { cfg.Sessions = 2 })
			k, err := tok.Generate("wg-a")
			if err != nil {
				t.Fatal(err)
			}
			peer, _ := keystore.GenerateMemory()
			want := dh(t, peer, keystore.StaticStatic, k.PublicKey())
			if err := c.break_(tok); err != nil {
				t.Fatal(err)
			}
			// Enough DHs that every pooled session is used and renewed.
			for i := 0; i < 4; i++ {
				if got := dh(t, k, keystore.StaticStatic, peer.PublicKey()); got != want {
					t.Fatalf("DH %d after the break disagrees", i)
				}
			}
			if ne, err := k.NonExtractable(); err != nil || !ne {
				t.Fatalf("NonExtractable after the break: %v, %v", ne, err)
			}
			if _, err := tok.Open("wg-a"); err != nil {
				t.Fatalf("Open after the break: %v", err)
			}
		})
	}
}

// A key deleted and generated again under the same label is another key:
// a Key of the old one does not silently start using the new one.
func TestKeyNotSwappedUnderItsLabel(t *testing.T) {
	tok := openToken(t, "swap", nil)
	old, err := tok.Generate("wg-a")
	if err != nil {
		t.Fatal(err)
	}
	if err := tok.Delete("wg-a"); err != nil {
		t.Fatal(err)
	}
	if _, err := tok.Generate("wg-a"); err != nil {
		t.Fatal(err)
	}
	peer, _ := keystore.GenerateMemory()
	got, err := old.DH(context.Background(), keystore.DHRequest{Purpose: keystore.StaticStatic, Peer: peer.PublicKey()})
	if err == nil && got != dh(t, peer, keystore.StaticStatic, old.PublicKey()) {
		t.Fatal("the old Key computed DH with the new key of its label")
	}
	if err == nil {
		t.Fatal("a deleted key still computes DH")
	}
}

// A token that lists CKM_EC_MONTGOMERY_KEY_PAIR_GEN but refuses it (SoftHSM
// 2.6 does not know it at all; we claim it for it) still gets a key, of the
// Edwards-typed X25519 form, and nothing is left behind by the failed try.
func TestMontgomeryFallback(t *testing.T) {
	tok := openToken(t, "fallback", nil)
	pkcs11store.ClaimMechanism(tok, pkcs11store.MontgomeryKeyPairGen)
	k, err := tok.Generate("wg-a")
	if err != nil {
		t.Fatal(err)
	}
	if k.KeyType() != "CKK_EC_EDWARDS" {
		t.Fatalf("key type %s", k.KeyType())
	}
	peer, _ := keystore.GenerateMemory()
	if dh(t, k, keystore.StaticStatic, peer.PublicKey()) != dh(t, peer, keystore.StaticStatic, k.PublicKey()) {
		t.Fatal("fallback key disagrees")
	}
	if _, err := tok.Open("wg-a"); err != nil {
		t.Fatalf("Open after the fallback (one pair expected): %v", err)
	}
}

// Closing a token under load waits for the calls in flight (the module is
// not finalised under a C call) and fails later calls with ErrClosed.
func TestCloseUnderLoad(t *testing.T) {
	cfg := softhsmtest.NewToken(t, "close")
	tok, err := pkcs11store.OpenToken(cfg)
	if err != nil {
		t.Fatal(err)
	}
	k, err := tok.Generate("wg-a")
	if err != nil {
		tok.Close()
		t.Fatal(err)
	}
	peer, _ := keystore.GenerateMemory()
	want := dh(t, peer, keystore.StaticStatic, k.PublicKey())
	var wg sync.WaitGroup
	bad := make(chan error, 4)
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				got, err := k.DH(context.Background(), keystore.DHRequest{Purpose: keystore.StaticStatic, Peer: peer.PublicKey()})
				if errors.Is(err, pkcs11store.ErrClosed) {
					return
				}
				if err != nil || got != want {
					bad <- fmt.Errorf("DH during Close: %v", err)
					return
				}
			}
		}()
	}
	time.Sleep(30 * time.Millisecond)
	tok.Close()
	wg.Wait()
	close(bad)
	for err := range bad {
		t.Fatal(err)
	}
	if _, err := tok.Open("wg-a"); !errors.Is(err, pkcs11store.ErrClosed) {
		t.Fatalf("Open after Close: %v", err)
	}
}

// Two tokens with one label (a cloned card) are refused, not picked
// between by slot order.
func TestAmbiguousTokenLabel(t *testing.T) {
	cfg := softhsmtest.NewToken(t, "twin")
	softhsmtest.InitToken(t, cfg.Token)
	tok, err := pkcs11store.OpenToken(cfg)
	if err == nil {
		tok.Close()
		t.Fatal("a token label shared by two tokens was accepted")
	}
	if !strings.Contains(err.Error(), "refusing to guess") {
		t.Fatalf("err = %v", err)
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
	u, err := pkcs11store.ParseURI("pkcs11:token=" + cfg.Token + ";object=wg-uri?module-path=" + cfg.Module + "&pin-source=" + pinFile)
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
