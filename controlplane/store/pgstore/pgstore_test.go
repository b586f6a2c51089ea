// SPDX-License-Identifier: Apache-2.0

package pgstore_test

import (
	"context"
	"database/sql"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/wirefleet/wirefleet/controlplane/store"
	"github.com/wirefleet/wirefleet/controlplane/store/pgstore"
	"github.com/wirefleet/wirefleet/controlplane/store/pgstore/pgtest"
	"github.com/wirefleet/wirefleet/controlplane/store/storetest"
	"github.com/wirefleet/wirefleet/fleet"
)

func TestPostgres(t *testing.T) {
	srv := pgtest.Start(t)
	ctx := context.Background()

	t.Run("Conformance", func(t *testing.T) {
		storetest.Run(t, func(t *testing.T) store.Store {
			s, err := pgstore.Open(ctx, srv.NewDatabase(t), nil)
			if err != nil {
				t.Fatal(err)
			}
			return s
		})
	})

	t.Run("MigrationsRerunAndConcurrent", func(t *testing.T) {
		dsn := srv.NewDatabase(t)
		// Two processes starting at once on an empty database.
		const n = 4
		errs := make(chan error, n)
		stores := make(chan *pgstore.Store, n)
		for range n {
			go func() {
				s, err := pgstore.Open(ctx, dsn, nil)
				errs <- err
				stores <- s
			}()
		}
		var failed error
		for range n {
			if err := <-errs; err != nil {
				failed = err
			}
			if s := <-stores; s != nil {
				s.Close()
			}
		}
		if failed != nil {
			t.Fatalf("concurrent open: %v", failed)
		}
		s, err := pgstore.Open(ctx, dsn, nil)
		if err != nil {
			t.Fatalf("re-open: %v", err)
		}
		s.Close()
	})

	// When the listening connection dies, subscribers are told (their
	// channel closes) and, once resubscribed, hear changes again.
	t.Run("ListenerLossForcesResync", func(t *testing.T) {
		dsn := srv.NewDatabase(t)
		s, err := pgstore.Open(ctx, dsn, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		ch, cancel := s.Subscribe()
		defer cancel()
		db, err := sql.Open("pgx", dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		var n int
		if err := db.QueryRowContext(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = current_database() AND query LIKE 'LISTEN%'`).Scan(&n); err != nil || n != 1 {
			t.Fatalf("terminated %d listeners: %v", n, err)
		}
		select {
		case _, ok := <-ch:
			if ok {
				t.Fatal("got a change, want the channel closed")
			}
		case <-time.After(5 * time.Second):
			t.Fatal("subscriber not told of the lost listener")
		}
		deadline := time.Now().Add(10 * time.Second)
		for {
			ch2, cancel2 := s.Subscribe()
			if err := s.Update(ctx, func(tx store.Tx) error {
				tx.Publish(fleet.Change{Kind: fleet.ChangeSIM, ID: "after"})
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			select {
			case c, ok := <-ch2:
				if ok && c.ID == "after" {
					cancel2()
					return
				}
			case <-time.After(time.Second):
			}
			cancel2()
			if time.Now().After(deadline) {
				t.Fatal("no change delivered after the listener came back")
			}
		}
	})

	// A change written through one store (one wirefleetd) reaches the
	// subscribers of another sharing the database, within a second.
	t.Run("ChangesAcrossProcesses", func(t *testing.T) {
		dsn := srv.NewDatabase(t)
		a, err := pgstore.Open(ctx, dsn, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer a.Close()
		b, err := pgstore.Open(ctx, dsn, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		ch, cancel := b.Subscribe()
		defer cancel()
		start := time.Now()
		if err := a.Update(ctx, func(tx store.Tx) error {
			tx.Publish(fleet.Change{Kind: fleet.ChangeSIM, ID: "sim_x"})
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		select {
		case c := <-ch:
			if c.ID != "sim_x" {
				t.Fatalf("got %+v", c)
			}
			t.Logf("change delivered across stores in %v", time.Since(start))
		case <-time.After(time.Second):
			t.Fatal("change not delivered within 1s")
		}
	})
}
