// SPDX-License-Identifier: Apache-2.0

package console

import (
	"cmp"
	"encoding/json"
	"html/template"
	"maps"
	"net/http"
	"slices"
	"strings"

	"github.com/wirefleet/wirefleet/controlplane/store"
	"github.com/wirefleet/wirefleet/fleet"
)

// Inspection: the statistics records the gateway keeps for groups with
// settings.inspection on (docs/inspection.md), an interval a row, with
// the traffic charted.

type inspectionRow struct {
	fleet.InspectionRecord
	Protocols string // the busiest detected protocols, by bytes
	Names     string // the most seen TLS server names and HTTP hosts
}

type inspectionData struct {
	Group, SIM string
	Groups     []fleet.Group
	Enabled    bool // the chosen group has inspection on
	Rows       []inspectionRow
	Chart      template.HTML
	Next       template.URL
	Asked      bool
}

func (h *Handler) inspection(w http.ResponseWriter, r *http.Request) {
	a := sessionOf(r).actor
	q := r.URL.Query()
	d := inspectionData{Group: q.Get("group"), SIM: strings.TrimSpace(q.Get("sim"))}
	if d.SIM != "" {
		// A SIM is the narrower ask (the group chooser may still hold an
		// earlier choice): its records, whatever its group.
		d.Group = ""
	}
	groups, _, err := h.groupNames(r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	d.Groups = groups
	for _, g := range groups {
		if g.ID == d.Group {
			d.Enabled = g.Settings.Inspection.Enabled
		}
	}
	p := page{Title: "Inspection", Nav: "inspection"}
	if d.Group != "" || d.SIM != "" {
		d.Asked = true
		pg, err := h.svc.ListRecords(r.Context(), a, store.RecordFilter{PageRequest: store.PageRequest{Limit: dataPage, Cursor: q.Get("cursor")}, GroupID: d.Group, SIMID: d.SIM, Category: fleet.InspectionCategory})
		if err != nil {
			p.Data = d
			h.recordsRefused(w, r, err, "inspection", p)
			return
		}
		var pts []point
		for _, rec := range pg.Items {
			var ir fleet.InspectionRecord
			if json.Unmarshal(rec.Payload, &ir) != nil {
				continue // not the gateway's: a device may not write this category, but old data may differ
			}
			d.Rows = append(d.Rows, inspectionRow{InspectionRecord: ir, Protocols: topProtocols(ir), Names: topNames(ir)})
			pts = append(pts, point{rec.Time, float64(ir.Traffic.Statistics.Bytes)})
		}
		if len(pts) > 0 {
			d.Chart = chartSVG("bytes an interval", pts)
		}
		d.Next = nextURL("/inspection", pg.Next, q, "group", "sim")
	}
	p.Data = d
	h.render(w, r, http.StatusOK, "inspection", p)
}

// topProtocols names the three busiest detected protocols.
func topProtocols(ir fleet.InspectionRecord) string {
	ps := slices.Clone(ir.Detected.Protos)
	slices.SortFunc(ps, func(a, b fleet.DetectedProtocol) int { return cmp.Compare(b.Bytes, a.Bytes) })
	var out []string
	for i, p := range ps {
		if i == 3 {
			break
		}
		out = append(out, p.Name+" "+humanBytes(uint64(max(p.Bytes, 0))))
	}
	return strings.Join(out, ", ")
}

// topNames names the three most seen TLS server names and HTTP hosts.
func topNames(ir fleet.InspectionRecord) string {
	all := map[string]int64{}
	maps.Copy(all, ir.HTTPHosts)
	for k, v := range ir.TLSNames {
		all[k] += v
	}
	names := slices.Collect(maps.Keys(all))
	slices.SortFunc(names, func(a, b string) int {
		return cmp.Or(cmp.Compare(all[b], all[a]), strings.Compare(a, b))
	})
	return strings.Join(names[:min(3, len(names))], ", ")
}
