// SPDX-License-Identifier: Apache-2.0

package controlplane_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wirefleet/wirefleet/attest"
	"github.com/wirefleet/wirefleet/controlplane"
	"github.com/wirefleet/wirefleet/controlplane/store"
	"github.com/wirefleet/wirefleet/controlplane/store/sqlitestore"
	"github.com/wirefleet/wirefleet/fleet"
	"github.com/wirefleet/wirefleet/wgkey"
)

// settableClock is a settable time for challenge expiry.
type settableClock struct{ ns atomic.Int64 }

func (c *settableClock) Now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *settableClock) advance(d time.Duration) { c.ns.Add(int64(d)) }

func attestService(t *testing.T) (*controlplane.Service, *settableClock, *syncBuf) {
	t.Helper()
	st, err := sqlitestore.Open(context.Background(), filepath.Join(t.TempDir(), "fleet.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	c := &settableClock{}
	c.ns.Store(time.Now().UnixNano())
	logs := &syncBuf{}
	gw, _ := wgkey.NewPrivate()
	svc := controlplane.New(st, controlplane.Config{Endpoint: "gw.example:51820", GatewayPublicKey: gw.Public, Clock: c,
		Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	return svc, c, logs
}

type device struct {
	signer crypto.Signer
	id     attest.PublicKey
	wg     wgkey.Public
}

func newDevice(t *testing.T, alg attest.Algorithm) *device {
	t.Helper()
	var s crypto.Signer
	if alg == attest.Ed25519 {
		_, s, _ = ed25519.GenerateKey(rand.Reader)
	} else {
		s, _ = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	}
	id, err := attest.FromCrypto(s.Public())
	if err != nil {
		t.Fatal(err)
	}
	return &device{signer: s, id: id, wg: pub(t)}
}

// proof answers a fresh challenge.
func (d *device) proof(t *testing.T, svc *controlplane.Service) controlplane.AttestRequest {
	t.Helper()
	c, err := svc.AttestChallenge(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return d.answer(t, c.Nonce)
}

func (d *device) answer(t *testing.T, nonce []byte) controlplane.AttestRequest {
	t.Helper()
	msg, err := attest.Message(nonce, d.id, d.wg)
	if err != nil {
		t.Fatal(err)
	}
	sig, err := attest.Sign(d.signer, msg)
	if err != nil {
		t.Fatal(err)
	}
	return controlplane.AttestRequest{Identity: d.id, PublicKey: d.wg, Nonce: nonce, Signature: sig}
}

func wantRefused(t *testing.T, what string, err error) {
	t.Helper()
	var fe *fleet.Error
	if err == nil || !asFleet(err, &fe) || fe.Code != fleet.CodeUnauthorized || fe.Field != "" || fe.Message != "attestation refused" {
		t.Fatalf("%s: %v, want the uniform refusal", what, err)
	}
}

func asFleet(err error, fe **fleet.Error) bool {
	e, ok := err.(*fleet.Error)
	*fe = e
	return ok
}

// The attestation bootstrap: registered identities of both algorithms get
// a SIM in their batch's group with its tags; every kind of bad proof gets
// the same refusal, and the log tells the operator which it was.
func TestAttestBootstrap(t *testing.T) {
	ctx := context.Background()
	svc, clk, logs := attestService(t)
	outcomes := map[string]int{}
	svc.ObserveAttest(func(o string) { outcomes[o]++ })
	grp, err := svc.CreateGroup(ctx, admin, "sensors", fleet.GroupSettings{})
	if err != nil {
		t.Fatal(err)
	}
	ed, p256, stranger := newDevice(t, attest.Ed25519), newDevice(t, attest.P256), newDevice(t, attest.Ed25519)
	b, err := svc.ImportIdentities(ctx, admin, controlplane.IdentityBatchSpec{Name: "lot 7", GroupID: grp.ID, Tags: map[string]string{"lot": "7"}, Keys: []attest.PublicKey{ed.id, p256.id}})
	if err != nil {
		t.Fatal(err)
	}
	if b.Count != 2 || b.Used != 0 || b.GroupID != grp.ID {
		t.Fatalf("batch %+v", b)
	}

	for _, d := range []*device{ed, p256} {
		req := d.proof(t, svc)
		req.Name = "dev-" + string(d.id.Algorithm())
		sim, sess, err := svc.AttestBootstrap(ctx, req)
		if err != nil {
			t.Fatalf("%s: %v", d.id.Algorithm(), err)
		}
		if sim.PublicKey != d.wg || sim.GroupID != grp.ID || sim.Tags["lot"] != "7" || sim.Tags["attest.batch"] != b.ID || sim.Name != req.Name || sim.AuthKeyID != "" {
			t.Fatalf("SIM %+v", sim)
		}
		if sess.Address != sim.Address.String()+"/32" || !sess.PrivateKey.IsZero() {
			t.Fatalf("session %+v", sess)
		}
		i, err := svc.GetIdentity(ctx, admin, d.id.Fingerprint())
		if err != nil || i.Status != fleet.IdentityUsed || i.SIMID != sim.ID {
			t.Fatalf("identity after use: %+v %v", i, err)
		}
		// Idempotent retry: same identity, same WireGuard key, new challenge.
		again, _, err := svc.AttestBootstrap(ctx, d.proof(t, svc))
		if err != nil || again.ID != sim.ID {
			t.Fatalf("retry: %v %v", again.ID, err)
		}
	}
	if b, _ := svc.GetIdentityBatch(ctx, admin, b.ID); b.Used != 2 {
		t.Fatalf("batch used %d", b.Used)
	}
	sims, _ := svc.ListSIMs(ctx, admin, store.SIMFilter{})
	if len(sims.Items) != 2 {
		t.Fatalf("%d SIMs, want 2 (retries make none)", len(sims.Items))
	}

	// Replay: the same proof twice.
	fresh := newDevice(t, attest.Ed25519)
	if _, err := svc.AddIdentities(ctx, admin, b.ID, []attest.PublicKey{fresh.id}); err != nil {
		t.Fatal(err)
	}
	replayed := fresh.proof(t, svc)
	replayed.PublicKey = pub(t) // an attacker's key: the signature no longer matches
	wantRefused(t, "proof for another WireGuard key", func() error { _, _, err := svc.AttestBootstrap(ctx, replayed); return err }())
	req := fresh.proof(t, svc)
	if _, _, err := svc.AttestBootstrap(ctx, req); err != nil {
		t.Fatal(err)
	}
	wantRefused(t, "replayed proof", func() error { _, _, err := svc.AttestBootstrap(ctx, req); return err }())

	// Forged: a signature by another key, a tampered signature, a made-up nonce.
	c, _ := svc.AttestChallenge(ctx)
	forged := stranger.answer(t, c.Nonce)
	forged.Identity = ed.id
	wantRefused(t, "signature by another key", func() error { _, _, err := svc.AttestBootstrap(ctx, forged); return err }())
	tampered := newDevice(t, attest.P256)
	svc.AddIdentities(ctx, admin, b.ID, []attest.PublicKey{tampered.id})
	tr := tampered.proof(t, svc)
	tr.Signature[len(tr.Signature)-1] ^= 1
	wantRefused(t, "tampered signature", func() error { _, _, err := svc.AttestBootstrap(ctx, tr); return err }())
	madeUp := tampered.answer(t, bytes.Repeat([]byte{9}, attest.NonceSize))
	wantRefused(t, "nonce never issued", func() error { _, _, err := svc.AttestBootstrap(ctx, madeUp); return err }())
	// Someone who saw the nonce cannot spend it with a bad proof: the
	// device's own answer still works, once.
	c2, _ := svc.AttestChallenge(ctx)
	bad := tampered.answer(t, c2.Nonce)
	bad.Signature = bytes.Repeat([]byte{1}, 64)
	wantRefused(t, "bad signature", func() error { _, _, err := svc.AttestBootstrap(ctx, bad); return err }())
	honest := tampered.answer(t, c2.Nonce)
	if _, _, err := svc.AttestBootstrap(ctx, honest); err != nil {
		t.Fatalf("honest answer after a bad try on its challenge: %v", err)
	}
	wantRefused(t, "the honest answer replayed", func() error { _, _, err := svc.AttestBootstrap(ctx, honest); return err }())
	// A valid proof spends the challenge even when the bootstrap then
	// fails: an unregistered identity's proof cannot be retried with it.
	c5, _ := svc.AttestChallenge(ctx)
	strangerProof := stranger.answer(t, c5.Nonce)
	wantRefused(t, "unregistered identity", func() error { _, _, err := svc.AttestBootstrap(ctx, strangerProof); return err }())
	if _, err := svc.AddIdentities(ctx, admin, b.ID, []attest.PublicKey{stranger.id}); err != nil {
		t.Fatal(err)
	}
	wantRefused(t, "a spent challenge after registration", func() error { _, _, err := svc.AttestBootstrap(ctx, strangerProof); return err }())

	// Expired challenge.
	c3, _ := svc.AttestChallenge(ctx)
	clk.advance(controlplane.ChallengeTTL + time.Second)
	wantRefused(t, "expired challenge", func() error { _, _, err := svc.AttestBootstrap(ctx, tampered.answer(t, c3.Nonce)); return err }())
	// …while one answered in time works.
	c4, _ := svc.AttestChallenge(ctx)
	clk.advance(controlplane.ChallengeTTL - time.Second)
	if _, _, err := svc.AttestBootstrap(ctx, tampered.answer(t, c4.Nonce)); err != nil {
		t.Fatalf("answer within the TTL: %v", err)
	}

	// Unknown identity (valid signature, never registered).
	unknown := newDevice(t, attest.P256)
	wantRefused(t, "unknown identity", func() error { _, _, err := svc.AttestBootstrap(ctx, unknown.proof(t, svc)); return err }())
	// Used identity with another WireGuard key.
	other := *ed
	other.wg = pub(t)
	wantRefused(t, "used identity, another key", func() error { _, _, err := svc.AttestBootstrap(ctx, other.proof(t, svc)); return err }())
	// Revoked identity.
	revoked := newDevice(t, attest.Ed25519)
	svc.AddIdentities(ctx, admin, b.ID, []attest.PublicKey{revoked.id})
	if err := svc.RevokeIdentity(ctx, admin, revoked.id.String()); err != nil {
		t.Fatal(err)
	}
	wantRefused(t, "revoked identity", func() error { _, _, err := svc.AttestBootstrap(ctx, revoked.proof(t, svc)); return err }())
	// A revoked identity that had been used cannot even retry.
	if err := svc.RevokeIdentity(ctx, admin, p256.id.Fingerprint()); err != nil {
		t.Fatal(err)
	}
	wantRefused(t, "retry of a revoked identity", func() error { _, _, err := svc.AttestBootstrap(ctx, p256.proof(t, svc)); return err }())

	for _, reason := range []string{controlplane.RefusedSignature, controlplane.RefusedChallenge, controlplane.RefusedUnknown, controlplane.RefusedUsed, controlplane.RefusedRevoked} {
		if !strings.Contains(logs.String(), "reason="+reason) {
			t.Errorf("log does not say %q", reason)
		}
		if outcomes[reason] == 0 {
			t.Errorf("no %q outcome observed", reason)
		}
	}
	if outcomes["ok"] == 0 {
		t.Error("no ok outcome observed")
	}

	// Malformed requests are 400s with the field.
	good := ed.proof(t, svc)
	for field, mut := range map[string]func(r *controlplane.AttestRequest){
		"identityKey": func(r *controlplane.AttestRequest) { r.Identity = attest.PublicKey{} },
		"publicKey":   func(r *controlplane.AttestRequest) { r.PublicKey = wgkey.Public{} },
		"nonce":       func(r *controlplane.AttestRequest) { r.Nonce = r.Nonce[:16] },
		"signature":   func(r *controlplane.AttestRequest) { r.Signature = make([]byte, 200) },
		"name":        func(r *controlplane.AttestRequest) { r.Name = "a\nb" },
	} {
		r := good
		mut(&r)
		_, _, err := svc.AttestBootstrap(ctx, r)
		var fe *fleet.Error
		if !asFleet(err, &fe) || fe.Field != field || (fe.Code != fleet.CodeInvalid && fe.Code != fleet.CodeRequired) {
			t.Errorf("%s: %v", field, err)
		}
	}
}

// Revoking a batch refuses all its identities; the group a batch binds
// must exist, at import and at bootstrap; imports are all or nothing.
func TestIdentityBatches(t *testing.T) {
	ctx := context.Background()
	svc, _, _ := attestService(t)
	viewer := controlplane.Actor{Kind: "token", ID: "v", Role: fleet.RoleViewer}
	a, b := newDevice(t, attest.Ed25519), newDevice(t, attest.P256)
	_, err := svc.ImportIdentities(ctx, viewer, controlplane.IdentityBatchSpec{Name: "x", Keys: []attest.PublicKey{a.id}})
	wantCode(t, err, fleet.CodeForbidden, "")
	_, err = svc.ImportIdentities(ctx, admin, controlplane.IdentityBatchSpec{Name: "x", GroupID: "grp_missing", Keys: []attest.PublicKey{a.id}})
	wantCode(t, err, fleet.CodeNotFound, "groupId")
	_, err = svc.ImportIdentities(ctx, admin, controlplane.IdentityBatchSpec{Keys: []attest.PublicKey{a.id}})
	wantCode(t, err, fleet.CodeRequired, "name")
	_, err = svc.ImportIdentities(ctx, admin, controlplane.IdentityBatchSpec{Name: "dup", Keys: []attest.PublicKey{a.id, b.id, a.id}})
	wantCode(t, err, fleet.CodeInvalid, "publicKeys[2]")

	grp, _ := svc.CreateGroup(ctx, admin, "doomed", fleet.GroupSettings{})
	b1, err := svc.ImportIdentities(ctx, admin, controlplane.IdentityBatchSpec{Name: "lot 1", GroupID: grp.ID, Keys: []attest.PublicKey{a.id}})
	if err != nil {
		t.Fatal(err)
	}
	// The same key in another batch: refused, and that batch is not created.
	_, err = svc.ImportIdentities(ctx, admin, controlplane.IdentityBatchSpec{Name: "lot 2", Keys: []attest.PublicKey{b.id, a.id}})
	wantCode(t, err, fleet.CodeConflict, "publicKeys[1]")
	if p, _ := svc.ListIdentityBatches(ctx, admin, store.PageRequest{}); len(p.Items) != 1 {
		t.Fatalf("%d batches after a failed import", len(p.Items))
	}
	if _, err := svc.GetIdentity(ctx, admin, b.id.Fingerprint()); err == nil {
		t.Fatal("a key of the failed import was registered")
	}
	// The group goes away before the device comes: bad_state, and the
	// identity stays unused.
	if err := svc.DeleteGroup(ctx, admin, grp.ID); err != nil {
		t.Fatal(err)
	}
	_, _, err = svc.AttestBootstrap(ctx, a.proof(t, svc))
	wantCode(t, err, fleet.CodeBadState, "")
	if i, _ := svc.GetIdentity(ctx, admin, a.id.Fingerprint()); i.Status != fleet.IdentityActive {
		t.Fatalf("identity %s after a failed bootstrap", i.Status)
	}

	b2, err := svc.ImportIdentities(ctx, admin, controlplane.IdentityBatchSpec{Name: "lot 2", Keys: []attest.PublicKey{b.id}})
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.RevokeIdentityBatch(ctx, viewer, b2.ID); err == nil {
		t.Fatal("a viewer revoked a batch")
	}
	if err := svc.RevokeIdentityBatch(ctx, admin, b2.ID); err != nil {
		t.Fatal(err)
	}
	wantRefused(t, "identity of a revoked batch", func() error { _, _, err := svc.AttestBootstrap(ctx, b.proof(t, svc)); return err }())
	_, err = svc.AddIdentities(ctx, admin, b2.ID, []attest.PublicKey{newDevice(t, attest.Ed25519).id})
	wantCode(t, err, fleet.CodeBadState, "id")
	if p, _ := svc.ListIdentities(ctx, admin, store.IdentityFilter{Status: fleet.IdentityRevoked}); len(p.Items) != 1 || p.Items[0].ID != b.id.Fingerprint() {
		t.Fatalf("revoked identities: %+v", p.Items)
	}
	_, err = svc.ListIdentities(ctx, admin, store.IdentityFilter{Status: "lost"})
	wantCode(t, err, fleet.CodeInvalid, "status")
	_ = b1
}

// Many devices answering at once, and one proof sent many times at once:
// each device gets one SIM, each proof works once.
func TestAttestConcurrent(t *testing.T) {
	ctx := context.Background()
	svc, _, _ := attestService(t)
	const n = 16
	devs := make([]*device, n)
	keys := make([]attest.PublicKey, n)
	for i := range devs {
		devs[i] = newDevice(t, attest.Ed25519)
		keys[i] = devs[i].id
	}
	if _, err := svc.ImportIdentities(ctx, admin, controlplane.IdentityBatchSpec{Name: "lot", Keys: keys}); err != nil {
		t.Fatal(err)
	}
	req := devs[0].proof(t, svc)
	var wg sync.WaitGroup
	var ok atomic.Int32
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, _, err := svc.AttestBootstrap(ctx, req); err == nil {
				ok.Add(1)
			}
		}()
	}
	for _, d := range devs[1:] {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, _, err := svc.AttestBootstrap(ctx, d.proof(t, svc)); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if ok.Load() != 1 {
		t.Fatalf("one proof sent 8 times at once succeeded %d times", ok.Load())
	}
	sims, _ := svc.ListSIMs(ctx, admin, store.SIMFilter{})
	if len(sims.Items) != n {
		t.Fatalf("%d SIMs for %d devices", len(sims.Items), n)
	}
}
