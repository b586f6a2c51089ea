// SPDX-License-Identifier: Apache-2.0

// Package memtun provides in-memory implementations of tun.Device
// (golang.zx2c4.com/wireguard/tun) for benchmarks and in-process tests:
//
//   - Source: every Read returns a full batch of one pre-built IPv4/UDP packet,
//     as fast as the engine asks; what the engine writes back is counted and
//     dropped. It feeds an engine's send path.
//   - Sink: Read blocks until Close; Write counts packets and bytes. It is the
//     far end of a throughput measurement.
//   - Chan: packets injected with Send come out of Read, packets the engine
//     writes come out of Recv. For functional tests.
//
// Source and Sink do no per-packet allocation and touch shared counters once
// per batch: a benchmark built on them measures the engine, not the TUN.
package memtun

import (
	"encoding/binary"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"

	"github.com/wirefleet/wirefleet/internal/packet"
	"golang.zx2c4.com/wireguard/tun"
)

// DefaultMTU is the MTU devices report unless told otherwise: WireGuard's
// default, which makes 1420-byte inner packets the largest that fit.
const DefaultMTU = 1420

// DefaultBatchSize is how many packets a Read or Write may carry; it matches
// the batch size of golang.zx2c4.com/wireguard's Linux UDP bind.
const DefaultBatchSize = 128

// base holds what every device here shares: name, MTU, batch size, events, close.
type base struct {
	name      string
	mtu       int
	batch     int
	events    chan tun.Event
	closed    chan struct{}
	closeOnce sync.Once
	eventsMu  sync.Mutex // orders SendEvent against closing events
}

func (b *base) init(name string, mtu, batch int) {
	if mtu <= 0 {
		mtu = DefaultMTU
	}
	if batch <= 0 {
		batch = DefaultBatchSize
	}
	b.name, b.mtu, b.batch = name, mtu, batch
	// No EventUp: wireguard-go's device brings itself up on that event, and
	// benchmarks and tests want to decide when an engine starts listening.
	// Use SendEvent to imitate a kernel TUN going up.
	b.events = make(chan tun.Event, 4)
	b.closed = make(chan struct{})
}

// SendEvent delivers ev on the Events channel (dropped if 4 are already
// pending or the device is closed).
func (b *base) SendEvent(ev tun.Event) {
	b.eventsMu.Lock()
	defer b.eventsMu.Unlock()
	if b.isClosed() {
		return
	}
	select {
	case b.events <- ev:
	default:
	}
}

// File returns nil: there is no file descriptor behind a memory device.
func (b *base) File() *os.File { return nil }

// MTU returns the MTU given at creation.
func (b *base) MTU() (int, error) { return b.mtu, nil }

// Name returns the name given at creation.
func (b *base) Name() (string, error) { return b.name, nil }

// Events returns the event channel: what SendEvent sends, closed by Close.
func (b *base) Events() <-chan tun.Event { return b.events }

// BatchSize returns the most packets one Read or Write carries.
func (b *base) BatchSize() int { return b.batch }

// Close unblocks Read (which then returns os.ErrClosed) and closes Events.
func (b *base) Close() error {
	b.closeOnce.Do(func() {
		b.eventsMu.Lock()
		defer b.eventsMu.Unlock()
		close(b.closed)
		close(b.events)
	})
	return nil
}

func (b *base) isClosed() bool {
	select {
	case <-b.closed:
		return true
	default:
		return false
	}
}

// Counter counts packets and bytes; safe for concurrent use.
type Counter struct {
	packets atomic.Uint64
	bytes   atomic.Uint64
}

func (c *Counter) add(packets, bytes int) {
	c.packets.Add(uint64(packets))
	c.bytes.Add(uint64(bytes))
}

// Packets returns the packets counted so far.
func (c *Counter) Packets() uint64 { return c.packets.Load() }

// Bytes returns the bytes counted so far (whole IP packets).
func (c *Counter) Bytes() uint64 { return c.bytes.Load() }

// Source is a tun.Device that hands the engine copies of one packet, a full
// batch per Read, as fast as it reads. Generated counts what Read handed out,
// Written what the engine wrote back (and was dropped).
type Source struct {
	base
	packet    []byte
	Generated Counter
	Written   Counter
}

// NewSource returns a Source generating packet (not copied; do not modify it
// afterwards). mtu and batch of 0 pick DefaultMTU and DefaultBatchSize.
func NewSource(packet []byte, mtu, batch int) *Source {
	s := &Source{packet: packet}
	s.init("memtun-source", mtu, batch)
	return s
}

// Read fills every buffer, up to the batch size, with the packet.
func (s *Source) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	if s.isClosed() {
		return 0, os.ErrClosed
	}
	n := min(len(bufs), s.batch)
	for i := 0; i < n; i++ {
		sizes[i] = copy(bufs[i][offset:], s.packet)
	}
	s.Generated.add(n, n*len(s.packet))
	return n, nil
}

// Write counts and drops what the engine delivers.
func (s *Source) Write(bufs [][]byte, offset int) (int, error) {
	s.Written.add(len(bufs), batchBytes(bufs, offset))
	return len(bufs), nil
}

// Sink is a tun.Device that only receives: Read blocks until Close, Write
// counts and drops.
type Sink struct {
	base
	Written Counter
}

// NewSink returns a Sink. mtu and batch of 0 pick the defaults.
func NewSink(mtu, batch int) *Sink {
	s := &Sink{}
	s.init("memtun-sink", mtu, batch)
	return s
}

// Read blocks until the device is closed.
func (s *Sink) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	<-s.closed
	return 0, os.ErrClosed
}

// Write counts and drops the packets.
func (s *Sink) Write(bufs [][]byte, offset int) (int, error) {
	s.Written.add(len(bufs), batchBytes(bufs, offset))
	return len(bufs), nil
}

func batchBytes(bufs [][]byte, offset int) int {
	total := 0
	for _, b := range bufs {
		total += len(b) - offset
	}
	return total
}

// Chan is a tun.Device connected to the test by channels: Send queues a packet
// for the engine to Read, Recv returns packets the engine wrote. Like a kernel
// TUN, it drops what the test does not collect fast enough (counted in
// Dropped) rather than blocking the engine.
type Chan struct {
	base
	in      chan []byte
	out     chan []byte
	Dropped Counter
}

// NewChan returns a Chan whose queues hold queueLen packets each. mtu and batch
// of 0 pick the defaults.
func NewChan(mtu, batch, queueLen int) *Chan {
	c := &Chan{in: make(chan []byte, queueLen), out: make(chan []byte, queueLen)}
	c.init("memtun-chan", mtu, batch)
	return c
}

// Send queues packet for the engine (it is not copied). It returns false if
// the device is closed.
func (c *Chan) Send(packet []byte) bool {
	select {
	case c.in <- packet:
		return true
	case <-c.closed:
		return false
	}
}

// Recv returns the next packet the engine wrote, or false once the device is
// closed and nothing is queued.
func (c *Chan) Recv() ([]byte, bool) {
	select {
	case p := <-c.out:
		return p, true
	case <-c.closed:
		select {
		case p := <-c.out:
			return p, true
		default:
			return nil, false
		}
	}
}

// Out returns the channel Recv reads, for select statements with a timeout.
func (c *Chan) Out() <-chan []byte { return c.out }

// Read blocks for one queued packet, then takes more queued ones up to the
// batch size without blocking.
func (c *Chan) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	var p []byte
	select {
	case p = <-c.in:
	case <-c.closed:
		return 0, os.ErrClosed
	}
	limit := min(len(bufs), c.batch)
	n := 0
	for {
		sizes[n] = copy(bufs[n][offset:], p)
		n++
		if n == limit {
			return n, nil
		}
		select {
		case p = <-c.in:
		default:
			return n, nil
		}
	}
}

// Write copies each packet onto the Recv queue, dropping it when the queue is full.
func (c *Chan) Write(bufs [][]byte, offset int) (int, error) {
	if c.isClosed() {
		return 0, os.ErrClosed
	}
	for _, b := range bufs {
		p := append([]byte(nil), b[offset:]...)
		select {
		case c.out <- p:
		default:
			c.Dropped.add(1, len(p))
		}
	}
	return len(bufs), nil
}

// UDPPacket builds a UDP packet of exactly size bytes from src to dst, with
// a payload of 0, 1, 2, ... (mod 256): over IPv4 (at least 28 bytes) with a
// valid header checksum and no UDP checksum (allowed over IPv4), over IPv6
// (at least 48 bytes) with the UDP checksum IPv6 requires.
func UDPPacket(src, dst netip.AddrPort, size int) []byte {
	if src.Addr().Is6() && dst.Addr().Is6() {
		return udpPacket6(src, dst, size)
	}
	if !src.Addr().Is4() || !dst.Addr().Is4() {
		panic("memtun: UDPPacket needs two addresses of one family")
	}
	if size < 28 || size > 0xffff {
		panic("memtun: UDPPacket size out of range")
	}
	p := make([]byte, size)
	p[0] = 0x45 // version 4, 20-byte header
	binary.BigEndian.PutUint16(p[2:], uint16(size))
	p[8] = 64 // TTL
	p[9] = packet.UDP
	s, d := src.Addr().As4(), dst.Addr().As4()
	copy(p[12:16], s[:])
	copy(p[16:20], d[:])
	binary.BigEndian.PutUint16(p[10:], packet.Checksum(p[:20]))
	binary.BigEndian.PutUint16(p[20:], src.Port())
	binary.BigEndian.PutUint16(p[22:], dst.Port())
	binary.BigEndian.PutUint16(p[24:], uint16(size-20))
	for i := 28; i < size; i++ {
		p[i] = byte(i - 28)
	}
	return p
}

// udpPacket6 is UDPPacket for IPv6 (where the UDP checksum is required).
func udpPacket6(src, dst netip.AddrPort, size int) []byte {
	if size < 48 || size > 0xffff {
		panic("memtun: UDPPacket size out of range")
	}
	p := make([]byte, size)
	p[0] = 0x60
	binary.BigEndian.PutUint16(p[4:], uint16(size-40))
	p[6], p[7] = packet.UDP, 64
	s, d := src.Addr().As16(), dst.Addr().As16()
	copy(p[8:24], s[:])
	copy(p[24:40], d[:])
	u := p[40:]
	binary.BigEndian.PutUint16(u[0:], src.Port())
	binary.BigEndian.PutUint16(u[2:], dst.Port())
	binary.BigEndian.PutUint16(u[4:], uint16(len(u)))
	for i := 8; i < len(u); i++ {
		u[i] = byte(i - 8)
	}
	binary.BigEndian.PutUint16(u[6:], packet.TransportChecksum(packet.UDP, src.Addr(), dst.Addr(), u))
	return p
}

var (
	_ tun.Device = (*Source)(nil)
	_ tun.Device = (*Sink)(nil)
	_ tun.Device = (*Chan)(nil)
)
