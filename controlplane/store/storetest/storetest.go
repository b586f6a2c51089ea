// SPDX-License-Identifier: Apache-2.0

// Package storetest is the conformance suite every store.Store
// implementation must pass. Backends call Run from their own tests with a
// function that opens a fresh, empty, migrated store.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/wirefleet/wirefleet/controlplane/store"
	"github.com/wirefleet/wirefleet/fleet"
	"github.com/wirefleet/wirefleet/wgkey"
)

// Open returns a new empty store; the suite closes it.
type Open func(t *testing.T) store.Store

// Run runs the suite.
func Run(t *testing.T, open Open) {
	tests := []struct {
		name string
		fn   func(*testing.T, store.Store)
	}{
		{"SIMRoundTrip", testSIMRoundTrip},
		{"SIMConflicts", testSIMConflicts},
		{"KeyRotationIndex", testKeyRotationIndex},
		{"RollbackLeavesNothing", testRollback},
		{"Allocation", testAllocation},
		{"ConcurrentAllocation", testConcurrentAllocation},
		{"AuthKeyUseLimit", testAuthKeyUseLimit},
		{"Pagination", testPagination},
		{"NamePrefix", testNamePrefix}, // simfields.go
		{"SIMAgent", testSIMAgent},     // simfields.go
		{"Nodes", testNodes},           // nodes.go
		{"Leases", testLeases},         // nodes.go
		{"GroupsTokensEvents", testGroupsTokensEvents},
		{"Subscribe", testSubscribe},
		{"Bindings", testBindings},
		{"SIMAuthKey", testSIMAuthKey},
		{"Identities", testIdentities},
		{"Challenges", testChallenges},
		{"KeyAge", testKeyAge},
		{"Presence", testPresence},
		{"Mappings", testMappings},
		{"Routes", testRoutes},
		{"Routes6", testRoutes6},
		{"GatePeers", testGatePeers},
		{"MappingPortRace", testMappingPortRace},
		{"Records", testRecords}, // records.go
		{"Installation", testInstallation},
		{"SIMCards", testSIMCards},               // simcards.go
		{"ConsoleSessions", testConsoleSessions}, // consolesessions.go
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := open(t)
			t.Cleanup(func() { s.Close() })
			tc.fn(t, s)
		})
	}
}

var seq struct {
	sync.Mutex
	n int
}

// key returns a distinct deterministic public key for tests.
func key(t *testing.T) wgkey.Public {
	t.Helper()
	priv, err := wgkey.NewPrivate()
	if err != nil {
		t.Fatal(err)
	}
	return priv.Public()
}

func newSIM(t *testing.T, tx store.Tx, pool netip.Prefix) fleet.SIM {
	t.Helper()
	ctx := context.Background()
	imsi, err := tx.NextIMSI(ctx)
	if err != nil {
		t.Fatal(err)
	}
	addr, err := tx.AllocateAddress(ctx, pool)
	if err != nil {
		t.Fatal(err)
	}
	seq.Lock()
	seq.n++
	id := fmt.Sprintf("sim_%08d", seq.n)
	seq.Unlock()
	now := time.Now().UTC().Truncate(time.Microsecond)
	return fleet.SIM{ID: id, IMSI: imsi, Name: "dev-" + id, Tags: map[string]string{"site": "a"}, Status: fleet.StatusActive, Address: addr, PublicKey: key(t), Created: now, Updated: now}
}

var pool = netip.MustParsePrefix("10.128.0.0/9")

func mustUpdate(t *testing.T, s store.Store, fn func(store.Tx) error) {
	t.Helper()
	if err := s.Update(context.Background(), fn); err != nil {
		t.Fatal(err)
	}
}

func insertSIM(t *testing.T, s store.Store) fleet.SIM {
	t.Helper()
	var sim fleet.SIM
	mustUpdate(t, s, func(tx store.Tx) error {
		sim = newSIM(t, tx, pool)
		return tx.InsertSIM(context.Background(), sim)
	})
	return sim
}

func sameSIM(t *testing.T, got, want fleet.SIM) {
	t.Helper()
	if got.ID != want.ID || got.IMSI != want.IMSI || got.Name != want.Name || got.Status != want.Status ||
		got.Address != want.Address || got.PublicKey != want.PublicKey || got.NextPublicKey != want.NextPublicKey ||
		got.GroupID != want.GroupID || !got.Created.Equal(want.Created) || !got.Updated.Equal(want.Updated) ||
		got.AuthKeyID != want.AuthKeyID || fmt.Sprint(got.Tags) != fmt.Sprint(want.Tags) {
		t.Fatalf("SIM mismatch:\n got %+v\nwant %+v", got, want)
	}
}

func testSIMRoundTrip(t *testing.T, s store.Store) {
	ctx := context.Background()
	sim := insertSIM(t, s)
	if !fleet.ValidIMSI(sim.IMSI) {
		t.Fatalf("allocated IMSI %q is not a platform IMSI", sim.IMSI)
	}
	for name, get := range map[string]func() (fleet.SIM, error){
		"id":        func() (fleet.SIM, error) { return s.SIM(ctx, sim.ID) },
		"imsi":      func() (fleet.SIM, error) { return s.SIMByIMSI(ctx, sim.IMSI) },
		"address":   func() (fleet.SIM, error) { return s.SIMByAddress(ctx, sim.Address) },
		"publicKey": func() (fleet.SIM, error) { return s.SIMByPublicKey(ctx, sim.PublicKey) },
	} {
		got, err := get()
		if err != nil {
			t.Fatalf("by %s: %v", name, err)
		}
		sameSIM(t, got, sim)
	}
	if _, err := s.SIM(ctx, "sim_nope"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("missing SIM: got %v, want ErrNotFound", err)
	}
	if _, err := s.SIMByPublicKey(ctx, key(t)); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown key: got %v, want ErrNotFound", err)
	}
	if _, err := s.SIMByPublicKey(ctx, wgkey.Public{}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("zero key: got %v, want ErrNotFound", err)
	}
	sim.Status = fleet.StatusSuspended
	sim.Tags = map[string]string{"x": "y"}
	sim.Updated = sim.Updated.Add(time.Second)
	mustUpdate(t, s, func(tx store.Tx) error { return tx.UpdateSIM(ctx, sim) })
	got, err := s.SIM(ctx, sim.ID)
	if err != nil {
		t.Fatal(err)
	}
	sameSIM(t, got, sim)
	err = s.Update(ctx, func(tx store.Tx) error {
		ghost := sim
		ghost.ID = "sim_ghost"
		return tx.UpdateSIM(ctx, ghost)
	})
	if !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("update of missing SIM: got %v, want ErrNotFound", err)
	}
}

func wantConflict(t *testing.T, err error, field string) {
	t.Helper()
	var ce *store.ConflictError
	if !errors.As(err, &ce) || ce.Field != field {
		t.Fatalf("got %v, want conflict on %q", err, field)
	}
}

func testSIMConflicts(t *testing.T, s store.Store) {
	ctx := context.Background()
	a := insertSIM(t, s)
	try := func(mod func(*fleet.SIM)) error {
		return s.Update(ctx, func(tx store.Tx) error {
			b := newSIM(t, tx, pool)
			mod(&b)
			return tx.InsertSIM(ctx, b)
		})
	}
	wantConflict(t, try(func(b *fleet.SIM) { b.IMSI = a.IMSI }), "imsi")
	wantConflict(t, try(func(b *fleet.SIM) { b.Address = a.Address }), "address")
	wantConflict(t, try(func(b *fleet.SIM) { b.PublicKey = a.PublicKey }), "publicKey")
	// A key may not be one SIM's next key while it is another's current.
	wantConflict(t, try(func(b *fleet.SIM) { b.NextPublicKey = a.PublicKey }), "publicKey")
}

func testKeyRotationIndex(t *testing.T, s store.Store) {
	ctx := context.Background()
	sim := insertSIM(t, s)
	old := sim.PublicKey
	sim.NextPublicKey = key(t)
	mustUpdate(t, s, func(tx store.Tx) error { return tx.UpdateSIM(ctx, sim) })
	for _, k := range []wgkey.Public{old, sim.NextPublicKey} {
		got, err := s.SIMByPublicKey(ctx, k)
		if err != nil || got.ID != sim.ID {
			t.Fatalf("during rotation, key %s: got %v %v", k, got.ID, err)
		}
	}
	sim.PublicKey, sim.NextPublicKey = sim.NextPublicKey, wgkey.Public{}
	mustUpdate(t, s, func(tx store.Tx) error { return tx.UpdateSIM(ctx, sim) })
	if _, err := s.SIMByPublicKey(ctx, old); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("retired key still resolves: %v", err)
	}
	if got, err := s.SIMByPublicKey(ctx, sim.PublicKey); err != nil || got.ID != sim.ID {
		t.Fatalf("new key: %v %v", got.ID, err)
	}
}

func testRollback(t *testing.T, s store.Store) {
	ctx := context.Background()
	a := insertSIM(t, s)
	var b fleet.SIM
	boom := errors.New("boom")
	err := s.Update(ctx, func(tx store.Tx) error {
		b = newSIM(t, tx, pool)
		if err := tx.InsertSIM(ctx, b); err != nil {
			return err
		}
		if err := tx.AppendEvent(ctx, fleet.Event{Actor: "test", Action: "sim.create", ObjectType: "sim", ObjectID: b.ID}); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("got %v, want boom", err)
	}
	if _, err := s.SIM(ctx, b.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("rolled-back SIM exists: %v", err)
	}
	if _, err := s.SIMByPublicKey(ctx, b.PublicKey); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("rolled-back key resolves: %v", err)
	}
	ev, err := s.ListEvents(ctx, store.EventFilter{ObjectID: b.ID})
	if err != nil || len(ev.Items) != 0 {
		t.Fatalf("rolled-back event present: %v %v", ev.Items, err)
	}
	// A conflict half-way through (second SIM) undoes the first insert too.
	var c fleet.SIM
	err = s.Update(ctx, func(tx store.Tx) error {
		c = newSIM(t, tx, pool)
		if err := tx.InsertSIM(ctx, c); err != nil {
			return err
		}
		d := newSIM(t, tx, pool)
		d.IMSI = a.IMSI
		return tx.InsertSIM(ctx, d)
	})
	wantConflict(t, err, "imsi")
	if _, err := s.SIM(ctx, c.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("SIM of failed transaction exists: %v", err)
	}
}

func testAllocation(t *testing.T, s store.Store) {
	ctx := context.Background()
	small := netip.MustParsePrefix("192.0.2.0/29") // offsets 2..7 usable
	// Pin .4 first: allocation must skip it.
	mustUpdate(t, s, func(tx store.Tx) error {
		sim := newSIM(t, tx, pool)
		sim.Address = netip.MustParseAddr("192.0.2.4")
		return tx.InsertSIM(ctx, sim)
	})
	var got []string
	for {
		var addr netip.Addr
		err := s.Update(ctx, func(tx store.Tx) error {
			var err error
			addr, err = tx.AllocateAddress(ctx, small)
			if err != nil {
				return err
			}
			sim := newSIM(t, tx, pool)
			sim.Address = addr
			return tx.InsertSIM(ctx, sim)
		})
		if errors.Is(err, store.ErrExhausted) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, addr.String())
		if len(got) > 10 {
			t.Fatal("pool never exhausted")
		}
	}
	want := "[192.0.2.2 192.0.2.3 192.0.2.5 192.0.2.6 192.0.2.7]"
	if fmt.Sprint(got) != want {
		t.Fatalf("allocated %v, want %s", got, want)
	}
	var imsis []string
	mustUpdate(t, s, func(tx store.Tx) error {
		for i := 0; i < 3; i++ {
			imsi, err := tx.NextIMSI(ctx)
			if err != nil {
				return err
			}
			imsis = append(imsis, imsi)
		}
		return nil
	})
	if imsis[0] == imsis[1] || imsis[1] == imsis[2] || !fleet.ValidIMSI(imsis[2]) {
		t.Fatalf("IMSIs %v", imsis)
	}
}

func testConcurrentAllocation(t *testing.T, s store.Store) {
	ctx := context.Background()
	const n = 64
	var wg sync.WaitGroup
	sims := make([]fleet.SIM, n)
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = s.Update(ctx, func(tx store.Tx) error {
				sim := newSIM(t, tx, pool)
				sims[i] = sim
				return tx.InsertSIM(ctx, sim)
			})
		}()
	}
	wg.Wait()
	imsi, addr := map[string]bool{}, map[netip.Addr]bool{}
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("insert %d: %v", i, errs[i])
		}
		if imsi[sims[i].IMSI] || addr[sims[i].Address] {
			t.Fatalf("duplicate allocation: %s %s", sims[i].IMSI, sims[i].Address)
		}
		imsi[sims[i].IMSI], addr[sims[i].Address] = true, true
	}
	page, err := s.ListSIMs(ctx, store.SIMFilter{PageRequest: store.PageRequest{Limit: 1000}})
	if err != nil || len(page.Items) != n {
		t.Fatalf("listed %d SIMs (%v), want %d", len(page.Items), err, n)
	}
}

func testAuthKeyUseLimit(t *testing.T, s store.Store) {
	ctx := context.Background()
	k := fleet.AuthKey{ID: "ak_1", Hash: "h1", MaxUses: 5, Expires: time.Now().Add(time.Hour).UTC().Truncate(time.Microsecond), Created: time.Now().UTC().Truncate(time.Microsecond), Tags: map[string]string{"a": "b"}}
	mustUpdate(t, s, func(tx store.Tx) error { return tx.InsertAuthKey(ctx, k) })
	var wg sync.WaitGroup
	var mu sync.Mutex
	ok, exhausted := 0, 0
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := s.Update(ctx, func(tx store.Tx) error { return tx.UseAuthKey(ctx, k.ID) })
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				ok++
			case errors.Is(err, store.ErrExhausted):
				exhausted++
			default:
				t.Errorf("use: %v", err)
			}
		}()
	}
	wg.Wait()
	if ok != 5 || exhausted != 15 {
		t.Fatalf("%d uses succeeded, %d exhausted; want 5 and 15", ok, exhausted)
	}
	got, err := s.AuthKeyByHash(ctx, "h1")
	if err != nil || got.Uses != 5 || got.ID != k.ID || got.Tags["a"] != "b" || !got.Expires.Equal(k.Expires) {
		t.Fatalf("got %+v %v", got, err)
	}
	mustUpdate(t, s, func(tx store.Tx) error { return tx.RevokeAuthKey(ctx, k.ID) })
	if got, _ := s.AuthKey(ctx, k.ID); !got.Revoked {
		t.Fatal("revoke not stored")
	}
	err = s.Update(ctx, func(tx store.Tx) error { return tx.UseAuthKey(ctx, "ak_missing") })
	if !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("missing key use: %v", err)
	}
	err = s.Update(ctx, func(tx store.Tx) error { return tx.InsertAuthKey(ctx, fleet.AuthKey{ID: "ak_2", Hash: "h1"}) })
	wantConflict(t, err, "hash")
}

func testPagination(t *testing.T, s store.Store) {
	ctx := context.Background()
	for i := range 25 {
		sim := insertSIM(t, s)
		if i%5 == 0 {
			sim.Status = fleet.StatusSuspended
			sim.GroupID = "grp_x"
			mustUpdate(t, s, func(tx store.Tx) error { return tx.UpdateSIM(ctx, sim) })
		}
	}
	seen := map[string]bool{}
	var cursor string
	pages := 0
	for {
		p, err := s.ListSIMs(ctx, store.SIMFilter{PageRequest: store.PageRequest{Limit: 10, Cursor: cursor}})
		if err != nil {
			t.Fatal(err)
		}
		pages++
		for _, sim := range p.Items {
			if seen[sim.ID] {
				t.Fatalf("SIM %s on two pages", sim.ID)
			}
			seen[sim.ID] = true
		}
		if p.Next == "" {
			break
		}
		cursor = p.Next
	}
	if pages != 3 || len(seen) != 25 {
		t.Fatalf("%d pages, %d SIMs; want 3 and 25", pages, len(seen))
	}
	counts, err := s.CountSIMs(ctx)
	if err != nil || counts[fleet.StatusActive] != 20 || counts[fleet.StatusSuspended] != 5 || len(counts) != 2 {
		t.Fatalf("counts %v %v, want 20 active and 5 suspended", counts, err)
	}
	p, err := s.ListSIMs(ctx, store.SIMFilter{Status: fleet.StatusSuspended})
	if err != nil || len(p.Items) != 5 {
		t.Fatalf("suspended: %d %v", len(p.Items), err)
	}
	// Tag filters are exact and case-sensitive, keys and values alike.
	tagged := insertSIM(t, s)
	tagged.Tags = map[string]string{"site": "North", "floor": "2", "note": `say "site":"North"`}
	mustUpdate(t, s, func(tx store.Tx) error { return tx.UpdateSIM(ctx, tagged) })
	decoy := insertSIM(t, s)
	decoy.Tags = map[string]string{"site": "north", "x": `"site":"North"`}
	mustUpdate(t, s, func(tx store.Tx) error { return tx.UpdateSIM(ctx, decoy) })
	for _, c := range []struct {
		tags map[string]string
		want int
	}{
		{map[string]string{"site": "North"}, 1},
		{map[string]string{"site": "North", "floor": "2"}, 1},
		{map[string]string{"site": "North", "floor": "3"}, 0},
		{map[string]string{"site": "north"}, 1},
		{map[string]string{"site": "Nort"}, 0},
		{map[string]string{"ite": "North"}, 0},
		{map[string]string{"site": "a"}, 25}, // every SIM of the loop above
	} {
		p, err := s.ListSIMs(ctx, store.SIMFilter{Tags: c.tags})
		if err != nil || len(p.Items) != c.want {
			t.Fatalf("tags %v: %d SIMs (%v), want %d", c.tags, len(p.Items), err, c.want)
		}
	}
	p, err = s.ListSIMs(ctx, store.SIMFilter{GroupID: "grp_x", Status: fleet.StatusActive})
	if err != nil || len(p.Items) != 0 {
		t.Fatalf("grp_x active: %d %v", len(p.Items), err)
	}
}

func testGroupsTokensEvents(t *testing.T, s store.Store) {
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Microsecond)
	g := fleet.Group{ID: "grp_1", Name: "sensors", Created: now, Updated: now,
		Settings: fleet.GroupSettings{Version: 1, Routes: []string{"192.168.0.0/24"}, DeviceToDevice: fleet.D2DPolicy{Mode: fleet.D2DGroups, Groups: []string{"b"}, Ports: []uint16{80}}, UserData: "hello"}}
	mustUpdate(t, s, func(tx store.Tx) error { return tx.InsertGroup(ctx, g) })
	got, err := s.GroupByName(ctx, "sensors")
	if err != nil || got.ID != g.ID || fmt.Sprint(got.Settings) != fmt.Sprint(g.Settings) || !got.Created.Equal(now) {
		t.Fatalf("group: %+v %v", got, err)
	}
	err = s.Update(ctx, func(tx store.Tx) error {
		return tx.InsertGroup(ctx, fleet.Group{ID: "grp_2", Name: "sensors", Settings: fleet.GroupSettings{Version: 1}})
	})
	wantConflict(t, err, "name")
	g.Name = "sensors2"
	mustUpdate(t, s, func(tx store.Tx) error { return tx.UpdateGroup(ctx, g) })
	if got, _ := s.Group(ctx, g.ID); got.Name != "sensors2" {
		t.Fatalf("rename not stored: %q", got.Name)
	}
	gs, err := s.ListGroups(ctx, store.PageRequest{})
	if err != nil || len(gs.Items) != 1 {
		t.Fatalf("groups: %v %v", gs, err)
	}
	mustUpdate(t, s, func(tx store.Tx) error { return tx.DeleteGroup(ctx, g.ID) })
	if _, err := s.Group(ctx, g.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("deleted group: %v", err)
	}
	if err := s.Update(ctx, func(tx store.Tx) error { return tx.DeleteGroup(ctx, g.ID) }); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("delete missing group: %v", err)
	}

	tk := fleet.Token{ID: "tok_1", Role: fleet.RoleViewer, Hash: "th", Description: "ci", Created: now}
	mustUpdate(t, s, func(tx store.Tx) error { return tx.InsertToken(ctx, tk) })
	if got, err := s.TokenByHash(ctx, "th"); err != nil || got != tk {
		t.Fatalf("token: %+v %v", got, err)
	}
	ts, err := s.ListTokens(ctx, store.PageRequest{})
	if err != nil || len(ts.Items) != 1 {
		t.Fatalf("tokens: %v %v", ts, err)
	}
	mustUpdate(t, s, func(tx store.Tx) error { return tx.DeleteToken(ctx, tk.ID) })
	if _, err := s.TokenByHash(ctx, "th"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("deleted token still authenticates: %v", err)
	}

	for i := range 5 {
		mustUpdate(t, s, func(tx store.Tx) error {
			return tx.AppendEvent(ctx, fleet.Event{Time: now.Add(time.Duration(i) * time.Second), Actor: "token:a", Action: "sim.create", ObjectType: "sim", ObjectID: fmt.Sprintf("sim_%d", i%2), Details: map[string]any{"i": float64(i)}})
		})
	}
	ev, err := s.ListEvents(ctx, store.EventFilter{PageRequest: store.PageRequest{Limit: 2}})
	if err != nil || len(ev.Items) != 2 || ev.Next == "" || ev.Items[0].Details["i"] != float64(4) {
		t.Fatalf("events page 1: %+v %v", ev, err)
	}
	ev2, err := s.ListEvents(ctx, store.EventFilter{PageRequest: store.PageRequest{Limit: 10, Cursor: ev.Next}})
	if err != nil || len(ev2.Items) != 3 || ev2.Items[0].Details["i"] != float64(2) {
		t.Fatalf("events page 2: %+v %v", ev2, err)
	}
	ev, err = s.ListEvents(ctx, store.EventFilter{ObjectID: "sim_1"})
	if err != nil || len(ev.Items) != 2 {
		t.Fatalf("events of sim_1: %d %v", len(ev.Items), err)
	}
	ev, err = s.ListEvents(ctx, store.EventFilter{Since: now.Add(3 * time.Second)})
	if err != nil || len(ev.Items) != 2 {
		t.Fatalf("events since: %d %v", len(ev.Items), err)
	}
}

func testSubscribe(t *testing.T, s store.Store) {
	ctx := context.Background()
	ch, cancel := s.Subscribe()
	defer cancel()
	_ = s.Update(ctx, func(tx store.Tx) error {
		tx.Publish(fleet.Change{Kind: fleet.ChangeSIM, ID: "rolled-back"})
		return errors.New("abort")
	})
	mustUpdate(t, s, func(tx store.Tx) error {
		tx.Publish(fleet.Change{Kind: fleet.ChangeSIM, ID: "sim_a"})
		return nil
	})
	select {
	case c, ok := <-ch:
		if !ok || c.ID != "sim_a" || c.Kind != fleet.ChangeSIM {
			t.Fatalf("got %+v (open %v), want sim_a: a rolled-back change must not be delivered", c, ok)
		}
	case <-time.After(time.Second):
		t.Fatal("change not delivered within 1s")
	}
	cancel()
	if _, ok := <-ch; ok {
		t.Fatal("channel open after cancel")
	}
}

func testBindings(t *testing.T, s store.Store) {
	ctx := context.Background()
	if _, err := s.SIMBinding(ctx, "10.9.0.1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unbound source: %v", err)
	}
	mustUpdate(t, s, func(tx store.Tx) error { return tx.BindSIM(ctx, "10.9.0.1", "sim_a") })
	if id, err := s.SIMBinding(ctx, "10.9.0.1"); err != nil || id != "sim_a" {
		t.Fatalf("binding: %q %v", id, err)
	}
	wantConflict(t, s.Update(ctx, func(tx store.Tx) error { return tx.BindSIM(ctx, "10.9.0.1", "sim_b") }), "source")
}

// testSIMAuthKey: the auth key a SIM was bootstrapped with is stored,
// read back by every lookup, and fixed at creation (an update does not
// change it).
func testSIMAuthKey(t *testing.T, s store.Store) {
	ctx := context.Background()
	var sim fleet.SIM
	mustUpdate(t, s, func(tx store.Tx) error {
		sim = newSIM(t, tx, pool)
		sim.AuthKeyID = "ak_creator"
		return tx.InsertSIM(ctx, sim)
	})
	got, err := s.SIM(ctx, sim.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.AuthKeyID != "ak_creator" {
		t.Fatalf("AuthKeyID = %q, want ak_creator", got.AuthKeyID)
	}
	if got, err := s.SIMByPublicKey(ctx, sim.PublicKey); err != nil || got.AuthKeyID != "ak_creator" {
		t.Fatalf("by key: %+v %v", got, err)
	}
	page, err := s.ListSIMs(ctx, store.SIMFilter{})
	if err != nil || len(page.Items) != 1 || page.Items[0].AuthKeyID != "ak_creator" {
		t.Fatalf("list: %+v %v", page, err)
	}
	changed := got
	changed.AuthKeyID = "ak_other"
	changed.Status = fleet.StatusSuspended
	mustUpdate(t, s, func(tx store.Tx) error { return tx.UpdateSIM(ctx, changed) })
	if got, err := s.SIM(ctx, sim.ID); err != nil || got.AuthKeyID != "ak_creator" || got.Status != fleet.StatusSuspended {
		t.Fatalf("after update: %+v %v (auth key must stay ak_creator)", got, err)
	}
	// A SIM created without a key keeps it empty.
	other := insertSIM(t, s)
	if got, err := s.SIM(ctx, other.ID); err != nil || got.AuthKeyID != "" {
		t.Fatalf("operator SIM: %+v %v", got, err)
	}
}

// testInstallation: a value set once stays: the first writer wins, a
// later InitInstallation returns it unchanged; an unset name is not found.
func testInstallation(t *testing.T, s store.Store) {
	ctx := context.Background()
	if _, err := s.Installation(ctx, "ula_prefix"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unset value: %v, want ErrNotFound", err)
	}
	var got string
	mustUpdate(t, s, func(tx store.Tx) (err error) {
		got, err = tx.InitInstallation(ctx, "ula_prefix", "fd01::/48")
		return err
	})
	if got != "fd01::/48" {
		t.Fatalf("first write returned %q", got)
	}
	mustUpdate(t, s, func(tx store.Tx) (err error) {
		got, err = tx.InitInstallation(ctx, "ula_prefix", "fd02::/48")
		return err
	})
	if v, err := s.Installation(ctx, "ula_prefix"); err != nil || v != "fd01::/48" || got != "fd01::/48" {
		t.Fatalf("after a second write: stored %q (%v), returned %q; want the first", v, err, got)
	}
}
