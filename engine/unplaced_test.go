// SPDX-License-Identifier: Apache-2.0

package engine

import (
	"context"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/wirefleet/wirefleet/wgkey"
)

// TestInitiateToOneShot: an initiation InitiateTo sends (asked by a packet
// nobody could authenticate) is sent once, not retransmitted, to an
// endpoint that does not answer.
func TestInitiateToOneShot(t *testing.T) {
	devKey, _ := wgkey.NewPrivate()
	res := mapResolver{devKey.Public(): {AllowedIPs: pfx(netip.MustParseAddr("10.9.0.2"))}}
	n := newNode(t, nil, func(c *Config) { c.Resolver = res })
	sink, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	ep, err := n.e.bind.ParseEndpoint(sink.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	if err := n.e.InitiateTo(context.Background(), devKey.Public(), ep); err != nil {
		t.Fatal(err)
	}
	got := 0
	buf := make([]byte, 2048)
	sink.SetReadDeadline(time.Now().Add(RekeyTimeout + 2*time.Second))
	for {
		if _, err := sink.Read(buf); err != nil {
			break
		}
		got++
	}
	if got != 1 {
		t.Fatalf("%d initiations reached a silent endpoint in %s, want 1 (not retransmitted)", got, RekeyTimeout+2*time.Second)
	}
}
