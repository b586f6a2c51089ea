// SPDX-License-Identifier: Apache-2.0

package fleet

import (
	"time"

	"github.com/wirefleet/wirefleet/wgkey"
)

// Node is one wirefleetd of an installation, as it registers itself in
// the shared store: every node serves the same WireGuard identity, and
// any node accepts any SIM.
type Node struct {
	Name string `json:"name"`
	// Endpoint is the WireGuard endpoint it hands to devices; API is its
	// REST API listener.
	Endpoint string `json:"endpoint,omitempty"`
	API      string `json:"api,omitempty"`
	Version  string `json:"version"`
	// Sessions is how many devices it holds a session of (its load).
	Sessions int       `json:"sessions"`
	Started  time.Time `json:"started"`
	// Seen is its last heartbeat: a node unseen for NodeStaleAfter is down.
	Seen time.Time `json:"seen"`
	// Degraded names what does not work on it ("" when all does).
	Degraded string `json:"degraded,omitempty"`
	// MeshKey and MeshEndpoint are how other nodes reach it over the
	// inter-node mesh (a key of its own, not the installation's); zero
	// and "" for a node without one.
	MeshKey      wgkey.Public `json:"meshKey,omitzero"`
	MeshEndpoint string       `json:"meshEndpoint,omitempty"`
	// Jobs are the cluster-wide jobs it runs (the leases it holds), by
	// name; not part of its heartbeat.
	Jobs []string `json:"jobs,omitempty"`
}

// NodeHeartbeat is how often a node refreshes its record, and
// NodeStaleAfter how long after its last one it counts as down.
const (
	NodeHeartbeat  = 10 * time.Second
	NodeStaleAfter = 3 * NodeHeartbeat
)

// Up says whether the node has been seen within NodeStaleAfter of now.
func (n Node) Up(now time.Time) bool { return now.Sub(n.Seen) < NodeStaleAfter }

// Lease is a cluster-wide job's lease: the node that holds it runs the
// job, until Until unless it renews. A node that stops releases it.
type Lease struct {
	Job    string    `json:"job"`
	Holder string    `json:"holder"`
	Until  time.Time `json:"until"`
}
