// SPDX-License-Identifier: Apache-2.0

package api_test

import (
	"context"
	"encoding/base64"
	"fmt"
	"testing"
	"time"

	"github.com/wirefleet/wirefleet/fleet"
)

// TestDataRecords reads data-store records through the API: per SIM and
// per group, newest first, pages that neither skip nor repeat, time range
// and category filters, JSON inline and binary in base64, and clear
// errors for bad queries and unknown ids.
func TestDataRecords(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	var g fleet.Group
	e.must("POST", "/api/v1/groups", fleet.RoleOperator, map[string]any{"name": "sensors", "settings": map[string]any{"dataStore": map[string]any{"enabled": true, "category": "telemetry", "retention": "30d", "batchPointer": "/r", "timestampPointer": "/t", "maxPayload": 1000}}}, 201, &g)
	if ds := g.Settings.DataStore; !ds.Enabled || ds.Category != "telemetry" || ds.Retention != "30d" || ds.BatchPointer != "/r" || ds.TimestampPointer != "/t" || ds.MaxPayload != 1000 {
		t.Fatalf("settings round trip: %+v", ds)
	}
	e.wantError("POST", "/api/v1/groups", fleet.RoleOperator, map[string]any{"name": "bad", "settings": map[string]any{"dataStore": map[string]any{"batchPointer": "r"}}}, 400, fleet.CodeInvalid, "settings.dataStore.batchPointer")
	var sim struct{ ID string }
	e.must("POST", "/api/v1/sims", fleet.RoleOperator, map[string]any{"generateKey": true, "groupId": g.ID}, 201, &sim)

	base := time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)
	var recs []fleet.Record
	for i := range 25 {
		cat := "telemetry"
		if i%5 == 0 {
			cat = "alarm"
		}
		r := fleet.Record{SIMID: sim.ID, GroupID: g.ID, Time: base.Add(time.Duration(i) * time.Minute), Received: base, Category: cat, ContentType: "application/json", Payload: []byte(fmt.Sprintf(`{"i":%d}`, i))}
		if i == 3 {
			r.ContentType, r.Payload = "application/octet-stream", []byte{0, 0xff, 3}
		}
		recs = append(recs, r)
	}
	if err := e.st.AppendRecords(ctx, recs); err != nil {
		t.Fatal(err)
	}
	type page struct {
		Items []map[string]any
		Next  string
	}
	var all []map[string]any
	cursor := ""
	for {
		var p page
		e.must("GET", "/api/v1/sims/"+sim.ID+"/data?limit=7&cursor="+cursor, fleet.RoleViewer, nil, 200, &p)
		all = append(all, p.Items...)
		if p.Next == "" {
			break
		}
		cursor = p.Next
	}
	if len(all) != 25 {
		t.Fatalf("%d records over the pages, want 25", len(all))
	}
	for i, r := range all {
		want := 24 - i // newest first
		if want == 3 {
			if r["payloadBase64"] != base64.StdEncoding.EncodeToString([]byte{0, 0xff, 3}) || r["payload"] != nil || r["contentType"] != "application/octet-stream" {
				t.Fatalf("binary record %v", r)
			}
			continue
		}
		if p, _ := r["payload"].(map[string]any); p == nil || p["i"] != float64(want) || r["simId"] != sim.ID || r["groupId"] != g.ID || r["size"] == nil {
			t.Fatalf("record %d: %v, want i=%d", i, r, want)
		}
	}
	var p page
	e.must("GET", "/api/v1/groups/"+g.ID+"/data?from="+base.Add(10*time.Minute).Format(time.RFC3339)+"&to="+base.Add(20*time.Minute).Format(time.RFC3339)+"&category=alarm", fleet.RoleViewer, nil, 200, &p)
	if len(p.Items) != 2 || p.Items[0]["payload"].(map[string]any)["i"] != float64(15) || p.Items[1]["payload"].(map[string]any)["i"] != float64(10) {
		t.Fatalf("range and category: %v", p.Items)
	}
	// Every field of the answer is declared in the OpenAPI document.
	var doc struct {
		Components struct {
			Schemas map[string]struct{ Properties map[string]any }
		}
	}
	e.must("GET", "/api/v1/openapi.json", "", nil, 200, &doc)
	for _, r := range all {
		for k := range r {
			if _, ok := doc.Components.Schemas["DataRecord"].Properties[k]; !ok {
				t.Fatalf("field %s not in the DataRecord schema", k)
			}
		}
	}
	if _, ok := doc.Components.Schemas["GroupSettings"].Properties["dataStore"]; !ok {
		t.Fatal("GroupSettings schema lacks dataStore")
	}

	e.wantError("GET", "/api/v1/sims/nope/data", fleet.RoleViewer, nil, 404, fleet.CodeNotFound, "id")
	e.wantError("GET", "/api/v1/groups/nope/data", fleet.RoleViewer, nil, 404, fleet.CodeNotFound, "id")
	e.wantError("GET", "/api/v1/sims/"+sim.ID+"/data?cursor=abc", fleet.RoleViewer, nil, 400, fleet.CodeInvalid, "cursor")
	e.wantError("GET", "/api/v1/sims/"+sim.ID+"/data?from=yesterday", fleet.RoleViewer, nil, 400, fleet.CodeInvalid, "from")
	e.wantError("GET", "/api/v1/sims/"+sim.ID+"/data?from=2026-02-02T00:00:00Z&to=2026-02-01T00:00:00Z", fleet.RoleViewer, nil, 400, fleet.CodeInvalid, "to")
	e.wantError("GET", "/api/v1/sims/"+sim.ID+"/data?category=a%20b", fleet.RoleViewer, nil, 400, fleet.CodeInvalid, "category")
	e.wantError("GET", "/api/v1/sims/"+sim.ID+"/data?limit=5000", fleet.RoleViewer, nil, 400, fleet.CodeInvalid, "limit")
}
