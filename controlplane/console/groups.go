// SPDX-License-Identifier: Apache-2.0

package console

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/wirefleet/wirefleet/controlplane"
	"github.com/wirefleet/wirefleet/controlplane/store"
	"github.com/wirefleet/wirefleet/fleet"
	"github.com/wirefleet/wirefleet/internal/jsonbody"
)

// groupData is the group page: the group, its settings as the structured
// form shows them and as JSON, and the error of a refused save, placed
// next to the field it names.
type groupData struct {
	Group   fleet.Group
	JSON    string // the settings as JSON (the raw editor's text)
	Version string // controlplane.GroupVersion when the page was made, for stale-form checks
	SIMs    []fleet.SIM
	MoreSIM bool
	Routes  string // one per line
	Groups  string // D2D group names, comma-separated
	Ports   string // D2D ports, comma-separated
	Field   string // the field the error is about ("settings.routes[1]", "json", "version")
	Message string
	Editor  string // which form the error came from: "form" or "json"
}

// FieldError says whether the page's error is about field (or inside it).
func (d groupData) FieldError(field string) bool {
	return d.Field != "" && (d.Field == field || strings.HasPrefix(d.Field, field+".") || strings.HasPrefix(d.Field, field+"["))
}

func (h *Handler) groupPage(w http.ResponseWriter, r *http.Request, code int, p page, g fleet.Group, d groupData) {
	a := sessionOf(r).actor
	sims, err := h.svc.ListSIMs(r.Context(), a, store.SIMFilter{PageRequest: store.PageRequest{Limit: 10}, GroupID: g.ID})
	if err != nil {
		h.fail(w, r, err)
		return
	}
	d.Group, d.SIMs, d.MoreSIM = g, sims.Items, sims.Next != ""
	if d.Version == "" {
		d.Version = controlplane.GroupVersion(g)
	}
	if d.JSON == "" {
		b, _ := json.MarshalIndent(g.Settings, "", "  ")
		d.JSON = string(b)
	}
	s := g.Settings
	if d.Editor != "form" {
		d.Routes = strings.Join(s.Routes, "\n")
		d.Groups = strings.Join(s.DeviceToDevice.Groups, ", ")
		ports := make([]string, len(s.DeviceToDevice.Ports))
		for i, pt := range s.DeviceToDevice.Ports {
			ports[i] = strconv.Itoa(int(pt))
		}
		d.Ports = strings.Join(ports, ", ")
	}
	p.Title, p.Nav, p.Data = "Group "+g.Name, "groups", d
	h.render(w, r, code, "group", p)
}

func (h *Handler) group(w http.ResponseWriter, r *http.Request) {
	g, err := h.svc.GetGroup(r.Context(), sessionOf(r).actor, r.PathValue("id"))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.groupPage(w, r, http.StatusOK, page{Flash: r.URL.Query().Get("done")}, g, groupData{})
}

// saveGroup writes settings if the group is as the form saw it, and
// otherwise shows the form again with the error beside its field.
func (h *Handler) saveGroup(w http.ResponseWriter, r *http.Request, settings *fleet.GroupSettings, d groupData) {
	a := sessionOf(r).actor
	if err := controlplane.Require(a, fleet.RoleOperator); err != nil {
		h.fail(w, r, err) // a viewer is refused, whatever the form holds
		return
	}
	id := r.PathValue("id")
	read := r.PostFormValue("version")
	if read == "" {
		h.fail(w, r, fleet.Errorf(fleet.CodeInvalid, "version", "the form lacks the version it was loaded at; reload the page"))
		return
	}
	var err error
	if settings != nil {
		_, err = h.svc.UpdateGroupIfUnchanged(r.Context(), a, id, nil, settings, read)
	}
	if d.Field != "" {
		err = fleet.Errorf(fleet.CodeInvalid, d.Field, "%s", d.Message)
	}
	if err == nil {
		http.Redirect(w, r, "/groups/"+url.PathEscape(id)+"?done="+url.QueryEscape("Settings saved."), http.StatusSeeOther)
		return
	}
	h.refused(w, r, err, func(code int, field, msg string) {
		g, gerr := h.svc.GetGroup(r.Context(), a, id)
		if gerr != nil {
			h.fail(w, r, gerr)
			return
		}
		// A form shown again keeps the version it was loaded at: sent again
		// after someone else saved, it still conflicts.
		d.Field, d.Message, d.Version = field, msg, read
		if code == http.StatusConflict {
			// Show what is stored now (and its version); the operator's
			// edit is not kept over it.
			d = groupData{Field: field, Message: msg, Editor: d.Editor}
		}
		h.groupPage(w, r, code, page{Error: msg}, g, d)
	})
}

// groupSettingsForm saves the structured form: the fields it shows,
// applied over the settings as stored (the rest stay as they are).
func (h *Handler) groupSettingsForm(w http.ResponseWriter, r *http.Request) {
	a := sessionOf(r).actor
	g, err := h.svc.GetGroup(r.Context(), a, r.PathValue("id"))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	f := r.PostForm
	d := groupData{Editor: "form", Routes: f.Get("routes"), Groups: f.Get("d2dGroups"), Ports: f.Get("d2dPorts")}
	s := g.Settings
	s.DeviceToDevice.Mode = f.Get("d2dMode")
	s.DeviceToDevice.Groups = splitList(f.Get("d2dGroups"))
	s.DeviceToDevice.Ports = nil
	for i, v := range splitList(f.Get("d2dPorts")) {
		n, err := strconv.ParseUint(v, 10, 16)
		if err != nil || n == 0 {
			d.Field, d.Message = "settings.deviceToDevice.ports["+strconv.Itoa(i)+"]", "not a port (1-65535): "+strconv.Quote(v)
			break
		}
		s.DeviceToDevice.Ports = append(s.DeviceToDevice.Ports, uint16(n))
	}
	s.Routes = nil
	for line := range strings.SplitSeq(f.Get("routes"), "\n") {
		if line = strings.TrimSpace(line); line != "" {
			s.Routes = append(s.Routes, line)
		}
	}
	s.DevicesMayWriteTags = f.Get("devicesMayWriteTags") == "on"
	s.DevicesMayAdvertiseRoutes = f.Get("devicesMayAdvertiseRoutes") == "on"
	s.UserData = strings.ReplaceAll(f.Get("userData"), "\r\n", "\n")
	// Inspection's collectors and forward path stay as stored: the JSON
	// editor sets them.
	s.Inspection.Enabled = f.Get("inspect") == "on"
	s.Inspection.PerSIM = f.Get("inspectPerSIM") == "on"
	s.Inspection.Webhook = f.Get("inspectWebhook") == "on"
	// The field shows the stored interval, so an empty one was emptied:
	// back to the default (0, which the service makes
	// fleet.DefaultInspectionInterval).
	if n, _, err := formInt(f, "inspectEvery", "interval (seconds)", 10, 3600); err != nil && d.Field == "" {
		d.Field, d.Message = "settings.inspection.intervalSeconds", err.(*fleet.Error).Message // formInt's errors are fleet errors
	} else if err == nil {
		s.Inspection.IntervalSeconds = n
	}
	if d.Field != "" {
		h.saveGroup(w, r, nil, d)
		return
	}
	h.saveGroup(w, r, &s, d)
}

// groupSettingsJSON saves the raw editor: the whole settings document,
// decoded as strictly as the API decodes it.
func (h *Handler) groupSettingsJSON(w http.ResponseWriter, r *http.Request) {
	text := r.PostFormValue("json")
	d := groupData{Editor: "json", JSON: text}
	var s fleet.GroupSettings
	if err := jsonbody.Decode(bytes.NewReader([]byte(text)), &s, maxForm); err != nil {
		_, field, msg := h.errorText(err)
		d.Field, d.Message = "json", msg
		if field != "" {
			d.Message = field + ": " + msg
		}
		h.saveGroup(w, r, nil, d)
		return
	}
	h.saveGroup(w, r, &s, d)
}

func (h *Handler) deleteGroup(w http.ResponseWriter, r *http.Request) {
	if err := h.svc.DeleteGroup(r.Context(), sessionOf(r).actor, r.PathValue("id")); err != nil {
		h.fail(w, r, err)
		return
	}
	http.Redirect(w, r, "/groups?done="+url.QueryEscape("Group deleted."), http.StatusSeeOther)
}

// splitList splits "a, b c" into its items.
func splitList(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == '\n' || r == '\r' || r == '\t' })
}
