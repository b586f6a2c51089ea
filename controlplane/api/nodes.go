// SPDX-License-Identifier: Apache-2.0

package api

import (
	"context"
	"net/http"
	"time"

	"github.com/wirefleet/wirefleet/controlplane"
	"github.com/wirefleet/wirefleet/controlplane/api/apiv1"
	"github.com/wirefleet/wirefleet/fleet"
)

func init() {
	schemas["Node"] = obj(props{"name": str(""), "endpoint": str("the WireGuard endpoint it hands to devices"), "api": str("its API listener"), "version": str(""),
		"sessions": integer(), "started": dateTime(), "seen": dateTime(), "degraded": str("what does not work on it; empty when all does"), "up": boolean(),
		"jobs": arr(str("a cluster-wide job it runs (holds the lease of): datastore-retention, config-audit"))})
	schemas["NodeList"] = page("Node")
}

// nodeRoutes are the node registry's routes.
func (h *Handler) nodeRoutes() []route {
	return []route{
		{method: "GET", path: "/api/v1/nodes", summary: "The wirefleetd nodes sharing this store: version, load, health, whether each is up.", role: fleet.RoleViewer, response: "NodeList", handle: h.listNodes},
		{method: "DELETE", path: "/api/v1/nodes/{id}", summary: "Forget a node that is down (retired). Admins only; 409 while it is up.", role: fleet.RoleAdmin, handle: removeByID(h.svc.ForgetNode)},
	}
}

func (h *Handler) listNodes(ctx context.Context, a controlplane.Actor, _ *http.Request) (any, error) {
	ns, err := h.svc.ListNodes(ctx, a)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	out := apiv1.Page[apiv1.Node]{Items: make([]apiv1.Node, len(ns))}
	for i, n := range ns {
		out.Items[i] = apiv1.Node{Node: n, Up: n.Up(now)}
	}
	return out, nil
}
