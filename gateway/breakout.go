// SPDX-License-Identifier: Apache-2.0

package gateway

import (
	"context"
	"encoding/binary"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/link/channel"
	gvipv4 "gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	gvipv6 "gvisor.dev/gvisor/pkg/tcpip/network/ipv6"
	gvstack "gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	"gvisor.dev/gvisor/pkg/tcpip/transport/udp"
	"gvisor.dev/gvisor/pkg/waiter"

	"github.com/wirefleet/wirefleet/internal/egress"
	"github.com/wirefleet/wirefleet/internal/packet"
)

// Outside is how breakout traffic leaves the gateway host. The zero value
// is this host's network: connections from its own address, ICMP echo
// through unprivileged ping sockets (net.ipv4.ping_group_range must hold
// the process's group; root may always).
type Outside struct {
	// Dial opens a TCP or UDP connection to an outside destination.
	Dial func(ctx context.Context, network, address string) (net.Conn, error)
	// ListenICMP opens an ICMP echo socket, "udp4" or "udp6" (icmp.ListenPacket).
	ListenICMP func(network string) (net.PacketConn, error)
	// ListenPacket opens the sockets mirrored packets leave by:
	// "ip4:gre", "ip6:gre" (raw: CAP_NET_RAW) or "udp" (net.ListenPacket).
	ListenPacket func(network, address string) (net.PacketConn, error)
}

// Breakout figures: how long an idle outside flow is kept, how many may
// be opening at once (a SYN flood to the outside costs bounded memory).
const (
	breakoutTCPDial    = 10 * time.Second
	breakoutTCPIdle    = 15 * time.Minute // both directions silent: the flow ends
	breakoutUDPIdle    = 60 * time.Second
	breakoutPingWait   = 5 * time.Second
	breakoutInFlight   = 4096  // TCP connections being set up
	breakoutMaxFlows   = 65536 // flows open at once, all devices
	breakoutMaxPings   = 256   // echo requests waiting for their reply
	breakoutTCPWindow  = 0     // the stack's default receive window
	breakoutQueueDepth = 1024
	// One device's share: flows open at once, and TCP connections being
	// set up (a device dialling unreachable hosts holds a slot for
	// breakoutTCPDial each) — so one device cannot take every slot.
	breakoutFlowsPerDevice   = 512
	breakoutDialingPerDevice = 64
)

// breakout terminates devices' flows to outside destinations on a gVisor
// stack of its own (promiscuous: it accepts any destination; spoofing: it
// answers from it) and opens the same flow from the gateway host, so the
// outside sees the host's address — in userspace, with no root and no
// NAT rules. TCP is spliced stream to stream, UDP datagram to datagram
// per flow; ICMP echo never enters the stack (it would answer every ping
// itself) and goes through a ping socket instead.
type breakout struct {
	g      *Gateway
	out    Outside
	policy egress.Policy
	log    *slog.Logger
	stk    *gvstack.Stack
	ep     *channel.Endpoint
	queue  chan *[]byte
	pings  chan struct{} // a slot per echo request in flight
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	mu     sync.Mutex // serialises writes into the stack

	// Counters (metrics): flows opened and refused by the outside, and
	// flows refused because their device had its share open.
	tcpFlows, udpFlows, pingsSent, dialFailed, overShare atomic.Uint64

	shareMu sync.Mutex
	shares  map[netip.Addr]*deviceShare // by the device's IPv4 address
	total   int                         // flows open, all devices
	closed  bool                        // close has begun: no new flows
}

// deviceShare is what one device holds of the breakout.
type deviceShare struct{ flows, dialing int }

// take reserves a flow for the device at addr (a TCP one being dialled
// when dialing); false when it has its share.
func (b *breakout) take(addr netip.Addr, dialing bool) bool {
	if a4, ok := b.g.o6.V4(addr); ok {
		addr = a4 // a SIM's two addresses share one share
	}
	b.shareMu.Lock()
	defer b.shareMu.Unlock()
	if b.closed {
		return false
	}
	s := b.shares[addr]
	if s == nil {
		s = &deviceShare{}
		b.shares[addr] = s
	}
	if s.flows >= breakoutFlowsPerDevice || dialing && s.dialing >= breakoutDialingPerDevice || b.total >= breakoutMaxFlows {
		b.overShare.Add(1)
		return false
	}
	// The flow's goroutine is counted under the same lock as closed, so
	// close never waits while one is being added.
	b.wg.Add(1)
	b.total++
	s.flows++
	if dialing {
		s.dialing++
	}
	return true
}

// give returns a flow (dialed: only the setup slot) of the device at addr.
func (b *breakout) give(addr netip.Addr, flow, dialing bool) {
	if a4, ok := b.g.o6.V4(addr); ok {
		addr = a4
	}
	b.shareMu.Lock()
	defer b.shareMu.Unlock()
	s := b.shares[addr]
	if s == nil {
		return
	}
	if flow {
		s.flows--
		b.total--
		defer b.wg.Done()
	}
	if dialing {
		s.dialing--
	}
	if s.flows <= 0 && s.dialing <= 0 {
		delete(b.shares, addr)
	}
}

// withDefaults fills what is unset with this host's network.
func (out Outside) withDefaults() Outside {
	if out.Dial == nil {
		out.Dial = (&net.Dialer{}).DialContext
	}
	if out.ListenICMP == nil {
		out.ListenICMP = func(network string) (net.PacketConn, error) {
			if network == "udp6" {
				return icmp.ListenPacket(network, "::")
			}
			return icmp.ListenPacket(network, "0.0.0.0")
		}
	}
	if out.ListenPacket == nil {
		out.ListenPacket = net.ListenPacket
	}
	return out
}

func startBreakout(g *Gateway, out Outside) (*breakout, error) {
	b := &breakout{g: g, out: out, policy: g.cfg.Egress, log: g.log, queue: make(chan *[]byte, breakoutQueueDepth), pings: make(chan struct{}, breakoutMaxPings), shares: map[netip.Addr]*deviceShare{}}
	b.ctx, b.cancel = context.WithCancel(g.ctx)
	b.stk = gvstack.New(gvstack.Options{
		NetworkProtocols:   []gvstack.NetworkProtocolFactory{gvipv4.NewProtocol, gvipv6.NewProtocol},
		TransportProtocols: []gvstack.TransportProtocolFactory{tcp.NewProtocol, udp.NewProtocol},
	})
	sack := tcpip.TCPSACKEnabled(true)
	b.stk.SetTransportProtocolOption(tcp.ProtocolNumber, &sack)
	b.ep = channel.New(breakoutQueueDepth, tunnelMTU, "")
	b.ep.AddNotify(b)
	if err := b.stk.CreateNIC(1, b.ep); err != nil {
		return nil, errors.New("gateway: breakout stack: " + err.String())
	}
	b.stk.SetPromiscuousMode(1, true)
	b.stk.SetSpoofing(1, true)
	b.stk.SetRouteTable([]tcpip.Route{{Destination: header.IPv4EmptySubnet, NIC: 1}, {Destination: header.IPv6EmptySubnet, NIC: 1}})
	tcpFwd := tcp.NewForwarder(b.stk, breakoutTCPWindow, breakoutInFlight, b.handleTCP)
	b.stk.SetTransportProtocolHandler(tcp.ProtocolNumber, tcpFwd.HandlePacket)
	udpFwd := udp.NewForwarder(b.stk, b.handleUDP)
	b.stk.SetTransportProtocolHandler(udp.ProtocolNumber, udpFwd.HandlePacket)
	b.wg.Add(1)
	go b.sendLoop()
	return b, nil
}

// inject hands a device's packet (already allowed by its egress rules)
// to the stack, or its echo request to a ping socket.
func (b *breakout) inject(pkt []byte, ip *packet.Parsed) {
	if ip.IsEchoRequest() {
		b.ping(pkt, ip)
		return
	}
	if ip.Proto != packet.TCP && ip.Proto != packet.UDP {
		return // only TCP, UDP and echo leave
	}
	proto := header.IPv4ProtocolNumber
	if ip.Version == 6 {
		proto = header.IPv6ProtocolNumber
	}
	pkb := gvstack.NewPacketBuffer(gvstack.PacketBufferOptions{Payload: buffer.MakeWithData(pkt[:ip.Length])})
	b.mu.Lock()
	b.ep.InjectInbound(proto, pkb)
	b.mu.Unlock()
	pkb.DecRef()
}

// WriteNotify implements channel.Notification: a packet from the stack to
// a device is queued for sendLoop.
func (b *breakout) WriteNotify() {
	pkt := b.ep.Read()
	if pkt == nil {
		return
	}
	v := pkt.ToView()
	pkt.DecRef()
	buf := getBuf()
	n, _ := v.Read(*buf)
	v.Release()
	*buf = (*buf)[:n]
	select {
	case b.queue <- buf:
	default:
		putBuf(buf) // the devices' side is behind: TCP resends
	}
}

// sendLoop hands the stack's packets to their devices in batches.
func (b *breakout) sendLoop() {
	defer b.wg.Done()
	batch := make([]*[]byte, 0, stackBatch)
	for {
		select {
		case <-b.ctx.Done():
			return
		case p := <-b.queue:
			batch = append(batch[:0], p)
		}
	gather:
		for len(batch) < stackBatch {
			select {
			case p := <-b.queue:
				batch = append(batch, p)
			default:
				break gather
			}
		}
		b.g.stk.sendBatch(batch)
		for _, p := range batch {
			putBuf(p)
		}
	}
}

// dial opens a flow from the gateway host under the platform's own
// egress policy: private, local and reserved destinations (the host
// itself, the networks its interfaces are on, cloud metadata at
// 169.254.169.254) stay out of reach whatever a group's rules say, unless
// wirefleetd --egress-allow names them.
func (b *breakout) dial(ctx context.Context, network string, dst netip.AddrPort) (net.Conn, error) {
	if err := b.policy.CheckOnLink(dst.Addr()); err != nil {
		return nil, err
	}
	return b.out.Dial(ctx, network, dst.String())
}

func addrOf(a tcpip.Address) netip.Addr {
	ip, _ := netip.AddrFromSlice(a.AsSlice())
	return ip
}

// handleTCP answers a device's SYN: the outside connection first, so that a
// refused one is a reset to the device, not an accepted connection that
// dies.
func (b *breakout) handleTCP(r *tcp.ForwarderRequest) {
	id := r.ID()
	dst := netip.AddrPortFrom(addrOf(id.LocalAddress), id.LocalPort)
	device := addrOf(id.RemoteAddress)
	if !b.take(device, true) {
		r.Complete(true)
		return
	}
	ctx, cancel := context.WithTimeout(b.ctx, breakoutTCPDial)
	out, err := b.dial(ctx, "tcp", dst)
	cancel()
	b.give(device, false, true)
	if err != nil {
		b.give(device, true, false)
		b.dialFailed.Add(1)
		b.log.Debug("breakout: dialling out", "dst", dst, "err", err)
		r.Complete(true)
		return
	}
	var wq waiter.Queue
	ep, terr := r.CreateEndpoint(&wq)
	if terr != nil {
		b.give(device, true, false)
		r.Complete(true)
		out.Close()
		return
	}
	r.Complete(false)
	b.tcpFlows.Add(1)
	in := gonet.NewTCPConn(&wq, ep)
	go func() {
		defer b.give(device, true, false) // and the flow's wg count
		splice(b.ctx, in, out)
	}()
}

// splice copies both ways until both sides are done (or ctx ends), half
// closing each direction as it finishes.
func splice(ctx context.Context, a, c net.Conn) {
	done := make(chan struct{}, 2)
	// Idle in both directions for breakoutTCPIdle ends the flow: a device
	// gone (disconnected, revoked) leaves no connection behind for ever.
	var last atomic.Int64
	last.Store(time.Now().UnixNano())
	copyHalf := func(dst, src net.Conn) {
		buf := make([]byte, 32<<10)
		for {
			src.SetReadDeadline(time.Now().Add(breakoutTCPIdle))
			n, err := src.Read(buf)
			if n > 0 {
				last.Store(time.Now().UnixNano())
				if _, werr := dst.Write(buf[:n]); werr != nil {
					break
				}
			}
			if err != nil {
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() && time.Since(time.Unix(0, last.Load())) < breakoutTCPIdle {
					continue // the other direction is busy: not idle
				}
				break
			}
		}
		if cw, ok := dst.(interface{ CloseWrite() error }); ok {
			cw.CloseWrite()
		} else {
			dst.Close()
		}
		done <- struct{}{}
	}
	go copyHalf(a, c)
	go copyHalf(c, a)
	for n := 0; n < 2; n++ {
		select {
		case <-done:
		case <-ctx.Done():
			n = 2
		}
	}
	a.Close()
	c.Close()
}

// handleUDP starts a flow at a device's first datagram: an endpoint on the
// stack for the device's side, a connected socket outside, datagrams
// relayed until the flow idles.
func (b *breakout) handleUDP(r *udp.ForwarderRequest) {
	id := r.ID()
	dst := netip.AddrPortFrom(addrOf(id.LocalAddress), id.LocalPort)
	device := addrOf(id.RemoteAddress)
	if !b.take(device, false) {
		return // the datagram is dropped; the device's next one may find room
	}
	var wq waiter.Queue
	ep, terr := r.CreateEndpoint(&wq)
	if terr != nil {
		b.give(device, true, false)
		return
	}
	in := gonet.NewUDPConn(&wq, ep)
	b.udpFlows.Add(1)
	go func() {
		defer b.give(device, true, false)
		defer in.Close()
		ctx, cancel := context.WithTimeout(b.ctx, breakoutTCPDial)
		out, err := b.dial(ctx, "udp", dst)
		cancel()
		if err != nil {
			b.dialFailed.Add(1)
			b.log.Debug("breakout: UDP out", "dst", dst, "err", err)
			return
		}
		defer out.Close()
		relay := func(dst, src net.Conn) {
			buf := make([]byte, 65535)
			for {
				src.SetReadDeadline(time.Now().Add(breakoutUDPIdle))
				n, err := src.Read(buf)
				if err != nil {
					return
				}
				dst.Write(buf[:n])
			}
		}
		done := make(chan struct{})
		go func() { relay(in, out); close(done) }()
		relay(out, in)
		out.Close()
		in.Close()
		<-done
	}()
}

// ping sends a device's echo request from a ping socket and answers the
// device with the reply, its identifier and sequence as the device sent
// them (the kernel gives the socket an identifier of its own).
func (b *breakout) ping(pkt []byte, ip *packet.Parsed) {
	if !ip.HasTransport || ip.IsFragment() || ip.Length < ip.HeaderLen+8 {
		return
	}
	dst := ip.Dst
	if err := b.policy.CheckOnLink(dst); err != nil {
		b.dialFailed.Add(1)
		return
	}
	src, v6 := ip.Src, ip.Version == 6
	if !b.take(src, false) { // an echo waiting for its reply is one of the device's flows
		return
	}
	select {
	case b.pings <- struct{}{}:
	default:
		b.give(src, true, false)
		return // too many outstanding: dropped, as a busy router would
	}
	msg := append([]byte(nil), pkt[ip.HeaderLen:ip.Length]...)
	b.pingsSent.Add(1)
	go func() {
		defer b.give(src, true, false)
		defer func() { <-b.pings }()
		network, proto, replyType := "udp4", 1, icmp.Type(ipv4.ICMPTypeEchoReply)
		if v6 {
			network, proto, replyType = "udp6", 58, ipv6.ICMPTypeEchoReply
		}
		pc, err := b.out.ListenICMP(network)
		if err != nil {
			b.log.Debug("breakout: ping socket", "err", err)
			return
		}
		defer pc.Close()
		id, seq := binary.BigEndian.Uint16(msg[4:]), binary.BigEndian.Uint16(msg[6:])
		if _, err := pc.WriteTo(msg, &net.UDPAddr{IP: dst.AsSlice()}); err != nil {
			return
		}
		pc.SetReadDeadline(time.Now().Add(breakoutPingWait))
		buf := make([]byte, 65535)
		for {
			n, _, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			m, err := icmp.ParseMessage(proto, buf[:n])
			if err != nil || m.Type != replyType {
				continue
			}
			echo, ok := m.Body.(*icmp.Echo)
			if !ok || uint16(echo.Seq) != seq {
				continue
			}
			b.answerEcho(dst, src, v6, id, seq, echo.Data)
			return
		}
	}()
}

// answerEcho sends an echo reply from dst to the device at src.
func (b *breakout) answerEcho(from, to netip.Addr, v6 bool, id, seq uint16, data []byte) {
	var out []byte
	if v6 {
		out = make([]byte, packet.IPv6HeaderLen+8+len(data))
		out[0] = 0x60
		binary.BigEndian.PutUint16(out[4:], uint16(8+len(data)))
		out[6], out[7] = packet.ICMPv6, 64
		f, t := from.As16(), to.As16()
		copy(out[8:24], f[:])
		copy(out[24:40], t[:])
		m := out[packet.IPv6HeaderLen:]
		m[0] = 129 // echo reply
		binary.BigEndian.PutUint16(m[4:], id)
		binary.BigEndian.PutUint16(m[6:], seq)
		copy(m[8:], data)
		binary.BigEndian.PutUint16(m[2:], packet.TransportChecksum(packet.ICMPv6, from, to, m))
	} else {
		out = make([]byte, packet.IPv4HeaderLen+8+len(data))
		out[0] = 0x45
		binary.BigEndian.PutUint16(out[2:], uint16(len(out)))
		out[8], out[9] = 64, packet.ICMP
		f, t := from.As4(), to.As4()
		copy(out[12:16], f[:])
		copy(out[16:20], t[:])
		binary.BigEndian.PutUint16(out[10:], packet.Checksum(out[:20]))
		m := out[packet.IPv4HeaderLen:]
		m[0] = packet.ICMPEchoReply
		binary.BigEndian.PutUint16(m[4:], id)
		binary.BigEndian.PutUint16(m[6:], seq)
		copy(m[8:], data)
		binary.BigEndian.PutUint16(m[2:], packet.Checksum(m))
	}
	buf := getBuf()
	if len(out) > cap(*buf) {
		putBuf(buf)
		return
	}
	*buf = append((*buf)[:0], out...)
	b.g.stk.sendBatch([]*[]byte{buf})
	putBuf(buf)
}

func (b *breakout) close() {
	b.shareMu.Lock()
	b.closed = true // no flow is added from here on
	b.shareMu.Unlock()
	b.cancel()
	b.stk.Close()
	b.wg.Wait()
	b.stk.Wait()
}
