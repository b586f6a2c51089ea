// SPDX-License-Identifier: Apache-2.0

package console

import (
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/wirefleet/wirefleet/controlplane"
	"github.com/wirefleet/wirefleet/fleet"
)

// Packet captures: sessions that write a SIM's or a group's inner packets
// to a pcapng file (docs/inspection.md), started, stopped, downloaded and
// deleted here.

// downloadLinkValid is how long the signed link a download redirects to
// works: long enough to follow, short enough that one left in a
// browser's history is dead.
const downloadLinkValid = time.Minute

type capturesData struct {
	Captures []fleet.Capture
	Next     string
	Groups   []fleet.Group
	Names    map[string]string
	Form     url.Values
	Field    string
}

func (h *Handler) capturesPage(w http.ResponseWriter, r *http.Request, code int, p page, d capturesData) {
	pg, groups, names, ok := listWithGroups(h, w, r, h.svc.ListCaptures)
	if !ok {
		return
	}
	if d.Form == nil {
		// A link from a SIM's page names it; the usual five minutes.
		d.Form = url.Values{"sim": {r.URL.Query().Get("sim")}, "duration": {"300"}}
	}
	d.Captures, d.Next, d.Groups, d.Names = pg.Items, pg.Next, groups, names
	p.Title, p.Nav, p.Data = "Packet captures", "captures", d
	h.render(w, r, code, "captures", p)
}

func (h *Handler) captures(w http.ResponseWriter, r *http.Request) {
	h.capturesPage(w, r, http.StatusOK, page{Flash: r.URL.Query().Get("done")}, capturesData{})
}

func (h *Handler) createCapture(w http.ResponseWriter, r *http.Request) {
	f := r.PostForm
	again := func(code int, field, msg string) {
		h.capturesPage(w, r, code, page{Error: msg}, capturesData{Form: f, Field: field})
	}
	sp := controlplane.CaptureSpec{SIMID: strings.TrimSpace(f.Get("sim")), GroupID: f.Get("group"), Protocol: f.Get("protocol")}
	secs, _, err := formInt(f, "duration", "duration (seconds)", int(fleet.MinCaptureDuration.Seconds()), int(fleet.MaxCaptureDuration.Seconds()))
	if err != nil {
		h.refused(w, r, err, again)
		return
	}
	sp.Duration = time.Duration(secs) * time.Second
	port, _, err := formInt(f, "port", "port", 1, 65535)
	if err != nil {
		h.refused(w, r, err, again)
		return
	}
	sp.Port = uint16(port)
	// In MiB here, in bytes for the service: its error names maxBytes,
	// which the page marks on this field too.
	mib, _, err := formInt(f, "mib", "size limit (MiB)", 1, controlplane.MaxCaptureBytes>>20)
	if err != nil {
		h.refused(w, r, err, again)
		return
	}
	sp.MaxBytes = int64(mib) << 20
	if v := strings.TrimSpace(f.Get("prefix")); v != "" {
		if sp.Prefix, err = netip.ParsePrefix(v); err != nil {
			h.refused(w, r, fleet.Errorf(fleet.CodeInvalid, "prefix", "%q is not a CIDR prefix", v), again)
			return
		}
	}
	c, err := h.svc.CreateCapture(r.Context(), sessionOf(r).actor, sp)
	if err != nil {
		h.refused(w, r, err, again)
		return
	}
	http.Redirect(w, r, "/captures?done="+url.QueryEscape("Capture "+c.ID+" requested: the gateway serving its target starts it."), http.StatusSeeOther)
}

func (h *Handler) stopCapture(w http.ResponseWriter, r *http.Request) {
	if _, err := h.svc.StopCapture(r.Context(), sessionOf(r).actor, r.PathValue("id")); err != nil {
		h.refused(w, r, err, func(code int, _, msg string) { h.capturesPage(w, r, code, page{Error: msg}, capturesData{}) })
		return
	}
	http.Redirect(w, r, "/captures?done="+url.QueryEscape("Capture stopped; its file is kept."), http.StatusSeeOther)
}

func (h *Handler) deleteCapture(w http.ResponseWriter, r *http.Request) {
	if err := h.svc.DeleteCapture(r.Context(), sessionOf(r).actor, r.PathValue("id")); err != nil {
		h.fail(w, r, err)
		return
	}
	http.Redirect(w, r, "/captures?done="+url.QueryEscape("Capture and its file deleted."), http.StatusSeeOther)
}

// downloadCapture sends the browser to a short-lived signed link for the
// file, served by the API on this listener: the console needs no access
// to the gateway's capture directory, and the link is the API's own.
func (h *Handler) downloadCapture(w http.ResponseWriter, r *http.Request) {
	u, _, err := h.svc.CaptureURL(r.Context(), sessionOf(r).actor, r.PathValue("id"), downloadLinkValid)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	http.Redirect(w, r, u, http.StatusSeeOther)
}
