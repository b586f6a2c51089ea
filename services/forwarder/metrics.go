// SPDX-License-Identifier: Apache-2.0

package forwarder

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wirefleet/wirefleet/services/mqttbridge"
)

// Route kinds, the "kind" label of the metrics.
const (
	kindHTTP    = "http"
	kindTCPTLS  = "tcp_tls"  // TCP relayed to a TLS server
	kindTCPHTTP = "tcp_http" // TCP messages posted to HTTP(S)
	kindUDP     = "udp"
	kindMQTT    = "mqtt"
	kindRecord  = "record" // records the platform made (inspection), posted along an HTTP route
)

type metrics struct {
	requests *prometheus.CounterVec
	errors   *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	mqtt     []prometheus.Collector // the bridge's counters, read at scrape time
}

func newMetrics(reg prometheus.Registerer, st *mqttbridge.Stats) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "wirefleet_forwarder_requests_total",
			Help: "Requests (HTTP requests, TCP messages or connections, UDP datagrams, MQTT connections) received by the forwarder, by route kind."}, []string{"kind"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "wirefleet_forwarder_errors_total",
			Help: "Forwarder failures by route kind and reason (unknown_sim, no_route, bad_request, too_large, unreachable, timeout, tls, destination_error, destination_status, secret, busy, bridge)."}, []string{"kind", "reason"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "wirefleet_forwarder_duration_seconds",
			Help:    "Time from a request's arrival to the destination's answer relayed (TCP to TLS: the connection's life), by route kind.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2.5, 12)}, []string{"kind"}),
	}
	for _, c := range []struct {
		name, help string
		v          func() int64
	}{
		{"wirefleet_forwarder_mqtt_sessions_total", "MQTT device connections the broker accepted through the bridge.", st.Sessions.Load},
		{"wirefleet_forwarder_mqtt_refused_total", "MQTT device connections refused (broker refusal or unreachable, bad configuration).", st.Refused.Load},
		{"wirefleet_forwarder_mqtt_to_broker_total", "PUBLISH packets relayed from devices to brokers.", st.ToBroker.Load},
		{"wirefleet_forwarder_mqtt_to_device_total", "PUBLISH packets relayed from brokers to devices.", st.ToDevice.Load},
		{"wirefleet_forwarder_mqtt_rejected_total", "Device topics and filters the bridge refused.", st.Rejected.Load},
	} {
		v := c.v
		m.mqtt = append(m.mqtt, prometheus.NewCounterFunc(prometheus.CounterOpts{Name: c.name, Help: c.help}, func() float64 { return float64(v()) }))
	}
	for _, k := range []string{kindHTTP, kindTCPTLS, kindTCPHTTP, kindUDP, kindMQTT} {
		m.requests.WithLabelValues(k) // exported as 0 before the first request
	}
	if reg != nil {
		reg.MustRegister(m.requests, m.errors, m.latency)
		reg.MustRegister(m.mqtt...)
	}
	return m
}

func (m *metrics) request(kind string)      { m.requests.WithLabelValues(kind).Inc() }
func (m *metrics) fail(kind, reason string) { m.errors.WithLabelValues(kind, reason).Inc() }
func (m *metrics) since(kind string, t time.Time) {
	m.latency.WithLabelValues(kind).Observe(time.Since(t).Seconds())
}

// Collector returns the forwarder's metrics, for a registry (an
// alternative to Config.Registerer).
func (s *Service) Collector() prometheus.Collector { return s.m }

// Describe implements prometheus.Collector.
func (m *metrics) Describe(ch chan<- *prometheus.Desc) {
	m.requests.Describe(ch)
	m.errors.Describe(ch)
	m.latency.Describe(ch)
	for _, c := range m.mqtt {
		c.Describe(ch)
	}
}

// Collect implements prometheus.Collector.
func (m *metrics) Collect(ch chan<- prometheus.Metric) {
	m.requests.Collect(ch)
	m.errors.Collect(ch)
	m.latency.Collect(ch)
	for _, c := range m.mqtt {
		c.Collect(ch)
	}
}
