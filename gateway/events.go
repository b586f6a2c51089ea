// SPDX-License-Identifier: Apache-2.0

package gateway

import (
	"context"
	"log/slog"
	"net/netip"
	"sync"
	"time"

	"github.com/wirefleet/wirefleet/controlplane"
	"github.com/wirefleet/wirefleet/wgkey"
)

// rejectEventInterval is the least time between two recorded rejections of
// one key: a device retrying every 5 s with a suspended SIM must not fill
// the audit trail.
const rejectEventInterval = time.Minute

// eventRecorder writes device events to the audit trail off the engine's
// goroutines. When its queue is full events are dropped (and counted in the
// log) rather than slowing handshakes.
type eventRecorder struct {
	ctx context.Context
	svc *controlplane.Service
	log *slog.Logger
	q   chan deviceEvent

	mu       sync.Mutex
	lastSeen map[wgkey.Public]time.Time
	dropped  int
}

type deviceEvent struct {
	sim, action string
	details     map[string]any
}

func newEventRecorder(ctx context.Context, svc *controlplane.Service, log *slog.Logger) *eventRecorder {
	return &eventRecorder{ctx: ctx, svc: svc, log: log, q: make(chan deviceEvent, 16384), lastSeen: map[wgkey.Public]time.Time{}}
}

// eventBatch is the most events written in one transaction.
const eventBatch = 500

func (r *eventRecorder) start(wg *sync.WaitGroup) {
	wg.Add(1)
	go func() {
		defer wg.Done()
		batch := make([]controlplane.DeviceEvent, 0, eventBatch)
		for {
			select {
			case <-r.ctx.Done():
				return // what is left is written by flush, from Close
			case ev := <-r.q:
				// Not cut short by shutdown: a batch taken is written.
				ctx, cancel := context.WithTimeout(context.WithoutCancel(r.ctx), 10*time.Second)
				r.write(ctx, r.drain(append(batch[:0], ev.event())))
				cancel()
			}
		}
	}()
}

// flush writes everything queued (at shutdown, once nothing records).
func (r *eventRecorder) flush(ctx context.Context) {
	batch := make([]controlplane.DeviceEvent, 0, eventBatch)
	for len(r.q) > 0 && ctx.Err() == nil {
		r.write(ctx, r.drain(batch[:0]))
	}
}

// drain adds what is queued, up to a batch.
func (r *eventRecorder) drain(batch []controlplane.DeviceEvent) []controlplane.DeviceEvent {
	for len(batch) < eventBatch {
		select {
		case ev := <-r.q:
			batch = append(batch, ev.event())
		default:
			return batch
		}
	}
	return batch
}

func (r *eventRecorder) write(ctx context.Context, batch []controlplane.DeviceEvent) {
	if len(batch) == 0 {
		return
	}
	if err := r.svc.RecordDeviceEvents(ctx, batch); err != nil {
		r.log.Warn("recording device events", "events", len(batch), "first_sim", batch[0].SIMID, "first_action", batch[0].Action, "err", err)
	}
}

func (ev deviceEvent) event() controlplane.DeviceEvent {
	return controlplane.DeviceEvent{SIMID: ev.sim, Action: ev.action, Details: ev.details}
}

func (r *eventRecorder) record(sim, action string, details map[string]any) {
	select {
	case r.q <- deviceEvent{sim, action, details}:
	default:
		r.mu.Lock()
		r.dropped++
		n := r.dropped
		r.mu.Unlock()
		if n&(n-1) == 0 { // log at powers of two
			r.log.Warn("device event queue full; events dropped", "dropped", n)
		}
	}
}

// allow reports whether a rejection of key may be recorded now.
func (r *eventRecorder) allow(key wgkey.Public) bool {
	now := time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	if t, ok := r.lastSeen[key]; ok && now.Sub(t) < rejectEventInterval {
		return false
	}
	if len(r.lastSeen) >= 100_000 { // a flood of keys: forget, stay bounded
		clear(r.lastSeen)
	}
	r.lastSeen[key] = now
	return true
}

// rejected records a refused handshake of a known SIM (rate-limited).
func (r *eventRecorder) rejected(sim string, key wgkey.Public, status string, remote netip.AddrPort) {
	if r.allow(key) {
		r.record(sim, "device.handshake_rejected", map[string]any{"status": status, "remote": remote.String()})
	}
}

// unknown logs a handshake from a key no SIM has (rate-limited). It has no
// SIM to attribute an audit event to, so it is a log line and a metric.
// storeAway logs, at most once a minute per key like unknown, a handshake
// refused because the store could not be read: WireGuard has no message
// to tell the device why, so the operator must see it here (and in
// wirefleet_gateway_handshakes_total{result="resolver-error"}); the
// device retries on its own and connects once the store is back.
func (r *eventRecorder) storeAway(key wgkey.Public, remote netip.AddrPort, detail string) {
	if r.allow(key) {
		r.log.Warn("handshake refused: the store is unavailable; the device will retry", "key", key.Short(), "remote", remote.String(), "err", detail)
	}
}

func (r *eventRecorder) unknown(key wgkey.Public, remote netip.AddrPort) {
	if r.allow(key) {
		r.log.Info("handshake from unknown key", "key", key.Short(), "remote", remote.String())
	}
}
