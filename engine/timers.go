// SPDX-License-Identifier: Apache-2.0

package engine

import (
	"time"
)

// WireGuard's timers, evaluated lazily: the data path only stores
// timestamps (throttled atomics), and one sweeper goroutine decides, for
// every held peer, what is due. No timer object, no goroutine per peer; a
// fake clock plus RunTimers drives everything in tests.

func (e *Engine) timerLoop() {
	t := time.NewTicker(e.cfg.TimerInterval)
	defer t.Stop()
	for {
		select {
		case <-e.ctx.Done():
			return
		case <-t.C:
			e.RunTimers()
		}
	}
}

// RunTimers evaluates every peer's timers once against the engine's clock.
func (e *Engine) RunTimers() {
	now := e.nanos()
	e.peers.each(func(p *Peer) { e.peerTimers(p, now) })
}

func (e *Engine) peerTimers(p *Peer, now int64) {
	// Handshake retransmission, and giving up after RekeyAttemptTime.
	p.mu.Lock()
	pending := p.initIndex != 0 && !p.initQueued
	sentAt, attempts := p.initSentAt, p.attempts
	giveUp := pending && now-sentAt >= int64(RekeyTimeout) && attempts > MaxTimerHandshakes
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

func (p *Peer) hasNext() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.next != nil
}
