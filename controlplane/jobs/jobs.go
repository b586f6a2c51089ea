// SPDX-License-Identifier: Apache-2.0

// Package jobs runs the cluster-wide jobs (retention sweeps, the
// configuration audit) on one node at a time. The node holding a job's
// lease in the shared store runs it and renews the lease; a node that
// stops releases it and another takes the job over at its next try; a
// node that dies stops renewing, and its lease lapses after the lease's
// time to live. The store is the arbiter (one upsert decides between two
// nodes), so there is no consensus of our own.
//
// A lease is a promise about time, not a fence: a holder paused for
// longer than the lease (a frozen VM) may run a job while another node
// runs it too. The jobs run this way are idempotent deletions and
// read-only checks, for which that costs repeated work, not harm.
package jobs

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// DefaultTTL is a lease's time to live: a job whose node died is taken
// over within it. Leases are renewed every third of it.
const DefaultTTL = 30 * time.Second

// Leases is where the leases are kept (controlplane.Service).
type Leases interface {
	TakeLease(ctx context.Context, job, holder string, ttl time.Duration) (bool, error)
	ReleaseLease(ctx context.Context, job, holder string) error
}

// Config configures a Runner.
type Config struct {
	Leases Leases
	// Node is this node's name (the lease's holder).
	Node string
	// TTL is a lease's time to live; 0: DefaultTTL.
	TTL        time.Duration
	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

// Runner holds this node's leases.
type Runner struct {
	cfg    Config
	gauge  *prometheus.GaugeVec
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu     sync.Mutex
	leases []*Lease
}

// New makes a Runner; Hold starts holding a job's lease.
func New(c Config) *Runner {
	if c.TTL <= 0 {
		c.TTL = DefaultTTL
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	r := &Runner{cfg: c, gauge: prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "wirefleet_job_lease_held",
		Help: "1 for each cluster-wide job whose lease this node holds (it runs the job), 0 for those another node runs.",
	}, []string{"job"})}
	if c.Registerer != nil {
		c.Registerer.MustRegister(r.gauge)
	}
	r.ctx, r.cancel = context.WithCancel(context.Background())
	return r
}

// Lease is this node's hold on one job.
type Lease struct {
	r     *Runner
	job   string
	tried chan struct{} // closed once the first try has answered

	mu    sync.Mutex
	until time.Time // with the monotonic clock: when this node stops counting on it
}

// Hold starts taking and renewing job's lease, at once and then every
// third of the lease's time to live, until Close.
func (r *Runner) Hold(job string) *Lease {
	l := &Lease{r: r, job: job, tried: make(chan struct{})}
	r.gauge.WithLabelValues(job).Set(0)
	r.mu.Lock()
	r.leases = append(r.leases, l)
	r.mu.Unlock()
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		l.keep()
	}()
	return l
}

// Held says whether this node holds the lease now: it took or renewed it
// less than the lease's time to live ago, less a sixth for the clocks of
// the store and the nodes, and it is not closed.
func (l *Lease) Held() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return time.Now().Before(l.until)
}

// Job is the lease's job.
func (l *Lease) Job() string { return l.job }

func (l *Lease) keep() {
	ttl := l.r.cfg.TTL
	t := time.NewTicker(ttl / 3)
	defer t.Stop()
	var lastErr bool
	for {
		start := time.Now()
		ctx, cancel := context.WithTimeout(l.r.ctx, ttl/3)
		held, err := l.r.cfg.Leases.TakeLease(ctx, l.job, l.r.cfg.Node, ttl)
		cancel()
		was := l.Held()
		l.mu.Lock()
		switch {
		case err != nil:
			// Not renewed: still held until the last renewal's end, and
			// by then another node may have it.
		case held:
			l.until = start.Add(ttl - ttl/6)
		default:
			l.until = time.Time{}
		}
		l.mu.Unlock()
		now := l.Held()
		switch {
		case err != nil && l.r.ctx.Err() == nil:
			if !lastErr {
				l.r.cfg.Logger.Warn("jobs: the lease could not be renewed", "job", l.job, "err", err)
			}
		case now && !was:
			l.r.cfg.Logger.Info("jobs: this node runs the job", "job", l.job)
		case !now && was:
			l.r.cfg.Logger.Info("jobs: another node runs the job", "job", l.job)
		}
		lastErr = err != nil
		select {
		case <-l.tried:
		default:
			close(l.tried)
		}
		if now {
			l.r.gauge.WithLabelValues(l.job).Set(1)
		} else {
			l.r.gauge.WithLabelValues(l.job).Set(0)
		}
		select {
		case <-l.r.ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Every runs fn now and then every interval, each time only if this
// node holds the lease, until ctx ends.
func (l *Lease) Every(ctx context.Context, interval time.Duration, fn func(context.Context)) {
	// The first try's answer comes before the first run: without it a
	// single node would skip its first run.
	l.wait(ctx)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if l.Held() {
			fn(ctx)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// wait waits for the lease's first try to have answered.
func (l *Lease) wait(ctx context.Context) {
	select {
	case <-l.tried:
	case <-ctx.Done():
	}
}

// Close stops renewing and releases the leases this node holds, so that
// another node takes their jobs over at its next try.
func (r *Runner) Close() {
	r.cancel()
	r.wg.Wait()
	r.mu.Lock()
	leases := r.leases
	r.mu.Unlock()
	for _, l := range leases {
		held := l.Held()
		l.mu.Lock()
		l.until = time.Time{}
		l.mu.Unlock()
		r.gauge.WithLabelValues(l.job).Set(0)
		if !held {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := r.cfg.Leases.ReleaseLease(ctx, l.job, r.cfg.Node); err != nil {
			r.cfg.Logger.Warn("jobs: the lease could not be released; another node takes the job when it lapses", "job", l.job, "err", err)
		}
		cancel()
	}
}

// Held lists the jobs whose lease this node holds now, by name.
func (r *Runner) Held() []string {
	r.mu.Lock()
	leases := slices.Clone(r.leases)
	r.mu.Unlock()
	var out []string
	for _, l := range leases {
		if l.Held() {
			out = append(out, l.job)
		}
	}
	slices.Sort(out)
	return out
}
