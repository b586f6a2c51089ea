package pgstore_test

import (
	"context"
	"testing"
	"time"

	"github.com/wirefleet/wirefleet/fleet"
	"github.com/wirefleet/wirefleet/store"
	"github.com/wirefleet/wirefleet/store/pgstore"
	"github.com/wirefleet/wirefleet/store/pgstore/pgtest"
	"github.com/wirefleet/wirefleet/store/storetest"
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
