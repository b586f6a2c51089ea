package gateway

import (
	"encoding/binary"
	"net/netip"
	"slices"
	"sync"

	"github.com/wirefleet/wirefleet/engine"
)

const (
	protoICMP = 1
	protoTCP  = 6
	protoUDP  = 17
)

// Reasons the router drops a packet (metric label values).
const (
	dropSource     = "source-not-sim" // inner source is not the SIM's address
	dropRevoked    = "revoked"        // SIM suspended or re-keyed mid-batch
	dropPolicy     = "d2d-denied"     // device-to-device not allowed by policy
	dropOffline    = "target-offline" // destination SIM has no session
	dropNoRoute    = "no-route"       // outside the SIM pool and platform range
	dropMalformed  = "malformed"      // not an IPv4 packet we can parse
	dropServices   = "services"       // the service stack refused it
	dropUnknownDst = "unknown-destination"
	dropAllowList  = "outside-allow-list" // the group's security profile blocks it
)

var dropReasons = []string{dropSource, dropRevoked, dropPolicy, dropOffline, dropNoRoute, dropMalformed, dropServices, dropUnknownDst, dropAllowList}

// router is the engine's Handler: it decides where each inner packet goes.
type router struct {
	g      *Gateway
	mu     sync.RWMutex
	byAddr map[netip.Addr]*engine.Peer
	drops  dropCounters
}

func newRouter(g *Gateway) *router {
	return &router{g: g, byAddr: map[netip.Addr]*engine.Peer{}}
}

func (r *router) setOnline(a netip.Addr, p *engine.Peer) {
	r.mu.Lock()
	r.byAddr[a] = p
	r.mu.Unlock()
}

func (r *router) setOffline(a netip.Addr, p *engine.Peer) {
	r.mu.Lock()
	if r.byAddr[a] == p {
		delete(r.byAddr, a)
	}
	r.mu.Unlock()
}

// peerFor returns the peer serving overlay address a, if it is still held.
func (r *router) peerFor(a netip.Addr) *engine.Peer {
	r.mu.RLock()
	p := r.byAddr[a]
	r.mu.RUnlock()
	if p == nil || r.g.eng.Peer(p.PublicKey()) != p {
		return nil
	}
	return p
}

// HandleInbound implements engine.Handler. Consecutive packets to the same
// peer are handed to the engine in one Send.
func (r *router) HandleInbound(batch []engine.InboundPacket) {
	var (
		target  *engine.Peer
		pending [][]byte
		local   [][]byte
	)
	flush := func() {
		if len(pending) > 0 {
			r.g.eng.Send(target, pending)
			pending = pending[:0]
		}
	}
	for _, in := range batch {
		pkt := in.Data
		st := stateOf(in.Peer)
		if st == nil {
			r.drops.add(dropRevoked)
			continue
		}
		if st.revoked.Load() {
			r.drops.add(dropRevoked)
			continue
		}
		if len(pkt) < 20 || pkt[0]>>4 != 4 || int(pkt[0]&0x0f)*4 > len(pkt) {
			r.drops.add(dropMalformed)
			continue
		}
		src := netip.AddrFrom4([4]byte(pkt[12:16]))
		dst := netip.AddrFrom4([4]byte(pkt[16:20]))
		sim := st.SIM()
		if src != sim.Address {
			r.drops.add(dropSource)
			continue
		}
		proto, sport, dport := ports(pkt)
		pol := r.g.policies.get(sim.GroupID)
		if r.g.mon != nil {
			if startsFlow(pkt, proto) {
				r.g.observeFlow(st, pol, dst, proto, dport)
			}
			if proto == protoTCP && pol != nil && pol.checkListeners && synAck(pkt) && !slices.Contains(pol.listenPorts, sport) {
				r.g.mon.ObserveListener(st.id, sport, dst)
			}
		}
		// The group's allow-list (the platform range is always allowed).
		if pol != nil && pol.allow != nil && !r.g.plat.Contains(dst) && !pol.allows(dst) {
			if r.g.mon != nil {
				r.g.mon.ObserveViolation(st.id, netip.AddrPortFrom(dst, dport), pol.block)
			}
			if pol.block {
				r.drops.add(dropAllowList)
				continue
			}
		}
		switch {
		case r.g.plat.Contains(dst):
			local = append(local, pkt)
		case r.g.pool.Contains(dst):
			to := r.peerFor(dst)
			srcPol := pol
			if to == nil {
				if srcPol == nil || srcPol.mode == "off" {
					r.drops.add(dropPolicy)
				} else {
					r.drops.add(dropOffline)
					r.unreachable(in.Peer, pkt)
				}
				continue
			}
			dstSt := stateOf(to)
			if dstSt == nil || dstSt.revoked.Load() {
				r.drops.add(dropOffline)
				continue
			}
			if !d2dAllowed(srcPol, r.g.policies.get(dstSt.SIM().GroupID), proto, sport, dport) {
				r.drops.add(dropPolicy)
				continue
			}
			if to != target {
				flush()
				target = to
			}
			pending = append(pending, pkt)
		default:
			r.drops.add(dropNoRoute)
		}
	}
	flush()
	if len(local) > 0 && r.g.svcs != nil {
		if err := r.g.svcs.inject(local); err != nil {
			r.drops.addN(dropServices, uint64(len(local)))
		}
	}
}

// ports returns the transport protocol and, for TCP and UDP, the ports of
// an IPv4 packet (zero when absent or fragmented).
func ports(pkt []byte) (proto byte, sport, dport uint16) {
	proto = pkt[9]
	ihl := int(pkt[0]&0x0f) * 4
	if (proto == protoTCP || proto == protoUDP) && len(pkt) >= ihl+4 && binary.BigEndian.Uint16(pkt[6:8])&0x1fff == 0 {
		sport = binary.BigEndian.Uint16(pkt[ihl:])
		dport = binary.BigEndian.Uint16(pkt[ihl+2:])
	}
	return
}

// startsFlow reports whether a packet from a device may start a flow of
// its own: a TCP SYN without ACK, an ICMP echo request, any UDP datagram
// (UDP does not say). Replies — to a remote-access operator, to another
// device's connection — go to the peer's ephemeral ports and are not the
// device's destinations: counting them would fill first-seen and fan-out
// with noise.
func startsFlow(pkt []byte, proto byte) bool {
	ihl := int(pkt[0]&0x0f) * 4
	switch proto {
	case protoTCP:
		return len(pkt) >= ihl+14 && pkt[ihl+13]&0x12 == 0x02
	case protoICMP:
		return len(pkt) > ihl && pkt[ihl] == 8
	}
	return true
}

// synAck reports whether a TCP packet (an unfragmented first fragment)
// carries SYN and ACK: its sender accepts a connection on its source port.
func synAck(pkt []byte) bool {
	ihl := int(pkt[0]&0x0f) * 4
	return len(pkt) >= ihl+14 && binary.BigEndian.Uint16(pkt[6:8])&0x1fff == 0 && pkt[ihl+13]&0x12 == 0x12
}

// unreachable answers pkt with an ICMP host-unreachable from RouterAddr.
// ICMP errors are not answered with ICMP errors (RFC 1122).
func (r *router) unreachable(p *engine.Peer, pkt []byte) {
	ihl := int(pkt[0]&0x0f) * 4
	if pkt[9] == protoICMP && len(pkt) > ihl && pkt[ihl] != 8 {
		return
	}
	quote := min(len(pkt), ihl+8)
	out := make([]byte, 20+8+quote)
	out[0] = 0x45
	binary.BigEndian.PutUint16(out[2:], uint16(len(out)))
	out[8] = 64
	out[9] = protoICMP
	a := RouterAddr.As4()
	copy(out[12:16], a[:])
	copy(out[16:20], pkt[12:16])
	binary.BigEndian.PutUint16(out[10:], checksum(out[:20]))
	icmp := out[20:]
	icmp[0], icmp[1] = 3, 1 // destination unreachable, host unreachable
	copy(icmp[8:], pkt[:quote])
	binary.BigEndian.PutUint16(icmp[2:], checksum(icmp))
	r.g.eng.Send(p, [][]byte{out})
}

func checksum(b []byte) uint16 {
	var s uint32
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(b[i])<<8 | uint32(b[i+1])
	}
	if len(b)%2 == 1 {
		s += uint32(b[len(b)-1]) << 8
	}
	for s>>16 != 0 {
		s = s&0xffff + s>>16
	}
	return ^uint16(s)
}
