// SPDX-License-Identifier: Apache-2.0

package memtun

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/wirefleet/wirefleet/internal/packet"
	"golang.zx2c4.com/wireguard/tun"
)

var (
	srcAP = netip.MustParseAddrPort("10.0.0.1:4000")
	dstAP = netip.MustParseAddrPort("10.0.0.2:5000")
)

func TestUDPPacketHeader(t *testing.T) {
	p := UDPPacket(srcAP, dstAP, 1420)
	if len(p) != 1420 {
		t.Fatalf("len = %d", len(p))
	}
	if p[0] != 0x45 || p[9] != 17 || binary.BigEndian.Uint16(p[2:]) != 1420 {
		t.Fatalf("bad IPv4 header % x", p[:20])
	}
	// A correct header checksums to zero (0xffff before the final complement).
	if packet.Checksum(p[:20]) != 0 {
		t.Fatalf("IPv4 header checksum invalid: % x", p[:20])
	}
	if got := netip.AddrFrom4([4]byte(p[12:16])); got != srcAP.Addr() {
		t.Fatalf("src = %v", got)
	}
	if got := netip.AddrFrom4([4]byte(p[16:20])); got != dstAP.Addr() {
		t.Fatalf("dst = %v", got)
	}
	if binary.BigEndian.Uint16(p[22:]) != 5000 || binary.BigEndian.Uint16(p[24:]) != 1400 {
		t.Fatalf("bad UDP header % x", p[20:28])
	}
}

func TestSourceFillsBatchWithoutAllocating(t *testing.T) {
	pkt := UDPPacket(srcAP, dstAP, 200)
	s := NewSource(pkt, 0, 8)
	bufs := make([][]byte, 16)
	for i := range bufs {
		bufs[i] = make([]byte, 16+1500)
	}
	sizes := make([]int, 16)
	n, err := s.Read(bufs, sizes, 16)
	if err != nil || n != 8 {
		t.Fatalf("Read = %d, %v; want 8 (batch size), nil", n, err)
	}
	for i := 0; i < n; i++ {
		if sizes[i] != 200 || !bytes.Equal(bufs[i][16:16+200], pkt) {
			t.Fatalf("packet %d wrong", i)
		}
	}
	if s.Generated.Packets() != 8 || s.Generated.Bytes() != 1600 {
		t.Fatalf("Generated = %d packets %d bytes", s.Generated.Packets(), s.Generated.Bytes())
	}
	if a := testing.AllocsPerRun(100, func() { _, _ = s.Read(bufs, sizes, 16) }); a != 0 {
		t.Fatalf("Read allocates %v times per call", a)
	}
	s.Close()
	if _, err := s.Read(bufs, sizes, 16); !errors.Is(err, os.ErrClosed) {
		t.Fatalf("Read after Close: %v", err)
	}
}

func TestSinkCountsAndBlocks(t *testing.T) {
	s := NewSink(0, 0)
	select {
	case ev := <-s.Events():
		t.Fatalf("event %v before any SendEvent", ev)
	default:
	}
	s.SendEvent(tun.EventUp)
	if ev := <-s.Events(); ev != tun.EventUp {
		t.Fatalf("event %v, want EventUp", ev)
	}
	bufs := [][]byte{make([]byte, 10+100), make([]byte, 10+50)}
	if n, err := s.Write(bufs, 10); n != 2 || err != nil {
		t.Fatalf("Write = %d, %v", n, err)
	}
	if s.Written.Packets() != 2 || s.Written.Bytes() != 150 {
		t.Fatalf("Written = %d packets %d bytes, want 2, 150", s.Written.Packets(), s.Written.Bytes())
	}
	if a := testing.AllocsPerRun(100, func() { _, _ = s.Write(bufs, 10) }); a != 0 {
		t.Fatalf("Write allocates %v times per call", a)
	}
	done := make(chan error, 1)
	go func() {
		_, err := s.Read(make([][]byte, 1), make([]int, 1), 0)
		done <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("Read returned before Close: %v", err)
	case <-time.After(50 * time.Millisecond):
	}
	s.Close()
	if err := <-done; !errors.Is(err, os.ErrClosed) {
		t.Fatalf("Read after Close: %v", err)
	}
}

func TestChanRoundTrip(t *testing.T) {
	c := NewChan(0, 4, 2)
	a, b := []byte("first"), []byte("second")
	c.Send(a)
	c.Send(b)
	bufs := [][]byte{make([]byte, 32), make([]byte, 32), make([]byte, 32)}
	sizes := make([]int, 3)
	n, err := c.Read(bufs, sizes, 4)
	if err != nil || n != 2 {
		t.Fatalf("Read = %d, %v; want both queued packets", n, err)
	}
	if string(bufs[0][4:4+sizes[0]]) != "first" || string(bufs[1][4:4+sizes[1]]) != "second" {
		t.Fatal("Read returned wrong packets")
	}
	// Three writes into a queue of two: the third is dropped and counted.
	w := [][]byte{append([]byte("xxxx"), "one"...), append([]byte("xxxx"), "two"...), append([]byte("xxxx"), "three"...)}
	if n, err := c.Write(w, 4); n != 3 || err != nil {
		t.Fatalf("Write = %d, %v", n, err)
	}
	if p, ok := c.Recv(); !ok || string(p) != "one" {
		t.Fatalf("Recv = %q, %v", p, ok)
	}
	if p, ok := c.Recv(); !ok || string(p) != "two" {
		t.Fatalf("Recv = %q, %v", p, ok)
	}
	if c.Dropped.Packets() != 1 {
		t.Fatalf("Dropped = %d, want 1", c.Dropped.Packets())
	}
	// Write copies: changing the caller's buffer must not change what was queued.
	c.Write([][]byte{append([]byte("xxxx"), "keep"...)}, 4)
	w[0][4] = 'X'
	c.Close()
	if p, ok := c.Recv(); !ok || string(p) != "keep" {
		t.Fatalf("Recv after close with queued packet = %q, %v", p, ok)
	}
	if _, ok := c.Recv(); ok {
		t.Fatal("Recv on closed, empty device returned a packet")
	}
}

func BenchmarkSourceRead(b *testing.B) {
	s := NewSource(UDPPacket(srcAP, dstAP, 1420), 0, 128)
	bufs := make([][]byte, 128)
	for i := range bufs {
		bufs[i] = make([]byte, 16+1500)
	}
	sizes := make([]int, 128)
	b.SetBytes(128 * 1420)
	for b.Loop() {
		_, _ = s.Read(bufs, sizes, 16)
	}
}
