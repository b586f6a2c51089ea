package gateway

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"testing"

	"github.com/wirefleet/wirefleet/controlplane"
	"github.com/wirefleet/wirefleet/fleet"
	"github.com/wirefleet/wirefleet/keystore"
	"github.com/wirefleet/wirefleet/store/sqlitestore"
)

// Close may be called twice (a deferred Close after an explicit one).
func TestCloseTwice(t *testing.T) {
	st, err := sqlitestore.Open(context.Background(), filepath.Join(t.TempDir(), "w.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ks, _ := keystore.GenerateMemory()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	svc := controlplane.New(st, controlplane.Config{GatewayPublicKey: func() fleet.Key { return fleet.Key(ks.PublicKey()) }, Log: log})
	gw, err := New(Config{Service: svc, KeyStore: ks, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	if err := gw.Start(); err != nil {
		t.Fatal(err)
	}
	if err := gw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := gw.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}
