// SPDX-License-Identifier: Apache-2.0

package gateway

import (
	"encoding/binary"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wirefleet/wirefleet/engine"
	"github.com/wirefleet/wirefleet/internal/packet"
	"github.com/wirefleet/wirefleet/internal/siit"
)

// 4via6: an IPv6 client reaches a host on an IPv4 LAN behind a SIM at
// P:1:<SIM>:<host> (fleet.Overlay6.Via6). The gateway translates the
// client's packet to IPv4 from the client's own IPv4 address, so the LAN
// host answers an address the SIM's router already routes into its
// tunnel. Which answers to turn back into IPv6 only a flow table can say
// (the client has both addresses): a flow is recorded when its first
// packet goes out and forgotten when idle. Translated: TCP, UDP, ICMP
// echo; not: fragments, extension headers, ICMP errors (dropped,
// counted as via6-unsupported).

// Flow-table bounds and idle times.
const (
	via6MaxFlows       = 262144
	via6MaxFlowsPerSIM = 4096
	via6TCPIdle        = 10 * time.Minute
	via6Idle           = 2 * time.Minute // UDP, ICMP echo
)

// via6Key names a flow from the LAN side: the SIM behind which the host
// is, the client's IPv4 address, the host, the protocol, and the ports
// (for ICMP echo, the identifier as the client's port).
type via6Key struct {
	site         string
	client, host netip.Addr
	proto        uint8
	cport, hport uint16
}

type via6Flow struct {
	clientSIM string
	last      atomic.Int64 // Unix nanoseconds of its last packet
}

// via6Table holds the 4via6 flows.
type via6Table struct {
	mu    sync.Mutex
	flows map[via6Key]*via6Flow
	bySIM map[string]int // flows per client SIM
	n     atomic.Int64   // len(flows): the reply path checks it without the lock
}

// ports returns a packet's ports, the echo identifier standing for the
// ICMP client's port.
func via6Ports(pkt []byte, ip *packet.Parsed) (src, dst uint16) {
	if (ip.Proto == packet.ICMP || ip.Proto == packet.ICMPv6) && ip.HasTransport && len(pkt) >= ip.HeaderLen+6 {
		id := binary.BigEndian.Uint16(pkt[ip.HeaderLen+4:])
		return id, 0
	}
	return ip.SrcPort, ip.DstPort
}

// note records (or refreshes) the flow of a client's packet; false when
// the table or the client's share of it is full.
func (t *via6Table) note(k via6Key, clientSIM string, now time.Time) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if f := t.flows[k]; f != nil {
		f.last.Store(now.UnixNano())
		return true
	}
	if len(t.flows) >= via6MaxFlows || t.bySIM[clientSIM] >= via6MaxFlowsPerSIM {
		return false
	}
	if t.flows == nil {
		t.flows, t.bySIM = map[via6Key]*via6Flow{}, map[string]int{}
	}
	f := &via6Flow{clientSIM: clientSIM}
	f.last.Store(now.UnixNano())
	t.flows[k] = f
	t.bySIM[clientSIM]++
	t.n.Store(int64(len(t.flows)))
	return true
}

// reply reports whether a LAN host's packet answers a recorded flow.
func (t *via6Table) reply(k via6Key, now time.Time) bool {
	if t.n.Load() == 0 {
		return false
	}
	t.mu.Lock()
	f := t.flows[k]
	t.mu.Unlock()
	if f == nil {
		return false
	}
	f.last.Store(now.UnixNano())
	return true
}

// sweep forgets idle flows.
func (t *via6Table) sweep(now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for k, f := range t.flows {
		idle := via6Idle
		if k.proto == packet.TCP {
			idle = via6TCPIdle
		}
		if now.Sub(time.Unix(0, f.last.Load())) > idle {
			delete(t.flows, k)
			if t.bySIM[f.clientSIM]--; t.bySIM[f.clientSIM] <= 0 {
				delete(t.bySIM, f.clientSIM)
			}
		}
	}
	t.n.Store(int64(len(t.flows)))
}

// toVia6 takes a client's packet to a 4via6 address: the host's SIM, its
// LAN route, policy, the flow noted, the packet translated to IPv4 in
// place. It returns the peer to send to and the packet, or a drop reason.
func (r *router) toVia6(st *simState, pol *groupPolicy, pkt []byte, ip *packet.Parsed, site, host netip.Addr, from *lanRoute) (*engine.Peer, []byte, string) {
	if from != nil {
		return nil, nil, dropVia6 // a LAN host has no IPv4 address of the fleet to be answered at
	}
	to := r.peerFor(site)
	if to == nil {
		return nil, nil, dropOffline
	}
	dst := stateOf(to)
	if dst == nil || dst.revoked.Load() {
		return nil, nil, dropOffline
	}
	var lan *lanRoute
	for _, lr := range r.lans.ofSIM(dst.id) {
		if lr.prefix.Contains(host) {
			lan = lr
			break
		}
	}
	if lan == nil {
		return nil, nil, dropNoRoute
	}
	if !d2dAllowed(pol, r.policies.get(dst.SIM().GroupID), ip.Proto, ip.SrcPort, ip.DstPort) {
		lan.drops.add(dropPolicy)
		return nil, nil, dropPolicy
	}
	client := st.SIM().Address
	sport, dport := via6Ports(pkt, ip)
	proto := ip.Proto
	if proto == packet.ICMPv6 {
		proto = packet.ICMP
	}
	out, ok := siit.To4(pkt, ip, client, host)
	if !ok {
		return nil, nil, dropVia6
	}
	if !r.via6.note(via6Key{site: dst.id, client: client, host: host, proto: proto, cport: sport, hport: dport}, st.id, r.clk.Now()) {
		return nil, nil, dropVia6Full
	}
	lan.inPackets.Add(1)
	lan.inBytes.Add(uint64(len(out)))
	return to, out, ""
}

// fromVia6 turns a LAN host's answer to a 4via6 flow back into IPv6 (nil
// when pkt answers none): from the host's 4via6 address to the client's
// IPv6 one.
func (r *router) fromVia6(st *simState, pkt []byte, ip *packet.Parsed, from *lanRoute) []byte {
	hport, cport := via6Ports(pkt, ip)
	if ip.Proto == packet.ICMP {
		hport, cport = 0, hport // the echo identifier is the client's "port"
	}
	k := via6Key{site: st.id, client: ip.Dst, host: ip.Src, proto: ip.Proto, cport: cport, hport: hport}
	if !r.via6.reply(k, r.clk.Now()) {
		return nil
	}
	out, ok := siit.To6(nil, pkt, ip, r.o6.Via6Addr(st.SIM().Address, ip.Src), r.o6.Addr(ip.Dst))
	if !ok {
		return nil
	}
	from.outPackets.Add(1)
	from.outBytes.Add(uint64(len(pkt)))
	return out
}
