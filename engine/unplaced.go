// SPDX-License-Identifier: Apache-2.0

package engine

import (
	"context"
	"errors"

	"github.com/wirefleet/wirefleet/wgkey"
	"golang.zx2c4.com/wireguard/conn"
)

// ErrPeerElsewhere is InitiateTo's answer for a peer held here with a live
// session: a packet nobody can authenticate (an unplaced transport packet
// may be forged) does not move it, nor start another handshake.
var ErrPeerElsewhere = errors.New("engine: the peer has a live session here")

// liveFor is how recently a held peer must have sent an authenticated
// packet for InitiateTo to leave it alone.
const liveFor = KeepaliveTimeout + RekeyTimeout

// InitiateTo starts a handshake with the peer of static key key at ep: a
// peer whose session lives on another node (one that died, or that a load
// balancer no longer sends it to) and whose transport packets now reach
// this engine, which cannot place them. A standard client would only
// initiate itself some 15 s after its last answer; this way its next
// packet brings a handshake back at once. ep is the endpoint the packets
// came from, with the local address they arrived on, so the initiation
// leaves from the address the device sends to.
//
// The peer is resolved as an initiation from it would be (the Resolver
// may refuse it) and held lazily; a peer with a live session here (an
// authenticated packet within 15 s) is left alone (ErrPeerElsewhere).
// The caller decides whether the session elsewhere is over: the packet
// that asks for this cannot be authenticated.
func (e *Engine) InitiateTo(ctx context.Context, key wgkey.Public, ep conn.Endpoint) error {
	remote := endpointAddr(ep)
	p := e.peers.get(key)
	if p == nil {
		if e.resolver == nil {
			return ErrUnknownPeer
		}
		pc, err := e.resolver.ResolvePeer(ctx, key, remote)
		if err != nil {
			return err
		}
		pc.PublicKey = key
		np, err := e.newPeer(e.id.Load(), pc, true, remote)
		if err != nil {
			return err
		}
		if ts, ok := e.evicted.get(key); ok && ts.After(np.lastTS) {
			np.lastTS = ts
		}
		if p = e.peers.insert(np); p == np {
			e.routes.add(p)
			e.wheel.arm(p, e.nanos()) // eviction if the handshake never completes
		}
	}
	if last := p.lastReceived.Load(); p.Stats().HasSession && last != 0 && e.nanos()-last < int64(liveFor) {
		return ErrPeerElsewhere // one inserted meanwhile, or held before
	}
	p.endpoint.Store(&endpointBox{ep: ep, addr: remote, src: ep.SrcIP()})
	// One initiation, not retransmitted: the packet that asked for it may
	// be forged, and a device that is there answers the first (the next
	// packet of it asks again after a while).
	p.mu.Lock()
	p.oneShot = true
	p.mu.Unlock()
	e.Initiate(p)
	return nil
}

// unplaced reports a transport datagram no session here holds.
func (e *Engine) unplaced(ep conn.Endpoint) {
	if f := e.hooks.UnplacedTransport; f != nil {
		f(endpointAddr(ep), ep)
	}
}
