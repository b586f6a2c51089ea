// SPDX-License-Identifier: Apache-2.0

package datastore

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/wirefleet/wirefleet/controlplane/store"
	"github.com/wirefleet/wirefleet/fleet"
)

// errClosed answers writes arriving while the service shuts down.
var errClosed = errors.New("data store is shutting down")

// committer batches the writes of many devices into few transactions
// (group commit): a worker takes one waiting write, then every other write
// already waiting, up to a bound, commits them in one durable transaction
// and answers each. While it commits, new writes queue for the next batch,
// so the batch grows with the load and a quiet system commits at once.
//
// On SQLite every batch takes the one writer connection; control-plane
// writes wait for at most one batch (maxRecords, maxBytes) and never
// behind a queue of device writes, because the workers are the only data
// store writers.
type committer struct {
	st         store.RecordWriter
	reqs       chan *commitReq // unbuffered: a write is handed to a live worker or not at all
	quit       chan struct{}
	wg         sync.WaitGroup
	maxRecords int
	maxBytes   int
	observe    func(records int, d time.Duration, err error)
}

type commitReq struct {
	recs []fleet.Record
	done chan error
}

func newCommitter(st store.RecordWriter, workers, maxRecords, maxBytes int, observe func(int, time.Duration, error)) *committer {
	c := &committer{st: st, reqs: make(chan *commitReq), quit: make(chan struct{}), maxRecords: maxRecords, maxBytes: maxBytes, observe: observe}
	for range workers {
		c.wg.Add(1)
		go c.run()
	}
	return c
}

// write stores recs and returns nil once they are durably committed.
func (c *committer) write(ctx context.Context, recs []fleet.Record) error {
	r := &commitReq{recs: recs, done: make(chan error, 1)}
	select {
	case c.reqs <- r:
	case <-c.quit:
		return errClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	// Once handed over, the worker answers even during shutdown. If ctx
	// ends first the records may still be committed, but they were not
	// acknowledged: a device retrying stores them twice, never zero times.
	select {
	case err := <-r.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (c *committer) run() {
	defer c.wg.Done()
	for {
		var first *commitReq
		select {
		case first = <-c.reqs:
		case <-c.quit:
			return
		}
		batch := []*commitReq{first}
		n, size := len(first.recs), payloadBytes(first.recs)
	gather:
		for n < c.maxRecords && size < c.maxBytes {
			select {
			case r := <-c.reqs:
				batch = append(batch, r)
				n += len(r.recs)
				size += payloadBytes(r.recs)
			default:
				break gather
			}
		}
		recs := make([]fleet.Record, 0, n)
		for _, r := range batch {
			recs = append(recs, r.recs...)
		}
		start := time.Now()
		// Not the requests' contexts: one device giving up must not
		// abort the others' commit.
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err := c.st.AppendRecords(ctx, recs)
		cancel()
		if c.observe != nil {
			c.observe(len(recs), time.Since(start), err)
		}
		for _, r := range batch {
			r.done <- err
		}
	}
}

func payloadBytes(recs []fleet.Record) int {
	n := 0
	for _, r := range recs {
		n += len(r.Payload)
	}
	return n
}

// close stops the workers after the batches they are committing.
func (c *committer) close() {
	close(c.quit)
	c.wg.Wait()
}
