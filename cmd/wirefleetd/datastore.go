// SPDX-License-Identifier: Apache-2.0

package main

import (
	"log/slog"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wirefleet/wirefleet/controlplane/store"
	"github.com/wirefleet/wirefleet/internal/ratelimit"
	"github.com/wirefleet/wirefleet/services/datastore"
)

// newDataStore makes the data store at 100.127.111.111, hosted by the
// gateway; each group switches it on in its settings. retentionHeld says
// whether this node runs the cluster-wide retention sweep.
func newDataStore(c config, st store.Store, backend string, log *slog.Logger, reg prometheus.Registerer, retentionHeld func() bool) *datastore.Service {
	n := c.dataCommitters
	if n <= 0 {
		n = 1 // SQLite: one writer connection anyway
		if strings.HasPrefix(backend, "postgres") {
			n = 4
		}
	}
	// Leave the PostgreSQL pool (16 connections) to the control plane too.
	if n > 8 {
		log.Warn("--datastore-committers capped at 8", "asked", n)
		n = 8
	}
	every := c.dataSweepEvery
	if every <= 0 {
		every = -1
	}
	return datastore.New(datastore.Config{Store: st, Logger: log, Registerer: reg, Committers: n, RetentionEvery: every, RetentionHeld: retentionHeld,
		Rate: ratelimit.Config{PerSecond: c.dataRate, Burst: c.dataBurst}})
}
