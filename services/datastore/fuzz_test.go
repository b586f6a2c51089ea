// SPDX-License-Identifier: Apache-2.0

package datastore

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/wirefleet/wirefleet/fleet"
)

// FuzzRecords: any message under any pointers either becomes records or a
// 4xx refusal with a reason — never a panic, never a 5xx. Without a batch
// the one record holds the message byte for byte; batch elements are each
// valid JSON; times stay in range.
func FuzzRecords(f *testing.F) {
	f.Add([]byte(`{"r":[{"t":1767225600000,"v":1},{"t":"2026-01-01T00:00:00Z"}]}`), "application/json", "/r", "/t")
	f.Add([]byte(`[{"t":1.5},{"t":null}]`), "", "#", "/t")
	f.Add([]byte(`{"t":-1}`), "application/vnd.x+json", "", "/t")
	f.Add([]byte{0, 1, 2, 0xff}, "application/octet-stream", "/r", "/t")
	f.Add([]byte(`{"a/b":{"~":[1]}}`), "", "/a~1b/~0", "/a~1b/~0/0")
	f.Add([]byte(`{"t":1e300}`), "application/json", "", "/t")
	f.Add([]byte(`{"t":"9999-12-31T23:59:59Z"}`), "application/json; charset=utf-8", "", "#/t")
	f.Fuzz(func(t *testing.T, body []byte, contentType, batch, ts string) {
		set := fleet.DataStoreSettings{Enabled: true, BatchPointer: batch, TimestampPointer: ts}
		if set.Normalize("s") != nil {
			return // the API refuses such settings
		}
		now := time.Date(2026, 5, 5, 5, 5, 5, 0, time.UTC)
		recs, err := Records(set, fleet.SIM{ID: "sim_x", GroupID: "grp_x"}, contentType, body, now)
		if err != nil {
			var rj *Reject
			if !errors.As(err, &rj) || rj.Status < 400 || rj.Status >= 500 || rj.Reason == "" || rj.Message == "" {
				t.Fatalf("not a 4xx refusal with a reason: %#v", err)
			}
			return
		}
		jsonBody := isJSONType(contentType) || (contentType == "" && sniff(body) == ContentJSON)
		if batch == "" || !jsonBody {
			if len(recs) != 1 || !bytes.Equal(recs[0].Payload, body) {
				t.Fatalf("one message, %d records or payload changed", len(recs))
			}
		}
		for _, r := range recs {
			if r.SIMID != "sim_x" || r.GroupID != "grp_x" || r.ContentType == "" || r.Category != fleet.DefaultCategory || !r.Received.Equal(now) {
				t.Fatalf("record %+v", r)
			}
			if batch != "" && jsonBody && !json.Valid(r.Payload) {
				t.Fatalf("batch element is not JSON: %q", r.Payload)
			}
			if r.Time.Before(minTime) || !r.Time.Before(maxTime) {
				t.Fatalf("time out of range: %v", r.Time)
			}
			if ts == "" && !r.Time.Equal(now) {
				t.Fatalf("no timestamp pointer, time %v", r.Time)
			}
		}
	})
}
