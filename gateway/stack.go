// SPDX-License-Identifier: Apache-2.0

package gateway

import (
	"context"
	"net/netip"
	"sync"

	"golang.zx2c4.com/wireguard/tun"
	"golang.zx2c4.com/wireguard/tun/netstack"

	"github.com/wirefleet/wirefleet/engine"
	"github.com/wirefleet/wirefleet/fleet"
	"github.com/wirefleet/wirefleet/internal/packet"
	"github.com/wirefleet/wirefleet/services/dns"
	"github.com/wirefleet/wirefleet/services/metadata"
	"github.com/wirefleet/wirefleet/services/platform"
)

// tunnelMTU is the WireGuard inner MTU: wg-quick's default over a
// 1500-byte link, what standard devices send. It is the in-tunnel stack's
// MTU, and it caps both engines' padding, so a full-size inner packet
// leaves in 1500 bytes over IPv6 too (padded to 16, 1424, it would not).
const tunnelMTU = 1420

// stack is the gVisor userspace network stack hosting the platform
// services, with the servers on it.
type stack struct {
	g   *Gateway
	dev tun.Device
	net *netstack.Net
	ext []platform.Service // started ones, closed in close
	mu  sync.Mutex         // serialises writes into the stack
	wg  sync.WaitGroup
}

func startStack(g *Gateway) (*stack, error) {
	addrs, err := stackAddrs(g.cfg.Services)
	if err != nil {
		return nil, err
	}
	if g.o6.Enabled() {
		// Every platform address has its IPv6 twin, in the same order.
		for _, a := range addrs[:len(addrs):len(addrs)] {
			addrs = append(addrs, g.o6.Addr(a))
		}
	}
	dev, tnet, err := netstack.CreateNetTUN(addrs, nil, tunnelMTU)
	if err != nil {
		return nil, err
	}
	s := &stack{g: g, dev: dev, net: tnet}
	for _, ps := range g.cfg.Services {
		if d, ok := ps.(platform.Dialer); ok {
			g.router.dialSrc = d.DialSource()
		}
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.readLoop()
	}()
	// DNS and metadata are platform services like the others, always there.
	builtin := []platform.Service{
		dns.New(dns.Config{Zone: g.zone, Addrs: DNSAddrs, Names: map[string]netip.Addr{"dns": DNSAddrs[0], "metadata": MetadataAddr}, LANHost: g.lanHost, Overlay6: g.o6, Outside: &g.egressDNS}),
		metadata.New(metadata.Config{Addr: MetadataAddr, ControlPlane: deviceSelf{svc: g.svc, st: g.st}, Logger: g.log}),
	}
	for _, ps := range append(builtin, g.cfg.Services...) {
		if err := ps.Start(s.hostFor(ps)); err != nil {
			s.close()
			return nil, err
		}
		s.ext = append(s.ext, ps)
	}
	return s, nil
}

// inject hands packets from devices to the stack.
func (s *stack) inject(pkts [][]byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, err := s.dev.Write(pkts, 0)
	return err
}

// stackBatch is how many packets the stack's output is gathered into
// before they go to the engine: a burst of TCP segments towards one device
// (a forwarder's answer, a remote-access download) leaves in one sendmmsg
// instead of one system call each.
const stackBatch = 64

var stackBufs = sync.Pool{New: func() any { b := make([]byte, tunnelMTU+64); return &b }}

// getBuf returns a packet buffer of its full size; putBuf gives it back
// whatever length it was cut to, so the next user never reads into a
// buffer shortened by the last packet.
func getBuf() *[]byte {
	b := stackBufs.Get().(*[]byte)
	*b = (*b)[:cap(*b)]
	return b
}

func putBuf(b *[]byte) {
	*b = (*b)[:cap(*b)]
	stackBufs.Put(b)
}

// readLoop sends what the stack emits to the device owning the destination.
// The stack hands out one packet per Read, so a reader goroutine queues
// them and this loop takes whatever has queued up meanwhile as one batch,
// consecutive packets to one device in one Send. An idle stack costs
// nothing; a lone packet waits for no other.
func (s *stack) readLoop() {
	queue := make(chan *[]byte, stackBatch*4)
	go func() {
		defer close(queue)
		sizes, bufs := []int{0}, [][]byte{nil}
		for {
			b := getBuf()
			bufs[0] = *b
			if _, err := s.dev.Read(bufs, sizes, 0); err != nil {
				putBuf(b)
				return
			}
			*b = (*b)[:sizes[0]]
			queue <- b
		}
	}()
	batch := make([]*[]byte, 0, stackBatch)
	for b := range queue {
		batch = append(batch[:0], b)
	gather:
		for len(batch) < stackBatch {
			select {
			case b, ok := <-queue:
				if !ok {
					break gather
				}
				batch = append(batch, b)
			default:
				break gather
			}
		}
		s.sendBatch(batch)
		for _, b := range batch {
			putBuf(b)
		}
	}
}

// sendBatch hands the stack's packets to their devices, consecutive
// packets to one device in one Send (the engine copies them).
func (s *stack) sendBatch(batch []*[]byte) {
	var (
		to   *engine.Peer
		pkts [][]byte
	)
	flush := func() {
		if len(pkts) > 0 {
			s.g.router.send(to, pkts)
			pkts = pkts[:0]
		}
	}
	for _, b := range batch {
		pkt := *b
		dst, ok := packet.Destination(pkt)
		if !ok {
			continue
		}
		// A SIM by its address (an IPv6 twin stands for its IPv4 one).
		sim := dst
		if d4, ok := s.g.o6.V4(dst); ok && s.g.pool.Contains(d4) {
			sim = d4
		}
		p := s.g.router.peerFor(sim)
		if p == nil {
			// A host on a LAN behind a SIM (remote access to it): the
			// LAN's owner, the destination translated back on a mapped LAN.
			if p = s.toLAN(pkt, dst); p == nil {
				s.g.router.drops.add(dropUnknownDst)
				continue
			}
		}
		if p != to {
			flush()
			to = p
		}
		pkts = append(pkts, pkt)
	}
	flush()
}

// toLAN routes a packet from the stack to a LAN behind a SIM: the owner's
// peer, with the destination translated on a mapped LAN; nil if none.
func (s *stack) toLAN(pkt []byte, dst netip.Addr) *engine.Peer {
	r := s.g.router
	lan := r.lans.lookup(dst)
	if lan == nil {
		return nil
	}
	p := r.peerOf(lan.sim)
	if p == nil {
		lan.drops.add(dropOffline)
		return nil
	}
	var ip packet.Parsed
	if ip.Decode(pkt) != nil {
		return nil
	}
	lan.enter(pkt[:ip.Length], &ip)
	return p
}

func (s *stack) close() {
	for i := len(s.ext) - 1; i >= 0; i-- { // reverse start order: fronts before what they use
		s.ext[i].Close()
	}
	s.dev.Close()
	s.wg.Wait()
}

// callerSIM returns the SIM behind a tunnel source address: the router has
// already checked that the address is the sending SIM's own.
func (s *stack) callerSIM(ctx context.Context, addr netip.Addr) (fleet.SIM, bool) {
	p := s.g.router.peerFor(addr)
	if p == nil {
		return fleet.SIM{}, false
	}
	st := stateOf(p)
	if st == nil || st.revoked.Load() {
		return fleet.SIM{}, false
	}
	// Read the stored record: tags may have changed since the handshake.
	sim, err := s.g.st.SIM(ctx, st.id)
	if err != nil || sim.Address != addr {
		return fleet.SIM{}, false
	}
	return sim, true
}
