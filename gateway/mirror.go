// SPDX-License-Identifier: Apache-2.0

package gateway

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"unsafe"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
	"golang.org/x/sys/unix"
	"golang.org/x/time/rate"

	"github.com/wirefleet/wirefleet/engine"
	"github.com/wirefleet/wirefleet/fleet"
)

// Mirroring: a copy of every packet of a group's SIMs, both directions,
// goes to the group's mirror peers inside GRE (RFC 2784; or GRE in UDP,
// RFC 8086), unchanged. A slow or absent peer never slows the devices:
// copies wait in a bounded queue for one sender goroutine, each peer has a
// rate cap, and what does not fit is dropped and counted.
const (
	mirrorQueue = 4096   // copies waiting to be sent, all peers
	mirrorRate  = 20_000 // packets per second per peer, unless Config.MirrorPacketsPerSecond says
	mirrorBurst = 4096
)

// mirrorTarget is one enabled peer as the data path holds it.
type mirrorTarget struct {
	addr    netip.Addr
	udp     bool
	port    uint16
	limiter *rate.Limiter
	denied  error // the platform's egress policy refuses the address
}

// mirrorTargets compiles a group's enabled peers.
func mirrorTargets(m fleet.Mirroring, g *Gateway) []*mirrorTarget {
	var out []*mirrorTarget
	for _, p := range m.Peers {
		if !p.Enabled {
			continue
		}
		a, err := netip.ParseAddr(p.IPAddress)
		if err != nil {
			continue
		}
		pps := mirrorRate
		if g.cfg.MirrorPacketsPerSecond > 0 {
			pps = g.cfg.MirrorPacketsPerSecond
		}
		t := &mirrorTarget{addr: a, udp: p.Protocol == fleet.MirrorGREUDP, port: p.Port, limiter: rate.NewLimiter(rate.Limit(pps), max(mirrorBurst, pps/10))}
		if t.udp && t.port == 0 {
			t.port = fleet.DefaultMirrorUDPPort
		}
		// An operator's setting must not make the gateway send the fleet's
		// traffic into the host's own networks unless the admin said so.
		t.denied = g.cfg.Egress.Check(a)
		out = append(out, t)
	}
	return out
}

type mirrorCopy struct {
	to  []*mirrorTarget
	pkt *[]byte
}

// mirror is the sender.
type mirror struct {
	g     *Gateway
	queue chan mirrorCopy
	conns map[string]*outConn // by network, opened at first use
	warn  sync.Map            // network → logged once

	sent, dropped, denied atomic.Uint64
}

func newMirror(g *Gateway) *mirror {
	return &mirror{g: g, queue: make(chan mirrorCopy, mirrorQueue), conns: map[string]*outConn{}}
}

// copy queues pkt for the targets; it never blocks.
func (m *mirror) copy(to []*mirrorTarget, pkt []byte) {
	b := getBuf()
	if len(pkt) > cap(*b) {
		putBuf(b)
		m.dropped.Add(uint64(len(to)))
		return
	}
	*b = append((*b)[:0], pkt...)
	select {
	case m.queue <- mirrorCopy{to: to, pkt: b}:
	default:
		putBuf(b)
		m.dropped.Add(uint64(len(to)))
	}
}

// mirrorBatch is how many copies one sendmmsg carries.
const mirrorBatch = 64

// batchWriter is a socket's batch write (ipv4.PacketConn and
// ipv6.PacketConn both have it).
type batchWriter interface {
	WriteBatch(ms []ipv4.Message, flags int) (int, error)
}

// outConn is an open mirror socket and the copies waiting for it.
type outConn struct {
	pc      net.PacketConn
	batch   batchWriter
	pending []ipv4.Message
	// gso: a UDP socket that may send runs of equal-sized copies to one
	// peer as one UDP GSO super-datagram (UDP_SEGMENT): one pass through
	// the kernel's stack for up to gsoSegments copies. Off for good when
	// the kernel refuses it.
	gso     bool
	gsoBufs [][]byte
	gsoOut  []ipv4.Message
}

// run sends until ctx ends: it takes what has queued up (up to a batch),
// encapsulates each copy once per target, and writes each socket's share
// with one sendmmsg.
func (m *mirror) run(ctx context.Context) {
	defer m.g.wg.Done()
	bufs := make([][]byte, 0, mirrorBatch*fleet.MaxMirrorPeers)
	var copies []mirrorCopy
	for {
		select {
		case <-ctx.Done():
			for _, c := range m.conns {
				c.pc.Close()
			}
			return
		case c := <-m.queue:
			copies = append(copies[:0], c)
		}
	gather:
		for len(copies) < mirrorBatch {
			select {
			case c := <-m.queue:
				copies = append(copies, c)
			default:
				break gather
			}
		}
		bufs = bufs[:0]
		for _, c := range copies {
			pkt := *c.pkt
			proto := [2]byte{0x08, 0x00}
			if len(pkt) > 0 && pkt[0]>>4 == 6 {
				proto = [2]byte{0x86, 0xdd}
			}
			for _, t := range c.to {
				if len(bufs) == cap(bufs) {
					break
				}
				bufs = bufs[:len(bufs)+1]
				b := bufs[len(bufs)-1]
				if cap(b) < len(pkt)+4 {
					b = make([]byte, 0, tunnelMTU+128)
				}
				// GRE: no checksum, key or sequence; version 0.
				b = append(append(b[:0], 0, 0, proto[0], proto[1]), pkt...)
				bufs[len(bufs)-1] = b
				m.queueFor(t, b)
			}
			putBuf(c.pkt)
		}
		for _, c := range m.conns {
			m.flush(c)
		}
	}
}

// queueFor adds a GRE packet for target t to its socket's batch.
func (m *mirror) queueFor(t *mirrorTarget, gre []byte) {
	if t.denied != nil {
		m.denied.Add(1)
		return
	}
	if !t.limiter.Allow() {
		m.dropped.Add(1)
		return
	}
	network, laddr := "ip4:gre", "0.0.0.0"
	var to net.Addr = &net.IPAddr{IP: t.addr.AsSlice()}
	switch {
	case t.udp:
		network, laddr, to = "udp", ":0", &net.UDPAddr{IP: t.addr.AsSlice(), Port: int(t.port)}
	case t.addr.Is6():
		network, laddr = "ip6:gre", "::"
	}
	c := m.conns[network]
	if c == nil {
		pc, err := m.g.outside.ListenPacket(network, laddr)
		if err != nil {
			if _, seen := m.warn.LoadOrStore(network, true); !seen {
				m.g.log.Warn("mirroring: cannot open the socket (GRE over IP needs CAP_NET_RAW; GRE in UDP does not)", "network", network, "err", err)
			}
			m.dropped.Add(1)
			return
		}
		c = &outConn{pc: pc}
		_, c.gso = pc.(*net.UDPConn)
		c.gso = c.gso && network == "udp"
		if network == "ip6:gre" {
			c.batch = ipv6.NewPacketConn(pc)
		} else {
			c.batch = ipv4.NewPacketConn(pc)
		}
		m.conns[network] = c
	}
	c.pending = append(c.pending, ipv4.Message{Buffers: [][]byte{gre}, Addr: to})
}

// flush writes a socket's batch; what the kernel does not take is dropped.
func (m *mirror) flush(c *outConn) {
	if c.gso && len(c.pending) > 1 {
		if m.flushGSO(c) {
			return
		}
		c.gso = false
		m.g.log.Info("mirroring: the kernel refuses UDP GSO; sending copies one by one")
	}
	all, rest := c.pending, c.pending
	for len(rest) > 0 {
		n, err := c.batch.WriteBatch(rest, 0)
		if err != nil || n == 0 {
			m.dropped.Add(uint64(len(rest)))
			break
		}
		m.sent.Add(uint64(n))
		rest = rest[n:]
	}
	c.pending = all[:0]
}

// UDP GSO limits: segments per super-datagram (the kernel's UDP_MAX_SEGMENTS
// is 64) and its payload size.
const (
	gsoSegments = 64
	gsoMaxBytes = 65000
)

// flushGSO writes c's batch with runs of equal-sized copies to one peer
// (the last of a run may be shorter) joined into UDP GSO super-datagrams.
// It reports false, having sent nothing, when the kernel refuses GSO.
func (m *mirror) flushGSO(c *outConn) bool {
	c.gsoOut = c.gsoOut[:0]
	used := 0
	segs := make([]int, 0, len(c.pending)) // copies in each message of gsoOut
	for i := 0; i < len(c.pending); {
		first := c.pending[i].Buffers[0]
		to := c.pending[i].Addr
		j := i + 1
		total := len(first)
		for j < len(c.pending) && j-i < gsoSegments {
			b := c.pending[j].Buffers[0]
			if !sameUDPAddr(c.pending[j].Addr, to) || len(b) > len(first) || total+len(b) > gsoMaxBytes || len(c.pending[j-1].Buffers[0]) != len(first) {
				break
			}
			total += len(b)
			j++
		}
		if j-i == 1 {
			c.gsoOut = append(c.gsoOut, c.pending[i])
			segs = append(segs, 1)
			i = j
			continue
		}
		if used == len(c.gsoBufs) {
			c.gsoBufs = append(c.gsoBufs, make([]byte, 0, gsoMaxBytes))
		}
		buf := c.gsoBufs[used][:0]
		used++
		for k := i; k < j; k++ {
			buf = append(buf, c.pending[k].Buffers[0]...)
		}
		c.gsoBufs[used-1] = buf
		c.gsoOut = append(c.gsoOut, ipv4.Message{Buffers: [][]byte{buf}, Addr: to, OOB: udpSegment(len(first))})
		segs = append(segs, j-i)
		i = j
	}
	rest, restSegs := c.gsoOut, segs
	for len(rest) > 0 {
		n, err := c.batch.WriteBatch(rest, 0)
		if err != nil && errors.Is(err, unix.EIO) && len(rest) == len(c.gsoOut) {
			return false // no GSO here (EIO is the kernel's answer); nothing was sent
		}
		if err != nil || n == 0 {
			for _, s := range restSegs {
				m.dropped.Add(uint64(s))
			}
			break
		}
		for _, s := range restSegs[:n] {
			m.sent.Add(uint64(s))
		}
		rest, restSegs = rest[n:], restSegs[n:]
	}
	c.pending = c.pending[:0]
	return true
}

// udpSegment is the control message asking for UDP GSO in segments of size.
func udpSegment(size int) []byte {
	b := make([]byte, unix.CmsgSpace(2))
	h := (*unix.Cmsghdr)(unsafe.Pointer(&b[0]))
	h.Level, h.Type = unix.SOL_UDP, unix.UDP_SEGMENT
	h.SetLen(unix.CmsgLen(2))
	binary.NativeEndian.PutUint16(b[unix.CmsgLen(0):], uint16(size))
	return b
}

func sameUDPAddr(a, b net.Addr) bool {
	x, ok1 := a.(*net.UDPAddr)
	y, ok2 := b.(*net.UDPAddr)
	return ok1 && ok2 && x.Port == y.Port && x.IP.Equal(y.IP)
}

// mirrorTo copies a packet the router forwards to peer p, when p's group
// mirrors. from is the sending SIM's group when the packet leaves
// unchanged: if it mirrors to the same peers (one group), the copy made
// on the way in is the same packet, and none is made again.
func (r *router) mirrorTo(p *engine.Peer, from *groupPolicy, pkt []byte) {
	st := stateOf(p)
	if st == nil {
		return
	}
	r.tapOut(st, from, pkt)
	if r.mirror == nil || r.policies.mirrored.Load() == 0 {
		return
	}
	pol := r.policies.get(st.SIM().GroupID)
	if pol == nil || len(pol.mirrors) == 0 || pol == from {
		return
	}
	r.mirror.copy(pol.mirrors, pkt)
}

// send hands packets to a device's peer, taps first (mirror, capture,
// inspection; mirrorTo): every path to devices but the router's own
// batches goes through here.
func (r *router) send(p *engine.Peer, pkts [][]byte) {
	for _, pkt := range pkts {
		r.mirrorTo(p, nil, pkt)
	}
	r.eng.Send(p, pkts)
}
