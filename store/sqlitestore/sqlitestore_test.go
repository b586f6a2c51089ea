package sqlitestore_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/wirefleet/wirefleet/store"
	"github.com/wirefleet/wirefleet/store/sqlitestore"
	"github.com/wirefleet/wirefleet/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s, err := sqlitestore.Open(context.Background(), filepath.Join(t.TempDir(), "fleet.db"))
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

// TestMigrationsRerun opens the same file twice: the second open must find
// the schema current and keep the data.
func TestMigrationsRerun(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "fleet.db")
	s, err := sqlitestore.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	var imsi string
	if err := s.Update(ctx, func(tx store.Tx) error {
		var err error
		imsi, err = tx.NextIMSI(ctx)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s, err = sqlitestore.Open(ctx, path)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer s.Close()
	var imsi2 string
	if err := s.Update(ctx, func(tx store.Tx) error {
		var err error
		imsi2, err = tx.NextIMSI(ctx)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if imsi2 <= imsi {
		t.Fatalf("IMSI counter went back after reopen: %s then %s", imsi, imsi2)
	}
}
