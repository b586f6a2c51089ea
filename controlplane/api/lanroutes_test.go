// SPDX-License-Identifier: Apache-2.0

package api_test

import (
	"net/http"
	"testing"

	"github.com/wirefleet/wirefleet/controlplane/api/apiv1"
	"github.com/wirefleet/wirefleet/fleet"
)

// Routes behind SIMs over the API: mapped and unmapped, the bulk shape,
// clear refusals naming the field, listing and removal.
func TestLANRoutesAPI(t *testing.T) {
	e := newEnv(t)
	var a, b apiv1.SIM
	e.must("POST", "/api/v1/sims", fleet.RoleOperator, map[string]any{"generateKey": true}, 201, &a)
	e.must("POST", "/api/v1/sims", fleet.RoleOperator, map[string]any{"generateKey": true}, 201, &b)
	var ra fleet.Route
	e.must("POST", "/api/v1/sims/"+a.ID+"/routes", fleet.RoleOperator, map[string]any{"prefix": "192.168.1.0/24", "map": true}, 201, &ra)
	if ra.Mapped.String() != "10.64.0.0/24" || ra.Status != fleet.RouteApproved {
		t.Fatalf("mapped route %+v", ra)
	}
	var page apiv1.Page[fleet.Route]
	e.must("PUT", "/api/v1/routes?map=true", fleet.RoleOperator, map[string]any{b.ID: "192.168.1.0/24"}, 200, &page)
	if len(page.Items) != 1 || page.Items[0].Mapped.String() != "10.64.1.0/24" {
		t.Fatalf("bulk: %+v", page)
	}
	for _, c := range []struct {
		name   string
		method string
		path   string
		body   any
		status int
		code   string
		field  string
	}{
		{"malformed prefix", "POST", "/api/v1/sims/" + a.ID + "/routes", map[string]any{"prefix": "192.168.1/24"}, 400, fleet.CodeInvalid, "prefix"},
		{"malformed mapping", "POST", "/api/v1/sims/" + a.ID + "/routes", map[string]any{"prefix": "172.16.0.0/24", "mappedPrefix": "ten"}, 400, fleet.CodeInvalid, "mappedPrefix"},
		{"host bits", "POST", "/api/v1/sims/" + a.ID + "/routes", map[string]any{"prefix": "172.16.0.1/24"}, 400, fleet.CodeInvalid, "prefix"},
		{"taken mapping", "POST", "/api/v1/sims/" + a.ID + "/routes", map[string]any{"prefix": "172.16.0.0/24", "mappedPrefix": "10.64.1.0/24"}, 409, fleet.CodeConflict, "mappedPrefix"},
		{"unknown field", "POST", "/api/v1/sims/" + a.ID + "/routes", map[string]any{"prefix": "172.16.0.0/24", "via": "x"}, 400, fleet.CodeUnknownField, "via"},
		{"bulk with a bad CIDR", "PUT", "/api/v1/routes", map[string]any{b.ID: "nope"}, 400, fleet.CodeInvalid, b.ID},
		{"approve what was not advertised", "POST", "/api/v1/sims/" + a.ID + "/routes/approve", map[string]any{"prefix": "10.9.0.0/24"}, 404, fleet.CodeNotFound, "prefix"},
		{"delete without prefix", "DELETE", "/api/v1/sims/" + a.ID + "/routes", nil, 400, fleet.CodeRequired, "prefix"},
		{"routes of an unknown SIM", "GET", "/api/v1/sims/sim_nope/routes", nil, 404, fleet.CodeNotFound, "id"},
		{"bad status filter", "GET", "/api/v1/routes?status=maybe", nil, 400, fleet.CodeInvalid, "status"},
	} {
		e.wantError(c.method, c.path, fleet.RoleOperator, c.body, c.status, c.code, c.field) // stops at the first failing case
	}
	var named fleet.Route
	e.must("PUT", "/api/v1/sims/"+a.ID+"/routes/hosts", fleet.RoleOperator, map[string]any{"prefix": "192.168.1.0/24", "hosts": map[string]string{"plc1": "192.168.1.10"}}, 200, &named)
	if named.Hosts["plc1"].String() != "192.168.1.10" {
		t.Fatalf("hosts: %+v", named)
	}
	e.wantError("PUT", "/api/v1/sims/"+a.ID+"/routes/hosts", fleet.RoleOperator, map[string]any{"prefix": "192.168.1.0/24", "hosts": map[string]string{"plc1": "ten"}}, 400, fleet.CodeInvalid, "hosts")
	e.must("GET", "/api/v1/routes", fleet.RoleViewer, nil, 200, &page)
	if len(page.Items) != 2 {
		t.Fatalf("all routes: %+v", page)
	}
	e.must("DELETE", "/api/v1/sims/"+a.ID+"/routes?prefix=192.168.1.0/24", fleet.RoleOperator, nil, http.StatusNoContent, nil)
	e.must("GET", "/api/v1/sims/"+a.ID+"/routes", fleet.RoleViewer, nil, 200, &page)
	if len(page.Items) != 0 {
		t.Fatalf("after delete: %+v", page)
	}
}

func TestGatePeersAPI(t *testing.T) {
	e := newEnv(t)
	var g fleet.GatePeer
	e.must("POST", "/api/v1/gate-peers", fleet.RoleOperator, map[string]any{"name": "vpc", "outerAddress": "192.0.2.10", "vni": 10}, 201, &g)
	if !g.InnerAddress.IsValid() || g.VNI != 10 {
		t.Fatalf("created %+v", g)
	}
	e.wantError("POST", "/api/v1/gate-peers", fleet.RoleOperator, map[string]any{"outerAddress": "nope", "vni": 10}, 400, fleet.CodeInvalid, "outerAddress")
	e.wantError("POST", "/api/v1/gate-peers", fleet.RoleOperator, map[string]any{"outerAddress": "192.0.2.10", "vni": 10}, 409, fleet.CodeConflict, "vni")
	e.wantError("POST", "/api/v1/gate-peers", fleet.RoleOperator, map[string]any{"outerAddress": "192.0.2.11"}, 400, fleet.CodeInvalid, "vni")
	var page apiv1.Page[fleet.GatePeer]
	e.must("GET", "/api/v1/gate-peers", fleet.RoleViewer, nil, 200, &page)
	if len(page.Items) != 1 {
		t.Fatalf("list %+v", page)
	}
	e.must("DELETE", "/api/v1/gate-peers/"+g.ID, fleet.RoleOperator, nil, http.StatusNoContent, nil)
	e.wantError("GET", "/api/v1/gate-peers/"+g.ID, fleet.RoleViewer, nil, 404, fleet.CodeNotFound, "id")
}
