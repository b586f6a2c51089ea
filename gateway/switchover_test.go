// SPDX-License-Identifier: Apache-2.0

package gateway

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wirefleet/wirefleet/controlplane"
	"github.com/wirefleet/wirefleet/controlplane/store"
	"github.com/wirefleet/wirefleet/controlplane/store/pgstore"
	"github.com/wirefleet/wirefleet/controlplane/store/pgstore/pgtest"
	"github.com/wirefleet/wirefleet/fleet"
	"github.com/wirefleet/wirefleet/keystore"
	"github.com/wirefleet/wirefleet/wgkey"
)

// TestPostgresSwitchover: a gateway on a primary with a synchronous
// standby, through a multi-host connection string with
// target_session_attrs=read-write. The primary is lost (SIGKILL to all its
// processes) and the standby promoted: writes resume on the new primary,
// every write acknowledged before the loss is there (API writes and
// data-store records), the change feed
// reconnects (a SIM suspended afterwards is cut off), and a device keeps
// its session and its answers throughout.
func TestPostgresSwitchover(t *testing.T) {
	ctx := context.Background()
	primary := pgtest.StartDurable(t) // synchronous_commit on: the standby has each commit before it is acknowledged
	dsn := primary.NewDatabase(t)
	standby := pgtest.StartStandby(t, primary, true)
	dbname := dsn[strings.Index(dsn, "dbname=")+len("dbname="):]
	dbname = dbname[:strings.IndexByte(dbname, ' ')]
	multi := fmt.Sprintf("host=%s,%s user=wirefleet dbname=%s sslmode=disable target_session_attrs=read-write connect_timeout=2", primary.Socket(), standby.Socket(), dbname)

	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	st, err := pgstore.Open(ctx, multi, log)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ks, _ := keystore.GenerateMemory()
	svc := controlplane.New(st, controlplane.Config{GatewayPublicKey: ks.PublicKey, Logger: log})
	gw, err := New(Config{ControlPlane: svc, KeyStore: ks, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	if err := gw.Start(); err != nil {
		t.Fatal(err)
	}
	defer gw.Close()

	devKey, _ := wgkey.NewPrivate()
	sim, _, err := svc.CreateSIM(ctx, controlplane.System, controlplane.SIMSpec{PublicKey: devKey.Public()})
	if err != nil {
		t.Fatal(err)
	}
	tunDev, _ := memDevice(t, devKey, ks.PublicKey(), gw.Port(), "")
	// The device pings every 100 ms for the whole test; replies counted.
	var sent, answered atomic.Int64
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for range tunDev.Out() {
			answered.Add(1)
		}
	}()
	go func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
				tunDev.Send(echoRequest(sim.Address, MetadataAddr))
				sent.Add(1)
			}
		}
	}()
	waitForWithin(t, 15*time.Second, "the device answered", func() bool { return answered.Load() > 3 })

	// Writes acknowledged before the loss.
	var acked []string
	for i := range 30 {
		s, _, err := svc.CreateSIM(ctx, controlplane.System, controlplane.SIMSpec{Name: fmt.Sprintf("before-%d", i), GenerateKey: true})
		if err != nil {
			t.Fatal(err)
		}
		acked = append(acked, s.ID)
	}
	// Data-store records acknowledged before the loss (the path the data
	// store commits its batches by, synchronously).
	var recs []fleet.Record
	for i := range 50 {
		now := time.Now().UTC()
		recs = append(recs, fleet.Record{SIMID: sim.ID, Time: now, Received: now, Category: "before", ContentType: "application/json", Payload: []byte(fmt.Sprintf(`{"n":%d}`, i))})
	}
	if err := st.AppendRecords(ctx, recs); err != nil {
		t.Fatal(err)
	}
	handshakes := gw.Engine().Counters().HandshakesCompleted
	answeredBefore := answered.Load()

	// Writers going on through the loss and the promotion: an API writer
	// (SIMs) and a data-store writer (batches of 10 records), each keeping
	// what was acknowledged. A write cut by the loss fails and is not
	// counted; every acknowledged one must be there afterwards.
	var (
		during      sync.Mutex
		ackedDuring []string
		batches     []string // categories of acknowledged batches
		writing     = make(chan struct{})
		writers     sync.WaitGroup
	)
	writers.Add(2)
	go func() {
		defer writers.Done()
		for i := 0; ; i++ {
			select {
			case <-writing:
				return
			default:
			}
			wctx, cancel := context.WithTimeout(ctx, 3*time.Second)
			s, _, err := svc.CreateSIM(wctx, controlplane.System, controlplane.SIMSpec{Name: fmt.Sprintf("during-%d", i), GenerateKey: true})
			cancel()
			if err == nil {
				during.Lock()
				ackedDuring = append(ackedDuring, s.ID)
				during.Unlock()
			} else {
				time.Sleep(20 * time.Millisecond)
			}
		}
	}()
	go func() {
		defer writers.Done()
		for i := 0; ; i++ {
			select {
			case <-writing:
				return
			default:
			}
			cat := fmt.Sprintf("during-%d", i)
			now := time.Now().UTC()
			var b []fleet.Record
			for j := range 10 {
				b = append(b, fleet.Record{SIMID: sim.ID, Time: now, Received: now, Category: cat, ContentType: "application/json", Payload: []byte(fmt.Sprintf(`{"n":%d}`, j))})
			}
			wctx, cancel := context.WithTimeout(ctx, 3*time.Second)
			err := st.AppendRecords(wctx, b)
			cancel()
			if err == nil {
				during.Lock()
				batches = append(batches, cat)
				during.Unlock()
			} else {
				time.Sleep(20 * time.Millisecond)
			}
		}
	}()
	time.Sleep(300 * time.Millisecond) // writes under way when the primary goes

	lost := time.Now()
	primary.Crash()
	standby.Promote(t)
	promoted := time.Now()
	var resumed time.Time
	for {
		_, _, err := svc.CreateSIM(ctx, controlplane.System, controlplane.SIMSpec{Name: "after", GenerateKey: true})
		if err == nil {
			resumed = time.Now()
			break
		}
		if time.Since(promoted) > 30*time.Second {
			t.Fatalf("writes did not resume within 30 s of the promotion: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond) // the writers carry on a while on the new primary
	close(writing)
	writers.Wait()
	t.Logf("primary lost; standby promoted after %s; writes resumed %s after the promotion; %d SIMs and %d record batches acknowledged by the writers meanwhile",
		promoted.Sub(lost).Round(time.Millisecond), resumed.Sub(promoted).Round(time.Millisecond), len(ackedDuring), len(batches))
	if len(ackedDuring) == 0 || len(batches) == 0 {
		t.Fatalf("the writers had nothing acknowledged (%d SIMs, %d batches): the test shows nothing", len(ackedDuring), len(batches))
	}
	for _, id := range append(acked, ackedDuring...) {
		if _, err := svc.GetSIM(ctx, controlplane.System, id); err != nil {
			t.Fatalf("SIM %s, acknowledged: %v", id, err)
		}
	}
	for _, cat := range batches {
		if pg, err := st.ListRecords(ctx, store.RecordFilter{SIMID: sim.ID, Category: cat, PageRequest: store.PageRequest{Limit: 100}}); err != nil || len(pg.Items) != 10 {
			t.Fatalf("data-store batch %s, acknowledged: %d of 10 records (%v)", cat, len(pg.Items), err)
		}
	}
	if pg, err := st.ListRecords(ctx, store.RecordFilter{SIMID: sim.ID, Category: "before", PageRequest: store.PageRequest{Limit: 100}}); err != nil || len(pg.Items) != 50 {
		t.Fatalf("data-store records acknowledged before the loss: %d of 50 (%v)", len(pg.Items), err)
	}
	now := time.Now().UTC()
	if err := st.AppendRecords(ctx, []fleet.Record{{SIMID: sim.ID, Time: now, Received: now, Category: "after", ContentType: "application/json", Payload: []byte(`{}`)}}); err != nil {
		t.Fatalf("a data-store write after the switchover: %v", err)
	}

	// The change feed follows the new primary: a suspension cuts the
	// device off (the gateway learns it only through the feed).
	waitForWithin(t, 10*time.Second, "answers after the switchover", func() bool { return answered.Load() > answeredBefore+10 })
	if got := gw.Engine().Counters().HandshakesCompleted; got != handshakes {
		t.Fatalf("the device shook hands again during the switchover (%d → %d handshakes): its session did not survive", handshakes, got)
	}
	if s, a := sent.Load(), answered.Load(); s-a > 5 {
		t.Logf("%d of %d pings unanswered", s-a, s)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, err := svc.SetSIMStatus(ctx, controlplane.System, sim.ID, fleet.StatusSuspended); err == nil {
			break
		} else if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	waitForWithin(t, 20*time.Second, "the suspended device cut off (the change feed reconnected)", func() bool { return gw.Engine().Peer(devKey.Public()) == nil })
}
