// SPDX-License-Identifier: Apache-2.0

package gateway

import (
	"encoding/binary"
	"net/netip"
	"slices"
	"sync"

	"github.com/wirefleet/wirefleet/engine"
	"github.com/wirefleet/wirefleet/fleet"
	"github.com/wirefleet/wirefleet/gateway/monitor"
	"github.com/wirefleet/wirefleet/internal/clock"
	"github.com/wirefleet/wirefleet/internal/egressrules"
	"github.com/wirefleet/wirefleet/internal/netmap"
	"github.com/wirefleet/wirefleet/internal/packet"
)

// Reasons the router drops a packet (metric label values).
const (
	dropSource     = "source-not-sim"   // inner source is not the SIM's address
	dropRevoked    = "revoked"          // SIM suspended or re-keyed mid-batch
	dropPolicy     = "d2d-denied"       // device-to-device not allowed by policy
	dropOffline    = "target-offline"   // destination SIM has no session
	dropNoRoute    = "no-route"         // outside the SIM pool and platform range
	dropMalformed  = "malformed"        // not an IP packet the engine decoded
	dropIPv6       = "ipv6-not-enabled" // IPv6 inside the tunnel is not routed yet
	dropServices   = "services"         // the service stack refused it
	dropUnknownDst = "unknown-destination"
	dropAllowList  = "outside-allow-list" // the group's security profile blocks it
	dropEgress     = "egress-denied"      // beyond the fleet, and the group's egress rules refuse it
	dropVia6       = "via6-unsupported"   // a 4via6 packet the translation does not take (fragments, extension headers, ICMP errors)
	dropVia6Full   = "via6-flows-full"    // the 4via6 flow table (or the client's share) is full
	dropRedirect   = "redirect-no-peer"   // the group redirects, and this packet cannot go (its Gate peer is gone; IPv6; a LAN source)
	// dropLANPlatform: a host on a LAN behind a SIM sent to the platform
	// range; platform services know callers by their SIM's own address.
	dropLANPlatform = "lan-source-to-platform"
)

var dropReasons = [...]string{dropSource, dropRevoked, dropPolicy, dropOffline, dropNoRoute, dropMalformed, dropServices, dropUnknownDst, dropAllowList, dropIPv6, dropLANPlatform, dropEgress, dropVia6, dropVia6Full, dropRedirect,
	dropVXLANUnknown, dropVXLANMalformed, dropVXLANSource}

// router is the engine's Handler: it decides where each inner packet goes.
// It holds what it needs as values, handed over by the gateway as each
// exists: the engine and the services' stack before the engine comes up.
type router struct {
	eng      *engine.Engine
	policies *policyCache
	lans     *lanTable        // the routes behind SIMs
	gates    *vxlanEndpoint   // VXLAN Gate peers; nil without them
	mon      *monitor.Monitor // nil without the monitor
	plat     netip.Prefix     // the platform range: to the services' stack
	pool     netip.Prefix     // the SIM pool: device to device
	o6       fleet.Overlay6   // the IPv6 view of both (zero: no IPv6)
	breakout *breakout        // traffic beyond the fleet; nil before it starts
	grants   *grantTable      // what the DNS answered each SIM (FQDN rules)
	mirror   *mirror          // copies to mirror peers; nil before it starts
	caps     *captures        // packet capture sessions
	insp     *inspector       // traffic statistics of groups with inspection
	mesh     *mesh            // devices whose sessions are on other nodes; nil without a mesh
	via6     via6Table        // flows of IPv6 clients to IPv4 LAN hosts
	clk      clock.Clock
	local    func(pkts [][]byte) error // the services' stack; nil before it starts
	// dialSrc is the remote-access source address (zero without it): the
	// one platform address a LAN host may answer, translated, since remote
	// access is the one service that dials into LANs.
	dialSrc netip.Addr

	mu     sync.RWMutex
	byAddr map[netip.Addr]*engine.Peer
	byID   map[string]*engine.Peer // the same sessions by SIM id: where a SIM's LANs go
	drops  dropCounters
}

func newRouter(policies *policyCache, lans *lanTable, mon *monitor.Monitor, plat, pool netip.Prefix) *router {
	return &router{policies: policies, lans: lans, mon: mon, plat: plat, pool: pool, byAddr: map[netip.Addr]*engine.Peer{}, byID: map[string]*engine.Peer{}}
}

func (r *router) setOnline(id string, a netip.Addr, p *engine.Peer) {
	r.mu.Lock()
	r.byAddr[a] = p
	r.byID[id] = p
	r.mu.Unlock()
}

func (r *router) setOffline(id string, a netip.Addr, p *engine.Peer) {
	r.mu.Lock()
	if r.byAddr[a] == p {
		delete(r.byAddr, a)
	}
	if r.byID[id] == p {
		delete(r.byID, id)
	}
	r.mu.Unlock()
}

// peerOf returns the peer serving SIM id, if it is still held.
func (r *router) peerOf(id string) *engine.Peer {
	r.mu.RLock()
	p := r.byID[id]
	r.mu.RUnlock()
	if p == nil || r.eng.Peer(p.PublicKey()) != p {
		return nil
	}
	return p
}

// peerFor returns the peer serving overlay address a, if it is still held.
func (r *router) peerFor(a netip.Addr) *engine.Peer {
	r.mu.RLock()
	p := r.byAddr[a]
	r.mu.RUnlock()
	if p == nil || r.eng.Peer(p.PublicKey()) != p {
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
			r.eng.Send(target, pending) // tapped as they were queued
			pending = pending[:0]
		}
	}
	// queue adds a packet for peer to, tapped for its SIM (mirrorTo;
	// same is the sender's group when the packet leaves unchanged).
	queue := func(to *engine.Peer, same *groupPolicy, pkt []byte) {
		r.mirrorTo(to, same, pkt)
		if to != target {
			flush()
			target = to
		}
		pending = append(pending, pkt)
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
		ip := &in.IP
		dst := ip.Dst
		sim := st.SIM()
		var from *lanRoute     // the LAN the packet comes out of; nil: the SIM itself
		var viaSite netip.Addr // a 4via6 destination's SIM (dst is then the LAN host)
		switch ip.Version {
		case 4:
			if ip.Src != sim.Address {
				if from = r.lans.source(st.id, ip.Src); from == nil {
					r.drops.add(dropSource)
					continue
				}
			}
		case 6:
			// The IPv6 view of the overlay: from the SIM's own twin to the
			// twin of a platform or SIM address. Policy, the monitor and
			// the route lookups below see the IPv4 twins, so one rule
			// governs both families.
			if !r.o6.Enabled() {
				r.drops.add(dropIPv6)
				continue
			}
			if ip.Src != r.o6.Addr(sim.Address) {
				if from = r.lans.source(st.id, ip.Src); from == nil { // an IPv6 LAN behind the SIM
					r.drops.add(dropSource)
					continue
				}
			}
			if site, host, ok := r.o6.SplitVia6(dst); ok {
				// A host on an IPv4 LAN behind a SIM, by its 4via6 address:
				// policy and the monitor see the host's IPv4 address.
				viaSite, dst = site, host
			}
			// Outside the view, an IPv6 destination is beyond the fleet
			// (egress, below).
			if d4, ok := r.o6.V4(dst); ok && !viaSite.IsValid() {
				if !r.plat.Contains(d4) && !r.pool.Contains(d4) {
					r.drops.add(dropNoRoute)
					continue
				}
				dst = d4
			}
		default:
			r.drops.add(dropMalformed)
			continue
		}
		proto, sport, dport := ip.Proto, ip.SrcPort, ip.DstPort
		pol := r.policies.get(sim.GroupID)
		if pol != nil && len(pol.mirrors) > 0 && r.mirror != nil {
			r.mirror.copy(pol.mirrors, pkt[:ip.Length]) // what the device sent, as it sent it
		}
		r.captureTap(st, pkt[:ip.Length], false)
		if pol != nil && pol.inspectEvery > 0 && r.insp != nil {
			r.insp.account(pol.inspectKey(st.id), pkt, ip)
		}
		if r.mon != nil {
			if startsFlow(ip) {
				r.observeFlow(st, pol, dst, proto, dport)
			}
			if pol != nil && pol.checkListeners && ip.IsTCPSynAck() && !slices.Contains(pol.listenPorts, sport) {
				r.mon.ObserveListener(st.id, sport, dst)
			}
		}
		// The group's allow-list (the platform range is always allowed).
		if pol != nil && pol.allow != nil && !r.plat.Contains(dst) && !pol.allows(dst) {
			if r.mon != nil {
				r.mon.ObserveViolation(st.id, netip.AddrPortFrom(dst, dport), pol.block)
			}
			if pol.block {
				r.drops.add(dropAllowList)
				continue
			}
		}
		if pol != nil && pol.redirectVia != "" && (pol.redirectPlatform || !r.plat.Contains(dst)) {
			// Redirected: to the operator's host instead of the
			// destination, unchanged; the host forwards or answers. What
			// cannot go there (IPv6, LAN sources: the host is an IPv4
			// peer answering SIMs) is dropped, never sent around it.
			var gp *gatePeer
			if r.gates != nil && ip.Version == 4 && from == nil {
				gp = r.gates.peerByID(pol.redirectVia)
			}
			if gp == nil {
				r.drops.add(dropRedirect)
				continue
			}
			r.gates.toPeer(gp, pkt[:ip.Length])
			continue
		}
		if viaSite.IsValid() {
			to, out, reason := r.toVia6(st, pol, pkt, ip, viaSite, dst, from)
			if reason != "" {
				r.drops.add(reason)
				continue
			}
			queue(to, nil, out) // translated: another packet than the one tapped in
			continue
		}
		switch {
		case r.plat.Contains(dst):
			if from != nil {
				if dst != r.dialSrc || !r.dialSrc.IsValid() {
					r.drops.add(dropLANPlatform)
					continue
				}
				r.out(pkt, ip, st.id, from) // the answer of a remote-access connection, from its mapped address
			}
			local = append(local, pkt)
		case r.pool.Contains(dst):
			to := r.peerFor(dst)
			srcPol := pol
			if to == nil && r.gates != nil && ip.Version == 4 { // Gate peers are IPv4 hosts
				if gp := r.gates.peerAt(dst); gp != nil {
					if !d2dAllowed(srcPol, r.policies.get(gp.GroupID), proto, sport, dport) {
						r.drops.add(dropPolicy)
						continue
					}
					r.out(pkt, ip, st.id, from)
					r.gates.toPeer(gp, pkt)
					continue
				}
			}
			if to == nil && r.mesh != nil && (ip.Version == 4 || from == nil) && srcPol != nil && srcPol.mode != fleet.D2DOff {
				// On another node: the policy is decided here, once (a
				// LAN host's answer leaves with its mapped address, as
				// it would to a device here). A group without
				// device-to-device asks nothing of the mesh. IPv6 goes
				// between the SIMs' twins (dst is the IPv4 twin here),
				// not yet from LANs behind them.
				if mp, dstGroup, ok := r.mesh.route(dst, st.id); ok {
					if !d2dAllowed(srcPol, r.policies.get(dstGroup), proto, sport, dport) {
						r.drops.add(dropPolicy)
						continue
					}
					r.out(pkt, ip, st.id, from)
					flush()
					r.mesh.send(mp, [][]byte{pkt})
					continue
				}
				if r.mesh.hold(meshKey{addr: dst}, &meshHeldOut{pkt: pkt, ip: *ip, dst: dst, peer: in.Peer, st: st, from: from}, nil) {
					continue // sent on once the destination is located
				}
				if r.mesh.pending(dst) {
					r.drops.add(dropOffline) // no ICMP error: it may be elsewhere
					continue
				}
			}
			if to == nil {
				if srcPol == nil || srcPol.mode == "off" {
					r.drops.add(dropPolicy)
				} else {
					r.drops.add(dropOffline)
					r.unreachable(in.Peer, pkt, ip)
				}
				continue
			}
			dstSt := stateOf(to)
			if dstSt == nil || dstSt.revoked.Load() {
				r.drops.add(dropOffline)
				continue
			}
			if !d2dAllowed(srcPol, r.policies.get(dstSt.SIM().GroupID), proto, sport, dport) {
				r.drops.add(dropPolicy)
				continue
			}
			if from != nil && ip.Version == 4 {
				// A LAN host answering a 4via6 client: back to IPv6.
				if out6 := r.fromVia6(st, pkt, ip, from); out6 != nil {
					queue(to, nil, out6)
					continue
				}
			}
			r.out(pkt, ip, st.id, from)
			if from == nil || !from.mapped() {
				queue(to, pol, pkt) // unchanged on its way: tapped once if both ends are of one group
			} else {
				queue(to, nil, pkt)
			}
		default:
			lan := r.lans.lookup(dst)
			if lan == nil {
				if from == nil && r.outside(st, pol, pkt, ip) {
					continue
				}
				r.drops.add(dropNoRoute)
				continue
			}
			to := r.peerOf(lan.sim)
			if to == nil && r.mesh != nil && ip.Version == 4 && pol != nil && pol.mode != fleet.D2DOff {
				// Behind a SIM on another node: decided here, sent as
				// addressed (the node there translates a mapped LAN).
				if mp, dstGroup, ok := r.mesh.routeSIM(lan.sim, st.id); ok {
					if !d2dAllowed(pol, r.policies.get(dstGroup), proto, sport, dport) {
						r.drops.add(dropPolicy)
						lan.drops.add(dropPolicy)
						continue
					}
					r.out(pkt, ip, st.id, from)
					flush()
					r.mesh.send(mp, [][]byte{pkt})
					continue
				}
				if r.mesh.hold(meshKey{sim: lan.sim}, &meshHeldOut{pkt: pkt, ip: *ip, peer: in.Peer, st: st, from: from, lan: lan}, nil) {
					continue // sent on once the SIM is located
				}
			}
			if to == nil {
				reason := dropOffline
				if pol == nil || pol.mode == fleet.D2DOff {
					reason = dropPolicy
				}
				r.drops.add(reason)
				lan.drops.add(reason)
				if reason == dropOffline {
					r.unreachable(in.Peer, pkt, ip)
				}
				continue
			}
			dstSt := stateOf(to)
			if dstSt == nil || dstSt.revoked.Load() {
				r.drops.add(dropOffline)
				lan.drops.add(dropOffline)
				continue
			}
			if !d2dAllowed(pol, r.policies.get(dstSt.SIM().GroupID), proto, sport, dport) {
				r.drops.add(dropPolicy)
				lan.drops.add(dropPolicy)
				continue
			}
			r.out(pkt, ip, st.id, from)
			lan.enter(pkt, ip)
			if lan.mapped() || from != nil && from.mapped() {
				queue(to, nil, pkt) // translated on its way: another packet than the one tapped in
			} else {
				queue(to, pol, pkt)
			}
		}
	}
	flush()
	if len(local) > 0 && r.local != nil {
		if err := r.local(local); err != nil {
			r.drops.addN(dropServices, uint64(len(local)))
		}
	}
}

// outside takes a packet to a destination beyond the fleet (not the
// platform, another SIM or a LAN behind one): through the breakout when
// the SIM's group has it and its egress rules allow the packet. It
// reports whether it took the packet — sent, or dropped as egress-denied;
// false leaves it to no-route (no breakout).
func (r *router) outside(st *simState, pol *groupPolicy, pkt []byte, ip *packet.Parsed) bool {
	if pol == nil || !pol.breakout || r.breakout == nil {
		return false
	}
	v := egressrules.Verdict{Rule: -1}
	if pol.egress != nil {
		var names []string
		if pol.egress.HasNames() {
			names = r.grants.names(st.id, ip.Dst, r.clk.Now())
		}
		v = pol.egress.Match(ip.Dst, ip.Proto, ip.DstPort, names)
	}
	if !v.Allow {
		r.drops.add(dropEgress)
		if r.mon != nil && startsFlow(ip) {
			r.mon.ObserveEgressDenied(st.id, netip.AddrPortFrom(ip.Dst, ip.DstPort), ip.Proto, v.Rule)
		}
		return true
	}
	r.breakout.inject(pkt, ip)
	return true
}

// sendHeld sends on packets from devices here that waited while their
// destination was located (mesh.hold): the rest of HandleInbound's mesh
// branch, with the policy decided now, with the sender's group as it is
// now and the destination's. One whose destination came online here
// meanwhile is delivered here; one with no session anywhere gets the ICMP
// error it would have had at once; a sender revoked meanwhile sends
// nothing.
func (r *router) sendHeld(hs []meshHeldOut) {
	for i := range hs {
		h := &hs[i]
		if h.st.revoked.Load() {
			r.drops.add(dropRevoked)
			continue
		}
		srcPol := r.policies.get(h.st.SIM().GroupID)
		var mp *engine.Peer
		var dstGroup string
		var ok bool
		if h.lan != nil {
			mp, dstGroup, ok = r.mesh.routeSIM(h.lan.sim, h.st.id)
		} else {
			mp, dstGroup, ok = r.mesh.route(h.dst, h.st.id)
		}
		if !ok && h.lan == nil {
			if to := r.peerFor(h.dst); to != nil {
				// The destination came online here meanwhile (a device
				// moved here): delivered here, under the same policy.
				if dst := stateOf(to); dst != nil && !dst.revoked.Load() && srcPol != nil && srcPol.mode != fleet.D2DOff &&
					d2dAllowed(srcPol, r.policies.get(dst.SIM().GroupID), h.ip.Proto, h.ip.SrcPort, h.ip.DstPort) {
					r.out(h.pkt, &h.ip, h.st.id, h.from)
					r.mirrorTo(to, nil, h.pkt)
					r.eng.Send(to, [][]byte{h.pkt})
				} else {
					r.drops.add(dropPolicy)
				}
				continue
			}
		}
		reason := ""
		switch {
		case !ok:
			reason = dropOffline
		case srcPol == nil || srcPol.mode == fleet.D2DOff || !d2dAllowed(srcPol, r.policies.get(dstGroup), h.ip.Proto, h.ip.SrcPort, h.ip.DstPort):
			reason = dropPolicy
		}
		if reason != "" {
			r.drops.add(reason)
			if h.lan != nil {
				h.lan.drops.add(reason)
			} else if reason == dropOffline {
				r.unreachable(h.peer, h.pkt, &h.ip)
			}
			continue
		}
		r.out(h.pkt, &h.ip, h.st.id, h.from)
		r.mesh.send(mp, [][]byte{h.pkt})
	}
}

// out translates a packet leaving SIM sim for the fleet: a mapped LAN
// source becomes its mapped address; an ICMP error from the SIM's own
// address about a packet to one of its mapped LANs (a traceroute hop, a
// "fragmentation needed" from the router) gets the quoted destination
// mapped. Counted on the route it came out of.
func (r *router) out(pkt []byte, ip *packet.Parsed, sim string, from *lanRoute) {
	if from != nil {
		if from.mapped() {
			netmap.Src(pkt, ip, from.out)
		}
		from.outPackets.Add(1)
		from.outBytes.Add(uint64(len(pkt)))
		return
	}
	if netmap.IsICMPError(ip) {
		for _, lr := range r.lans.ofSIM(sim) {
			if lr.mapped() && netmap.QuotedDst(pkt, ip, lr.out) {
				return
			}
		}
	}
}

// startsFlow reports whether a packet from a device may start a flow of
// its own: a TCP SYN without ACK, an ICMP echo request, any UDP datagram
// (UDP does not say). Replies — to a remote-access operator, to another
// device's connection — go to the peer's ephemeral ports and are not the
// device's destinations: counting them would fill first-seen and fan-out
// with noise.
func startsFlow(ip *packet.Parsed) bool {
	switch ip.Proto {
	case packet.TCP:
		return ip.IsTCPSyn()
	case packet.ICMP, packet.ICMPv6:
		return ip.IsEchoRequest()
	}
	return true
}

// unreachable answers pkt (decoded as ip) with an ICMP host-unreachable
// from RouterAddr (an ICMPv6 address-unreachable from its twin). ICMP
// errors are not answered with ICMP errors (RFC 1122, RFC 4443), nor are
// echo replies.
func (r *router) unreachable(p *engine.Peer, pkt []byte, ip *packet.Parsed) {
	if ip.Version == 6 {
		r.unreachable6(p, pkt, ip)
		return
	}
	if ip.Proto == packet.ICMP && ip.HasTransport && ip.ICMPType != packet.ICMPEchoRequest {
		return
	}
	quote := min(len(pkt), ip.HeaderLen+8)
	out := make([]byte, packet.IPv4HeaderLen+8+quote)
	out[0] = 0x45
	binary.BigEndian.PutUint16(out[2:], uint16(len(out)))
	out[8] = 64
	out[9] = packet.ICMP
	a := RouterAddr.As4()
	copy(out[12:16], a[:])
	copy(out[16:20], pkt[12:16])
	binary.BigEndian.PutUint16(out[10:], packet.Checksum(out[:20]))
	icmp := out[20:]
	icmp[0], icmp[1] = packet.ICMPUnreachable, packet.ICMPHostUnreachable
	copy(icmp[8:], pkt[:quote])
	binary.BigEndian.PutUint16(icmp[2:], packet.Checksum(icmp))
	r.send(p, [][]byte{out})
}

// unreachable6 is unreachable for IPv6 (RFC 4443 §3.1, code 3): as much
// of the packet quoted as keeps the answer within the IPv6 minimum MTU.
func (r *router) unreachable6(p *engine.Peer, pkt []byte, ip *packet.Parsed) {
	if ip.Proto == packet.ICMPv6 && (!ip.HasTransport || ip.ICMPType != packet.ICMPv6EchoRequest) {
		return
	}
	src := r.o6.Addr(RouterAddr)
	quote := min(ip.Length, len(pkt), packet.IPv6MinMTU-packet.IPv6HeaderLen-8)
	out := make([]byte, packet.IPv6HeaderLen+8+quote)
	out[0] = 0x60
	binary.BigEndian.PutUint16(out[4:], uint16(8+quote))
	out[6] = packet.ICMPv6
	out[7] = 64
	s16, d16 := src.As16(), ip.Src.As16()
	copy(out[8:24], s16[:])
	copy(out[24:40], d16[:])
	icmp := out[packet.IPv6HeaderLen:]
	icmp[0], icmp[1] = packet.ICMPv6Unreachable, packet.ICMPv6AddressUnreachable
	copy(icmp[8:], pkt[:quote])
	binary.BigEndian.PutUint16(icmp[2:], packet.TransportChecksum(packet.ICMPv6, src, ip.Src, icmp))
	r.send(p, [][]byte{out})
}
