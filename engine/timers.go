// SPDX-License-Identifier: Apache-2.0

package engine

import (
	"time"
)

// WireGuard's timers, evaluated lazily: the data path only stores
// timestamps (throttled atomics), and each peer waits in a timer wheel at
// its earliest deadline; one goroutine evaluates the peers whose slot has
// come, each of which works out its next deadline and is armed again. No
// timer object, no goroutine per peer, no sweep over idle ones; a fake
// clock plus RunTimers drives everything in tests.

// backstopEvery is how often the timer loop arms every held peer anyway:
// should an event ever fail to arm a peer, its timers are late by this
// much at worst, never lost. 100,000 peers cost a few milliseconds here.
const backstopEvery = time.Minute

// wheelTick is the wheel's slot width for a TimerInterval.
func wheelTick(interval time.Duration) int64 {
	if interval <= 0 {
		interval = 100 * time.Millisecond
	}
	return int64(interval)
}

func (e *Engine) timerLoop() {
	t := time.NewTicker(e.cfg.TimerInterval)
	defer t.Stop()
	lastBackstop := e.nanos()
	for {
		select {
		case <-e.ctx.Done():
			return
		case <-t.C:
			e.RunTimers()
			if now := e.nanos(); now-lastBackstop >= int64(backstopEvery) || now < lastBackstop {
				lastBackstop = now
				e.peers.each(func(p *Peer) { e.wheel.arm(p, now) })
			}
		}
	}
}

// RunTimers evaluates, against the engine's clock, the timers of every
// peer with a deadline due by now.
func (e *Engine) RunTimers() {
	e.timerMu.Lock()
	defer e.timerMu.Unlock()
	now := e.nanos()
	e.timerBuf = e.wheel.due(now, e.timerBuf[:0])
	e.timerEvals.Add(uint64(len(e.timerBuf)))
	for i, p := range e.timerBuf {
		e.peerTimers(p, now)
		if next := p.nextDeadline(now); next != 0 {
			e.wheel.arm(p, next)
		}
		e.timerBuf[i] = nil
	}
}

// peerTimers does what is due for p at now.
func (e *Engine) peerTimers(p *Peer, now int64) {
	p.mu.Lock()
	removed := p.removed
	p.mu.Unlock()
	if removed {
		return
	}
	// Handshake retransmission, and giving up after RekeyAttemptTime.
	p.mu.Lock()
	pending := p.initIndex != 0 && !p.initQueued
	sentAt, attempts := p.initSentAt, p.attempts
	giveUp := pending && now-sentAt >= int64(RekeyTimeout) && (attempts > MaxTimerHandshakes || p.oneShot)
	if giveUp {
		e.indices.delete(p.initIndex)
		p.initiator.Wipe()
		p.initiator, p.initIndex, p.attempts = nil, 0, 0
		p.staged = nil
	}
	p.mu.Unlock()
	if pending && !giveUp && now-sentAt >= int64(RekeyTimeout) {
		e.requestHandshake(p, true)
	}

	// We received data and sent nothing back for KeepaliveTimeout: a
	// keepalive tells the peer its packets arrive.
	if due := p.keepaliveDue.Load(); due != 0 && now-due >= int64(KeepaliveTimeout) {
		p.keepaliveDue.Store(0)
		e.sendKeepalive(p)
	}
	// We sent data and heard nothing for KeepaliveTimeout+RekeyTimeout: the
	// session may be dead, so handshake anew.
	if due := p.newHandshakeDue.Load(); due != 0 && now-due >= int64(KeepaliveTimeout+RekeyTimeout) {
		p.newHandshakeDue.Store(0)
		e.requestHandshake(p, false)
	}
	// Persistent keepalive keeps NAT mappings open (and, with no session,
	// brings one up).
	if p.keepalive > 0 && now-p.lastTraversal.Load() >= int64(p.keepalive) {
		p.lastTraversal.Store(now)
		e.sendKeepalive(p)
	}

	kp := p.current.Load()
	expired := kp == nil || now-kp.created >= int64(RejectAfterTime)
	if kp != nil && expired && p.expiredReported.CompareAndSwap(false, true) && e.hooks.SessionExpired != nil {
		e.hooks.SessionExpired(SessionEvent{Peer: p, Reason: "expired", Time: time.Unix(0, now)})
	}
	// Key material is destroyed after three times RejectAfterTime without a
	// new handshake.
	if lh := p.lastHandshake.Load(); lh != 0 && now-lh >= int64(3*RejectAfterTime) && (kp != nil || p.hasNext()) {
		p.mu.Lock()
		if !p.removed && p.lastHandshake.Load() == lh {
			p.zeroKeysLocked()
		}
		p.mu.Unlock()
	}
	// A lazily resolved peer with no live session and no recent activity is
	// evicted: the resolver brings it back at its next handshake.
	if p.lazy && expired && !pending && now-p.lastActivity.Load() >= int64(RejectAfterTime) {
		e.dropPeer(p, "evicted")
	}
}

// nextDeadline is the earliest time at which one of p's timers falls due,
// as p stands now (0: none until an event arms it; a removed peer has
// none).
func (p *Peer) nextDeadline(now int64) (next int64) {
	soonest := func(t int64) {
		if next == 0 || t < next {
			next = t
		}
	}
	p.mu.Lock()
	if p.initIndex != 0 && !p.initQueued {
		soonest(p.initSentAt + int64(RekeyTimeout))
	}
	hasNext, removed := p.next != nil, p.removed
	p.mu.Unlock()
	if removed {
		return 0
	}
	if due := p.keepaliveDue.Load(); due != 0 {
		soonest(due + int64(KeepaliveTimeout))
	}
	if due := p.newHandshakeDue.Load(); due != 0 {
		soonest(due + int64(KeepaliveTimeout+RekeyTimeout))
	}
	if p.keepalive > 0 {
		soonest(p.lastTraversal.Load() + int64(p.keepalive))
	}
	kp := p.current.Load()
	if kp != nil && !p.expiredReported.Load() {
		soonest(kp.created + int64(RejectAfterTime))
	}
	if lh := p.lastHandshake.Load(); lh != 0 && (kp != nil || hasNext) {
		soonest(lh + int64(3*RejectAfterTime))
	}
	if p.lazy {
		// Eviction; once past it, a peer that may not go yet (an
		// initiation pending) is looked at again once a second.
		soonest(max(p.lastActivity.Load()+int64(RejectAfterTime), now+int64(time.Second)))
	}
	if next != 0 && next <= now {
		next = now + 1 // due again at once (e.g. a clock step): next tick
	}
	return next
}

func (p *Peer) hasNext() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.next != nil
}
