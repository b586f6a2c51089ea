// SPDX-License-Identifier: Apache-2.0

package controlplane_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wirefleet/wirefleet/controlplane"
	"github.com/wirefleet/wirefleet/controlplane/store"
	"github.com/wirefleet/wirefleet/controlplane/store/pgstore"
	"github.com/wirefleet/wirefleet/controlplane/store/pgstore/pgtest"
	"github.com/wirefleet/wirefleet/controlplane/store/sqlitestore"
	"github.com/wirefleet/wirefleet/fleet"
	"github.com/wirefleet/wirefleet/internal/clock"
	"github.com/wirefleet/wirefleet/wgkey"
)

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func newService(t *testing.T) (*controlplane.Service, *syncBuf) {
	t.Helper()
	st, err := sqlitestore.Open(context.Background(), filepath.Join(t.TempDir(), "fleet.db"))
	if err != nil {
		t.Fatal(err)
	}
	return serviceOver(t, st)
}

func serviceOver(t *testing.T, st store.Store) (*controlplane.Service, *syncBuf) {
	t.Cleanup(func() { st.Close() })
	logs := &syncBuf{}
	gw, _ := wgkey.NewPrivate()
	svc := controlplane.New(st, controlplane.Config{Endpoint: "gw.example:51820", GatewayPublicKey: gw.Public,
		Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	return svc, logs
}

var admin = controlplane.Actor{Kind: "token", ID: "tok_admin", Role: fleet.RoleAdmin}

func wantCode(t *testing.T, err error, code, field string) {
	t.Helper()
	var fe *fleet.Error
	if !errors.As(err, &fe) || fe.Code != code || fe.Field != field {
		t.Fatalf("got %v, want %s on %q", err, code, field)
	}
}

func pub(t *testing.T) wgkey.Public {
	priv, err := wgkey.NewPrivate()
	if err != nil {
		t.Fatal(err)
	}
	return priv.Public()
}

// TestConcurrentBootstraps is the race-freedom requirement: 200 devices
// bootstrapping at once get 200 distinct IMSIs and addresses.
func TestConcurrentBootstraps(t *testing.T) {
	svc, _ := newService(t)
	concurrentBootstraps(t, svc)
}

func TestConcurrentBootstrapsPostgres(t *testing.T) {
	srv := pgtest.Start(t)
	st, err := pgstore.Open(context.Background(), srv.NewDatabase(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	svc, _ := serviceOver(t, st)
	concurrentBootstraps(t, svc)
}

func concurrentBootstraps(t *testing.T, svc *controlplane.Service) {
	ctx := context.Background()
	_, secret, err := svc.CreateAuthKey(ctx, admin, controlplane.AuthKeySpec{MaxUses: 0})
	if err != nil {
		t.Fatal(err)
	}
	const n = 200
	var wg sync.WaitGroup
	sims := make([]fleet.SIM, n)
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sims[i], _, errs[i] = svc.Bootstrap(ctx, controlplane.BootstrapRequest{AuthKey: secret, PublicKey: pub(t)})
		}()
	}
	wg.Wait()
	imsis, addrs := map[string]bool{}, map[string]bool{}
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("bootstrap %d: %v", i, errs[i])
		}
		if imsis[sims[i].IMSI] || addrs[sims[i].Address.String()] {
			t.Fatalf("duplicate: %s %s", sims[i].IMSI, sims[i].Address)
		}
		imsis[sims[i].IMSI], addrs[sims[i].Address.String()] = true, true
	}
	if len(imsis) != n {
		t.Fatalf("%d distinct IMSIs, want %d", len(imsis), n)
	}
}

func TestBootstrapRules(t *testing.T) {
	svc, logs := newService(t)
	ctx := context.Background()
	g, err := svc.CreateGroup(ctx, admin, "cams", fleet.GroupSettings{Routes: []string{"192.168.10.0/24"}, DeviceToDevice: fleet.D2DPolicy{Mode: fleet.D2DGroup}})
	if err != nil {
		t.Fatal(err)
	}
	k, secret, err := svc.CreateAuthKey(ctx, admin, controlplane.AuthKeySpec{GroupID: g.ID, MaxUses: 1, Tags: map[string]string{"site": "lab"}})
	if err != nil {
		t.Fatal(err)
	}
	priv, _ := wgkey.NewPrivate()
	key := priv.Public()
	sim, sess, err := svc.Bootstrap(ctx, controlplane.BootstrapRequest{AuthKey: secret, PublicKey: key, Name: "cam-1"})
	if err != nil {
		t.Fatal(err)
	}
	if sim.GroupID != g.ID || sim.Tags["site"] != "lab" || sim.PublicKey != key || sim.Status != fleet.StatusActive {
		t.Fatalf("SIM %+v", sim)
	}
	if sess.Address != sim.Address.String()+"/32" || sess.Endpoint != "gw.example:51820" || sess.GatewayPublicKey.IsZero() || !sess.PrivateKey.IsZero() {
		t.Fatalf("session %+v", sess)
	}
	// Platform range, SIM pool and LAN pool (device to device is on), the
	// group's routes; then the IPv6 twins of the platform range and the
	// pool, and the 4via6 view of IPv4 LANs.
	o6, err := svc.Overlay6(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := "100.127.0.0/16,10.128.0.0/9,10.64.0.0/10,192.168.10.0/24," + o6.PrefixOf(netip.MustParsePrefix("100.127.0.0/16")).String() + "," + o6.PrefixOf(netip.MustParsePrefix("10.128.0.0/9")).String() + "," + o6.Via6().String()
	if got := strings.Join(sess.AllowedIPs, ","); got != want {
		t.Fatalf("allowed IPs %s, want %s", got, want)
	}
	if want := netip.PrefixFrom(o6.Addr(sim.Address), 128).String(); sess.Address6 != want {
		t.Fatalf("session address6 %q, want %q", sess.Address6, want)
	}
	// Retrying with the same key, proving the device holds it, gets the
	// same SIM and does not use the key; without the proof, the auth key
	// alone does not reveal the SIM of a public key.
	again, _, err := svc.Bootstrap(ctx, controlplane.BootstrapRequest{AuthKey: secret, PublicKey: key, KeyProof: bootstrapProof(t, svc, priv)})
	if err != nil || again.ID != sim.ID {
		t.Fatalf("retry: %v %v", again.ID, err)
	}
	var pe *fleet.Error
	if again, _, err := svc.Bootstrap(ctx, controlplane.BootstrapRequest{AuthKey: secret, PublicKey: key}); !errors.As(err, &pe) || pe.Code != fleet.CodeKeyProof {
		t.Fatalf("retry without a key proof: %v %v", again.ID, err)
	}
	if sim.AuthKeyID != k.ID {
		t.Fatalf("SIM's auth key %q, want %q", sim.AuthKeyID, k.ID)
	}
	// Another key of the same group presenting that device's public key
	// does not get its SIM (nor does an operator-made SIM's key).
	_, other, err := svc.CreateAuthKey(ctx, admin, controlplane.AuthKeySpec{GroupID: g.ID})
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = svc.Bootstrap(ctx, controlplane.BootstrapRequest{AuthKey: other, PublicKey: key})
	wantCode(t, err, fleet.CodeConflict, "publicKey")
	opKey := pub(t)
	if _, _, err := svc.CreateSIM(ctx, admin, controlplane.SIMSpec{GroupID: g.ID, PublicKey: opKey}); err != nil {
		t.Fatal(err)
	}
	_, _, err = svc.Bootstrap(ctx, controlplane.BootstrapRequest{AuthKey: other, PublicKey: opKey})
	wantCode(t, err, fleet.CodeConflict, "publicKey")
	// The one-time key is used up for a new device.
	_, _, err = svc.Bootstrap(ctx, controlplane.BootstrapRequest{AuthKey: secret, PublicKey: pub(t)})
	wantCode(t, err, fleet.CodeUnauthorized, "authKey")
	_, _, err = svc.Bootstrap(ctx, controlplane.BootstrapRequest{AuthKey: "wfak_nope", PublicKey: pub(t)})
	wantCode(t, err, fleet.CodeUnauthorized, "authKey")
	_, _, err = svc.Bootstrap(ctx, controlplane.BootstrapRequest{AuthKey: secret})
	wantCode(t, err, fleet.CodeInvalid, "publicKey")

	// Revoked and expired keys are refused.
	_, s2, _ := svc.CreateAuthKey(ctx, admin, controlplane.AuthKeySpec{})
	if err := svc.RevokeAuthKey(ctx, admin, k.ID); err != nil {
		t.Fatal(err)
	}
	_, _, err = svc.Bootstrap(ctx, controlplane.BootstrapRequest{AuthKey: secret, PublicKey: key})
	wantCode(t, err, fleet.CodeUnauthorized, "authKey")
	later := controlplane.New(controlplane.StoreOf(svc), controlplane.Config{Clock: clock.Func(func() time.Time { return time.Now().Add(25 * time.Hour) })})
	_, _, err = later.Bootstrap(ctx, controlplane.BootstrapRequest{AuthKey: s2, PublicKey: pub(t)})
	wantCode(t, err, fleet.CodeUnauthorized, "authKey")

	// Generated keys come back once and are not stored.
	sim3, sess3, err := svc.Bootstrap(ctx, controlplane.BootstrapRequest{AuthKey: s2, GenerateKey: true})
	if err != nil || sess3.PrivateKey.IsZero() || sess3.PrivateKey.Public() != sim3.PublicKey {
		t.Fatalf("generated: %v %+v", err, sess3)
	}
	// A suspended SIM cannot re-bootstrap with its key.
	if _, err := svc.SetSIMStatus(ctx, admin, sim3.ID, fleet.StatusSuspended); err != nil {
		t.Fatal(err)
	}
	_, _, err = svc.Bootstrap(ctx, controlplane.BootstrapRequest{AuthKey: s2, PublicKey: sim3.PublicKey})
	wantCode(t, err, fleet.CodeConflict, "publicKey")

	// An auth key whose group was deleted creates nothing.
	g2, _ := svc.CreateGroup(ctx, admin, "doomed", fleet.GroupSettings{})
	_, s4, _ := svc.CreateAuthKey(ctx, admin, controlplane.AuthKeySpec{GroupID: g2.ID})
	if err := svc.DeleteGroup(ctx, admin, g2.ID); err != nil {
		t.Fatal(err)
	}
	orphan := pub(t)
	_, _, err = svc.Bootstrap(ctx, controlplane.BootstrapRequest{AuthKey: s4, PublicKey: orphan})
	wantCode(t, err, fleet.CodeBadState, "authKey")
	if _, err := svc.View().SIMByPublicKey(ctx, orphan); err == nil {
		t.Fatal("a SIM was left behind by the failed bootstrap")
	}

	for _, secret := range []string{secret, other, s2, s4, sess3.PrivateKey.Base64()} {
		if strings.Contains(logs.String(), secret) {
			t.Fatalf("secret %q appears in logs", secret)
		}
	}
}

func TestSIMLifecycle(t *testing.T) {
	svc, _ := newService(t)
	ctx := context.Background()
	ch, cancel := svc.View().Subscribe()
	defer cancel()
	sim, _, err := svc.CreateSIM(ctx, admin, controlplane.SIMSpec{Name: "a", PublicKey: pub(t)})
	if err != nil {
		t.Fatal(err)
	}
	if c := <-ch; c.ID != sim.ID {
		t.Fatalf("create change %+v", c)
	}
	if _, err := svc.SetSIMStatus(ctx, admin, sim.ID, fleet.StatusSuspended); err != nil {
		t.Fatal(err)
	}
	select {
	case c := <-ch:
		if c.Kind != fleet.ChangeSIM || c.ID != sim.ID {
			t.Fatalf("suspend change %+v", c)
		}
	case <-time.After(time.Second):
		t.Fatal("suspension not published within 1s")
	}
	got, _ := svc.View().SIMByPublicKey(ctx, sim.PublicKey)
	if got.Status != fleet.StatusSuspended {
		t.Fatalf("status %s", got.Status)
	}
	next := pub(t)
	got, _, err = svc.SetSIMKey(ctx, admin, sim.ID, controlplane.KeySpec{PublicKey: next, Next: true})
	if err != nil || got.NextPublicKey != next || got.PublicKey != sim.PublicKey {
		t.Fatalf("rotate: %+v %v", got, err)
	}
	// The gateway completes the rotation when the device uses the next key.
	_, err = svc.PromoteNextKey(ctx, sim.ID, pub(t))
	wantCode(t, err, fleet.CodeBadState, "publicKey")
	got, err = svc.PromoteNextKey(ctx, sim.ID, next)
	if err != nil || got.PublicKey != next || !got.NextPublicKey.IsZero() {
		t.Fatalf("promote: %+v %v", got, err)
	}
	if _, err := svc.View().SIMByPublicKey(ctx, sim.PublicKey); err == nil {
		t.Fatal("the old key still resolves after the rotation completed")
	}
	if _, err := svc.SetSIMStatus(ctx, admin, sim.ID, fleet.StatusTerminated); err != nil {
		t.Fatal(err)
	}
	_, err = svc.SetSIMStatus(ctx, admin, sim.ID, fleet.StatusActive)
	wantCode(t, err, fleet.CodeBadState, "status")
	ev, err := svc.ListEvents(ctx, admin, store.EventFilter{ObjectID: sim.ID})
	if err != nil {
		t.Fatal(err)
	}
	var actions []string
	for _, e := range ev.Items {
		actions = append(actions, e.Action)
	}
	if got := strings.Join(actions, ","); got != "sim.terminate,sim.rotate_key,sim.set_key,sim.suspend,sim.create" {
		t.Fatalf("events %s", got)
	}
	// Device events (from the gateway) join the same trail.
	if err := svc.RecordDeviceEvent(ctx, sim.ID, "device.handshake", map[string]any{"endpoint": "192.0.2.1:4000"}); err != nil {
		t.Fatal(err)
	}
	wantCode(t, svc.RecordDeviceEvent(ctx, sim.ID, "sim.suspend", nil), fleet.CodeInvalid, "action")
	wantCode(t, svc.RecordDeviceEvent(ctx, "sim_nope", "device.handshake", nil), fleet.CodeNotFound, "simId")
	ev, err = svc.ListEvents(ctx, admin, store.EventFilter{ObjectID: sim.ID, Action: "device.handshake"})
	if err != nil || len(ev.Items) != 1 || ev.Items[0].Actor != "sim:"+sim.ID || ev.Items[0].Details["endpoint"] != "192.0.2.1:4000" {
		t.Fatalf("device event %+v %v", ev.Items, err)
	}
	// A platform-generated key: the private key is returned, matches, and
	// only the public half is stored.
	gen, priv, err := svc.CreateSIM(ctx, admin, controlplane.SIMSpec{GenerateKey: true})
	if err != nil || priv.IsZero() || priv.Public() != gen.PublicKey {
		t.Fatalf("generated key: %v %+v", err, gen)
	}
	_, _, err = svc.CreateSIM(ctx, admin, controlplane.SIMSpec{GenerateKey: true, PublicKey: pub(t)})
	wantCode(t, err, fleet.CodeInvalid, "generateKey")
	// Pinned address: outside the pool refused, a taken one conflicts.
	_, _, err = svc.CreateSIM(ctx, admin, controlplane.SIMSpec{Address: sim.Address, PublicKey: pub(t)})
	wantCode(t, err, fleet.CodeConflict, "address")
	_, _, err = svc.CreateSIM(ctx, admin, controlplane.SIMSpec{Address: mustAddr("192.168.1.1"), PublicKey: pub(t)})
	wantCode(t, err, fleet.CodeInvalid, "address")
}

// TestRoleDenials proves every role check refuses the roles below it.
func TestRoleDenials(t *testing.T) {
	svc, _ := newService(t)
	ctx := context.Background()
	sim, _, err := svc.CreateSIM(ctx, admin, controlplane.SIMSpec{PublicKey: pub(t)})
	if err != nil {
		t.Fatal(err)
	}
	viewer := controlplane.Actor{Kind: "token", ID: "v", Role: fleet.RoleViewer}
	operator := controlplane.Actor{Kind: "token", ID: "o", Role: fleet.RoleOperator}
	none := controlplane.Actor{Kind: "authkey", ID: "k"}
	ops := map[string]struct {
		min fleet.Role
		do  func(controlplane.Actor) error
	}{
		"CreateSIM": {fleet.RoleOperator, func(a controlplane.Actor) error {
			_, _, err := svc.CreateSIM(ctx, a, controlplane.SIMSpec{PublicKey: pub(t)})
			return err
		}},
		"Suspend": {fleet.RoleOperator, func(a controlplane.Actor) error {
			_, err := svc.SetSIMStatus(ctx, a, sim.ID, fleet.StatusSuspended)
			return err
		}},
		"SetTags": {fleet.RoleOperator, func(a controlplane.Actor) error { _, err := svc.SetSIMTags(ctx, a, sim.ID, nil); return err }},
		"SetKey": {fleet.RoleOperator, func(a controlplane.Actor) error {
			_, _, err := svc.SetSIMKey(ctx, a, sim.ID, controlplane.KeySpec{PublicKey: pub(t), Next: true})
			return err
		}},
		"CreateGroup": {fleet.RoleOperator, func(a controlplane.Actor) error {
			_, err := svc.CreateGroup(ctx, a, "g-"+a.ID, fleet.GroupSettings{})
			return err
		}},
		"AuthKey": {fleet.RoleOperator, func(a controlplane.Actor) error {
			_, _, err := svc.CreateAuthKey(ctx, a, controlplane.AuthKeySpec{})
			return err
		}},
		"CreateToken": {fleet.RoleAdmin, func(a controlplane.Actor) error {
			_, _, err := svc.CreateToken(ctx, a, fleet.RoleViewer, "")
			return err
		}},
		"ListTokens": {fleet.RoleAdmin, func(a controlplane.Actor) error { _, err := svc.ListTokens(ctx, a, store.PageRequest{}); return err }},
		"ListSIMs":   {fleet.RoleViewer, func(a controlplane.Actor) error { _, err := svc.ListSIMs(ctx, a, store.SIMFilter{}); return err }},
		"Events":     {fleet.RoleViewer, func(a controlplane.Actor) error { _, err := svc.ListEvents(ctx, a, store.EventFilter{}); return err }},
	}
	rank := map[fleet.Role]int{"": 0, fleet.RoleViewer: 1, fleet.RoleOperator: 2, fleet.RoleAdmin: 3}
	for name, op := range ops {
		for _, a := range []controlplane.Actor{none, viewer, operator, admin} {
			err := op.do(a)
			if rank[a.Role] < rank[op.min] {
				wantCode(t, err, fleet.CodeForbidden, "")
			} else if err != nil {
				t.Fatalf("%s as %q: %v", name, a.Role, err)
			}
		}
	}
}

// TestSuspensionReachesOtherProcess is the gateway's contract: a SIM
// suspended through one wirefleetd is seen suspended by another sharing the
// PostgreSQL database, through its change feed, within a second.
func TestSuspensionReachesOtherProcess(t *testing.T) {
	srv := pgtest.Start(t)
	ctx := context.Background()
	dsn := srv.NewDatabase(t)
	a, err := pgstore.Open(ctx, dsn, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := pgstore.Open(ctx, dsn, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	svc, _ := serviceOver(t, a)
	sim, _, err := svc.CreateSIM(ctx, admin, controlplane.SIMSpec{PublicKey: pub(t)})
	if err != nil {
		t.Fatal(err)
	}
	changes, cancel := b.Subscribe()
	defer cancel()
	start := time.Now()
	if _, err := svc.SetSIMStatus(ctx, admin, sim.ID, fleet.StatusSuspended); err != nil {
		t.Fatal(err)
	}
	deadline := time.After(time.Second)
	for {
		select {
		case c := <-changes:
			if c.ID != sim.ID {
				continue
			}
			// Re-read on every change of the SIM, as a gateway does: a
			// late notification of the creation may come first.
			got, err := b.SIMByPublicKey(ctx, sim.PublicKey)
			if err != nil {
				t.Fatal(err)
			}
			if got.Status != fleet.StatusSuspended {
				continue
			}
			t.Logf("suspension seen by the other process after %v", time.Since(start))
			return
		case <-deadline:
			t.Fatal("suspension not seen by the other process within 1s")
		}
	}
}

// TestTokenRulesAcrossProcesses runs the token rules that no unique index
// can hold on PostgreSQL, with two stores (two wirefleetd) racing.
func TestTokenRulesAcrossProcesses(t *testing.T) {
	srv := pgtest.Start(t)
	ctx := context.Background()
	dsn := srv.NewDatabase(t)
	var svcs []*controlplane.Service
	for range 2 {
		st, err := pgstore.Open(ctx, dsn, nil)
		if err != nil {
			t.Fatal(err)
		}
		svc, _ := serviceOver(t, st)
		svcs = append(svcs, svc)
	}
	// Both start at once: exactly one initial admin token.
	var wg sync.WaitGroup
	created := make([]bool, 2)
	for i, svc := range svcs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var err error
			if _, created[i], err = svc.EnsureAdminToken(ctx); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if created[0] == created[1] {
		t.Fatalf("initial admin token created by %v, want exactly one", created)
	}
	// Two admin tokens deleted at once: one deletion must be refused.
	p, _ := svcs[0].ListTokens(ctx, admin, store.PageRequest{})
	second, _, err := svcs[0].CreateToken(ctx, admin, fleet.RoleAdmin, "second")
	if err != nil {
		t.Fatal(err)
	}
	ids := []string{p.Items[0].ID, second.ID}
	errs := make([]error, 2)
	for i, svc := range svcs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = svc.DeleteToken(ctx, admin, ids[i])
		}()
	}
	wg.Wait()
	if (errs[0] == nil) == (errs[1] == nil) {
		t.Fatalf("concurrent deletions of the two admin tokens: %v / %v, want exactly one refused", errs[0], errs[1])
	}
	left, _ := svcs[1].ListTokens(ctx, admin, store.PageRequest{})
	if len(left.Items) != 1 || left.Items[0].Role != fleet.RoleAdmin {
		t.Fatalf("tokens left: %+v", left.Items)
	}
}

// TestGroupDeleteRace races deleting a group in one process with putting a
// SIM into it in another: never may both succeed (a SIM in a deleted group).
func TestGroupDeleteRace(t *testing.T) {
	srv := pgtest.Start(t)
	ctx := context.Background()
	dsn := srv.NewDatabase(t)
	var svcs []*controlplane.Service
	for range 2 {
		st, err := pgstore.Open(ctx, dsn, nil)
		if err != nil {
			t.Fatal(err)
		}
		svc, _ := serviceOver(t, st)
		svcs = append(svcs, svc)
	}
	both := 0
	for i := range 30 {
		g, err := svcs[0].CreateGroup(ctx, admin, fmt.Sprintf("race-%d", i), fleet.GroupSettings{})
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		var delErr, simErr error
		wg.Add(2)
		go func() { defer wg.Done(); delErr = svcs[0].DeleteGroup(ctx, admin, g.ID) }()
		go func() {
			defer wg.Done()
			_, _, simErr = svcs[1].CreateSIM(ctx, admin, controlplane.SIMSpec{GroupID: g.ID, GenerateKey: true})
		}()
		wg.Wait()
		if delErr == nil && simErr == nil {
			both++
		}
		if delErr != nil && simErr != nil {
			t.Fatalf("both failed: %v / %v", delErr, simErr)
		}
	}
	if both > 0 {
		t.Fatalf("%d of 30 rounds left a SIM in a deleted group", both)
	}
}

// A low-order public key (its DH with any key is zero) is refused wherever
// a key enters: SIM creation, bootstrap, a next-key announcement, a
// re-key (issue 14, item 9: all accepted it before).
func TestLowOrderKeysRefused(t *testing.T) {
	svc, _ := newService(t)
	ctx := context.Background()
	var low wgkey.Public
	low[0] = 1 // u = 1, a point of small order
	isInvalid := func(what string, err error) {
		t.Helper()
		var fe *fleet.Error
		if !errors.As(err, &fe) || fe.Code != fleet.CodeInvalid || fe.Field != "publicKey" {
			t.Errorf("%s with a low-order key: %v, want invalid publicKey", what, err)
		}
	}
	_, _, err := svc.CreateSIM(ctx, admin, controlplane.SIMSpec{PublicKey: low})
	isInvalid("create", err)
	_, secret, err := svc.CreateAuthKey(ctx, admin, controlplane.AuthKeySpec{})
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = svc.Bootstrap(ctx, controlplane.BootstrapRequest{AuthKey: secret, PublicKey: low})
	isInvalid("bootstrap", err)
	sim, _, err := svc.CreateSIM(ctx, admin, controlplane.SIMSpec{GenerateKey: true})
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = svc.SetSIMKey(ctx, admin, sim.ID, controlplane.KeySpec{PublicKey: low, Next: true})
	isInvalid("next key", err)
	_, _, err = svc.SetSIMKey(ctx, admin, sim.ID, controlplane.KeySpec{PublicKey: low})
	isInvalid("set key", err)
}

// The store view the service hands to the gateway and the audit has no
// writes, not even behind a type assertion: every write goes through the
// service's checks.
func TestViewHasNoWrites(t *testing.T) {
	svc, _ := newService(t)
	v := svc.View()
	if _, ok := v.(store.Store); ok {
		t.Fatal("the view is a whole store")
	}
	if _, ok := v.(interface {
		Update(context.Context, func(store.Tx) error) error
	}); ok {
		t.Fatal("the view can Update")
	}
	if _, err := v.SIM(context.Background(), "sim_none"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("the view does not read: %v", err)
	}
}
