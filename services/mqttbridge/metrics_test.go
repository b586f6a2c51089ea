// SPDX-License-Identifier: Apache-2.0

package mqttbridge

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func TestStatsCollector(t *testing.T) {
	var s Stats
	s.Sessions.Add(3)
	s.ToBroker.Add(5)
	s.ToDevice.Add(7)
	s.Rejected.Add(1)
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(s.Collector())
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			name := f.GetName()
			for _, l := range m.GetLabel() {
				name += "/" + l.GetValue()
			}
			got[name] = m.GetCounter().GetValue()
		}
	}
	want := map[string]float64{
		"wirefleet_mqtt_sessions_total": 3, "wirefleet_mqtt_connects_refused_total": 0,
		"wirefleet_mqtt_publishes_total/to_broker": 5, "wirefleet_mqtt_publishes_total/to_device": 7,
		"wirefleet_mqtt_topics_rejected_total": 1, "wirefleet_mqtt_undeliverable_total": 0,
	}
	if len(got) != len(want) {
		t.Errorf("got %v", got)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
}
