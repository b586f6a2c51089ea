// SPDX-License-Identifier: Apache-2.0

package datastore

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	records  *prometheus.CounterVec
	bytes    *prometheus.CounterVec
	rejected *prometheus.CounterVec
	expired  prometheus.Counter
	commits  *prometheus.CounterVec
	batch    prometheus.Histogram
	commitS  prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		records:  prometheus.NewCounterVec(prometheus.CounterOpts{Name: "wirefleet_datastore_records_total", Help: "Records stored and acknowledged, by transport (http, tcp, udp)."}, []string{"transport"}),
		bytes:    prometheus.NewCounterVec(prometheus.CounterOpts{Name: "wirefleet_datastore_bytes_total", Help: "Payload bytes of acknowledged messages, by transport."}, []string{"transport"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "wirefleet_datastore_rejected_total", Help: "Messages not stored, by reason (unknown_caller, disabled, rate_limited, too_large, bad_json, bad_timestamp, store_error, bad_method, bad_request)."}, []string{"reason"}),
		expired:  prometheus.NewCounter(prometheus.CounterOpts{Name: "wirefleet_datastore_expired_total", Help: "Records deleted by group retention."}),
		commits:  prometheus.NewCounterVec(prometheus.CounterOpts{Name: "wirefleet_datastore_commits_total", Help: "Group commits, by result (ok, error)."}, []string{"result"}),
		batch:    prometheus.NewHistogram(prometheus.HistogramOpts{Name: "wirefleet_datastore_commit_records", Help: "Records per group commit.", Buckets: prometheus.ExponentialBuckets(1, 4, 7)}),
		commitS:  prometheus.NewHistogram(prometheus.HistogramOpts{Name: "wirefleet_datastore_commit_seconds", Help: "Duration of a group commit (to stable storage).", Buckets: prometheus.ExponentialBuckets(0.0005, 4, 8)}),
	}
	if reg != nil {
		reg.MustRegister(m.records, m.bytes, m.rejected, m.expired, m.commits, m.batch, m.commitS)
	}
	return m
}

func (m *metrics) observeCommit(n int, d time.Duration, err error) {
	if err != nil {
		m.commits.WithLabelValues("error").Inc()
		return
	}
	m.commits.WithLabelValues("ok").Inc()
	m.batch.Observe(float64(n))
	m.commitS.Observe(d.Seconds())
}
