// SPDX-License-Identifier: Apache-2.0

package console

import (
	"net/http"

	"github.com/wirefleet/wirefleet/controlplane/store"
	"github.com/wirefleet/wirefleet/fleet"
)

// The fleet's LAN routes: every prefix behind a device, filtered by
// status, so routes devices advertise can be approved in one place.

type routesData struct {
	Routes []fleet.Route
	Status string
	Next   string
	Back   string // this page, for the row actions to return to
}

func (h *Handler) lanRoutes(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	d := routesData{Status: q.Get("status"), Back: r.URL.RequestURI()}
	switch fleet.RouteStatus(d.Status) {
	case "", fleet.RouteApproved, fleet.RouteAdvertised:
	default:
		d.Status = ""
	}
	pg, err := h.svc.ListRoutes(r.Context(), sessionOf(r).actor, store.RouteFilter{PageRequest: store.PageRequest{Limit: pageSize, Cursor: q.Get("cursor")}, Status: fleet.RouteStatus(d.Status)})
	if err != nil {
		h.fail(w, r, err)
		return
	}
	d.Routes, d.Next = pg.Items, string(nextURL("/routes", pg.Next, q, "status"))
	h.render(w, r, http.StatusOK, "routes", page{Title: "LAN routes", Nav: "routes", Flash: q.Get("done"), Data: d})
}
