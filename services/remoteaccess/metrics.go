// SPDX-License-Identifier: Apache-2.0

package remoteaccess

import "github.com/prometheus/client_golang/prometheus"

// metrics are the service's Prometheus metrics, one Collector.
type metrics struct {
	listeners       prometheus.Gauge
	active          prometheus.Gauge
	connections     prometheus.Counter
	denied          *prometheus.CounterVec
	bytesToDevice   prometheus.Counter
	bytesFromDevice prometheus.Counter
	mappingsClosed  *prometheus.CounterVec
	eventsDropped   prometheus.Counter
	all             []prometheus.Collector
}

func newMetrics() *metrics {
	m := &metrics{
		listeners:   prometheus.NewGauge(prometheus.GaugeOpts{Name: "wirefleet_remote_listeners", Help: "Public ports open for live port mappings."}),
		active:      prometheus.NewGauge(prometheus.GaugeOpts{Name: "wirefleet_remote_connections_active", Help: "Remote-access connections open now (including those in a TLS handshake or dialling the device)."}),
		connections: prometheus.NewCounter(prometheus.CounterOpts{Name: "wirefleet_remote_connections_total", Help: "Remote-access connections carried to a device."}),
		denied:      prometheus.NewCounterVec(prometheus.CounterOpts{Name: "wirefleet_remote_denied_total", Help: "Remote-access connections refused, by reason."}, []string{"reason"}),
		bytesToDevice: prometheus.NewCounter(prometheus.CounterOpts{Name: "wirefleet_remote_bytes_total", Help: "Bytes carried through port mappings, by direction.",
			ConstLabels: prometheus.Labels{"direction": "to_device"}}),
		bytesFromDevice: prometheus.NewCounter(prometheus.CounterOpts{Name: "wirefleet_remote_bytes_total", Help: "Bytes carried through port mappings, by direction.",
			ConstLabels: prometheus.Labels{"direction": "from_device"}}),
		mappingsClosed: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "wirefleet_remote_mappings_closed_total", Help: "Mapping listeners closed, by reason (expired, deleted, shutdown)."}, []string{"reason"}),
		eventsDropped:  prometheus.NewCounter(prometheus.CounterOpts{Name: "wirefleet_remote_audit_events_dropped_total", Help: "Remote-access audit events not written (queue full or store failing)."}),
	}
	for _, r := range denyReasons {
		m.denied.WithLabelValues(r)
	}
	m.all = []prometheus.Collector{m.listeners, m.active, m.connections, m.denied, m.bytesToDevice, m.bytesFromDevice, m.mappingsClosed, m.eventsDropped}
	return m
}

// Describe implements prometheus.Collector.
func (m *metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, c := range m.all {
		c.Describe(ch)
	}
}

// Collect implements prometheus.Collector.
func (m *metrics) Collect(ch chan<- prometheus.Metric) {
	for _, c := range m.all {
		c.Collect(ch)
	}
}
