// SPDX-License-Identifier: Apache-2.0

package engine

import (
	"encoding/binary"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/wirefleet/wirefleet/engine/wire"
)

// Inner packets are padded to a multiple of 16, but never past the MTU:
// a full-size 1420-byte packet leaves as 1452 bytes of WireGuard (1500
// on the wire over IPv6), not 1456. Without an MTU, padding is uncapped.
func TestPaddingCappedAtMTU(t *testing.T) {
	for _, tc := range []struct {
		mtu   int
		inner int
		want  int
	}{
		{1420, 1420, 1420 + 32},
		{1420, 1419, 1420 + 32},
		{1420, 1000, 1008 + 32},
		{1420, 1500, 1504 + 32}, // above the MTU: padded as usual
		{0, 1420, 1424 + 32},
	} {
		sizes := relayedSizes(t, tc.mtu, tc.inner)
		if len(sizes) == 0 || sizes[len(sizes)-1] != tc.want {
			t.Errorf("MTU %d, inner %d bytes: transport datagrams %v, want the data packet at %d", tc.mtu, tc.inner, sizes, tc.want)
		}
	}
}

// relayedSizes has engine a (with mtu) send one inner packet of n bytes
// to engine b through a UDP relay on loopback, and returns the sizes of
// the transport-data datagrams a sent.
func relayedSizes(t *testing.T, mtu, n int) []int {
	t.Helper()
	a := newNode(t, nil, func(c *Config) { c.MTU = mtu })
	b := newNode(t, nil, nil)
	relay, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer relay.Close()
	aAddr := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: int(a.e.Port())}
	bAddr := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: int(b.e.Port())}
	var mu sync.Mutex
	var sizes []int
	go func() {
		buf := make([]byte, 65536)
		for {
			k, from, err := relay.ReadFromUDP(buf)
			if err != nil {
				return
			}
			to := aAddr
			if from.Port == aAddr.Port {
				to = bAddr
				if k > 0 && uint32(buf[0]) == wire.TypeTransport && k > wire.TransportHeaderSize+wire.TagSize {
					mu.Lock()
					sizes = append(sizes, k)
					mu.Unlock()
				}
			}
			relay.WriteToUDP(buf[:k], to)
		}
	}()
	via := relay.LocalAddr().(*net.UDPAddr).AddrPort()
	pb, err := a.e.AddPeer(PeerConfig{PublicKey: b.e.PublicKey(), AllowedIPs: pfx(addrB), Endpoint: via})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.e.AddPeer(PeerConfig{PublicKey: a.e.PublicKey(), AllowedIPs: pfx(addrA)}); err != nil {
		t.Fatal(err)
	}
	pkt := make([]byte, n)
	pkt[0] = 0x45
	binary.BigEndian.PutUint16(pkt[2:], uint16(n))
	pkt[8], pkt[9] = 64, 17
	copy(pkt[12:16], addrA.AsSlice())
	copy(pkt[16:20], addrB.AsSlice())
	binary.BigEndian.PutUint16(pkt[24:], uint16(n-20))
	a.e.Send(pb, [][]byte{pkt})
	select {
	case got := <-b.in:
		if len(got) != n {
			t.Fatalf("b received %d bytes, want %d", len(got), n)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("MTU %d, inner %d: nothing reached b", mtu, n)
	}
	mu.Lock()
	defer mu.Unlock()
	return append([]int(nil), sizes...)
}
