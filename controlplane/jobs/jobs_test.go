// SPDX-License-Identifier: Apache-2.0

package jobs_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/wirefleet/wirefleet/controlplane"
	"github.com/wirefleet/wirefleet/controlplane/jobs"
	"github.com/wirefleet/wirefleet/controlplane/store/sqlitestore"
)

const ttl = 3 * time.Second

// cut is a node's way to the store, which the test can sever.
type cut struct {
	jobs.Leases
	severed atomic.Bool
}

func (c *cut) TakeLease(ctx context.Context, job, holder string, ttl time.Duration) (bool, error) {
	if c.severed.Load() {
		return false, errors.New("dial tcp: connection refused")
	}
	return c.Leases.TakeLease(ctx, job, holder, ttl)
}

type node struct {
	name string
	r    *jobs.Runner
	l    *jobs.Lease
	reg  *prometheus.Registry
	path *cut
	runs atomic.Int64
	stop context.CancelFunc
	done sync.WaitGroup
}

func start(t *testing.T, svc *controlplane.Service, name string) *node {
	n := &node{name: name, reg: prometheus.NewRegistry(), path: &cut{Leases: svc}}
	n.r = jobs.New(jobs.Config{Leases: n.path, Node: name, TTL: ttl, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Registerer: n.reg})
	n.l = n.r.Hold("sweep")
	ctx, cancel := context.WithCancel(context.Background())
	n.stop = cancel
	n.done.Add(1)
	go func() {
		defer n.done.Done()
		n.l.Every(ctx, 20*time.Millisecond, func(context.Context) { n.runs.Add(1) })
	}()
	t.Cleanup(func() { n.close() })
	return n
}

func (n *node) close() {
	n.stop()
	n.done.Wait()
	n.r.Close()
}

// waitFor polls cond for up to d.
func waitFor(d time.Duration, cond func() bool) bool {
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(5 * time.Millisecond) {
		if cond() {
			return true
		}
	}
	return cond()
}

// TestOneNodeRunsAJob: of two nodes on one store, one holds a job's lease
// and only it runs the job; when it stops, the other takes the job over
// at its next try (the lease released, not left to lapse); a node cut off
// from the store stops counting on its lease before another takes it.
func TestOneNodeRunsAJob(t *testing.T) {
	st, err := sqlitestore.Open(context.Background(), filepath.Join(t.TempDir(), "wf.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	svc := controlplane.New(st, controlplane.Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	a := start(t, svc, "node-a")
	b := start(t, svc, "node-b")
	if !waitFor(2*time.Second, func() bool { return a.l.Held() != b.l.Held() }) {
		t.Fatal("neither node or both hold the lease")
	}
	holder, other := a, b
	if b.l.Held() {
		holder, other = b, a
	}
	time.Sleep(3 * ttl) // renewals: the holder keeps it
	if !holder.l.Held() || other.l.Held() || other.runs.Load() != 0 || holder.runs.Load() == 0 {
		t.Fatalf("after renewals: %s held %v ran %d, %s held %v ran %d", holder.name, holder.l.Held(), holder.runs.Load(), other.name, other.l.Held(), other.runs.Load())
	}
	if held(t, holder) != 1 || held(t, other) != 0 {
		t.Fatalf("wirefleet_job_lease_held: %s %v, %s %v", holder.name, held(t, holder), other.name, held(t, other))
	}
	// A clean stop releases: the other takes over at its next try (a
	// third of the time to live), not when the lease would lapse.
	stopped := time.Now()
	holder.close()
	if !waitFor(2*ttl, other.l.Held) {
		t.Fatal("the other node did not take the job over after a clean stop")
	}
	t.Logf("taken over %s after a clean stop", time.Since(stopped).Round(time.Millisecond))
	if !waitFor(time.Second, func() bool { return other.runs.Load() > 0 }) {
		t.Fatal("the new holder does not run the job")
	}

	// Cut the holder off the store: it stops counting on the lease when
	// its last renewal's time runs out, and the third node takes it only
	// after the lease lapsed in the store — never both at once.
	c := start(t, svc, "node-c")
	time.Sleep(ttl / 2)
	if c.l.Held() {
		t.Fatal("a third node holds a held lease")
	}
	other.path.severed.Store(true)
	var lastOld, firstNew time.Time
	if !waitFor(3*ttl, func() bool {
		now := time.Now()
		if other.l.Held() {
			lastOld = now
		}
		if c.l.Held() && firstNew.IsZero() {
			firstNew = now
		}
		return !firstNew.IsZero()
	}) {
		t.Fatal("no node took over from one cut off the store")
	}
	if !lastOld.Before(firstNew) {
		t.Fatalf("the cut-off node counted on its lease until %s, the new holder had it from %s", lastOld.Format(time.StampMicro), firstNew.Format(time.StampMicro))
	}
}

// held reads the node's wirefleet_job_lease_held{job="sweep"}.
func held(t *testing.T, n *node) float64 {
	mfs, err := n.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "wirefleet_job_lease_held" {
			for _, m := range mf.GetMetric() {
				return m.GetGauge().GetValue()
			}
		}
	}
	return -1
}
