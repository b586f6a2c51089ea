// SPDX-License-Identifier: Apache-2.0

package console

import (
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"time"

	"github.com/wirefleet/wirefleet/controlplane"
	"github.com/wirefleet/wirefleet/controlplane/store"
	"github.com/wirefleet/wirefleet/fleet"
	"github.com/wirefleet/wirefleet/internal/ratelimit"
)

// mappingRow is a port mapping with the command that connects to it.
type mappingRow struct {
	fleet.MappingView
	Connect string
}

// connectCommand is what an operator types to reach a mapping: ssh for
// port 22, openssl for a TLS mapping, nc otherwise.
func connectCommand(m fleet.MappingView) string {
	hostPort := m.Host + ":" + strconv.Itoa(m.PublicPort)
	switch {
	case m.TLS:
		return "openssl s_client -connect " + hostPort
	case m.Port == 22:
		return "ssh -p " + strconv.Itoa(m.PublicPort) + " " + m.Host
	default:
		return "nc " + m.Host + " " + strconv.Itoa(m.PublicPort)
	}
}

func mappingRows(ms []fleet.MappingView) []mappingRow {
	out := make([]mappingRow, len(ms))
	for i, m := range ms {
		out[i] = mappingRow{MappingView: m, Connect: connectCommand(m)}
	}
	return out
}

type mappingsData struct {
	Mappings []mappingRow
	Next     string
}

func (h *Handler) mappings(w http.ResponseWriter, r *http.Request) {
	pg, err := h.svc.ListMappings(r.Context(), sessionOf(r).actor, store.MappingFilter{PageRequest: store.PageRequest{Limit: pageSize, Cursor: r.URL.Query().Get("cursor")}})
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.render(w, r, http.StatusOK, "mappings", page{Title: "Port mappings", Nav: "mappings", Flash: r.URL.Query().Get("done"), Data: mappingsData{Mappings: mappingRows(pg.Items), Next: pg.Next}})
}

// createMapping opens a port of the SIM's device. The form is on the SIM's
// page, which it returns to, with the error beside the field if refused.
func (h *Handler) createMapping(w http.ResponseWriter, r *http.Request) {
	a := sessionOf(r).actor
	id := r.PathValue("id")
	f := r.PostForm
	sp := controlplane.MappingSpec{SIMID: id, TLS: f.Get("tls") == "on"}
	fail := func(err error) {
		h.refused(w, r, err, func(code int, field, msg string) {
			h.simPage(w, r, code, page{Error: msg}, mappingForm{Values: f, Field: field, Message: msg})
		})
	}
	var err error
	if sp.Port, _, err = formInt(f, "port", "device port", 1, 65535); err == nil && sp.Port == 0 {
		err = fleet.Errorf(fleet.CodeRequired, "port", "device port: required")
	}
	if err != nil {
		fail(err)
		return
	}
	minutes, _, err := formInt(f, "minutes", "minutes", 1, 365*24*60)
	if err != nil {
		fail(err)
		return
	}
	sp.Duration = time.Duration(minutes) * time.Minute
	for _, v := range splitList(f.Get("sources")) {
		p, err := netip.ParsePrefix(v)
		if err != nil {
			addr, aerr := netip.ParseAddr(v)
			if aerr != nil {
				fail(fleet.Errorf(fleet.CodeInvalid, "allowedSources", "%q is not a CIDR or an address", v))
				return
			}
			p = netip.PrefixFrom(addr, addr.BitLen())
		}
		sp.AllowedSources = append(sp.AllowedSources, p)
	}
	m, err := h.svc.CreateMapping(r.Context(), a, sp)
	if err != nil {
		fail(err)
		return
	}
	http.Redirect(w, r, "/sims/"+url.PathEscape(id)+"?done="+url.QueryEscape("Port "+strconv.Itoa(m.Port)+" open at "+m.Host+":"+strconv.Itoa(m.PublicPort)+"."), http.StatusSeeOther)
}

func (h *Handler) closeMapping(w http.ResponseWriter, r *http.Request) {
	if err := h.svc.DeleteMapping(r.Context(), sessionOf(r).actor, r.PathValue("id")); err != nil {
		h.fail(w, r, err)
		return
	}
	http.Redirect(w, r, withDone(localPath(r.PostFormValue("back")), "Mapping closed."), http.StatusSeeOther)
}

// mappingForm is the SIM page's mapping form: what was typed, and the
// error of a refused create.
type mappingForm struct {
	Values  url.Values
	Field   string
	Message string
	// Source is the operator's own address, offered as the allowed source.
	Source string
}

// clientSource is the browser's address as a prefix, for the form's
// default allowed source ("" when unknown).
func (h *Handler) clientSource(r *http.Request) string {
	if a, ok := ratelimit.ClientAddr(r, h.proxies); ok {
		return netip.PrefixFrom(a, a.BitLen()).String()
	}
	return ""
}
