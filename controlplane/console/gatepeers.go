// SPDX-License-Identifier: Apache-2.0

package console

import (
	"net/http"
	"net/netip"
	"net/url"
	"strings"

	"github.com/wirefleet/wirefleet/controlplane"
	"github.com/wirefleet/wirefleet/fleet"
)

// Gate peers: hosts joined to the device subnet over VXLAN
// (docs/networks.md), each shown with the commands its host runs.

type gatePeerRow struct {
	fleet.GatePeer
	Setup []string
}

type gatePeersData struct {
	Peers  []gatePeerRow
	Next   string
	Groups []fleet.Group
	Names  map[string]string
	Form   url.Values
	Field  string
	// Created is the peer just registered, shown with its setup open.
	Created string
}

func (h *Handler) gatePeersPage(w http.ResponseWriter, r *http.Request, code int, p page, d gatePeersData) {
	pg, groups, names, ok := listWithGroups(h, w, r, h.svc.ListGatePeers)
	if !ok {
		return
	}
	for _, g := range pg.Items {
		// eth0 stands for the host's underlay interface, as the API's
		// answer has it; the page says so.
		d.Peers = append(d.Peers, gatePeerRow{GatePeer: g, Setup: h.svc.GatePeerSetup(g, "eth0")})
	}
	d.Next, d.Groups, d.Names = pg.Next, groups, names
	p.Title, p.Nav, p.Data = "Gate peers", "gatepeers", d
	h.render(w, r, code, "gatepeers", p)
}

func (h *Handler) gatePeers(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	h.gatePeersPage(w, r, http.StatusOK, page{Flash: q.Get("done")}, gatePeersData{Created: q.Get("created")})
}

func (h *Handler) createGatePeer(w http.ResponseWriter, r *http.Request) {
	f := r.PostForm
	again := func(code int, field, msg string) {
		h.gatePeersPage(w, r, code, page{Error: msg}, gatePeersData{Form: f, Field: field})
	}
	sp := controlplane.GatePeerSpec{Name: strings.TrimSpace(f.Get("name")), GroupID: f.Get("group")}
	var err error
	if v := strings.TrimSpace(f.Get("outer")); v != "" {
		if sp.OuterAddress, err = netip.ParseAddr(v); err != nil {
			h.refused(w, r, fleet.Errorf(fleet.CodeInvalid, "outerAddress", "%q is not an IP address", v), again)
			return
		}
	}
	if v := strings.TrimSpace(f.Get("inner")); v != "" {
		if sp.InnerAddress, err = netip.ParseAddr(v); err != nil {
			h.refused(w, r, fleet.Errorf(fleet.CodeInvalid, "innerAddress", "%q is not an IP address", v), again)
			return
		}
	}
	vni, _, err := formInt(f, "vni", "VNI", 1, fleet.MaxVNI)
	if err != nil {
		h.refused(w, r, err, again)
		return
	}
	sp.VNI = uint32(vni)
	g, err := h.svc.CreateGatePeer(r.Context(), sessionOf(r).actor, sp)
	if err != nil {
		h.refused(w, r, err, again)
		return
	}
	http.Redirect(w, r, "/gatepeers?created="+url.QueryEscape(g.ID)+"&done="+url.QueryEscape("Gate peer “"+g.Name+"” registered at "+g.InnerAddress.String()+": run its setup on the host."), http.StatusSeeOther)
}

func (h *Handler) deleteGatePeer(w http.ResponseWriter, r *http.Request) {
	err := h.svc.DeleteGatePeer(r.Context(), sessionOf(r).actor, r.PathValue("id"))
	if err != nil {
		// A group redirecting to the peer is a conflict to explain on the page.
		h.refused(w, r, err, func(code int, _, msg string) { h.gatePeersPage(w, r, code, page{Error: msg}, gatePeersData{}) })
		return
	}
	http.Redirect(w, r, "/gatepeers?done="+url.QueryEscape("Gate peer removed: the gateway carries its traffic no more."), http.StatusSeeOther)
}
