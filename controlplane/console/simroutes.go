// SPDX-License-Identifier: Apache-2.0

package console

import (
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/wirefleet/wirefleet/controlplane"
	"github.com/wirefleet/wirefleet/fleet"
)

// A SIM's LAN routes and key rotation, from its page.

// simRouteAction adds, approves or removes a route behind the SIM.
func (h *Handler) simRouteAction(w http.ResponseWriter, r *http.Request) {
	a := sessionOf(r).actor
	id := r.PathValue("id")
	action := r.PathValue("action")
	again := func(code int, field, msg string) {
		h.simPage(w, r, code, page{Error: "LAN route: " + msg}, mappingForm{})
	}
	prefix, err := netip.ParsePrefix(strings.TrimSpace(r.PostFormValue("prefix")))
	if err != nil {
		h.refused(w, r, fleet.Errorf(fleet.CodeInvalid, "prefix", "not a CIDR prefix"), again)
		return
	}
	spec := controlplane.RouteSpec{Prefix: prefix, Map: r.PostFormValue("map") == "on"}
	switch action {
	case "add":
		_, err = h.svc.AddSIMRoute(r.Context(), a, id, spec)
	case "approve":
		_, err = h.svc.ApproveSIMRoute(r.Context(), a, id, spec)
	case "remove":
		err = h.svc.DeleteSIMRoute(r.Context(), a, id, prefix)
	case "hosts":
		var hosts map[string]netip.Addr
		if hosts, err = parseHosts(r.PostFormValue("hosts")); err == nil {
			_, err = h.svc.SetRouteHosts(r.Context(), a, id, prefix, hosts)
		}
	default:
		http.NotFound(w, r)
		return
	}
	if err != nil {
		h.refused(w, r, err, again)
		return
	}
	back := "/sims/" + url.PathEscape(id)
	if b := r.PostFormValue("back"); b != "" {
		back = localPath(b)
	}
	http.Redirect(w, r, withDone(back, "Route "+prefix.String()+": "+action+" done."), http.StatusSeeOther)
}

// parseHosts reads a route's named hosts, "name=address" a line or
// separated by commas; the service checks the names and that each
// address is inside the route.
func parseHosts(s string) (map[string]netip.Addr, error) {
	hosts := map[string]netip.Addr{}
	for _, item := range strings.FieldsFunc(s, func(r rune) bool { return r == '\n' || r == ',' }) {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		name, addr, ok := strings.Cut(item, "=")
		a, err := netip.ParseAddr(strings.TrimSpace(addr))
		if !ok || err != nil {
			return nil, fleet.Errorf(fleet.CodeInvalid, "hosts", "%q: want name=address", item)
		}
		name = strings.TrimSpace(name)
		if prev, dup := hosts[name]; dup {
			// One name, two lines: keeping either would drop the other
			// without a word.
			return nil, fleet.Errorf(fleet.CodeInvalid, "hosts", "%q is named twice (%s and %s): one address a name", name, prev, a)
		}
		hosts[name] = a
	}
	return hosts, nil
}

// requireRotation gives the device a deadline to replace its key.
func (h *Handler) requireRotation(w http.ResponseWriter, r *http.Request) {
	a := sessionOf(r).actor
	id := r.PathValue("id")
	hours, set, err := formInt(r.PostForm, "hours", "within (hours)", 1, 24*365)
	if err == nil && !set {
		hours = 24
	}
	if err == nil {
		_, err = h.svc.RequireKeyRotation(r.Context(), a, id, time.Duration(hours)*time.Hour)
	}
	if err != nil {
		h.refused(w, r, err, func(code int, field, msg string) {
			h.simPage(w, r, code, page{Error: "Rotation: " + msg}, mappingForm{})
		})
		return
	}
	http.Redirect(w, r, "/sims/"+url.PathEscape(id)+"?done="+url.QueryEscape("The device must replace its key within "+strconv.Itoa(hours)+" h."), http.StatusSeeOther)
}
