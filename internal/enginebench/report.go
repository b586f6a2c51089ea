// SPDX-License-Identifier: Apache-2.0

package enginebench

import (
	"cmp"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// Options says what Run measures and how long.
type Options struct {
	Warmup       time.Duration // before each throughput window
	Duration     time.Duration // throughput window per subject, split over the rounds; 0 skips throughput
	Rounds       int           // throughput and handshake rounds, subjects alternating; the median counts
	Handshakes   int           // initiations blasted at each subject, split over the rounds; 0 skips handshakes
	HandshakeMax time.Duration // upper bound of one handshake run
	Peers        []int         // peer counts of the memory measurement; none skips memory
	Sessions     bool          // also measure memory with one session per peer
	Maker        InitiationMaker
	Progress     io.Writer // progress lines; nil: none
}

// SubjectReport is everything measured for one subject.
type SubjectReport struct {
	Name       string            `json:"name"`
	Throughput *ThroughputResult `json:"throughput,omitempty"`
	Handshakes *HandshakeResult  `json:"handshakes,omitempty"`
	Memory     []MemoryResult    `json:"memory,omitempty"`
	Errors     []string          `json:"errors,omitempty"`
}

// Report is the benchmark's result; its JSON form is the --json output. The
// top-level figures without suffix are our engine's (subject Ours), null until
// that subject exists; *_wggo are the Baseline's; ratios are ours / baseline.
type Report struct {
	ThroughputGbps                 *float64 `json:"throughput_gbps"`
	ThroughputGbpsWggo             *float64 `json:"throughput_gbps_wggo"`
	ThroughputRatio                *float64 `json:"throughput_ratio"`
	HandshakesPerSec               *float64 `json:"handshakes_per_sec"`
	HandshakesPerSecWggo           *float64 `json:"handshakes_per_sec_wggo"`
	HandshakeRatio                 *float64 `json:"handshake_ratio"`
	BytesPerActiveSession          *float64 `json:"bytes_per_active_session"`
	BytesPerActiveSessionWggo      *float64 `json:"bytes_per_active_session_wggo"`
	BytesPerActiveSessionPeers     int      `json:"bytes_per_active_session_peers"`      // sessions behind bytes_per_active_session
	BytesPerActiveSessionWggoPeers int      `json:"bytes_per_active_session_wggo_peers"` // sessions behind bytes_per_active_session_wggo
	BytesPerConfiguredPeer         *float64 `json:"bytes_per_configured_peer"`
	BytesPerConfiguredPeerWggo     *float64 `json:"bytes_per_configured_peer_wggo"`
	BytesPerConfiguredPeerCountAt  int      `json:"bytes_per_configured_peer_peers"`

	Machine  Machine         `json:"machine"`
	Options  OptionsReport   `json:"options"`
	Subjects []SubjectReport `json:"subjects"`
	Elapsed  float64         `json:"elapsed_sec"`
}

// Machine identifies where the figures come from. The load averages tell
// whether other work shared the CPUs during the run.
type Machine struct {
	LoadStart string `json:"loadavg_start"`
	LoadEnd   string `json:"loadavg_end"`
	CPUs      int    `json:"cpus"`
	GoVersion string `json:"go"`
	OS        string `json:"os"`
	Arch      string `json:"arch"`
}

// OptionsReport is Options in JSON.
type OptionsReport struct {
	DurationSec float64 `json:"throughput_duration_sec"`
	Rounds      int     `json:"rounds"`
	Handshakes  int     `json:"handshakes"`
	Peers       []int   `json:"peers"`
	Sessions    bool    `json:"sessions"`
	InnerSize   int     `json:"inner_packet_bytes"`
	Window      int     `json:"handshake_window"`
}

func (o Options) progress(format string, args ...any) {
	if o.Progress != nil {
		fmt.Fprintf(o.Progress, "wirefleet-bench: "+format+"\n", args...)
	}
}

// Run measures every subject with the same harness and returns the report.
// A failing measurement is recorded in the subject's Errors, not fatal.
func Run(subjects []Subject, o Options) (*Report, error) {
	start := time.Now()
	rep := &Report{
		Machine: Machine{LoadStart: loadavg(), CPUs: runtime.NumCPU(), GoVersion: runtime.Version(), OS: runtime.GOOS, Arch: runtime.GOARCH},
		Options: OptionsReport{DurationSec: o.Duration.Seconds(), Rounds: max(o.Rounds, 1), Handshakes: o.Handshakes, Peers: o.Peers,
			Sessions: o.Sessions, InnerSize: InnerPacketSize, Window: DefaultWindow},
	}
	reports := make([]SubjectReport, len(subjects))
	for i, s := range subjects {
		reports[i].Name = s.Name()
	}
	fail := func(i int, err error) {
		reports[i].Errors = append(reports[i].Errors, err.Error())
		o.progress("%s: %v", subjects[i].Name(), err)
	}

	// One set of initiations for every handshake and memory run: each run
	// starts a fresh responder, which accepts each message once.
	// Memory children take their peer keys from the set even without sessions.
	// Every round replays the same first Handshakes/rounds messages.
	rounds := max(o.Rounds, 1)
	need := o.Handshakes / rounds
	for _, p := range o.Peers {
		need = max(need, p)
	}
	hs := &HandshakeSet{}
	if need > 0 {
		o.progress("making %d handshake initiations (initiator cost, not measured)", need)
		t0 := time.Now()
		var err error
		if hs, err = NewHandshakeSet(o.Maker, need); err != nil {
			return nil, fmt.Errorf("handshake initiations: %w", err)
		}
		o.progress("made %d initiations in %.1fs", need, time.Since(t0).Seconds())
	}

	// Throughput and handshakes run in rounds, the subjects alternating
	// within each round; the median round counts. On a machine shared with
	// other work, load that comes and goes then hits every subject alike
	// instead of whichever ran at the wrong moment.
	tpRounds := make([][]ThroughputResult, len(subjects))
	for round := 1; round <= rounds && o.Duration > 0; round++ {
		for i, s := range subjects {
			d := o.Duration / time.Duration(rounds)
			o.progress("%s: throughput round %d/%d, %v warmup + %v", s.Name(), round, rounds, o.Warmup, d)
			r, err := Throughput(s, o.Warmup, d)
			if err != nil {
				fail(i, err)
				if r.DurationSec == 0 { // nothing measured (a failed Close after the window still counts)
					continue
				}
			}
			tpRounds[i] = append(tpRounds[i], r)
			o.progress("%s: %.2f Gbit/s", s.Name(), r.Gbps)
		}
	}
	for i, rs := range tpRounds {
		if len(rs) > 0 {
			reports[i].Throughput = medianThroughput(rs)
		}
	}

	hsRounds := make([][]HandshakeResult, len(subjects))
	for round := 1; round <= rounds && o.Handshakes > 0; round++ {
		for i, s := range subjects {
			set := hs.Prefix(o.Handshakes / rounds)
			if m := s.MaxPeers(); m > 0 && len(set.Messages) > m {
				set = set.Prefix(m)
			}
			o.progress("%s: responder handshakes round %d/%d, %d initiations, window %d", s.Name(), round, rounds, len(set.Messages), DefaultWindow)
			r, err := Handshakes(s, set, o.HandshakeMax)
			if err != nil {
				fail(i, err)
				if r.Sent == 0 {
					continue
				}
			}
			hsRounds[i] = append(hsRounds[i], r)
			o.progress("%s: %.0f handshakes/s (%d responses, %d cookie replies)", s.Name(), r.PerSec, r.Responses, r.CookieReplies)
		}
	}
	for i, rs := range hsRounds {
		if len(rs) > 0 {
			reports[i].Handshakes = medianHandshakes(rs)
		}
	}

	if len(o.Peers) > 0 {
		f, err := os.CreateTemp("", "wirefleet-bench-handshakes-*")
		if err != nil {
			return nil, err
		}
		f.Close()
		defer os.Remove(f.Name())
		if err := hs.WriteFile(f.Name()); err != nil {
			return nil, err
		}
		for i, s := range subjects {
			for _, n := range o.Peers {
				o.progress("%s: memory with %d peers (child process)", s.Name(), n)
				m, err := Memory(s, f.Name(), n, o.Sessions)
				if err != nil {
					fail(i, err)
					continue
				}
				reports[i].Memory = append(reports[i].Memory, m)
				o.progress("%s: %d peers: %.0f B RSS/peer, %.0f B RSS/active session, %d goroutines",
					s.Name(), m.Peers, m.RSSPerPeer, m.RSSPerActiveSession, m.Configured.Goroutines)
			}
		}
	}

	rep.Subjects = reports
	rep.fillTopLevel()
	rep.Elapsed = time.Since(start).Seconds()
	rep.Machine.LoadEnd = loadavg()
	return rep, nil
}

// medianThroughput returns the round with the median rate, all rounds' rates
// attached.
func medianThroughput(rs []ThroughputResult) *ThroughputResult {
	return medianRound(rs, func(r ThroughputResult) float64 { return r.Gbps }, func(m *ThroughputResult, v float64) { m.RoundsGbps = append(m.RoundsGbps, v) })
}

// medianHandshakes returns the round with the median rate, all rounds' rates
// attached.
func medianHandshakes(rs []HandshakeResult) *HandshakeResult {
	return medianRound(rs, func(r HandshakeResult) float64 { return r.PerSec }, func(m *HandshakeResult, v float64) { m.RoundsPerSec = append(m.RoundsPerSec, v) })
}

// medianRound returns the round of rs with the median rate, with every
// round's rate added to it by attach, in the rounds' order.
func medianRound[T any](rs []T, rate func(T) float64, attach func(*T, float64)) *T {
	sorted := slices.Clone(rs)
	slices.SortFunc(sorted, func(a, b T) int { return cmp.Compare(rate(a), rate(b)) })
	m := sorted[len(sorted)/2]
	for _, r := range rs {
		attach(&m, rate(r))
	}
	return &m
}

func (r *Report) subject(name string) *SubjectReport {
	for i := range r.Subjects {
		if r.Subjects[i].Name == name {
			return &r.Subjects[i]
		}
	}
	return nil
}

func ptr(v float64) *float64 { return &v }

func ratio(a, b *float64) *float64 {
	if a == nil || b == nil || *b == 0 {
		return nil
	}
	return ptr(*a / *b)
}

// memoryAt returns the subject's result for requested peer count n.
func (s *SubjectReport) memoryAt(n int) *MemoryResult {
	if s == nil {
		return nil
	}
	for i := range s.Memory {
		if s.Memory[i].Requested == n {
			return &s.Memory[i]
		}
	}
	return nil
}

func (r *Report) fillTopLevel() {
	ours, base := r.subject(Ours), r.subject(Baseline)
	get := func(s *SubjectReport, f func(*SubjectReport) *float64) *float64 {
		if s == nil {
			return nil
		}
		return f(s)
	}
	tp := func(s *SubjectReport) *float64 {
		if s.Throughput == nil {
			return nil
		}
		return ptr(s.Throughput.Gbps)
	}
	hsRate := func(s *SubjectReport) *float64 {
		if s.Handshakes == nil || s.Handshakes.Responses == 0 {
			return nil
		}
		return ptr(s.Handshakes.PerSec)
	}
	r.ThroughputGbps, r.ThroughputGbpsWggo = get(ours, tp), get(base, tp)
	r.ThroughputRatio = ratio(r.ThroughputGbps, r.ThroughputGbpsWggo)
	r.HandshakesPerSec, r.HandshakesPerSecWggo = get(ours, hsRate), get(base, hsRate)
	r.HandshakeRatio = ratio(r.HandshakesPerSec, r.HandshakesPerSecWggo)

	// Per active session: at the largest peer count where the subject
	// established sessions (a capped subject has none at its cap).
	lastActive := func(s *SubjectReport) (*float64, int) {
		if s == nil {
			return nil, 0
		}
		for i := len(s.Memory) - 1; i >= 0; i-- {
			if m := s.Memory[i]; m.Active != nil && m.Sessions > 0 {
				return ptr(m.RSSPerActiveSession), m.Sessions
			}
		}
		return nil, 0
	}
	r.BytesPerActiveSession, r.BytesPerActiveSessionPeers = lastActive(ours)
	r.BytesPerActiveSessionWggo, r.BytesPerActiveSessionWggoPeers = lastActive(base)

	// Per configured peer: at the largest peer count requested; for a capped
	// subject measured at its cap (the JSON per subject says so).
	if n := len(r.Options.Peers); n > 0 {
		at := r.Options.Peers[n-1]
		r.BytesPerConfiguredPeerCountAt = at
		configured := func(m *MemoryResult) *float64 {
			if m == nil {
				return nil
			}
			return ptr(m.RSSPerPeer)
		}
		r.BytesPerConfiguredPeer = configured(ours.memoryAt(at))
		r.BytesPerConfiguredPeerWggo = configured(base.memoryAt(at))
	}
}

// WriteTable writes the human form: one column per subject, and ours /
// wireguard-go where both exist.
func (r *Report) WriteTable(w io.Writer) error {
	fmt.Fprintf(w, "wirefleet-bench engine — %d CPUs, %s %s/%s, %.0fs, load %s → %s, median of %d rounds\n\n",
		r.Machine.CPUs, r.Machine.GoVersion, r.Machine.OS, r.Machine.Arch, r.Elapsed,
		r.Machine.LoadStart, r.Machine.LoadEnd, r.Options.Rounds)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	names := make([]string, len(r.Subjects))
	for i, s := range r.Subjects {
		names[i] = s.Name
	}
	fmt.Fprintf(tw, "figure\t%s\tratio %s/%s\t\n", strings.Join(names, "\t"), Ours, Baseline)
	row := func(label string, f func(*SubjectReport) *float64, format string) {
		cells := make([]string, len(r.Subjects))
		for i := range r.Subjects {
			cells[i] = cell(f(&r.Subjects[i]), format)
		}
		rt := "-"
		if ours, base := r.subject(Ours), r.subject(Baseline); ours != nil && base != nil {
			rt = cell(ratio(f(ours), f(base)), "%.3g×")
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t\n", label, strings.Join(cells, "\t"), rt)
	}
	row(fmt.Sprintf("throughput, Gbit/s (%d B inner)", InnerPacketSize), func(s *SubjectReport) *float64 {
		if s.Throughput == nil {
			return nil
		}
		return ptr(s.Throughput.Gbps)
	}, "%.2f")
	row("throughput loss", func(s *SubjectReport) *float64 {
		if s.Throughput == nil {
			return nil
		}
		return ptr(100 * s.Throughput.Loss)
	}, "%.1f%%")
	row("responder handshakes/s", func(s *SubjectReport) *float64 {
		if s.Handshakes == nil {
			return nil
		}
		return ptr(s.Handshakes.PerSec)
	}, "%.0f")
	for _, n := range r.Options.Peers {
		row(fmt.Sprintf("RSS B/configured peer @%d", n), func(s *SubjectReport) *float64 {
			if m := s.memoryAt(n); m != nil {
				return ptr(m.RSSPerPeer)
			}
			return nil
		}, "%.0f")
		row(fmt.Sprintf("heap B/configured peer @%d", n), func(s *SubjectReport) *float64 {
			if m := s.memoryAt(n); m != nil {
				return ptr(m.HeapPerPeer)
			}
			return nil
		}, "%.0f")
		if r.Options.Sessions {
			row(fmt.Sprintf("RSS B/active session @%d", n), func(s *SubjectReport) *float64 {
				if m := s.memoryAt(n); m != nil && m.Sessions > 0 {
					return ptr(m.RSSPerActiveSession)
				}
				return nil
			}, "%.0f")
		}
		row(fmt.Sprintf("goroutines @%d", n), func(s *SubjectReport) *float64 {
			if m := s.memoryAt(n); m != nil {
				return ptr(float64(m.Configured.Goroutines))
			}
			return nil
		}, "%.0f")
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, s := range r.Subjects {
		for _, m := range s.Memory {
			if m.Capped {
				fmt.Fprintf(w, "note: %s holds at most %d peers; its @%d figures are measured at %d, without sessions.\n", s.Name, m.Peers, m.Requested, m.Peers)
			}
			if m.Active != nil && m.Sessions < m.Peers {
				fmt.Fprintf(w, "note: %s @%d: %d of %d handshakes answered.\n", s.Name, m.Requested, m.Sessions, m.Peers)
			}
		}
		for _, e := range s.Errors {
			fmt.Fprintf(w, "error: %s: %s\n", s.Name, e)
		}
	}
	if r.subject(Ours) == nil {
		fmt.Fprintf(w, "note: no %q subject yet; ratios need it.\n", Ours)
	}
	return nil
}

// loadavg returns the 1, 5 and 15 minute load averages.
func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	return strings.Join(f[:min(3, len(f))], " ")
}

func cell(v *float64, format string) string {
	if v == nil {
		return "-"
	}
	return fmt.Sprintf(format, *v)
}
