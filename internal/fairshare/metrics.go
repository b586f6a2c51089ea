// SPDX-License-Identifier: Apache-2.0

package fairshare

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the shares' Prometheus metrics, labelled by service.
type Metrics struct {
	refused *prometheus.CounterVec
	evicted *prometheus.CounterVec
	conns   *prometheus.GaugeVec
}

// NewMetrics registers the shares' metrics with reg (nil: unregistered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "wirefleet_service_share_refused_total",
			Help: "Connections, requests and datagrams an in-tunnel service refused because a SIM was over its share, by limit (conns, full, rate, in_flight)."}, []string{"service", "limit"}),
		evicted: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "wirefleet_service_share_evicted_total",
			Help: "Connections closed to make room for a SIM holding fewer, when an in-tunnel service was full."}, []string{"service"}),
		conns: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "wirefleet_service_share_conns",
			Help: "Device connections an in-tunnel service holds."}, []string{"service"}),
	}
	if reg != nil {
		reg.MustRegister(m.refused, m.evicted, m.conns)
	}
	return m
}

// serviceMetrics are one service's: never nil (unregistered when the
// Metrics are).
type serviceMetrics struct {
	refused map[string]prometheus.Counter
	evicted prometheus.Counter
	conns   prometheus.Gauge
}

func (m *Metrics) service(name string) *serviceMetrics {
	if m == nil {
		m = NewMetrics(nil)
	}
	sm := &serviceMetrics{refused: map[string]prometheus.Counter{}, evicted: m.evicted.WithLabelValues(name), conns: m.conns.WithLabelValues(name)}
	for _, r := range reasons {
		sm.refused[r] = m.refused.WithLabelValues(name, r)
	}
	return sm
}

// Describe implements prometheus.Collector, for a gateway collecting the
// shares with its own metrics.
func (m *Metrics) Describe(ch chan<- *prometheus.Desc) {
	m.refused.Describe(ch)
	m.evicted.Describe(ch)
	m.conns.Describe(ch)
}

// Collect implements prometheus.Collector.
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	m.refused.Collect(ch)
	m.evicted.Collect(ch)
	m.conns.Collect(ch)
}

func (m *serviceMetrics) refuse(why string) {
	if c := m.refused[why]; c != nil {
		c.Inc()
	}
}
