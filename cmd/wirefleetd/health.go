// SPDX-License-Identifier: Apache-2.0

package main

import (
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
)

// health is what /healthz says of this node.
type health struct {
	Node      string   `json:"node"`
	Store     string   `json:"store"` // ok, unavailable
	Degraded  []string `json:"degraded"`
	Mesh      bool     `json:"mesh"`
	MeshPeers int      `json:"meshPeers"`   // other nodes held
	MeshUp    int      `json:"meshPeersUp"` // of those, heard from in the last seconds
	Jobs      []string `json:"jobs"`        // the cluster-wide jobs this node runs
}

// writeHealth answers /healthz: liveness (always 200 while the process
// serves, so a supervisor does not restart it for an outage it cannot
// fix) with what is degraded, as text (a line each) or, asked for with
// ?format=json or Accept: application/json, as JSON.
func writeHealth(w http.ResponseWriter, r *http.Request, h health) {
	if h.Degraded == nil {
		h.Degraded = []string{}
	}
	if h.Jobs == nil {
		h.Jobs = []string{}
	}
	if h.Store != "ok" {
		h.Degraded = append([]string{"store " + h.Store}, h.Degraded...)
	}
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Accept"))
	if r.URL.Query().Get("format") == "json" || mt == "application/json" {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(h)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	state := "ok"
	if len(h.Degraded) > 0 {
		state = "degraded"
	}
	fmt.Fprintf(w, "%s\nnode %s\nstore %s\n", state, h.Node, h.Store)
	if h.Mesh {
		fmt.Fprintf(w, "mesh %d peers, %d up\n", h.MeshPeers, h.MeshUp)
	}
	if len(h.Jobs) > 0 {
		fmt.Fprintf(w, "jobs %s\n", strings.Join(h.Jobs, ","))
	}
	for _, d := range h.Degraded {
		io.WriteString(w, "degraded: "+d+"\n")
	}
}
