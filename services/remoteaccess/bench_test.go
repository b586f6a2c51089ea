// SPDX-License-Identifier: Apache-2.0

package remoteaccess_test

import (
	"context"
	"io"
	"net/netip"
	"testing"

	"github.com/wirefleet/wirefleet/controlplane"
	"github.com/wirefleet/wirefleet/fleet"
)

// benchMapping is a device serving devPort behind a mapping open to an
// operator namespace.
func benchMapping(b *testing.B) (*fixture, *operator, fleet.MappingView) {
	f := newFixture(b, controlplane.RemotePolicy{MaxConnections: 64})
	d := f.newDevice()
	d.serve(b, devPort)
	op := f.newOperator(1)
	m, err := f.svc.CreateMapping(context.Background(), f.admin, controlplane.MappingSpec{SIMID: d.sim.ID, Port: devPort,
		AllowedSources: []netip.Prefix{netip.PrefixFrom(op.addr, 32)}})
	if err != nil {
		b.Fatal(err)
	}
	f.waitListening(m.ID, true)
	return f, op, m
}

// BenchmarkMappingConnect: one operator connection through a mapping to a
// device (Debian wireguard-go) and its first bytes back, then close: the
// cost of admitting, dialling through the tunnel and auditing.
func BenchmarkMappingConnect(b *testing.B) {
	_, op, m := benchMapping(b)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		c, err := op.dial(m.PublicPort)
		if err != nil {
			b.Fatal(err)
		}
		if g, err := readGreeting(c); err != nil || g != greeting {
			b.Fatalf("greeting %q %v", g, err)
		}
		c.Close()
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "conn/s")
}

// BenchmarkMappingThroughput: bytes from the operator to the device and
// echoed back, through one mapping connection.
func BenchmarkMappingThroughput(b *testing.B) {
	_, op, m := benchMapping(b)
	c, err := op.dial(m.PublicPort)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	if _, err := readGreeting(c); err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 64<<10)
	back := make([]byte, len(buf))
	b.SetBytes(int64(len(buf)))
	b.ResetTimer()
	done := make(chan error, 1)
	go func() {
		for i := 0; i < b.N; i++ {
			if _, err := io.ReadFull(c, back); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	for i := 0; i < b.N; i++ {
		if _, err := c.Write(buf); err != nil {
			b.Fatal(err)
		}
	}
	if err := <-done; err != nil {
		b.Fatal(err)
	}
}
