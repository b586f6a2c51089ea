// SPDX-License-Identifier: Apache-2.0

package console

import (
	"bytes"
	"encoding/json"
	"fmt"
	"html/template"
	"net/http"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/wirefleet/wirefleet/controlplane/store"
	"github.com/wirefleet/wirefleet/fleet"
)

// The data explorer: the data store's records of a SIM or a group, with a
// chart of one numeric field of JSON payloads over time.

// dataPage is how many records a page of the explorer shows (and charts).
const dataPage = 200

type recordRow struct {
	fleet.Record
	Text string // the payload as text (JSON indented), or a note that it is binary
}

type dataData struct {
	SIM, Group, Category, Field string
	Groups                      []fleet.Group
	Rows                        []recordRow
	Fields                      []string // numeric top-level JSON fields seen on the page
	Chart                       template.HTML
	Next                        template.URL
	Asked                       bool // a SIM or a group was given
}

func (h *Handler) data(w http.ResponseWriter, r *http.Request) {
	a := sessionOf(r).actor
	q := r.URL.Query()
	d := dataData{SIM: strings.TrimSpace(q.Get("sim")), Group: q.Get("group"), Category: q.Get("category"), Field: q.Get("field")}
	groups, _, err := h.groupNames(r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	d.Groups = groups
	p := page{Title: "Data", Nav: "data"}
	if d.SIM == "" && d.Group == "" {
		p.Data = d
		h.render(w, r, http.StatusOK, "data", p)
		return
	}
	d.Asked = true
	pg, err := h.svc.ListRecords(r.Context(), a, store.RecordFilter{PageRequest: store.PageRequest{Limit: dataPage, Cursor: q.Get("cursor")}, SIMID: d.SIM, GroupID: d.Group, Category: d.Category})
	if err != nil {
		p.Data = d
		h.recordsRefused(w, r, err, "data", p)
		return
	}
	fields := map[string]bool{}
	var points []point
	for _, rec := range pg.Items {
		row := recordRow{Record: rec, Text: payloadText(rec)}
		d.Rows = append(d.Rows, row)
		for k, f := range numericFields(rec.Payload) {
			if len(fields) < maxChartFields || fields[k] {
				fields[k] = true
			}
			if k == d.Field {
				points = append(points, point{rec.Time, f})
			}
		}
	}
	for k := range fields {
		d.Fields = append(d.Fields, k)
	}
	sort.Strings(d.Fields)
	if d.Field != "" {
		d.Chart = chartSVG(d.Field, points)
	}
	d.Next = nextURL("/data", pg.Next, q, "sim", "group", "category", "field")
	p.Data = d
	h.render(w, r, http.StatusOK, "data", p)
}

// maxChartFields bounds the fields offered to chart: a device's payload
// shapes are its own, and a page lists them all.
const maxChartFields = 64

// numericFields are a JSON object payload's numbers by path ("bytes",
// "traffic.statistics.bytes"), three objects deep at most; nil for any
// other payload.
func numericFields(payload []byte) map[string]float64 {
	var obj map[string]any
	if json.Unmarshal(payload, &obj) != nil {
		return nil
	}
	out := map[string]float64{}
	var walk func(prefix string, m map[string]any, depth int)
	walk = func(prefix string, m map[string]any, depth int) {
		for k, v := range m {
			switch v := v.(type) {
			case float64:
				out[prefix+k] = v
			case map[string]any:
				if depth < 3 {
					walk(prefix+k+".", v, depth+1)
				}
			}
		}
	}
	walk("", obj, 1)
	return out
}

// recordsRefused answers a records query the service refused: a denial
// or an outage is a page of its own, anything else (an unknown SIM, a bad
// cursor) is said on the page asked for, its form kept.
func (h *Handler) recordsRefused(w http.ResponseWriter, r *http.Request, err error, name string, p page) {
	code, _, msg := h.errorText(err)
	if code == http.StatusForbidden || code >= 500 {
		h.fail(w, r, err)
		return
	}
	p.Error = msg
	h.render(w, r, code, name, p)
}

// payloadText shows a payload as text: JSON indented, other UTF-8 as it
// is, anything else as its size (escaped by the template either way).
func payloadText(rec fleet.Record) string {
	var b bytes.Buffer
	if json.Valid(rec.Payload) && json.Indent(&b, rec.Payload, "", "  ") == nil {
		return b.String()
	}
	if utf8.Valid(rec.Payload) {
		return string(rec.Payload)
	}
	return fmt.Sprintf("(%d bytes of binary data)", len(rec.Payload))
}

type point struct {
	t time.Time
	v float64
}

// chartSVG draws a field's values over time, oldest left: numbers and
// the escaped field name only.
func chartSVG(field string, pts []point) template.HTML {
	const wd, ht, pad = 720.0, 200.0, 24.0
	if len(pts) == 0 {
		return template.HTML(`<p>No record on this page has a numeric “` + template.HTMLEscapeString(field) + `”.</p>`)
	}
	sort.Slice(pts, func(i, j int) bool { return pts[i].t.Before(pts[j].t) })
	lo, hi := pts[0].v, pts[0].v
	for _, p := range pts {
		lo, hi = min(lo, p.v), max(hi, p.v)
	}
	if hi == lo {
		hi, lo = hi+1, lo-1
	}
	t0, t1 := pts[0].t, pts[len(pts)-1].t
	span := t1.Sub(t0).Seconds()
	var line strings.Builder
	for i, p := range pts {
		x := pad
		if span > 0 {
			x = pad + (wd-2*pad)*p.t.Sub(t0).Seconds()/span
		} else if len(pts) > 1 {
			x = pad + (wd-2*pad)*float64(i)/float64(len(pts)-1)
		}
		y := ht - pad - (ht-2*pad)*(p.v-lo)/(hi-lo)
		fmt.Fprintf(&line, "%.1f,%.1f ", x, y)
	}
	return template.HTML(fmt.Sprintf(`<svg class="graph" viewBox="0 0 %.0f %.0f" role="img" aria-label="%s over time: %d points from %g to %g" data-points="%d">`+
		`<line x1="%.0f" y1="%.0f" x2="%.0f" y2="%.0f" stroke="#999"/>`+
		`<polyline fill="none" stroke="#1f6feb" stroke-width="2" points="%s"/>`+
		`<text x="4" y="14" font-size="12" fill="#555">%s: %g … %g, %s to %s (UTC)</text></svg>`,
		wd, ht, template.HTMLEscapeString(field), len(pts), lo, hi, len(pts),
		pad, ht-pad, wd-pad, ht-pad, line.String(),
		template.HTMLEscapeString(field), lo, hi, t0.UTC().Format("2006-01-02 15:04:05"), t1.UTC().Format("2006-01-02 15:04:05")))
}
