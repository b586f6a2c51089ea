// SPDX-License-Identifier: Apache-2.0

package gateway

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"github.com/wirefleet/wirefleet/controlplane"
	"github.com/wirefleet/wirefleet/controlplane/store"
	"github.com/wirefleet/wirefleet/controlplane/store/sqlitestore"
	"github.com/wirefleet/wirefleet/fleet"
	"github.com/wirefleet/wirefleet/keystore"
	"github.com/wirefleet/wirefleet/wgkey"
)

// A burst of session changes larger than any queue (a fleet reconnecting
// at once) is written whole, the last change of each SIM winning, and
// what is still queued when the gateway closes is written before Close
// returns; device events likewise.
func TestPresenceBurstAllWritten(t *testing.T) {
	ctx := context.Background()
	st, err := sqlitestore.Open(ctx, filepath.Join(t.TempDir(), "fleet.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	ks, _ := keystore.GenerateMemory()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	svc := controlplane.New(st, controlplane.Config{GatewayPublicKey: func() wgkey.Public { return ks.PublicKey() }, Logger: log})
	gw, err := New(Config{ControlPlane: svc, KeyStore: ks, Logger: log, ID: "gw-burst"})
	if err != nil {
		t.Fatal(err)
	}
	if err := gw.Start(); err != nil {
		t.Fatal(err)
	}
	const n = 6000 // above the 4,096 the queues held before
	now := time.Now().UTC()
	err = st.Update(ctx, func(tx store.Tx) error {
		for i := range n {
			var a [4]byte
			binary.BigEndian.PutUint32(a[:], 0x0a800000+uint32(i)+2)
			var k wgkey.Public
			binary.BigEndian.PutUint64(k[:], uint64(i)+1)
			k[31] = 0xee
			if err := tx.InsertSIM(ctx, fleet.SIM{ID: fmt.Sprintf("sim_%06d", i), IMSI: fleet.FormatIMSI(int64(i)), Status: fleet.StatusActive,
				Address: netip.AddrFrom4(a), PublicKey: k, Created: now, Updated: now}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		id := fmt.Sprintf("sim_%06d", i)
		gw.recordPresence(presenceOp{set: true, sim: id, endpoint: "127.0.0.1:1", since: now})
		gw.events.record(id, "device.connected", map[string]any{"endpoint": "127.0.0.1:1"})
	}
	for i := range 100 {
		gw.recordPresence(presenceOp{sim: fmt.Sprintf("sim_%06d", i)}) // came and went
	}
	gw.Close()

	for i := range n {
		ps, err := st.Presences(ctx, fmt.Sprintf("sim_%06d", i))
		if err != nil {
			t.Fatal(err)
		}
		if want := i >= 100; (len(ps) == 1) != want || want && ps[0].Gateway != "gw-burst" {
			t.Fatalf("sim %d: presences %+v, want online %v", i, ps, want)
		}
	}
	events := 0
	for f := (store.EventFilter{Action: "device.connected", PageRequest: store.PageRequest{Limit: store.MaxLimit}}); ; {
		pg, err := st.ListEvents(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		events += len(pg.Items)
		if pg.Next == "" {
			break
		}
		f.Cursor = pg.Next
	}
	if events != n {
		t.Fatalf("%d device.connected events written, want %d", events, n)
	}
}
