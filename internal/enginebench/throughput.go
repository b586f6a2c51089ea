// SPDX-License-Identifier: Apache-2.0

package enginebench

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/wirefleet/wirefleet/internal/memtun"
)

// InnerPacketSize is the inner packet of the throughput test: the largest that
// fits WireGuard's default 1420 MTU.
const InnerPacketSize = 1420

// ThroughputResult is one bulk-throughput measurement.
type ThroughputResult struct {
	Gbps          float64   `json:"gbps"`            // inner IP packet bytes delivered to the sink, per second, in Gbit
	PacketsPerSec float64   `json:"packets_per_sec"` // inner packets delivered per second
	Loss          float64   `json:"loss"`            // share of generated packets not delivered during the window
	DurationSec   float64   `json:"duration_sec"`
	RoundsGbps    []float64 `json:"rounds_gbps,omitempty"` // every round, when this is the median of several
}

// Throughput connects two engines of s over loopback UDP, feeds engine A with
// 1420-byte IPv4/UDP packets from a memtun.Source as fast as it takes them,
// and counts what engine B writes to a memtun.Sink: after warmup, over
// duration.
func Throughput(s Subject, warmup, duration time.Duration) (res ThroughputResult, err error) {
	innerA, innerB := netip.MustParseAddr("10.128.0.1"), netip.MustParseAddr("10.128.0.2")
	pkt := memtun.UDPPacket(netip.AddrPortFrom(innerA, 40000), netip.AddrPortFrom(innerB, 9), InnerPacketSize)
	src := memtun.NewSource(pkt, 0, 0)
	sink := memtun.NewSink(0, 0)
	tunnel, err := s.NewTunnel(TunnelConfig{
		A: TunnelEnd{PrivateKey: NewPrivateKey(), Tun: src, Inner: innerA},
		B: TunnelEnd{PrivateKey: NewPrivateKey(), Tun: sink, Inner: innerB},
	})
	if err != nil {
		return ThroughputResult{}, fmt.Errorf("%s: tunnel: %w", s.Name(), err)
	}
	defer func() {
		if cerr := closeWithin(s.Name()+" tunnel", tunnel, CloseTimeout); cerr != nil && err == nil {
			err = cerr
		}
	}()

	// The first packets trigger the handshake; wait for delivery to start.
	deadline := time.Now().Add(10 * time.Second)
	for sink.Written.Packets() == 0 {
		if time.Now().After(deadline) {
			return ThroughputResult{}, fmt.Errorf("%s: no packet delivered within 10s", s.Name())
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(warmup)
	g0, b0, p0, t0 := src.Generated.Packets(), sink.Written.Bytes(), sink.Written.Packets(), time.Now()
	time.Sleep(duration)
	g1, b1, p1, t1 := src.Generated.Packets(), sink.Written.Bytes(), sink.Written.Packets(), time.Now()
	sec := t1.Sub(t0).Seconds()
	r := ThroughputResult{
		Gbps:          float64(b1-b0) * 8 / sec / 1e9,
		PacketsPerSec: float64(p1-p0) / sec,
		DurationSec:   sec,
	}
	if g := g1 - g0; g > 0 && p1-p0 <= g {
		r.Loss = 1 - float64(p1-p0)/float64(g)
	}
	return r, nil
}
