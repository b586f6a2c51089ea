// SPDX-License-Identifier: Apache-2.0

package gateway

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"testing"

	"github.com/wirefleet/wirefleet/controlplane"
	"github.com/wirefleet/wirefleet/controlplane/store/sqlitestore"
	"github.com/wirefleet/wirefleet/fleet"
	"github.com/wirefleet/wirefleet/gateway/monitor"
	"github.com/wirefleet/wirefleet/keystore"
	"github.com/wirefleet/wirefleet/wgkey"
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
	svc := controlplane.New(st, controlplane.Config{GatewayPublicKey: func() wgkey.Public { return ks.PublicKey() }, Logger: log})
	gw, err := New(Config{ControlPlane: svc, KeyStore: ks, Logger: log})
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

// The alert kinds a profile may name (fleet.AlertKinds) are the monitor's.
func TestAlertKindsMatchMonitor(t *testing.T) {
	want := []string{monitor.KindClonedKey, monitor.KindFanout, monitor.KindAllowList, monitor.KindFirstSeen, monitor.KindVolume, monitor.KindListener, monitor.KindKeyReplaced, monitor.KindEgressDenied}
	if !slices.Equal(fleet.AlertKinds, want) {
		t.Fatalf("fleet.AlertKinds %v, monitor's kinds %v", fleet.AlertKinds, want)
	}
}
