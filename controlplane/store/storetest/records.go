// SPDX-License-Identifier: Apache-2.0

package storetest

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/wirefleet/wirefleet/controlplane/store"
	"github.com/wirefleet/wirefleet/fleet"
)

// testRecords checks the data store's records: round trip (binary
// payloads intact), newest-first order with ties broken by id, cursor
// pages that neither skip nor repeat, time range and category filters,
// per-group retention deletes, and concurrent appends.
func testRecords(t *testing.T, s store.Store) {
	ctx := context.Background()
	base := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	var recs []fleet.Record
	for i := range 30 {
		sim, grp, cat := "sim_a", "grp_1", "telemetry"
		if i%3 == 0 {
			sim = "sim_b"
		}
		if i%5 == 0 {
			cat = "alarm"
		}
		if i >= 25 {
			grp = "grp_2"
		}
		recs = append(recs, fleet.Record{SIMID: sim, GroupID: grp, Time: base.Add(time.Duration(i/2) * time.Second), Received: base.Add(time.Hour),
			Category: cat, ContentType: "application/octet-stream", Payload: []byte{byte(i), 0, 0xff, '\n'}})
	}
	recs[7].Payload = []byte{} // empty payloads are records too
	if err := s.AppendRecords(ctx, recs); err != nil {
		t.Fatal(err)
	}
	if err := s.AppendRecords(ctx, nil); err != nil {
		t.Fatal(err)
	}
	// Round trip, newest first: time descending, then id descending.
	all := collect(t, s, store.RecordFilter{GroupID: "grp_1", PageRequest: store.PageRequest{Limit: 4}})
	if len(all) != 25 {
		t.Fatalf("group grp_1: %d records, want 25", len(all))
	}
	for i := 1; i < len(all); i++ {
		a, b := all[i-1], all[i]
		if a.Time.Before(b.Time) || (a.Time.Equal(b.Time) && a.ID <= b.ID) {
			t.Fatalf("order: %v/%d before %v/%d", a.Time, a.ID, b.Time, b.ID)
		}
	}
	byPayload := map[string]fleet.Record{}
	for _, r := range all {
		if r.ID == 0 || r.GroupID != "grp_1" || !r.Received.Equal(base.Add(time.Hour)) || r.ContentType != "application/octet-stream" {
			t.Fatalf("record %+v", r)
		}
		byPayload[string(r.Payload)] = r
	}
	for i, want := range recs[:25] {
		got, ok := byPayload[string(want.Payload)]
		if !ok || got.SIMID != want.SIMID || !got.Time.Equal(want.Time) || got.Category != want.Category || !bytes.Equal(got.Payload, want.Payload) {
			t.Fatalf("record %d: got %+v, want %+v", i, got, want)
		}
	}
	// Per SIM.
	if n := len(collect(t, s, store.RecordFilter{SIMID: "sim_b"})); n != 10 {
		t.Fatalf("sim_b: %d records, want 10", n)
	}
	// Time range [From, To) and category.
	r := collect(t, s, store.RecordFilter{GroupID: "grp_1", From: base.Add(2 * time.Second), To: base.Add(5 * time.Second)})
	if len(r) != 6 {
		t.Fatalf("range: %d records, want 6", len(r))
	}
	for _, x := range r {
		if x.Time.Before(base.Add(2*time.Second)) || !x.Time.Before(base.Add(5*time.Second)) {
			t.Fatalf("out of range: %v", x.Time)
		}
	}
	if n := len(collect(t, s, store.RecordFilter{GroupID: "grp_1", Category: "alarm"})); n != 5 {
		t.Fatalf("category alarm: %d, want 5", n)
	}
	if _, err := s.ListRecords(ctx, store.RecordFilter{GroupID: "grp_1", PageRequest: store.PageRequest{Cursor: "garbage"}}); err == nil {
		t.Fatal("a bad cursor was accepted")
	}
	if _, err := s.ListRecords(ctx, store.RecordFilter{}); err == nil {
		t.Fatal("a filter without SIM or group was accepted")
	}

	// Retention: only the group's records before the time, at most max
	// per call.
	cut := base.Add(4 * time.Second) // times 0..3 s: 8 records of grp_1
	n, err := s.DeleteRecordsBefore(ctx, "grp_1", cut, 5)
	if err != nil || n != 5 {
		t.Fatalf("delete: %d %v, want 5", n, err)
	}
	n, err = s.DeleteRecordsBefore(ctx, "grp_1", cut, 100)
	if err != nil || n != 3 {
		t.Fatalf("delete rest: %d %v, want 3", n, err)
	}
	left := collect(t, s, store.RecordFilter{GroupID: "grp_1"})
	if len(left) != 17 {
		t.Fatalf("after retention: %d, want 17", len(left))
	}
	for _, x := range left {
		if x.Time.Before(cut) {
			t.Fatalf("an expired record survived: %v", x.Time)
		}
	}
	if n := len(collect(t, s, store.RecordFilter{GroupID: "grp_2"})); n != 5 {
		t.Fatalf("another group's records were touched: %d, want 5", n)
	}

	// Concurrent appends: every one lands, ids unique.
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for w := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			batch := make([]fleet.Record, 0, 150) // more than one INSERT statement
			for i := range 150 {
				batch = append(batch, fleet.Record{SIMID: fmt.Sprintf("sim_w%d", w), GroupID: "grp_c", Time: base, Received: base, Category: "c", ContentType: "application/json", Payload: []byte(fmt.Sprintf(`{"w":%d,"i":%d}`, w, i))})
			}
			errs <- s.AppendRecords(ctx, batch)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	got := collect(t, s, store.RecordFilter{GroupID: "grp_c", PageRequest: store.PageRequest{Limit: store.MaxLimit}})
	ids := map[int64]bool{}
	payloads := map[string]bool{}
	for _, x := range got {
		ids[x.ID] = true
		payloads[string(x.Payload)] = true
	}
	if len(got) != 3000 || len(ids) != 3000 || len(payloads) != 3000 {
		t.Fatalf("concurrent appends: %d records, %d ids, %d payloads, want 3000", len(got), len(ids), len(payloads))
	}
}

// collect reads every page of f, checking no record appears twice.
func collect(t *testing.T, s store.Store, f store.RecordFilter) []fleet.Record {
	t.Helper()
	var out []fleet.Record
	seen := map[int64]bool{}
	for {
		p, err := s.ListRecords(context.Background(), f)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range p.Items {
			if seen[r.ID] {
				t.Fatalf("record %d on two pages", r.ID)
			}
			seen[r.ID] = true
		}
		out = append(out, p.Items...)
		if p.Next == "" {
			return out
		}
		f.Cursor = p.Next
	}
}
