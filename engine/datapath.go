// SPDX-License-Identifier: Apache-2.0

package engine

import (
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/wirefleet/wirefleet/engine/wire"
	"github.com/wirefleet/wirefleet/internal/packet"
	"golang.zx2c4.com/wireguard/conn"
	"golang.zx2c4.com/wireguard/tun"
)

// The data path, with no goroutine per peer:
//
//	UDP reader ──(batch)──► crypto workers (decrypt chunks in parallel)
//	     └──────(same batch, in order)──► deliverer: replay check, roaming,
//	                                      source check, handler or TUN
//	Send / TUN reader ──(batch)──► crypto workers (encrypt chunks)
//	     └──────(same batch, in order)──► outbound writer: batched UDP send
//
// A batch goes to its ordered consumer before its chunks go to the
// workers, and the consumer waits on the batch, so order is kept without
// any per-peer queue.

var bufPool = sync.Pool{New: func() any { b := make([]byte, bufSize); return &b }}

func getBuf() *[]byte  { return bufPool.Get().(*[]byte) }
func putBuf(b *[]byte) { bufPool.Put(b) }

type inElem struct {
	buf     *[]byte
	size    int
	kp      *keypair
	counter uint64
	ep      conn.Endpoint
	n       int // plaintext length after decryption; -1: refused
	drop    DropReason
}

type inBatch struct {
	elems []inElem
	wg    sync.WaitGroup
}

type outElem struct {
	buf     *[]byte
	n       int // inner length, then whole message length after encryption
	kp      *keypair
	counter uint64
}

type outBatch struct {
	peer  *Peer
	elems []outElem
	wg    sync.WaitGroup
}

var (
	inBatchPool  = sync.Pool{New: func() any { return new(inBatch) }}
	outBatchPool = sync.Pool{New: func() any { return new(outBatch) }}
)

type cryptoJob struct {
	in     *inBatch
	out    *outBatch
	lo, hi int
}

// cryptoWorker runs until Close closes the queue, so every queued batch
// completes and its ordered consumer never waits forever.
func (e *Engine) cryptoWorker() {
	for j := range e.cryptoQ {
		if j.in != nil {
			e.decrypt(j.in.elems[j.lo:j.hi])
			j.in.wg.Done()
		} else {
			e.encrypt(j.out.elems[j.lo:j.hi])
			j.out.wg.Done()
		}
	}
}

func nonceOf(counter uint64) (n [12]byte) {
	binary.LittleEndian.PutUint64(n[4:], counter)
	return
}

func (e *Engine) decrypt(elems []inElem) {
	now := e.nanos()
	for i := range elems {
		el := &elems[i]
		if now-el.kp.created >= int64(RejectAfterTime) || el.counter >= RejectAfterMessages {
			el.n, el.drop = -1, DropNoSession
			continue
		}
		b := *el.buf
		nonce := nonceOf(el.counter)
		out, err := el.kp.recv.Open(b[wire.TransportHeaderSize:wire.TransportHeaderSize], nonce[:], b[wire.TransportHeaderSize:el.size], nil)
		if err != nil {
			el.n, el.drop = -1, DropDecrypt
			continue
		}
		el.n = len(out)
	}
}

func (e *Engine) encrypt(elems []outElem) {
	for i := range elems {
		el := &elems[i]
		b := *el.buf
		padded := (el.n + wire.PaddingMultiple - 1) &^ (wire.PaddingMultiple - 1)
		if e.mtu > 0 && padded > e.mtu && el.n <= e.mtu {
			padded = e.mtu
		}
		clear(b[wire.TransportHeaderSize+el.n : wire.TransportHeaderSize+padded])
		wire.PutTransportHeader(b, el.kp.remoteIndex, el.counter)
		nonce := nonceOf(el.counter)
		el.kp.send.Seal(b[wire.TransportHeaderSize:wire.TransportHeaderSize], nonce[:], b[wire.TransportHeaderSize:wire.TransportHeaderSize+padded], nil)
		el.n = wire.TransportHeaderSize + padded + wire.TagSize
	}
}

// dispatch splits n elements into crypto jobs.
func (e *Engine) dispatch(in *inBatch, out *outBatch, n int) {
	for lo := 0; lo < n; lo += chunkSize {
		hi := min(lo+chunkSize, n)
		e.cryptoQ <- cryptoJob{in: in, out: out, lo: lo, hi: hi}
	}
}

func chunks(n int) int { return (n + chunkSize - 1) / chunkSize }

func (e *Engine) startReceiver(fn conn.ReceiveFunc) {
	order := make(chan *inBatch, 16)
	goRun(&e.producers, func() { e.receiveLoop(fn, order) })
	goRun(&e.consumers, func() { e.deliverLoop(order) })
}

func (e *Engine) receiveLoop(fn conn.ReceiveFunc, order chan<- *inBatch) {
	defer close(order)
	n := e.bind.BatchSize()
	bufs := make([]*[]byte, n)
	pkts := make([][]byte, n)
	sizes := make([]int, n)
	eps := make([]conn.Endpoint, n)
	for i := range bufs {
		bufs[i] = getBuf()
	}
	defer func() {
		for _, b := range bufs {
			putBuf(b)
		}
	}()
	for {
		for i := range pkts {
			pkts[i] = (*bufs[i])[:bufSize]
		}
		count, err := fn(pkts, sizes, eps)
		if err != nil {
			if e.closed.Load() || errors.Is(err, net.ErrClosed) {
				return
			}
			e.log.Warn("UDP receive failed", "err", err)
			select {
			case <-e.ctx.Done():
				return
			case <-time.After(10 * time.Millisecond):
			}
			continue
		}
		var batch *inBatch
		var cache indexCache
		for i := 0; i < count; i++ {
			el, ok := e.classify(pkts[i][:sizes[i]], eps[i], &cache)
			if !ok {
				continue
			}
			if batch == nil {
				batch = inBatchPool.Get().(*inBatch)
			}
			el.buf = bufs[i]
			batch.elems = append(batch.elems, el)
			bufs[i] = getBuf()
		}
		if batch != nil {
			batch.wg.Add(chunks(len(batch.elems)))
			order <- batch
			e.dispatchMu.RLock()
			e.dispatch(batch, nil, len(batch.elems))
			e.dispatchMu.RUnlock()
		}
	}
}

// indexCache remembers the last receiver index looked up: a batch is
// usually many packets of one session.
type indexCache struct {
	idx uint32
	ent indexEntry
}

// classify handles one received datagram: handshake messages go to the
// handshake queue, transport messages of a known session come back as an
// element to decrypt (ok true), anything else is counted and dropped.
func (e *Engine) classify(pkt []byte, ep conn.Endpoint, cache *indexCache) (el inElem, ok bool) {
	typ, err := wire.Type(pkt)
	if err != nil {
		e.drops[DropMalformedOuter].Add(1)
		return el, false
	}
	if typ != wire.TypeTransport {
		e.queueHandshake(typ, pkt, ep)
		return el, false
	}
	h, _ := wire.ParseTransportHeader(pkt)
	if h.Receiver != cache.idx || cache.ent.kp == nil {
		ent, found := e.indices.lookup(h.Receiver)
		if !found || ent.kp == nil {
			e.drops[DropNoSession].Add(1)
			e.unplaced(ep)
			return el, false
		}
		cache.idx, cache.ent = h.Receiver, ent
	}
	return inElem{size: len(pkt), kp: cache.ent.kp, counter: h.Counter, ep: ep}, true
}

func (e *Engine) deliverLoop(order <-chan *inBatch) {
	var out []InboundPacket
	var tunBufs [][]byte
	for batch := range order {
		batch.wg.Wait()
		out, tunBufs = e.deliver(batch, out, tunBufs)
		for i := range batch.elems {
			putBuf(batch.elems[i].buf)
		}
		clear(batch.elems)
		batch.elems = batch.elems[:0]
		inBatchPool.Put(batch)
	}
}

// deliver runs the sequential half of receiving on a decrypted batch:
// replay window, session confirmation, roaming, source check, hand-off.
func (e *Engine) deliver(batch *inBatch, out []InboundPacket, tunBufs [][]byte) ([]InboundPacket, [][]byte) {
	now := e.nanos()
	var lastPeer *Peer
	for i := range batch.elems {
		el := &batch.elems[i]
		if el.n < 0 {
			e.drops[el.drop].Add(1)
			continue
		}
		kp := el.kp
		p := kp.peer
		if !kp.acceptCounter(el.counter) {
			e.drop(p, DropReplay, netip.Addr{})
			continue
		}
		if !kp.initiator && !kp.confirmed.Load() {
			if p.confirm(kp) {
				kp.confirmed.Store(true)
				e.sessionStarted(p, el.ep, false, now)
			}
		}
		p.setEndpoint(el.ep)
		if p != lastPeer {
			lastPeer = p
			p.received(kp, now)
		}
		if el.n == 0 {
			continue // keepalive
		}
		if p.keepaliveDue.Load() == 0 {
			p.keepaliveDue.Store(now) // data to acknowledge
			e.wheel.arm(p, now+int64(KeepaliveTimeout))
		}
		plain := (*el.buf)[wire.TransportHeaderSize : wire.TransportHeaderSize+el.n]
		var ip packet.Parsed
		if err := ip.Decode(plain); err != nil {
			e.drop(p, DropMalformedInner, netip.Addr{})
			continue
		}
		if !p.allows(ip.Src) {
			if ip.Version == 6 && !p.hasIPv6() {
				e.drop(p, DropIPv6NotEnabled, ip.Src)
			} else {
				e.drop(p, DropSourceNotAllowed, ip.Src)
			}
			continue
		}
		ln := ip.Length
		p.rxBytes.Add(uint64(ln))
		p.rxPackets.Add(1)
		if e.tun != nil {
			tunBufs = append(tunBufs, (*el.buf)[:wire.TransportHeaderSize+ln])
		} else {
			out = append(out, InboundPacket{Peer: p, Data: plain[:ln], IP: ip})
		}
	}
	if len(out) > 0 {
		e.handler.HandleInbound(out)
		clear(out)
		out = out[:0]
	}
	if len(tunBufs) > 0 {
		if _, err := e.tun.Write(tunBufs, wire.TransportHeaderSize); err != nil && !e.closed.Load() {
			e.log.Debug("TUN write failed", "err", err)
		}
		clear(tunBufs)
		tunBufs = tunBufs[:0]
	}
	return out, tunBufs
}

// received updates a peer's timer inputs for an authenticated packet
// (once per peer per batch: the writes are throttled so cores do not fight
// over the peer's cache lines).
func (p *Peer) received(kp *keypair, now int64) {
	if now-p.lastTraversal.Load() > int64(10*time.Millisecond) {
		p.lastTraversal.Store(now)
		p.lastActivity.Store(now)
	}
	if now-p.lastReceived.Load() > int64(10*time.Millisecond) {
		p.lastReceived.Store(now)
	}
	if p.newHandshakeDue.Load() != 0 {
		p.newHandshakeDue.Store(0)
	}
	// An initiator whose current session is about to be rejected renews it
	// on the receiving side too, in case it has nothing to send. Late
	// packets on an older session do not count.
	if kp.initiator && kp == p.current.Load() && now-kp.created >= int64(RejectAfterTime-KeepaliveTimeout-RekeyTimeout) {
		p.e.requestHandshake(p, false)
	}
}

// Send encrypts inner packets to p. It copies them: the caller keeps its
// slices. Without a session the packets wait (a bounded number) for the
// handshake this starts.
func (e *Engine) Send(p *Peer, pkts [][]byte) {
	bufs := make([]*[]byte, 0, len(pkts))
	ns := make([]int, 0, len(pkts))
	for _, pkt := range pkts {
		if len(pkt) > bufSize-wire.TransportHeaderSize-wire.PaddingMultiple-wire.TagSize {
			continue
		}
		b := getBuf()
		copy((*b)[wire.TransportHeaderSize:], pkt)
		bufs = append(bufs, b)
		ns = append(ns, len(pkt))
	}
	e.sendBufs(p, bufs, ns)
}

func (e *Engine) sendKeepalive(p *Peer) {
	e.sendBufs(p, []*[]byte{getBuf()}, []int{0})
}

// sendBufs takes ownership of bufs, whose inner packets sit at offset
// TransportHeaderSize with lengths ns.
func (e *Engine) sendBufs(p *Peer, bufs []*[]byte, ns []int) {
	if len(bufs) == 0 {
		return
	}
	now := e.nanos()
	kp := p.current.Load()
	if kp == nil || now-kp.created >= int64(RejectAfterTime) || kp.sendNonce.Load() >= RejectAfterMessages {
		if p.stage(bufs, ns) {
			e.requestHandshake(p, false)
		}
		return
	}
	b := outBatchPool.Get().(*outBatch)
	b.peer = p
	var data uint64
	var last uint64
	for i, buf := range bufs {
		c := kp.sendNonce.Add(1) - 1
		if c >= RejectAfterMessages {
			if p.stage(bufs[i:], ns[i:]) {
				e.requestHandshake(p, false)
			}
			break
		}
		last = c
		b.elems = append(b.elems, outElem{buf: buf, n: ns[i], kp: kp, counter: c})
		data += uint64(ns[i])
	}
	if data > 0 {
		p.txBytes.Add(data)
		p.txPackets.Add(uint64(len(b.elems)))
		if p.newHandshakeDue.Load() == 0 {
			p.newHandshakeDue.Store(now)
			e.wheel.arm(p, now+int64(KeepaliveTimeout+RekeyTimeout))
		}
	}
	// Either side renews a session that carried RekeyAfterMessages; only
	// the initiator renews by age (the whitepaper's rule, so both sides do
	// not race each other every two minutes).
	if last >= RekeyAfterMessages || (kp.initiator && now-kp.created >= int64(RekeyAfterTime)) {
		e.requestHandshake(p, false)
	}
	if len(b.elems) == 0 {
		outBatchPool.Put(b)
		return
	}
	e.dispatchMu.RLock()
	defer e.dispatchMu.RUnlock()
	if e.closed.Load() {
		return
	}
	b.wg.Add(chunks(len(b.elems)))
	select {
	case e.outQ <- b:
	case <-e.ctx.Done():
		return
	}
	e.dispatch(nil, b, len(b.elems))
}

// stage keeps packets (copies) until a session exists; the oldest go first
// when more than maxStaged wait. It reports whether they still wait (the
// caller then asks for a handshake): a handshake may have completed while
// stage waited for p.mu — a slow key store holds it for a whole DH — and
// then they go out on the new session at once. Otherwise they would sit
// behind a flush that already happened, and asking for a handshake for
// them would start a second one on the heels of the first, which makes
// the responder replace the session we have just switched to.
func (p *Peer) stage(bufs []*[]byte, ns []int) bool {
	p.mu.Lock()
	for i, b := range bufs {
		p.staged = append(p.staged, append([]byte(nil), (*b)[wire.TransportHeaderSize:wire.TransportHeaderSize+ns[i]]...))
		putBuf(b)
	}
	if over := len(p.staged) - maxStaged; over > 0 {
		p.staged = append(p.staged[:0], p.staged[over:]...)
	}
	if kp := p.current.Load(); kp != nil && p.e.nanos()-kp.created < int64(RejectAfterTime) && kp.sendNonce.Load() < RejectAfterMessages {
		staged := p.staged
		p.staged = nil
		p.mu.Unlock()
		p.e.Send(p, staged)
		return false
	}
	p.mu.Unlock()
	return true
}

func (e *Engine) outboundWriter() {
	var msgs [][]byte
	for {
		var b *outBatch
		select {
		case <-e.ctx.Done():
			return
		case b = <-e.outQ:
		}
		b.wg.Wait()
		p := b.peer
		for i := range b.elems {
			msgs = append(msgs, (*b.elems[i].buf)[:b.elems[i].n])
		}
		if box := p.endpoint.Load(); box != nil {
			if err := e.bind.Send(msgs, box.ep); err != nil && !e.closed.Load() {
				e.log.Debug("UDP send failed", "peer", p.key.Short(), "err", err)
			}
			now := e.nanos()
			if now-p.lastTraversal.Load() > int64(10*time.Millisecond) {
				p.lastTraversal.Store(now)
			}
			if p.keepaliveDue.Load() != 0 {
				p.keepaliveDue.Store(0)
			}
		}
		clear(msgs)
		msgs = msgs[:0]
		for i := range b.elems {
			putBuf(b.elems[i].buf)
		}
		clear(b.elems)
		b.elems = b.elems[:0]
		b.peer = nil
		outBatchPool.Put(b)
	}
}

// tunReader reads outgoing inner packets from the TUN device and routes
// them to peers by their allowed IPs.
func (e *Engine) tunReader() {
	n := e.tun.BatchSize()
	bufs := make([]*[]byte, n)
	pkts := make([][]byte, n)
	sizes := make([]int, n)
	for i := range bufs {
		bufs[i] = getBuf()
	}
	var group []*[]byte
	var groupN []int
	for {
		for i := range pkts {
			pkts[i] = (*bufs[i])[:bufSize-wire.PaddingMultiple-wire.TagSize]
		}
		count, err := e.tun.Read(pkts, sizes, wire.TransportHeaderSize)
		if err != nil && !errors.Is(err, tun.ErrTooManySegments) {
			if !e.closed.Load() {
				e.log.Error("TUN read failed; outbound path stopped", "err", err)
			}
			return
		}
		var cur *Peer
		for i := 0; i < count; i++ {
			pkt := pkts[i][wire.TransportHeaderSize : wire.TransportHeaderSize+sizes[i]]
			var p *Peer
			if dst, ok := packet.Destination(pkt); ok {
				p = e.routes.lookup(dst)
			}
			if p == nil {
				e.drops[DropNoRoute].Add(1)
				continue
			}
			if p != cur && len(group) > 0 {
				e.sendBufs(cur, group, groupN)
				group, groupN = nil, nil
			}
			cur = p
			group = append(group, bufs[i])
			groupN = append(groupN, sizes[i])
			bufs[i] = getBuf()
		}
		if len(group) > 0 {
			e.sendBufs(cur, group, groupN)
			group, groupN = nil, nil
		}
	}
}
