// SPDX-License-Identifier: Apache-2.0

package mqttbridge

import "github.com/prometheus/client_golang/prometheus"

var (
	descSessions = prometheus.NewDesc("wirefleet_mqtt_sessions_total",
		"Device MQTT sessions the broker accepted through the bridge.", nil, nil)
	descRefused = prometheus.NewDesc("wirefleet_mqtt_connects_refused_total",
		"Device CONNECTs answered with a failure (broker refused or unreachable, unsupported version, configuration).", nil, nil)
	descPublishes = prometheus.NewDesc("wirefleet_mqtt_publishes_total",
		"PUBLISH packets relayed, by direction (to_broker, to_device).", []string{"direction"}, nil)
	descRejected = prometheus.NewDesc("wirefleet_mqtt_topics_rejected_total",
		"Device topics and filters the bridge refused (outside the device's namespace, reserved, malformed).", nil, nil)
	descUndeliverable = prometheus.NewDesc("wirefleet_mqtt_undeliverable_total",
		"Broker messages whose topic does not map back to the device, acknowledged and not delivered.", nil, nil)
)

// Collector exports s as Prometheus counters (wirefleet_mqtt_…).
func (s *Stats) Collector() prometheus.Collector { return (*statsCollector)(s) }

type statsCollector Stats

// Describe implements prometheus.Collector.
func (c *statsCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descSessions, descRefused, descPublishes, descRejected, descUndeliverable} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *statsCollector) Collect(ch chan<- prometheus.Metric) {
	counter := func(d *prometheus.Desc, v int64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	counter(descSessions, c.Sessions.Load())
	counter(descRefused, c.Refused.Load())
	counter(descPublishes, c.ToBroker.Load(), "to_broker")
	counter(descPublishes, c.ToDevice.Load(), "to_device")
	counter(descRejected, c.Rejected.Load())
	counter(descUndeliverable, c.Undeliverable.Load())
}
