// SPDX-License-Identifier: Apache-2.0

package main

import (
	"context"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/wirefleet/wirefleet/controlplane/audit"
	"github.com/wirefleet/wirefleet/controlplane/store"
)

// auditor runs the configuration audit on a schedule, logs each finding
// and exposes the counts by severity as a metric.
type auditor struct {
	st    store.Reader
	opts  audit.Options
	log   *slog.Logger
	gauge *prometheus.GaugeVec
}

func newAuditor(st store.Reader, opts audit.Options, log *slog.Logger, reg prometheus.Registerer) *auditor {
	a := &auditor{st: st, opts: opts, log: log,
		gauge: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "wirefleet_audit_findings", Help: "Findings of the last configuration audit, by severity."}, []string{"severity"})}
	reg.MustRegister(a.gauge)
	for _, sev := range []string{audit.High, audit.Medium, audit.Low} {
		a.gauge.WithLabelValues(sev) // present from the start, 0 until an audit finds something
	}
	return a
}

func (a *auditor) run(ctx context.Context) {
	findings, err := audit.Run(ctx, a.st, a.opts)
	if err != nil {
		a.log.Error("audit failed", "err", err)
		return
	}
	counts := map[string]int{audit.High: 0, audit.Medium: 0, audit.Low: 0}
	for _, f := range findings {
		counts[f.Severity]++
		a.log.Warn("audit finding", "check", f.Check, "severity", f.Severity, "object", f.Object, "detail", f.Detail)
	}
	for sev, n := range counts {
		a.gauge.WithLabelValues(sev).Set(float64(n))
	}
	a.log.Info("audit done", "findings", len(findings))
}
