// SPDX-License-Identifier: Apache-2.0

package main

import (
	"context"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wirefleet/wirefleet/controlplane"
	"github.com/wirefleet/wirefleet/controlplane/store"
	"github.com/wirefleet/wirefleet/fleet"
)

// simCollector exports the number of SIMs by status, counted at scrape
// time so the figure is never stale. The count scans the status index:
// 0.13 s on SQLite and PostgreSQL with a million SIMs (count-by-status in
// BenchmarkListSIMs), acceptable at usual scrape intervals.
type simCollector struct {
	st   store.Store
	log  *slog.Logger
	desc *prometheus.Desc
}

func newSIMCollector(st store.Store, log *slog.Logger) *simCollector {
	return &simCollector{st: st, log: log, desc: prometheus.NewDesc("wirefleet_sims", "SIMs by status.", []string{"status"}, nil)}
}

// Describe implements prometheus.Collector.
func (c *simCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

// Collect implements prometheus.Collector.
func (c *simCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	counts, err := c.st.CountSIMs(ctx)
	if err != nil {
		c.log.Warn("counting SIMs for metrics", "err", err)
		ch <- prometheus.NewInvalidMetric(c.desc, err)
		return
	}
	for _, s := range []fleet.Status{fleet.StatusActive, fleet.StatusSuspended, fleet.StatusTerminated} {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(counts[s]), string(s))
	}
}

// attestCounter counts attestation bootstraps by outcome ("ok", or why
// refused: a run of bad signatures or unknown identities is someone
// probing, a run of used identities a cloned device).
func attestCounter(svc *controlplane.Service) prometheus.Collector {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "wirefleet_attest_bootstraps_total", Help: "Attestation bootstraps by outcome: ok, or the reason of the refusal."}, []string{"outcome"})
	for _, o := range []string{"ok", controlplane.RefusedSignature, controlplane.RefusedChallenge, controlplane.RefusedUnknown, controlplane.RefusedRevoked, controlplane.RefusedUsed} {
		c.WithLabelValues(o) // present at 0 from the start
	}
	svc.ObserveAttest(func(o string) { c.WithLabelValues(o).Inc() })
	return c
}

// cardCounter counts SIM-card authentication steps by outcome.
func cardCounter(svc *controlplane.Service) prometheus.Collector {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "wirefleet_sim_card_auth_total", Help: "SIM-card authentication steps (challenge, verify, signature) by outcome: ok, or the reason of the refusal."}, []string{"step", "outcome"})
	for _, so := range [][2]string{{"challenge", "ok"}, {"challenge", "unknown_card"}, {"challenge", "bad_auts"}, {"verify", "ok"}, {"verify", "wrong_res"}, {"verify", "unknown_key"},
		{"signature", "ok"}, {"signature", "bad_signature"}, {"signature", "stale_timestamp"}, {"signature", "unknown_key"}, {"signature", "replay"}} {
		c.WithLabelValues(so[0], so[1]) // present at 0 from the start
	}
	svc.ObserveCard(func(step, outcome string) { c.WithLabelValues(step, outcome).Inc() })
	return c
}
