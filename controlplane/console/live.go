// SPDX-License-Identifier: Apache-2.0

package console

import (
	"fmt"
	"html/template"
	"io"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/wirefleet/wirefleet/fleet"
)

// Live parts are Server-Sent Events streams of HTML fragments that htmx's
// SSE extension swaps in by event name. A stream lives at most
// streamLife (the browser reconnects by itself), re-checks its session
// every sessionRecheck so that signing out or deleting the token ends
// it, and ends at once on Shutdown.
const (
	streamLife     = 10 * time.Minute
	sessionRecheck = 30 * time.Second
	// maxLiveSIMs bounds the SIMs one stream follows (a page shows fewer).
	maxLiveSIMs = 100
	// graphSamples is how many readings the traffic graph shows.
	graphSamples = 60
	// MaxStreamsPerSession bounds one session's share of MaxLiveStreams,
	// so that one signed-in viewer cannot take the live views of all.
	MaxStreamsPerSession = 8
)

// simIDRE is what a SIM id looks like (controlplane's newID): it goes
// into an event name, so nothing else may.
var simIDRE = regexp.MustCompile(`^[a-z]{2,8}_[0-9a-f]{4,40}$`)

// sse writes one event; data may hold newlines.
func sse(w io.Writer, event, data string) error {
	var b strings.Builder
	b.WriteString("event: ")
	b.WriteString(event)
	b.WriteByte('\n')
	data = strings.ReplaceAll(strings.ReplaceAll(data, "\r\n", "\n"), "\r", "\n")
	for line := range strings.SplitSeq(data, "\n") {
		b.WriteString("data: ")
		b.WriteString(line)
		b.WriteByte('\n')
	}
	b.WriteByte('\n')
	_, err := io.WriteString(w, b.String())
	return err
}

// stream runs tick every interval (and once at the start) on an event
// stream until the client goes, the session ends, or the console shuts
// down. tick returns the events to send, by name.
func (h *Handler) stream(w http.ResponseWriter, r *http.Request, tick func() ([][2]string, error)) {
	rc := http.NewResponseController(w)
	hd := w.Header()
	hd.Set("Content-Type", "text/event-stream")
	hd.Set("Cache-Control", "no-store")
	hd.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	s := sessionOf(r)
	end := time.Now().Add(streamLife)
	recheck := time.Now().Add(sessionRecheck)
	t := time.NewTicker(h.every)
	defer t.Stop()
	for {
		evs, err := tick()
		if err != nil {
			h.log.Warn("console: live view", "path", r.URL.Path, "err", err)
			return
		}
		// The server's write timeout is for pages: each write gets its own.
		rc.SetWriteDeadline(time.Now().Add(10 * time.Second))
		for _, ev := range evs {
			if err := sse(w, ev[0], ev[1]); err != nil {
				return
			}
		}
		if err := rc.Flush(); err != nil {
			return
		}
		select {
		case <-r.Context().Done():
			return
		case <-h.done:
			return
		case now := <-t.C:
			if now.After(end) {
				return
			}
			if now.After(recheck) {
				recheck = now.Add(sessionRecheck)
				if _, err := h.svc.ConsoleActor(r.Context(), s.secret); err != nil {
					return
				}
			}
		}
	}
}

func (h *Handler) liveOverview(w http.ResponseWriter, r *http.Request) {
	release, ok := h.liveSlot(w, r)
	if !ok {
		return
	}
	defer release()
	h.stream(w, r, func() ([][2]string, error) {
		d, err := h.overviewData(r)
		if err != nil {
			return nil, err
		}
		html, err := h.fragmentHTML("overview-stats", d)
		return [][2]string{{"overview", html}}, err
	})
}

// liveSlot takes a live stream's place, before any work is done for it:
// one of MaxLiveStreams, and one of the session's MaxStreamsPerSession.
// release gives it back; ok is false (and the answer written) when there
// is none.
func (h *Handler) liveSlot(w http.ResponseWriter, r *http.Request) (release func(), ok bool) {
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", "GET")
		http.Error(w, "live views are GET only", http.StatusMethodNotAllowed)
		return nil, false
	}
	key := sessionOf(r).csrf // per session, and not the secret itself
	h.perSessionMu.Lock()
	if h.perSession[key] >= MaxStreamsPerSession {
		h.perSessionMu.Unlock()
		w.Header().Set("Retry-After", "10")
		http.Error(w, "too many live views open in this session; close some tabs", http.StatusTooManyRequests)
		return nil, false
	}
	select {
	case h.streams <- struct{}{}:
	default:
		h.perSessionMu.Unlock()
		w.Header().Set("Retry-After", "10")
		http.Error(w, "too many live views open", http.StatusServiceUnavailable)
		return nil, false
	}
	h.perSession[key]++
	h.perSessionMu.Unlock()
	return func() {
		<-h.streams
		h.perSessionMu.Lock()
		if h.perSession[key]--; h.perSession[key] <= 0 {
			delete(h.perSession, key)
		}
		h.perSessionMu.Unlock()
	}, true
}

// liveIDs reads the ids a stream follows.
func liveIDs(r *http.Request) []string {
	var ids []string
	for id := range strings.SplitSeq(r.URL.Query().Get("ids"), ",") {
		if id = strings.TrimSpace(id); simIDRE.MatchString(id) && len(ids) < maxLiveSIMs {
			ids = append(ids, id)
		}
	}
	return ids
}

// liveSIMs follows the tunnels of the SIMs on a list page, sending a
// SIM's live cells (state, last handshake, endpoint) only when they change.
func (h *Handler) liveSIMs(w http.ResponseWriter, r *http.Request) {
	release, ok := h.liveSlot(w, r)
	if !ok {
		return
	}
	defer release()
	ids := liveIDs(r)
	last := make(map[string]fleet.Connection, len(ids))
	first := true
	h.stream(w, r, func() ([][2]string, error) {
		var evs [][2]string
		for _, id := range ids {
			c := h.conn(id)
			if old, ok := last[id]; ok && !first && old.Online == c.Online && old.Endpoint == c.Endpoint && old.LastHandshake.Equal(c.LastHandshake) {
				continue
			}
			last[id] = c
			// The row's three live cells: tunnel, last handshake, endpoint.
			for _, part := range [][2]string{{"sim-", "sim-online"}, {"hs-", "sim-handshake"}, {"ep-", "sim-endpoint"}} {
				html, err := h.fragmentHTML(part[1], c)
				if err != nil {
					return nil, err
				}
				evs = append(evs, [2]string{part[0] + id, html})
			}
		}
		first = false
		return evs, nil
	})
}

// liveSIM follows one SIM: its tunnel state and a graph of its traffic
// since the page opened.
func (h *Handler) liveSIM(w http.ResponseWriter, r *http.Request) {
	release, ok := h.liveSlot(w, r)
	if !ok {
		return
	}
	defer release()
	id := r.PathValue("id")
	if _, err := h.svc.GetSIM(r.Context(), sessionOf(r).actor, id); err != nil {
		code, _, msg := h.errorText(err)
		http.Error(w, msg, code)
		return
	}
	var g trafficGraph
	prev, prevAt := h.conn(id), time.Now()
	h.stream(w, r, func() ([][2]string, error) {
		c, now := h.conn(id), time.Now()
		if dt := now.Sub(prevAt).Seconds(); dt > 0.1 {
			g.add(rate(prev.RxBytes, c.RxBytes, dt), rate(prev.TxBytes, c.TxBytes, dt))
			prev, prevAt = c, now
		}
		state, err := h.fragmentHTML("sim-state", c)
		if err != nil {
			return nil, err
		}
		return [][2]string{{"state", state}, {"traffic", string(g.svg())}}, nil
	})
}

// rate is bytes per second between two counter readings (0 when the
// counter went back: a new session).
func rate(before, after uint64, seconds float64) float64 {
	if after < before {
		return 0
	}
	return float64(after-before) / seconds
}

// trafficGraph holds the last graphSamples rates each way.
type trafficGraph struct {
	rx, tx []float64
}

func (g *trafficGraph) add(rx, tx float64) {
	g.rx = append(g.rx, rx)
	g.tx = append(g.tx, tx)
	if len(g.rx) > graphSamples {
		g.rx, g.tx = g.rx[1:], g.tx[1:]
	}
}

// svg draws the graph: drawn here, so the page needs no chart library and
// the policy no inline style (presentation attributes only).
func (g *trafficGraph) svg() template.HTML {
	const wd, ht = 600.0, 140.0
	peak := 1.0
	for i := range g.rx {
		peak = max(peak, g.rx[i], g.tx[i])
	}
	line := func(vs []float64) string {
		var b strings.Builder
		for i, v := range vs {
			x := wd * float64(i) / float64(graphSamples-1)
			y := ht - 4 - (ht-24)*v/peak
			fmt.Fprintf(&b, "%.1f,%.1f ", x, y)
		}
		return b.String()
	}
	var last [2]float64
	if n := len(g.rx); n > 0 {
		last = [2]float64{g.rx[n-1], g.tx[n-1]}
	}
	s := fmt.Sprintf(`<svg class="graph" viewBox="0 0 %.0f %.0f" role="img" aria-label="traffic: from device %s, to device %s" data-samples="%d" data-rx="%.0f" data-tx="%.0f">`+
		`<line x1="0" y1="%.0f" x2="%.0f" y2="%.0f" stroke="#999" stroke-width="1"/>`+
		`<polyline fill="none" stroke="#1f6feb" stroke-width="2" points="%s"/>`+
		`<polyline fill="none" stroke="#d4731f" stroke-width="2" points="%s"/>`+
		`<text x="4" y="14" font-size="12" fill="#555">peak %s/s · from device %s/s · to device %s/s</text></svg>`,
		wd, ht, humanRate(last[0]), humanRate(last[1]), len(g.rx), last[0], last[1], ht-4, wd, ht-4, line(g.rx), line(g.tx), humanBytes(uint64(peak)), humanBytes(uint64(last[0])), humanBytes(uint64(last[1])))
	return template.HTML(s) // every value in it is a number formatted here
}

func humanRate(v float64) string { return humanBytes(uint64(v)) + "/s" }
