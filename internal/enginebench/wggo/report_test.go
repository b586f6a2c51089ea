// SPDX-License-Identifier: Apache-2.0

package wggo

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/wirefleet/wirefleet/internal/enginebench"
)

// TestRunReportsRatios runs the whole benchmark, tiny, with wireguard-go
// standing in for both subjects, and checks the JSON contract: the required
// top-level keys exist, our figures and ratios are filled, and a ratio is ours
// divided by the baseline's.
func TestRunReportsRatios(t *testing.T) {
	rep, err := enginebench.Run([]enginebench.Subject{ours{}, Subject{}}, enginebench.Options{
		Warmup: 100 * time.Millisecond, Duration: 400 * time.Millisecond, Rounds: 1,
		Handshakes: 300, HandshakeMax: 20 * time.Second,
		Peers: []int{100}, Sessions: true, Maker: Initiations{},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range rep.Subjects {
		if len(s.Errors) > 0 {
			t.Fatalf("%s: %v", s.Name, s.Errors)
		}
	}
	b, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"throughput_gbps", "throughput_ratio", "handshakes_per_sec", "handshake_ratio",
		"bytes_per_active_session", "bytes_per_active_session_wggo"} {
		v, ok := m[k]
		if !ok || v == nil {
			t.Errorf("JSON %s = %v, present %v; want a number", k, v, ok)
		}
	}
	if got, want := *rep.ThroughputRatio, *rep.ThroughputGbps / *rep.ThroughputGbpsWggo; got != want {
		t.Errorf("throughput_ratio %v, want %v", got, want)
	}
	if got, want := *rep.HandshakeRatio, *rep.HandshakesPerSec / *rep.HandshakesPerSecWggo; got != want {
		t.Errorf("handshake_ratio %v, want %v", got, want)
	}
	var table bytes.Buffer
	if err := rep.WriteTable(&table); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(table.String(), "×") || !strings.Contains(table.String(), "RSS B/active session @100") {
		t.Errorf("table lacks ratios or memory rows:\n%s", table.String())
	}
}

// TestRunWithoutOursLeavesOurFiguresNull: before our engine exists, the JSON
// still has our keys, as null, and the wireguard-go figures.
func TestRunWithoutOursLeavesOurFiguresNull(t *testing.T) {
	rep, err := enginebench.Run([]enginebench.Subject{Subject{}}, enginebench.Options{
		Warmup: 100 * time.Millisecond, Duration: 200 * time.Millisecond, Rounds: 1,
		Handshakes: 100, HandshakeMax: 20 * time.Second, Maker: Initiations{},
	})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(rep)
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	for _, k := range []string{"throughput_gbps", "throughput_ratio", "handshakes_per_sec", "handshake_ratio", "bytes_per_active_session"} {
		if v, ok := m[k]; !ok || v != nil {
			t.Errorf("JSON %s = %v (present %v), want null", k, v, ok)
		}
	}
	if rep.ThroughputGbpsWggo == nil || rep.HandshakesPerSecWggo == nil {
		t.Error("wireguard-go figures missing")
	}
}
