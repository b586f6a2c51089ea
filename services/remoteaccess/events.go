// SPDX-License-Identifier: Apache-2.0

package remoteaccess

import (
	"context"
	"log/slog"
	"time"
)

// eventQueue writes connection events to the audit trail off the data
// path: accepting and carrying connections never waits for the database,
// and a full queue drops (and counts) rather than blocks.
type eventQueue struct {
	svc ControlPlane
	log *slog.Logger
	m   *metrics
	ch  chan queuedEvent
}

type queuedEvent struct {
	mapping, source, action string
	details                 map[string]any
}

func newEventQueue(svc ControlPlane, log *slog.Logger, m *metrics) *eventQueue {
	return &eventQueue{svc: svc, log: log, m: m, ch: make(chan queuedEvent, 4096)}
}

func (q *eventQueue) add(mapping, source, action string, details map[string]any) {
	select {
	case q.ch <- queuedEvent{mapping, source, action, details}:
	default:
		q.m.eventsDropped.Inc()
	}
}

func (q *eventQueue) run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case e := <-q.ch:
			q.write(e)
		}
	}
}

func (q *eventQueue) write(e queuedEvent) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := q.svc.RecordMappingEvent(ctx, e.mapping, e.source, e.action, e.details); err != nil {
		q.m.eventsDropped.Inc()
		q.log.Warn("remote access: audit event not written", "mapping", e.mapping, "action", e.action, "err", err)
	}
	q.log.Info("remote access", "mapping", e.mapping, "event", e.action, "source", e.source, "details", e.details)
}

// drain writes what is queued, for at most limit.
func (q *eventQueue) drain(limit time.Duration) {
	deadline := time.After(limit)
	for {
		select {
		case e := <-q.ch:
			q.write(e)
		case <-deadline:
			return
		default:
			return
		}
	}
}
