// SPDX-License-Identifier: Apache-2.0

package sqlitestore_test

import (
	"context"
	"database/sql"
	"errors"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"github.com/wirefleet/wirefleet/controlplane/store/sqlstore"
	"github.com/wirefleet/wirefleet/fleet"
	"github.com/wirefleet/wirefleet/wgkey"

	"github.com/wirefleet/wirefleet/controlplane/store"
	"github.com/wirefleet/wirefleet/controlplane/store/sqlitestore"
	"github.com/wirefleet/wirefleet/controlplane/store/storetest"
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

// TestMigrationUpgrade builds a database at schema version 1, stores a SIM,
// then opens it normally: the later versions apply and the data stays.
func TestMigrationUpgrade(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "fleet.db")
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	if err := sqlstore.Migrate(ctx, db, sqlitestore.Migrations[:1], "", false); err != nil {
		t.Fatal(err)
	}
	old := sqlstore.New(db, db, &sqlstore.Dialect{UniqueViolation: func(error) (string, bool) { return "", false }})
	k, _ := wgkey.NewPrivate()
	sim := fleet.SIM{ID: "sim_v1", IMSI: fleet.FormatIMSI(1), Status: fleet.StatusActive, Address: netip.MustParseAddr("10.128.0.2"), PublicKey: k.Public(), Created: time.Now(), Updated: time.Now()}
	// Version 1's columns, written as version 1 code wrote them.
	if _, err := db.ExecContext(ctx, `INSERT INTO sims (id, imsi, name, tags, group_id, status, address, public_key, next_public_key, created, updated) VALUES (?, ?, '', '{}', '', ?, ?, ?, '', ?, ?)`,
		sim.ID, sim.IMSI, string(sim.Status), sim.Address.String(), sim.PublicKey.String(), sim.Created.UnixNano(), sim.Updated.UnixNano()); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, `INSERT INTO sim_keys (public_key, sim_id) VALUES (?, ?)`, sim.PublicKey.String(), sim.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := old.SIMBinding(ctx, "x"); err == nil {
		t.Fatal("version 1 already has bindings: the test does not test an upgrade")
	}
	old.Close()

	s, err := sqlitestore.Open(ctx, path)
	if err != nil {
		t.Fatalf("upgrade: %v", err)
	}
	defer s.Close()
	if got, err := s.SIMByPublicKey(ctx, sim.PublicKey); err != nil || got.ID != sim.ID || got.AuthKeyID != "" {
		t.Fatalf("SIM after upgrade: %+v %v", got, err)
	}
	if err := s.Update(ctx, func(tx store.Tx) error { return tx.BindSIM(ctx, "10.9.0.1", sim.ID) }); err != nil {
		t.Fatalf("version 2 table after upgrade: %v", err)
	}
}

// TestNewerSchemaRefused: a database a newer wirefleetd migrated (a
// version this binary does not know) is refused with a clear error, and
// left as it is.
func TestNewerSchemaRefused(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "fleet.db")
	s, err := sqlitestore.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	newer := len(sqlitestore.Migrations) + 1
	if _, err := db.Exec(`INSERT INTO schema_migrations (version, applied) VALUES (?, 0)`, newer); err != nil {
		t.Fatal(err)
	}
	db.Close()
	_, err = sqlitestore.Open(ctx, path)
	var ne *sqlstore.NewerSchemaError
	if !errors.As(err, &ne) || ne.Database != newer || ne.Known != len(sqlitestore.Migrations) {
		t.Fatalf("opening a newer schema: %v", err)
	}
}
