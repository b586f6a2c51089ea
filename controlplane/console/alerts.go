// SPDX-License-Identifier: Apache-2.0

package console

import (
	"net/http"
	"strconv"

	"github.com/wirefleet/wirefleet/controlplane"
	"github.com/wirefleet/wirefleet/controlplane/store"
	"github.com/wirefleet/wirefleet/fleet"
)

type alertsData struct {
	Alerts []fleet.Alert
	Groups []fleet.Group
	Next   string
}

func (h *Handler) alerts(w http.ResponseWriter, r *http.Request) {
	a := sessionOf(r).actor
	pg, err := h.svc.ListAlerts(r.Context(), a, store.PageRequest{Limit: pageSize, Cursor: r.URL.Query().Get("cursor")})
	if err != nil {
		h.fail(w, r, err)
		return
	}
	groups, _, err := h.groupNames(r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.render(w, r, http.StatusOK, "alerts", page{Title: "Monitor alerts", Nav: "alerts", Flash: r.URL.Query().Get("done"), Data: alertsData{Alerts: pg.Items, Groups: groups, Next: pg.Next}})
}

func alertID(r *http.Request) (int64, error) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id <= 0 {
		return 0, fleet.Errorf(fleet.CodeNotFound, "id", "no such alert")
	}
	return id, nil
}

func (h *Handler) acknowledgeAlert(w http.ResponseWriter, r *http.Request) {
	id, err := alertID(r)
	if err == nil {
		err = h.svc.AcknowledgeAlert(r.Context(), sessionOf(r).actor, id)
	}
	if err != nil {
		h.fail(w, r, err)
		return
	}
	back := "/alerts"
	if b := r.PostFormValue("back"); b != "" {
		back = localPath(b)
	}
	http.Redirect(w, r, withDone(back, "Alert "+r.PathValue("id")+" acknowledged."), http.StatusSeeOther)
}

// quarantine moves a SIM to the group chosen (typically one whose policy
// reaches nothing); release undoes it.
func (h *Handler) quarantine(w http.ResponseWriter, r *http.Request) {
	a := sessionOf(r).actor
	group := r.PostFormValue("group")
	if group == "" {
		h.fail(w, r, fleet.Errorf(fleet.CodeRequired, "group", "choose the quarantine group"))
		return
	}
	sim, err := h.svc.SetSIMGroup(r.Context(), a, r.PathValue("id"), group)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	http.Redirect(w, r, withDone(localPath(r.PostFormValue("back")), "SIM "+sim.IMSI+" quarantined."), http.StatusSeeOther)
}

// release sends a SIM back to the group it was in before its last move,
// and resumes it if it is suspended (the monitor's other response).
func (h *Handler) release(w http.ResponseWriter, r *http.Request) {
	a := sessionOf(r).actor
	if err := controlplane.Require(a, fleet.RoleOperator); err != nil {
		h.fail(w, r, err) // before anything, so a viewer is told no rather than "nothing to do"
		return
	}
	id := r.PathValue("id")
	from, moved, err := h.svc.QuarantineOrigin(r.Context(), a, id)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	sim, err := h.svc.GetSIM(r.Context(), a, id)
	if err == nil && moved && sim.GroupID != from {
		sim, err = h.svc.SetSIMGroup(r.Context(), a, id, from)
	}
	if err == nil && sim.Status == fleet.StatusSuspended {
		sim, err = h.svc.SetSIMStatus(r.Context(), a, id, fleet.StatusActive)
	}
	if err != nil {
		h.fail(w, r, err)
		return
	}
	http.Redirect(w, r, withDone(localPath(r.PostFormValue("back")), "SIM "+sim.IMSI+" released."), http.StatusSeeOther)
}
