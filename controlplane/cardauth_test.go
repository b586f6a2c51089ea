// SPDX-License-Identifier: Apache-2.0

package controlplane_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wirefleet/wirefleet/controlplane"
	"github.com/wirefleet/wirefleet/controlplane/api/apiv1"
	"github.com/wirefleet/wirefleet/controlplane/store"
	"github.com/wirefleet/wirefleet/controlplane/store/pgstore"
	"github.com/wirefleet/wirefleet/controlplane/store/pgstore/pgtest"
	"github.com/wirefleet/wirefleet/controlplane/store/sqlitestore"
	"github.com/wirefleet/wirefleet/fleet"
	"github.com/wirefleet/wirefleet/internal/milenage"
	"github.com/wirefleet/wirefleet/internal/seal"
	"github.com/wirefleet/wirefleet/wgkey"
)

// softCard is the card's side of AKA, as a USIM does it: MAC-A checked,
// SQN fresh in its window, AUTS when not.
type softCard struct {
	c   *milenage.Cipher
	win milenage.Window
}

func (s *softCard) answer(rand, autn []byte) (res, auts []byte, err error) {
	a, err := s.c.Authenticate(rand, autn)
	if err != nil {
		return nil, nil, err
	}
	if !s.win.Accept(a.SQN) {
		return nil, s.c.AUTS(rand, s.win.Highest()), nil
	}
	return a.RES, nil, nil
}

func cardService(t *testing.T) (*controlplane.Service, store.Store) {
	t.Helper()
	ctx := context.Background()
	st, err := sqlitestore.Open(ctx, filepath.Join(t.TempDir(), "fleet.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	key, _ := seal.GenerateKey()
	svc := controlplane.New(st, controlplane.Config{Logger: discard(), Secrets: key})
	if _, err := svc.ImportSIMCards(ctx, admin, strings.NewReader(cardsCSV), ""); err != nil {
		t.Fatal(err)
	}
	return svc, st
}

// AKA against the platform: a genuine card's RES verifies its key; a card
// whose SQN is ahead answers AUTS and the next challenge, after resync,
// succeeds; a wrong RES burns the key; a card with another Ki refuses the
// challenge (MAC-A); an unknown IMSI and a suspended card get nothing;
// no SQN is used twice.
func TestCardAKA(t *testing.T) {
	ctx := context.Background()
	svc, st := cardService(t)
	var mu sync.Mutex
	seenSteps := map[string]int{}
	svc.ObserveCard(func(step, outcome string) { mu.Lock(); seenSteps[step+"/"+outcome]++; mu.Unlock() })
	c1, _ := milenage.New(mustHex("465b5ce8b199b49faa5f0a2ee238a6bc"), mustHex("cd63cb71954a9f4e48a5994e37a02baf"))
	card := &softCard{c: c1}
	const imsi = "001010000000001"

	ch, err := svc.ChallengeCard(ctx, imsi, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	res, auts, err := card.answer(ch.RAND, ch.AUTN)
	if err != nil || auts != nil {
		t.Fatalf("the card refused a fresh challenge: %v %x", err, auts)
	}
	if err := svc.VerifyCardKey(ctx, ch.KeyID, res); err != nil {
		t.Fatal(err)
	}
	if err := svc.VerifyCardKey(ctx, ch.KeyID, res); code(err) != fleet.CodeNotFound {
		t.Fatalf("a key verified twice: %v", err)
	}

	// The card has been used elsewhere: its SQN is far ahead.
	for i := range card.win.Seqs {
		card.win.Seqs[i] = 5000
	}
	ch, _ = svc.ChallengeCard(ctx, imsi, nil, nil)
	_, auts, _ = card.answer(ch.RAND, ch.AUTN)
	if auts == nil {
		t.Fatal("the card accepted a SQN behind its own")
	}
	ch2, err := svc.ChallengeCard(ctx, imsi, ch.RAND, auts)
	if err != nil {
		t.Fatalf("resync: %v", err)
	}
	res, auts, err = card.answer(ch2.RAND, ch2.AUTN)
	if err != nil || auts != nil {
		t.Fatalf("after resync the card still refuses: %v %x", err, auts)
	}
	if err := svc.VerifyCardKey(ctx, ch2.KeyID, res); err != nil {
		t.Fatal(err)
	}
	// A forged AUTS (another card's keys) is refused.
	c2, _ := milenage.New(mustHex("0396eb317b6d1c36f19c1c84cd6ffd16"), mustHex("53c15671c60a4b731c55b4a441c0bde2"))
	if _, err := svc.ChallengeCard(ctx, imsi, ch.RAND, c2.AUTS(ch.RAND, milenage.MakeSQN(1, 1))); code(err) != fleet.CodeInvalid {
		t.Fatalf("a forged AUTS: %v", err)
	}

	// A wrong RES: refused, and the key is gone.
	ch, _ = svc.ChallengeCard(ctx, imsi, nil, nil)
	if err := svc.VerifyCardKey(ctx, ch.KeyID, make([]byte, 8)); code(err) != fleet.CodeUnauthorized {
		t.Fatalf("a wrong RES: %v", err)
	}
	res, _, _ = card.answer(ch.RAND, ch.AUTN)
	if err := svc.VerifyCardKey(ctx, ch.KeyID, res); code(err) != fleet.CodeNotFound {
		t.Fatalf("the right RES after a wrong one: %v", err)
	}
	// A card with another Ki: the network is not genuine to it.
	if _, err := (&softCard{c: c2}).c.Authenticate(ch.RAND, ch.AUTN); err != milenage.ErrMAC {
		t.Fatalf("another card's check of MAC-A: %v", err)
	}

	// Unknown, suspended.
	if _, err := svc.ChallengeCard(ctx, "001019999999999", nil, nil); code(err) != fleet.CodeNotFound {
		t.Fatalf("unknown IMSI: %v", err)
	}
	suspended := fleet.CardSuspended
	sc, _ := st.SIMCardByIMSI(ctx, "001010000000002")
	svc.UpdateSIMCard(ctx, admin, sc.ICCID, controlplane.SIMCardUpdate{Status: &suspended})
	if _, err := svc.ChallengeCard(ctx, "001010000000002", nil, nil); code(err) != fleet.CodeNotFound {
		t.Fatalf("suspended card: %v", err)
	}

	// Every step was counted (for the metric), refusals by reason.
	mu.Lock()
	for k, want := range map[string]int{"challenge/ok": 4, "challenge/bad_auts": 1, "verify/ok": 2, "verify/wrong_res": 1, "verify/unknown_key": 2} {
		if seenSteps[k] != want {
			t.Errorf("observed %s %d times, want %d (all: %v)", k, seenSteps[k], want, seenSteps)
		}
	}
	mu.Unlock()

	// Concurrent challenges never share a SQN.
	concurrentChallenges(t, c1, svc, svc)
}

// concurrentChallenges runs 16 challenges at once for card c's IMSI,
// alternating between two services (two nodes when they share a
// database), and fails if any two carry one SQN.
func concurrentChallenges(t *testing.T, c *milenage.Cipher, a, b *controlplane.Service) {
	t.Helper()
	type got struct {
		ch  controlplane.CardChallenge
		err error
	}
	out := make(chan got, 16)
	for i := range 16 {
		svc := a
		if i%2 == 1 {
			svc = b
		}
		go func() {
			ch, err := svc.ChallengeCard(context.Background(), "001010000000001", nil, nil)
			out <- got{ch, err}
		}()
	}
	seen := map[milenage.SQN]bool{}
	for range 16 {
		g := <-out
		if g.err != nil {
			t.Fatal(g.err)
		}
		r, err := c.Authenticate(g.ch.RAND, g.ch.AUTN)
		if err != nil || seen[r.SQN] {
			t.Fatalf("SQN %v reused or challenge bad: %v", r.SQN, err)
		}
		seen[r.SQN] = true
	}
}

// Two nodes sharing PostgreSQL challenge one card at once: the SQN's
// compare-and-set keeps every challenge's SQN its own.
func TestCardChallengesPostgres(t *testing.T) {
	srv := pgtest.Start(t)
	ctx := context.Background()
	dsn := srv.NewDatabase(t)
	key, _ := seal.GenerateKey()
	var nodes [2]*controlplane.Service
	for i := range nodes {
		st, err := pgstore.Open(ctx, dsn, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		nodes[i] = controlplane.New(st, controlplane.Config{Logger: discard(), Secrets: key})
	}
	if _, err := nodes[0].ImportSIMCards(ctx, admin, strings.NewReader(cardsCSV), ""); err != nil {
		t.Fatal(err)
	}
	c, _ := milenage.New(mustHex("465b5ce8b199b49faa5f0a2ee238a6bc"), mustHex("cd63cb71954a9f4e48a5994e37a02baf"))
	concurrentChallenges(t, c, nodes[0], nodes[1])
}

func mustHex(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

// Signed provisioning with a verified key: both forms accepted once, a
// replay, a stale timestamp, a forged signature and an unverified key
// refused; the card's first bootstrap makes its virtual SIM, the next
// re-keys the same one.
func TestCardSignedBootstrap(t *testing.T) {
	ctx := context.Background()
	svc, st := cardService(t)
	c1, _ := milenage.New(mustHex("465b5ce8b199b49faa5f0a2ee238a6bc"), mustHex("cd63cb71954a9f4e48a5994e37a02baf"))
	ch, _ := svc.ChallengeCard(ctx, "001010000000001", nil, nil)
	a, _ := c1.Authenticate(ch.RAND, ch.AUTN)
	pending, _ := svc.ChallengeCard(ctx, "001010000000001", nil, nil)
	if err := svc.VerifyCardKey(ctx, ch.KeyID, a.RES); err != nil {
		t.Fatal(err)
	}
	body := []byte(`{"keyId":"` + ch.KeyID + `"}`)
	sign := func(ts string, form controlplane.SignatureForm) []byte {
		if form == controlplane.SignatureHMAC {
			return apiv1.CardSignature(a.CK, "/test", ts, body)
		}
		h := sha256.Sum256(append(append(append([]byte{}, body...), ts...), a.CK...))
		return h[:]
	}
	ts := strconv.FormatInt(time.Now().UnixMilli(), 10)
	card, err := svc.CheckCardSignature(ctx, controlplane.CardSignedRequest{KeyID: ch.KeyID, Path: "/test", Timestamp: ts, Body: body, Signature: sign(ts, controlplane.SignatureSORACOM), Form: controlplane.SignatureSORACOM})
	if err != nil || card.IMSI != "001010000000001" {
		t.Fatalf("a good signature: %+v %v", card, err)
	}
	if _, err := svc.CheckCardSignature(ctx, controlplane.CardSignedRequest{KeyID: ch.KeyID, Path: "/test", Timestamp: ts, Body: body, Signature: sign(ts, controlplane.SignatureSORACOM), Form: controlplane.SignatureSORACOM}); code(err) != fleet.CodeUnauthorized {
		t.Fatalf("a replay: %v", err)
	}
	old := strconv.FormatInt(time.Now().Add(-10*time.Minute).UnixMilli(), 10)
	if _, err := svc.CheckCardSignature(ctx, controlplane.CardSignedRequest{KeyID: ch.KeyID, Path: "/test", Timestamp: old, Body: body, Signature: sign(old, controlplane.SignatureSORACOM), Form: controlplane.SignatureSORACOM}); code(err) != fleet.CodeUnauthorized {
		t.Fatalf("a stale timestamp: %v", err)
	}
	ts2 := strconv.FormatInt(time.Now().UnixMilli()+1, 10)
	if _, err := svc.CheckCardSignature(ctx, controlplane.CardSignedRequest{KeyID: ch.KeyID, Path: "/test", Timestamp: ts2, Body: body, Signature: make([]byte, 32), Form: controlplane.SignatureSORACOM}); code(err) != fleet.CodeUnauthorized {
		t.Fatalf("a forged signature: %v", err)
	}
	if _, err := svc.CheckCardSignature(ctx, controlplane.CardSignedRequest{KeyID: ch.KeyID, Path: "/test", Timestamp: ts2, Body: body, Signature: sign(ts2, controlplane.SignatureHMAC), Form: controlplane.SignatureHMAC}); err != nil {
		t.Fatalf("the HMAC form: %v", err)
	}
	ts3 := strconv.FormatInt(time.Now().UnixMilli()+2, 10)
	if _, err := svc.CheckCardSignature(ctx, controlplane.CardSignedRequest{KeyID: pending.KeyID, Path: "/test", Timestamp: ts3, Body: body, Signature: sign(ts3, controlplane.SignatureSORACOM), Form: controlplane.SignatureSORACOM}); code(err) != fleet.CodeUnauthorized {
		t.Fatalf("an unverified key: %v", err)
	}
	sim, sess, err := svc.CardBootstrap(ctx, card, controlplane.CardBootstrapRequest{})
	if err != nil || sess.PrivateKey.IsZero() || sim.PublicKey != sess.PrivateKey.Public() {
		t.Fatalf("first bootstrap: %+v %v", sim, err)
	}
	linked, _ := st.SIMCard(ctx, card.ICCID)
	if linked.SIMID != sim.ID {
		t.Fatalf("card links %q, SIM is %s", linked.SIMID, sim.ID)
	}
	again, sess2, err := svc.CardBootstrap(ctx, card, controlplane.CardBootstrapRequest{})
	if err != nil || again.ID != sim.ID || again.PublicKey == sim.PublicKey || again.PublicKey != sess2.PrivateKey.Public() {
		t.Fatalf("second bootstrap: %+v %v", again, err)
	}
	// The device's own key: no private key comes back; asking again with
	// it changes nothing; a key another SIM holds is refused.
	own, _ := wgkey.NewPrivate()
	mine, sess3, err := svc.CardBootstrap(ctx, card, controlplane.CardBootstrapRequest{PublicKey: own.Public()})
	if err != nil || mine.ID != sim.ID || mine.PublicKey != own.Public() || !sess3.PrivateKey.IsZero() {
		t.Fatalf("bootstrap with the device's key: %+v %v", mine, err)
	}
	if same, _, err := svc.CardBootstrap(ctx, card, controlplane.CardBootstrapRequest{PublicKey: own.Public()}); err != nil || same.ID != sim.ID {
		t.Fatalf("the same key again: %+v %v", same, err)
	}
	otherKey, _ := wgkey.NewPrivate()
	if _, _, err := svc.CreateSIM(ctx, controlplane.System, controlplane.SIMSpec{Name: "other", PublicKey: otherKey.Public()}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := svc.CardBootstrap(ctx, card, controlplane.CardBootstrapRequest{PublicKey: otherKey.Public()}); code(err) != fleet.CodeConflict {
		t.Fatalf("another SIM's key: %v, want conflict", err)
	}
	// Our form signs the path: moved to another route it does not match.
	ts4 := strconv.FormatInt(time.Now().UnixMilli()+3, 10)
	if _, err := svc.CheckCardSignature(ctx, controlplane.CardSignedRequest{KeyID: ch.KeyID, Path: "/elsewhere", Timestamp: ts4, Body: body, Signature: sign(ts4, controlplane.SignatureHMAC), Form: controlplane.SignatureHMAC}); code(err) != fleet.CodeUnauthorized {
		t.Fatalf("a signature moved to another path: %v", err)
	}
}
