// SPDX-License-Identifier: Apache-2.0

package storetest

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/wirefleet/wirefleet/controlplane/store"
	"github.com/wirefleet/wirefleet/fleet"
)

func newMapping(id, simID string, publicPort int, expires time.Time) fleet.Mapping {
	now := time.Now().UTC().Truncate(time.Microsecond)
	return fleet.Mapping{ID: id, SIMID: simID, Port: 22, Host: "remote.example", PublicPort: publicPort,
		AllowedSources: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24"), netip.MustParsePrefix("2001:db8::/32")},
		TLS:            true, MaxConnections: 16, Created: now, Expires: expires.UTC().Truncate(time.Microsecond), CreatedBy: "token:tok_1"}
}

// testMappings: port mappings round-trip, list by SIM with pagination,
// the public port is unique, expired mappings free their port only when
// deleted, and deletion is reported.
func testMappings(t *testing.T, s store.Store) {
	ctx := context.Background()
	now := time.Now()
	a := newMapping("map_a", "sim_1", 40000, now.Add(time.Hour))
	b := newMapping("map_b", "sim_2", 40001, now.Add(time.Hour))
	b.TLS, b.AllowedSources = false, []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0")}
	c := newMapping("map_c", "sim_1", 40002, now.Add(-time.Minute)) // expired
	mustUpdate(t, s, func(tx store.Tx) error {
		for _, m := range []fleet.Mapping{a, b, c} {
			if err := tx.InsertMapping(ctx, m); err != nil {
				return err
			}
		}
		return nil
	})
	got, err := s.Mapping(ctx, "map_a")
	if err != nil || !reflect.DeepEqual(got, a) {
		t.Fatalf("round trip:\n got %+v %v\nwant %+v", got, err, a)
	}
	if got, err := s.Mapping(ctx, "map_b"); err != nil || got.TLS || !got.OpenToAll() {
		t.Fatalf("map_b: %+v %v", got, err)
	}
	if _, err := s.Mapping(ctx, "map_nope"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("missing mapping: %v", err)
	}
	page, err := s.ListMappings(ctx, store.MappingFilter{SIMID: "sim_1"})
	if err != nil || len(page.Items) != 2 || page.Items[0].ID != "map_a" || page.Items[1].ID != "map_c" {
		t.Fatalf("by SIM: %+v %v", page, err)
	}
	page, err = s.ListMappings(ctx, store.MappingFilter{PageRequest: store.PageRequest{Limit: 2}})
	if err != nil || len(page.Items) != 2 || page.Next == "" {
		t.Fatalf("first page: %+v %v", page, err)
	}
	page, err = s.ListMappings(ctx, store.MappingFilter{PageRequest: store.PageRequest{Limit: 2, Cursor: page.Next}})
	if err != nil || len(page.Items) != 1 || page.Items[0].ID != "map_c" || page.Next != "" {
		t.Fatalf("second page: %+v %v", page, err)
	}

	// A public port is held once, even by an expired mapping until it goes.
	wantConflict(t, s.Update(ctx, func(tx store.Tx) error {
		return tx.InsertMapping(ctx, newMapping("map_d", "sim_3", 40000, now.Add(time.Hour)))
	}), "publicPort")
	wantConflict(t, s.Update(ctx, func(tx store.Tx) error {
		return tx.InsertMapping(ctx, newMapping("map_d", "sim_3", 40002, now.Add(time.Hour)))
	}), "publicPort")
	mustUpdate(t, s, func(tx store.Tx) error {
		used, err := tx.UsedPublicPorts(ctx, now)
		if err != nil {
			return err
		}
		if !reflect.DeepEqual(used, map[int]bool{40000: true, 40001: true}) {
			return fmt.Errorf("used ports %v, want 40000 and 40001 (40002 expired)", used)
		}
		if ids, err := tx.DeleteExpiredMappingsOnPort(ctx, 40000, now); err != nil || len(ids) != 0 {
			return fmt.Errorf("a live mapping was deleted as expired: %v %v", ids, err)
		}
		ids, err := tx.DeleteExpiredMappingsOnPort(ctx, 40002, now)
		if err != nil || !reflect.DeepEqual(ids, []string{"map_c"}) {
			return fmt.Errorf("expired on 40002: %v %v", ids, err)
		}
		return tx.InsertMapping(ctx, newMapping("map_d", "sim_3", 40002, now.Add(time.Hour)))
	})
	if _, err := s.Mapping(ctx, "map_c"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("expired mapping still there: %v", err)
	}
	mustUpdate(t, s, func(tx store.Tx) error { return tx.DeleteMapping(ctx, "map_a") })
	if err := s.Update(ctx, func(tx store.Tx) error { return tx.DeleteMapping(ctx, "map_a") }); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("second delete: %v", err)
	}
	// A rolled-back insert leaves nothing.
	s.Update(ctx, func(tx store.Tx) error {
		tx.InsertMapping(ctx, newMapping("map_e", "sim_3", 40010, now.Add(time.Hour)))
		return errors.New("roll back")
	})
	if _, err := s.Mapping(ctx, "map_e"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("rolled-back mapping exists: %v", err)
	}
}

// testMappingPortRace: writers allocating the lowest free public port under
// the "mappings" lock never get the same port (several wirefleetd sharing
// one PostgreSQL).
func testMappingPortRace(t *testing.T, s store.Store) {
	ctx := context.Background()
	const n = 20
	var wg sync.WaitGroup
	ports := make([]int, n)
	errs := make([]error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = s.Update(ctx, func(tx store.Tx) error {
				if err := tx.Lock(ctx, "mappings"); err != nil {
					return err
				}
				used, err := tx.UsedPublicPorts(ctx, time.Now())
				if err != nil {
					return err
				}
				p := 41000
				for used[p] {
					p++
				}
				ports[i] = p
				return tx.InsertMapping(ctx, newMapping(fmt.Sprintf("map_r%02d", i), "sim_1", p, time.Now().Add(time.Hour)))
			})
		}()
	}
	wg.Wait()
	seen := map[int]bool{}
	for i, err := range errs {
		if err != nil {
			t.Fatalf("writer %d: %v", i, err)
		}
		if seen[ports[i]] {
			t.Fatalf("port %d given twice", ports[i])
		}
		seen[ports[i]] = true
	}
}
