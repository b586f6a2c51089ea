// SPDX-License-Identifier: Apache-2.0

package gateway

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wirefleet/wirefleet/controlplane/store"
	"github.com/wirefleet/wirefleet/engine"
	"github.com/wirefleet/wirefleet/fleet"
	"github.com/wirefleet/wirefleet/internal/packet"
)

// VXLANPort is the IANA VXLAN port (RFC 7348): where the gateway sends a
// Gate peer's packets, and where a Linux vxlan interface with
// "dstport 4789" listens.
const VXLANPort = 4789

// gatewayMAC is the gateway's MAC on every Gate peer segment: locally
// administered, unicast.
var gatewayMAC = [6]byte{0x02, 0x77, 0x66, 0x00, 0x00, 0x01}

var broadcastMAC = [6]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}

const (
	etherIPv4 = 0x0800
	etherARP  = 0x0806
	vxlanHdr  = 8
	etherHdr  = 14
	arpLen    = 28
)

// Drop reasons of the VXLAN endpoint.
const (
	dropVXLANUnknown   = "vxlan-unknown-peer" // not a registered (outer address, VNI)
	dropVXLANMalformed = "vxlan-malformed"    // not a VXLAN frame we carry
	dropVXLANSource    = "vxlan-source"       // inner source is not the Gate peer's address
)

// gatePeer is a registered Gate peer as the data path uses it.
type gatePeer struct {
	fleet.GatePeer
	mac                atomic.Pointer[[6]byte] // learned from its frames; nil: broadcast
	rxPackets, rxBytes atomic.Uint64
	txPackets, txBytes atomic.Uint64
}

type gateKey struct {
	outer netip.Addr
	vni   uint32
}

// gateTable is one immutable state of the registered Gate peers.
type gateTable struct {
	byOuter map[gateKey]*gatePeer
	byInner map[netip.Addr]*gatePeer
	byID    map[string]*gatePeer
}

// vxlanEndpoint joins Gate peers' VXLAN segments to the device subnet: it
// answers ARP for device addresses (and the gateway's own on the segment,
// the pool's first address) with gatewayMAC and routes IPv4 between the
// segments and the tunnels, under device-to-device policy.
type vxlanEndpoint struct {
	g     *Gateway
	conn  *net.UDPConn
	inner netip.Addr // the gateway's address on the segments
	table atomic.Pointer[gateTable]
	drops dropCounters
	wg    sync.WaitGroup
}

func startVXLAN(g *Gateway, listen string) (*vxlanEndpoint, error) {
	ua, err := net.ResolveUDPAddr("udp4", listen)
	if err != nil {
		return nil, fmt.Errorf("gateway: VXLAN listen address %q: %w", listen, err)
	}
	conn, err := net.ListenUDP("udp4", ua)
	if err != nil {
		return nil, fmt.Errorf("gateway: VXLAN: %w", err)
	}
	v := &vxlanEndpoint{g: g, conn: conn, inner: g.pool.Masked().Addr().Next()}
	v.table.Store(&gateTable{})
	v.reload()
	v.wg.Add(1)
	go v.readLoop()
	g.log.Info("VXLAN Gate peers on", "listen", conn.LocalAddr().String(), "gateway_inner", v.inner)
	return v, nil
}

func (v *vxlanEndpoint) close() {
	v.conn.Close()
	v.wg.Wait()
}

// reload reads every Gate peer again (they are few) and keeps the learned
// MACs and counters of those that stay.
func (v *vxlanEndpoint) reload() {
	ctx, cancel := context.WithTimeout(v.g.ctx, 5*time.Second)
	defer cancel()
	old := v.table.Load()
	next := &gateTable{byOuter: map[gateKey]*gatePeer{}, byInner: map[netip.Addr]*gatePeer{}, byID: map[string]*gatePeer{}}
	for cursor := ""; ; {
		p, err := v.g.st.ListGatePeers(ctx, store.PageRequest{Limit: store.MaxLimit, Cursor: cursor})
		if err != nil {
			v.g.log.Warn("reading Gate peers", "err", err)
			return
		}
		for _, gp := range p.Items {
			if err := v.g.policies.ensure(ctx, v.g.st, gp.GroupID); err != nil {
				v.g.log.Warn("reading a Gate peer's group", "gate_peer", gp.ID, "err", err)
			}
			peer := old.byInner[gp.InnerAddress]
			if peer == nil || peer.GatePeer != gp {
				peer = &gatePeer{GatePeer: gp}
			}
			next.byOuter[gateKey{gp.OuterAddress, gp.VNI}] = peer
			next.byInner[gp.InnerAddress] = peer
			next.byID[gp.ID] = peer
		}
		if p.Next == "" {
			break
		}
		cursor = p.Next
	}
	v.table.Store(next)
}

// peerAt returns the Gate peer whose inner address is a.
func (v *vxlanEndpoint) peerAt(a netip.Addr) *gatePeer { return v.table.Load().byInner[a] }

// peerByID returns the Gate peer id, if registered.
func (v *vxlanEndpoint) peerByID(id string) *gatePeer { return v.table.Load().byID[id] }

func (v *vxlanEndpoint) readLoop() {
	defer v.wg.Done()
	buf := make([]byte, 65535)
	for {
		n, from, err := v.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			return // closed
		}
		v.handle(buf[:n], from.Addr().Unmap())
	}
}

// handle takes one VXLAN datagram from outer address from.
func (v *vxlanEndpoint) handle(b []byte, from netip.Addr) {
	if len(b) < vxlanHdr+etherHdr || b[0]&0x08 == 0 {
		v.drops.add(dropVXLANMalformed)
		return
	}
	vni := binary.BigEndian.Uint32(b[4:8]) >> 8
	peer := v.table.Load().byOuter[gateKey{from, vni}]
	if peer == nil {
		v.drops.add(dropVXLANUnknown)
		return
	}
	frame := b[vxlanHdr:]
	var dst, src [6]byte
	copy(dst[:], frame[0:6])
	copy(src[:], frame[6:12])
	if src[0]&1 == 0 { // a unicast source: the peer's interface
		if m := peer.mac.Load(); m == nil || *m != src {
			peer.mac.Store(&src)
		}
	}
	payload := frame[etherHdr:]
	switch binary.BigEndian.Uint16(frame[12:14]) {
	case etherARP:
		v.arp(peer, payload)
	case etherIPv4:
		if dst != gatewayMAC && dst != broadcastMAC {
			return // for another host on the segment
		}
		peer.rxPackets.Add(1)
		peer.rxBytes.Add(uint64(len(payload)))
		v.fromPeer(peer, payload)
	default:
		v.drops.add(dropVXLANMalformed) // VLAN tags, IPv6 (not yet), anything else
	}
}

// arp answers a request for a device address or the gateway's own on the
// segment; the peer's own address (its duplicate-address probe) and
// addresses outside the SIM pool get no answer.
func (v *vxlanEndpoint) arp(peer *gatePeer, a []byte) {
	if len(a) < arpLen || binary.BigEndian.Uint16(a[0:2]) != 1 || binary.BigEndian.Uint16(a[2:4]) != etherIPv4 || a[4] != 6 || a[5] != 4 {
		v.drops.add(dropVXLANMalformed)
		return
	}
	if binary.BigEndian.Uint16(a[6:8]) != 1 { // not a request
		return
	}
	target := netip.AddrFrom4([4]byte(a[24:28]))
	if target == peer.InnerAddress || !v.g.pool.Contains(target) || v.peerAt(target) != nil {
		return
	}
	out := make([]byte, etherHdr+arpLen)
	copy(out[0:6], a[8:14]) // to the requester's hardware address
	copy(out[6:12], gatewayMAC[:])
	binary.BigEndian.PutUint16(out[12:14], etherARP)
	r := out[etherHdr:]
	binary.BigEndian.PutUint16(r[0:2], 1)
	binary.BigEndian.PutUint16(r[2:4], etherIPv4)
	r[4], r[5] = 6, 4
	binary.BigEndian.PutUint16(r[6:8], 2) // reply
	copy(r[8:14], gatewayMAC[:])
	copy(r[14:18], a[24:28]) // sender IP: the address asked for
	copy(r[18:24], a[8:14])  // target: the requester
	copy(r[24:28], a[14:18])
	v.send(peer, out)
}

// fromPeer routes an IPv4 packet from a Gate peer: to a SIM, or a LAN
// behind one, under device-to-device policy between the peer's group and
// the SIM's.
func (v *vxlanEndpoint) fromPeer(peer *gatePeer, pkt []byte) {
	r := v.g.router
	var ip packet.Parsed
	if ip.Decode(pkt) != nil || ip.Version != 4 {
		r.drops.add(dropMalformed)
		return
	}
	pkt = pkt[:ip.Length]
	// A host that is a group's redirection next hop answers for the
	// destinations it stands in for: to that group's SIMs, any source,
	// and no device-to-device rule (it is the group's path, not a peer).
	returning := false
	if ip.Src != peer.InnerAddress {
		// Not as another SIM, nor as the platform unless the group sends
		// its platform traffic there too.
		if to := r.peerFor(ip.Dst); to != nil && !r.pool.Contains(ip.Src) {
			if st := stateOf(to); st != nil {
				if p := r.policies.get(st.SIM().GroupID); p != nil && p.redirectVia == peer.ID && (p.redirectPlatform || !r.plat.Contains(ip.Src)) {
					returning = true
				}
			}
		}
		if !returning {
			v.drops.add(dropVXLANSource)
			return
		}
	}
	pol := r.policies.get(peer.GroupID)
	var (
		to  *engine.Peer
		lan *lanRoute
	)
	switch {
	case r.pool.Contains(ip.Dst):
		to = r.peerFor(ip.Dst)
	default:
		if lan = r.lans.lookup(ip.Dst); lan == nil {
			r.drops.add(dropNoRoute)
			return
		}
		to = r.peerOf(lan.sim)
	}
	if to == nil {
		r.drops.add(dropOffline)
		if lan != nil {
			lan.drops.add(dropOffline)
		}
		return
	}
	dstSt := stateOf(to)
	if dstSt == nil || dstSt.revoked.Load() || !returning && !d2dAllowed(pol, r.policies.get(dstSt.SIM().GroupID), ip.Proto, ip.SrcPort, ip.DstPort) {
		r.drops.add(dropPolicy)
		if lan != nil {
			lan.drops.add(dropPolicy)
		}
		return
	}
	if lan != nil {
		lan.enter(pkt, &ip)
	}
	r.send(to, [][]byte{pkt}) // the engine copies
}

// toPeer sends an IPv4 packet from a SIM (or a LAN behind one) to a Gate
// peer, framed for its segment.
func (v *vxlanEndpoint) toPeer(peer *gatePeer, pkt []byte) {
	// Sized to the packet: an inner packet may be larger than an Ethernet
	// MTU (a peer's own MTU decides; the kernel drops what it cannot take).
	frame := make([]byte, etherHdr+len(pkt))
	dst := broadcastMAC
	if m := peer.mac.Load(); m != nil {
		dst = *m
	}
	copy(frame[0:6], dst[:])
	copy(frame[6:12], gatewayMAC[:])
	binary.BigEndian.PutUint16(frame[12:14], etherIPv4)
	copy(frame[etherHdr:], pkt)
	peer.txPackets.Add(1)
	peer.txBytes.Add(uint64(len(pkt)))
	v.send(peer, frame)
}

// send wraps an Ethernet frame in VXLAN to the peer's outer address.
func (v *vxlanEndpoint) send(peer *gatePeer, frame []byte) {
	out := make([]byte, vxlanHdr+len(frame))
	out[0] = 0x08
	binary.BigEndian.PutUint32(out[4:8], peer.VNI<<8)
	copy(out[vxlanHdr:], frame)
	v.conn.WriteToUDPAddrPort(out, netip.AddrPortFrom(peer.OuterAddress, VXLANPort))
}
