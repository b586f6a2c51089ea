// SPDX-License-Identifier: Apache-2.0

package engine

import (
	"context"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"net/netip"
	"sync"
	"time"

	"golang.zx2c4.com/wireguard/conn"

	"github.com/wirefleet/wirefleet/engine/noise"
	"github.com/wirefleet/wirefleet/engine/tai64n"
	"github.com/wirefleet/wirefleet/engine/wire"
	"github.com/wirefleet/wirefleet/internal/tokenbucket"
	"github.com/wirefleet/wirefleet/keystore"
	"github.com/wirefleet/wirefleet/wgkey"
)

// hsJob is one handshake message waiting for a handshake worker.
type hsJob struct {
	typ uint32
	n   int
	buf [wire.InitiationSize]byte
	ep  conn.Endpoint
}

var hsJobPool = sync.Pool{New: func() any { return new(hsJob) }}

// queueHandshake is called by UDP readers for handshake messages. Cookie
// replies are consumed at once. For the others MAC1 is
// checked here, before anything is queued, so garbage costs one BLAKE2s
// and cannot push the engine under load. Under load, MAC2 and the per-source
// rate limit are checked here too: a flood is answered with cookie replies
// from the reader and never fills the queue that legitimate, address-proven
// initiations wait in.
func (e *Engine) queueHandshake(typ uint32, msg []byte, ep conn.Endpoint) {
	if typ == wire.TypeCookieReply {
		// Cheap (an index lookup and one XChaCha20-Poly1305), so handled
		// here: a spray of them never reaches the queue.
		e.handleCookieReply(msg)
		return
	}
	if e.UnderLoad() {
		if ok, _ := e.sources.Allow(sourceKey(ep)); !ok {
			e.rejects[RejectSourceFlood].Add(1) // no event per packet: a flood would make one each
			return
		}
	}
	if !e.id.Load().checker.CheckMAC1(msg) {
		e.reject(RejectBadMAC1, unknownKey, endpointAddr(ep), "")
		return
	}
	if !e.admit(msg, binary.LittleEndian.Uint32(msg[4:]), ep) {
		return
	}
	if len(e.hsQ) >= underLoadQueue {
		e.underLoadUntil.Store(e.nanos() + int64(underLoadLinger))
	}
	j := hsJobPool.Get().(*hsJob)
	j.typ, j.n, j.ep = typ, copy(j.buf[:], msg), ep
	select {
	case e.hsQ <- j:
	default:
		hsJobPool.Put(j)
		e.reject(RejectFlood, unknownKey, endpointAddr(ep), "handshake queue full")
	}
}

// initiationWorker sends our own initiations. It is apart from the
// handshake workers so a slow resolver (a database away) cannot hold up
// rekeys with peers already held.
func (e *Engine) initiationWorker() {
	for {
		select {
		case <-e.ctx.Done():
			return
		case p := <-e.initQ:
			e.sendInitiation(p)
		}
	}
}

func (e *Engine) handshakeWorker() {
	for {
		select {
		case <-e.ctx.Done():
			return
		case j := <-e.hsQ:
			msg := j.buf[:j.n]
			switch j.typ {
			case wire.TypeInitiation:
				e.handleInitiation(msg, j.ep)
			case wire.TypeResponse:
				e.handleResponse(msg, j.ep)
			}
			j.ep = nil
			hsJobPool.Put(j)
		}
	}
}

// sourceKey is the address a source's handshake share is kept under: an
// IPv6 host usually holds a whole /64.
func sourceKey(ep conn.Endpoint) netip.Addr {
	a := endpointAddr(ep).Addr().Unmap()
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p.Addr()
	}
	return a
}

// cookieBudget is a token bucket of cookie replies (cookieReplyRate),
// full at the start.
type cookieBudget struct {
	mu      sync.Mutex
	started bool
	b       tokenbucket.Bucket
}

func (c *cookieBudget) take(now time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.started {
		c.b.Fill(now, cookieReplyRate)
		c.started = true
	}
	ok, _ := c.b.Take(now, cookieReplyRate, cookieReplyRate)
	return ok
}

// admit applies the under-load rules to a handshake message: without a
// valid MAC2 it is answered with a cookie; with one, its source is rate
// limited.
func (e *Engine) admit(msg []byte, sender uint32, ep conn.Endpoint) bool {
	if !e.UnderLoad() {
		return true
	}
	src := ep.DstToBytes()
	checker := e.id.Load().checker
	if !checker.CheckMAC2(msg, src) {
		if !e.cookies.take(e.clk.Now()) {
			e.rejects[RejectCookieBudget].Add(1)
			return false
		}
		reply, err := checker.MakeReply(msg, sender, src)
		if err == nil {
			var b [wire.CookieReplySize]byte
			reply.Marshal(b[:])
			e.bind.Send([][]byte{b[:]}, ep)
		}
		e.reject(RejectCookieSent, unknownKey, endpointAddr(ep), "")
		return false
	}
	if !e.limiter.Allow(ep.DstIP()) {
		e.reject(RejectRateLimited, unknownKey, endpointAddr(ep), "")
		return false
	}
	return true
}

func (e *Engine) handleInitiation(msg []byte, ep conn.Endpoint) {
	m, err := wire.ParseInitiation(msg)
	if err != nil {
		return
	}
	remote := endpointAddr(ep)
	id := e.id.Load()
	r, err := noise.OpenInitiation(e.ctx, id.ks, id.pub, &m, keystore.DHRequest{Remote: remote})
	if err != nil {
		if errors.Is(err, noise.ErrDecrypt) || errors.Is(err, keystore.ErrLowOrder) {
			e.reject(RejectUndecryptable, unknownKey, remote, "")
		} else {
			e.reject(RejectKeyStore, unknownKey, remote, err.Error())
		}
		return
	}
	key := r.PeerStatic
	// Two rounds at most: a held peer evicted while we worked on its
	// initiation is resolved again rather than refused.
	var p *Peer
	var ts tai64n.Timestamp
	now := e.nanos()
	for round := 0; ; round++ {
		var fresh bool
		var ok bool
		p, fresh, ok = e.peerForInitiation(id, key, remote)
		if !ok {
			return
		}
		ss, err := p.staticStatic(id, remote)
		if err != nil {
			e.reject(RejectKeyStore, key, remote, err.Error())
			return
		}
		if ts, err = r.OpenTimestamp(&ss); err != nil {
			e.reject(RejectUndecryptable, key, remote, "")
			return
		}
		if fresh {
			// Only now, authenticated and not a replay, does the peer take
			// memory. If another worker raced us in, use its peer (the
			// checks below then serialise on it).
			if !ts.After(p.lastTS) {
				e.rejectReplay(key, remote, ts)
				return
			}
			if got := e.peers.insert(p); got != p {
				p = got
			} else {
				e.routes.add(p)
			}
			e.wheel.arm(p, e.nanos()) // eviction once idle
		}
		p.mu.Lock()
		if p.removed {
			p.mu.Unlock()
			if round == 0 {
				continue
			}
			e.reject(RejectDenied, key, remote, "peer removed")
			return
		}
		if !ts.After(p.lastTS) {
			p.mu.Unlock()
			e.rejectReplay(key, remote, ts)
			return
		}
		if now-p.lastInitAt < int64(HandshakeInitiationRate) {
			p.mu.Unlock()
			e.reject(RejectFlood, key, remote, "")
			return
		}
		p.lastTS, p.lastInitAt = ts, now
		p.mu.Unlock()
		break
	}

	idx := e.indices.newIndex(indexEntry{peer: p})
	resp, keys, err := r.CreateResponse(p.psk, idx)
	if err != nil {
		e.indices.delete(idx)
		e.reject(RejectUndecryptable, key, remote, err.Error())
		return
	}
	kp := newKeypair(p, &keys, false, now, idx, m.Sender)
	e.indices.set(idx, indexEntry{peer: p, kp: kp})
	p.mu.Lock()
	if p.removed {
		p.mu.Unlock()
		e.indices.delete(idx)
		return
	}
	// The responder may not send on a new session until the initiator has
	// used it: it waits in next.
	if p.next != nil {
		e.indices.delete(p.next.localIndex)
	}
	if p.previous != nil {
		e.indices.delete(p.previous.localIndex)
		p.previous = nil
	}
	p.next = kp
	p.mu.Unlock()
	p.setEndpoint(ep)
	p.lastActivity.Store(now)
	e.wheel.arm(p, now) // a session in waiting: its deadlines from now

	var b [wire.ResponseSize]byte
	resp.Marshal(b[:])
	p.cookies.AddMACs(b[:], e.now())
	e.sendRaw(p, b[:])
}

// peerForInitiation returns the held peer with key, or a new one built
// from the resolver's answer (fresh: not yet inserted). ok is false when
// the initiation is refused (the event is reported).
func (e *Engine) peerForInitiation(id *identity, key wgkey.Public, remote netip.AddrPort) (p *Peer, fresh, ok bool) {
	if p = e.peers.get(key); p != nil {
		return p, false, true
	}
	if e.resolver == nil {
		e.reject(RejectUnknownKey, key, remote, "")
		return nil, false, false
	}
	ctx, cancel := context.WithTimeout(e.ctx, resolveTimeout)
	pc, err := e.resolver.ResolvePeer(ctx, key, remote)
	cancel()
	var denied *DeniedError
	switch {
	case errors.As(err, &denied):
		e.reject(RejectDenied, key, remote, denied.Reason)
		return nil, false, false
	case errors.Is(err, ErrUnknownPeer):
		e.reject(RejectUnknownKey, key, remote, "")
		return nil, false, false
	case err != nil:
		// Not the peer's fault: a database away is not a flood of unknown keys.
		e.reject(RejectResolverError, key, remote, err.Error())
		return nil, false, false
	}
	pc.PublicKey = key
	if p, err = e.newPeer(id, pc, true, remote); err != nil {
		e.reject(RejectKeyStore, key, remote, err.Error())
		return nil, false, false
	}
	// Replay protection outlives eviction: start from the newest timestamp
	// the resolver or our memory of evicted peers knows.
	if ts, ok := e.evicted.get(key); ok && ts.After(p.lastTS) {
		p.lastTS = ts
	}
	return p, true, true
}

func (e *Engine) handleResponse(msg []byte, ep conn.Endpoint) {
	m, err := wire.ParseResponse(msg)
	if err != nil {
		return
	}
	remote := endpointAddr(ep)
	ent, ok := e.indices.lookup(m.Receiver)
	if !ok || ent.kp != nil {
		e.reject(RejectUnexpected, unknownKey, remote, "response to no pending initiation")
		return
	}
	p := ent.peer
	p.mu.Lock()
	if p.initiator == nil || p.initIndex != m.Receiver || p.removed {
		p.mu.Unlock()
		e.reject(RejectUnexpected, p.key, remote, "stale response")
		return
	}
	st := p.initiator
	keys, err := st.ConsumeResponse(e.ctx, p.initFor.ks, &m)
	if err != nil {
		p.mu.Unlock()
		if errors.Is(err, noise.ErrDecrypt) || errors.Is(err, noise.ErrLowOrder) || errors.Is(err, keystore.ErrLowOrder) {
			e.reject(RejectUndecryptable, p.key, remote, "")
		} else {
			e.reject(RejectKeyStore, p.key, remote, err.Error())
		}
		return
	}
	st.Wipe()
	now := e.nanos()
	kp := newKeypair(p, &keys, true, now, p.initIndex, m.Sender)
	e.indices.set(p.initIndex, indexEntry{peer: p, kp: kp})
	p.initiator, p.initIndex, p.attempts = nil, 0, 0
	p.oneShot = false // answered: rekeys retry as usual
	if p.next != nil {
		e.indices.delete(p.next.localIndex)
		p.next = nil
	}
	if p.previous != nil {
		e.indices.delete(p.previous.localIndex)
	}
	p.previous = p.current.Load()
	p.current.Store(kp)
	staged := p.staged
	p.staged = nil
	p.mu.Unlock()

	p.setEndpoint(ep)
	e.sessionStarted(p, ep, true, now)
	if len(staged) > 0 {
		e.Send(p, staged)
	} else {
		e.sendKeepalive(p)
	}
}

func (e *Engine) handleCookieReply(msg []byte) {
	m, err := wire.ParseCookieReply(msg)
	if err != nil {
		return
	}
	ent, ok := e.indices.lookup(m.Receiver)
	if !ok {
		return
	}
	ent.peer.cookies.ConsumeReply(&m, e.now())
}

// sessionStarted does the bookkeeping common to both roles once a session
// is usable.
func (e *Engine) sessionStarted(p *Peer, ep conn.Endpoint, initiator bool, now int64) {
	p.lastHandshake.Store(now)
	p.lastActivity.Store(now)
	p.expiredReported.Store(false)
	e.wheel.arm(p, now) // the new session's expiry, and what else is due
	e.handshakesOK.Add(1)
	if e.hooks.HandshakeCompleted != nil {
		e.hooks.HandshakeCompleted(HandshakeEvent{Peer: p, Endpoint: endpointAddr(ep), Initiator: initiator, Time: time.Unix(0, now)})
	}
}

// confirm promotes a responder's next keypair once the initiator used it.
func (p *Peer) confirm(kp *keypair) bool {
	p.mu.Lock()
	if p.next != kp {
		p.mu.Unlock()
		return false
	}
	if p.previous != nil {
		p.e.indices.delete(p.previous.localIndex)
	}
	p.previous = p.current.Load()
	p.current.Store(kp)
	p.next = nil
	staged := p.staged
	p.staged = nil
	p.mu.Unlock()
	if len(staged) > 0 {
		p.e.Send(p, staged)
	}
	return true
}

// zeroKeysLocked forgets every session and pending handshake of p.
func (p *Peer) zeroKeysLocked() {
	for _, kp := range []*keypair{p.previous, p.current.Load(), p.next} {
		if kp != nil {
			p.e.indices.delete(kp.localIndex)
		}
	}
	p.previous, p.next = nil, nil
	p.current.Store(nil)
	if p.initIndex != 0 {
		p.e.indices.delete(p.initIndex)
	}
	if p.initiator != nil {
		p.initiator.Wipe()
	}
	p.initiator, p.initIndex = nil, 0
	p.staged = nil
}

// Initiate starts a handshake with p now (unless one was sent within
// RekeyTimeout).
func (e *Engine) Initiate(p *Peer) { e.requestHandshake(p, false) }

// requestHandshake queues an initiation for a handshake worker. Retries
// (from the timer) bypass the RekeyTimeout spacing.
func (e *Engine) requestHandshake(p *Peer, retry bool) {
	p.mu.Lock()
	if p.removed || p.initQueued || p.endpoint.Load() == nil {
		p.mu.Unlock()
		return
	}
	if !retry && p.initIndex != 0 && e.nanos()-p.initSentAt < int64(RekeyTimeout) {
		p.mu.Unlock()
		return
	}
	if !retry && p.initIndex == 0 {
		p.attempts = 0
	}
	p.initQueued = true
	p.mu.Unlock()
	select {
	case e.initQ <- p:
	default:
		p.mu.Lock()
		p.initQueued = false
		p.mu.Unlock()
		e.wheel.arm(p, e.nanos()) // the queue is full: a retry is tried again next tick
	}
}

// sendInitiation builds and sends an initiation to p (handshake worker).
func (e *Engine) sendInitiation(p *Peer) {
	now := e.now()
	p.mu.Lock()
	p.initQueued = false
	if p.removed {
		p.mu.Unlock()
		return
	}
	if p.initIndex != 0 {
		e.indices.delete(p.initIndex)
	}
	id := e.id.Load()
	var st *noise.Initiator
	var m wire.Initiation
	err := p.computeStaticStaticLocked(id, netip.AddrPort{})
	idx := e.indices.newIndex(indexEntry{peer: p})
	if err == nil {
		st, m, err = noise.CreateInitiation(noise.InitiationParams{
			Local: id.pub, Peer: p.key, StaticStatic: &p.ss, PSK: p.psk,
			SenderIndex: idx, Timestamp: tai64n.From(now),
		})
	}
	if err != nil {
		e.indices.delete(idx)
		p.initiator, p.initIndex = nil, 0
		p.mu.Unlock()
		e.log.Warn("creating initiation failed", "peer", p.key.Short(), "err", err)
		return
	}
	p.initiator, p.initIndex, p.initFor = st, idx, id
	p.initSentAt = now.UnixNano() + int64(rand.N(RekeyTimeoutJitterMax))
	p.attempts++
	retryAt := p.initSentAt + int64(RekeyTimeout)
	p.mu.Unlock()
	e.wheel.arm(p, retryAt)
	var b [wire.InitiationSize]byte
	m.Marshal(b[:])
	p.cookies.AddMACs(b[:], now)
	e.sendRaw(p, b[:])
	p.lastTraversal.Store(now.UnixNano())
}

// sendRaw sends an unencrypted handshake message to p's endpoint.
func (e *Engine) sendRaw(p *Peer, b []byte) {
	box := p.endpoint.Load()
	if box == nil {
		return
	}
	if err := e.bind.Send([][]byte{b}, box.ep); err != nil && !e.closed.Load() {
		e.log.Debug("sending handshake message failed", "peer", p.key.Short(), "err", err)
	}
}
