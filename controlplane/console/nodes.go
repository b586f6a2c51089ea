// SPDX-License-Identifier: Apache-2.0

package console

import (
	"net/http"
	"time"

	"github.com/wirefleet/wirefleet/fleet"
)

// Nodes: the wirefleetd nodes sharing the store (the node registry), up
// or down, with their version, load and health.

type nodeRow struct {
	fleet.Node
	Up bool
}

func (h *Handler) nodes(w http.ResponseWriter, r *http.Request) {
	ns, err := h.svc.ListNodes(r.Context(), sessionOf(r).actor)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	rows := make([]nodeRow, len(ns))
	now := time.Now()
	for i, n := range ns {
		rows[i] = nodeRow{Node: n, Up: n.Up(now)}
	}
	h.render(w, r, http.StatusOK, "nodes", page{Title: "Nodes", Nav: "nodes", Flash: r.URL.Query().Get("done"), Data: rows})
}

func (h *Handler) forgetNode(w http.ResponseWriter, r *http.Request) {
	if err := h.svc.ForgetNode(r.Context(), sessionOf(r).actor, r.PathValue("name")); err != nil {
		h.fail(w, r, err)
		return
	}
	http.Redirect(w, r, withDone("/nodes", "Node "+r.PathValue("name")+" forgotten."), http.StatusSeeOther)
}
