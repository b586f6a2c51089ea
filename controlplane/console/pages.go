// SPDX-License-Identifier: Apache-2.0

package console

import (
	"context"
	"html/template"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/wirefleet/wirefleet/controlplane"
	"github.com/wirefleet/wirefleet/controlplane/store"
	"github.com/wirefleet/wirefleet/fleet"
	"github.com/wirefleet/wirefleet/internal/ratelimit"
	"github.com/wirefleet/wirefleet/wgkey"
)

// pageSize is how many rows a list page shows.
const pageSize = 50

func (h *Handler) routes() {
	m := h.mux
	m.Handle("GET /assets/", h.assetsHandler())
	m.HandleFunc("GET /signin", h.signInPage)
	m.HandleFunc("POST /signin", h.signIn)
	m.HandleFunc("POST /signout", h.signedIn(h.signOut))
	m.HandleFunc("GET /{$}", h.signedIn(h.overview))
	m.HandleFunc("GET /sims", h.signedIn(h.sims))
	m.HandleFunc("POST /sims/bulk", h.signedIn(h.simsBulk))
	m.HandleFunc("GET /sims/{id}", h.signedIn(h.sim))
	m.HandleFunc("POST /sims/{id}/quarantine", h.signedIn(h.quarantine))
	m.HandleFunc("POST /sims/{id}/mappings", h.signedIn(h.createMapping))
	m.HandleFunc("POST /sims/{id}/routes/{action}", h.signedIn(h.simRouteAction))
	m.HandleFunc("POST /sims/{id}/require-rotation", h.signedIn(h.requireRotation))
	m.HandleFunc("GET /sims/{id}/wg-quick.conf", h.signedIn(h.wgQuickFile))
	m.HandleFunc("POST /sims/{id}/rekey-config", h.signedIn(h.rekeyConfig))
	m.HandleFunc("GET /mappings", h.signedIn(h.mappings))
	m.HandleFunc("POST /mappings/{id}/close", h.signedIn(h.closeMapping))
	m.HandleFunc("POST /sims/{id}/release", h.signedIn(h.release))
	m.HandleFunc("POST /sims/{id}/{action}", h.signedIn(h.simAction))
	m.HandleFunc("GET /alerts", h.signedIn(h.alerts))
	m.HandleFunc("POST /alerts/{id}/acknowledge", h.signedIn(h.acknowledgeAlert))
	m.HandleFunc("GET /groups", h.signedIn(h.groups))
	m.HandleFunc("POST /groups", h.signedIn(h.createGroup))
	m.HandleFunc("GET /groups/{id}", h.signedIn(h.group))
	m.HandleFunc("POST /groups/{id}/settings", h.signedIn(h.groupSettingsForm))
	m.HandleFunc("POST /groups/{id}/json", h.signedIn(h.groupSettingsJSON))
	m.HandleFunc("POST /groups/{id}/delete", h.signedIn(h.deleteGroup))
	m.HandleFunc("GET /authkeys", h.signedIn(h.authKeys))
	m.HandleFunc("POST /authkeys", h.signedIn(h.createAuthKey))
	m.HandleFunc("POST /authkeys/{id}/revoke", h.signedIn(h.revokeAuthKey))
	m.HandleFunc("GET /audit", h.signedIn(h.audit))
	m.HandleFunc("GET /data", h.signedIn(h.data))
	m.HandleFunc("GET /identities", h.signedIn(h.identities))
	m.HandleFunc("POST /identities", h.signedIn(h.importIdentities))
	m.HandleFunc("POST /identities/batches/{id}/revoke", h.signedIn(h.revokeIdentityBatch))
	m.HandleFunc("POST /identities/{id}/revoke", h.signedIn(h.revokeIdentity))
	m.HandleFunc("GET /tokens", h.signedIn(h.tokens))
	m.HandleFunc("POST /tokens", h.signedIn(h.createToken))
	m.HandleFunc("POST /tokens/{id}/revoke", h.signedIn(h.deleteToken))
	m.HandleFunc("GET /routes", h.signedIn(h.lanRoutes))
	m.HandleFunc("GET /gatepeers", h.signedIn(h.gatePeers))
	m.HandleFunc("POST /gatepeers", h.signedIn(h.createGatePeer))
	m.HandleFunc("POST /gatepeers/{id}/delete", h.signedIn(h.deleteGatePeer))
	m.HandleFunc("GET /captures", h.signedIn(h.captures))
	m.HandleFunc("POST /captures", h.signedIn(h.createCapture))
	m.HandleFunc("POST /captures/{id}/stop", h.signedIn(h.stopCapture))
	m.HandleFunc("POST /captures/{id}/delete", h.signedIn(h.deleteCapture))
	m.HandleFunc("GET /captures/{id}/download", h.signedIn(h.downloadCapture))
	m.HandleFunc("GET /inspection", h.signedIn(h.inspection))
	m.HandleFunc("GET /simcards", h.signedIn(h.simCards))
	m.HandleFunc("POST /simcards", h.signedInUpTo(maxImport, fleet.RoleAdmin, h.importSIMCards))
	m.HandleFunc("POST /simcards/{iccid}/update", h.signedIn(h.updateSIMCard))
	m.HandleFunc("POST /simcards/{iccid}/delete", h.signedIn(h.deleteSIMCard))
	m.HandleFunc("GET /settings", h.signedIn(h.settings))
	m.HandleFunc("GET /nodes", h.signedIn(h.nodes))
	m.HandleFunc("POST /nodes/{name}/forget", h.signedIn(h.forgetNode))
	m.HandleFunc("GET /live/overview", h.signedIn(h.liveOverview))
	m.HandleFunc("GET /live/sims", h.signedIn(h.liveSIMs))
	m.HandleFunc("GET /live/sims/{id}", h.signedIn(h.liveSIM))
}

func (h *Handler) assetsHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Names carry their versions (htmx-2.0.11.min.js): cache for long.
		w.Header().Set("Cache-Control", "public, max-age=86400")
		h.assets.ServeHTTP(w, r)
	})
}

// nextURL is the address of a list's next page: path with the cursor and
// the filters named in keep as they are in q; "" on the last page.
func nextURL(path, cursor string, q url.Values, keep ...string) template.URL {
	if cursor == "" {
		return ""
	}
	nq := url.Values{"cursor": {cursor}}
	for _, k := range keep {
		if v := q.Get(k); v != "" {
			nq.Set(k, v)
		}
	}
	return template.URL(path + "?" + nq.Encode()) // every value encoded here: a safe URL
}

// withDone is a local path with the flash message to show there, in
// place of one the path may carry already.
func withDone(path, msg string) string {
	u, err := url.Parse(path)
	if err != nil {
		u = &url.URL{Path: "/"}
	}
	q := u.Query()
	q.Set("done", msg)
	u.RawQuery = q.Encode()
	return u.String()
}

// ---- sign-in ----

type signInData struct {
	Next string
}

func (h *Handler) signInPage(w http.ResponseWriter, r *http.Request) {
	if secret := h.sessionCookie(r); secret != "" {
		if _, err := h.svc.ConsoleActor(r.Context(), secret); err == nil {
			http.Redirect(w, r, localPath(r.URL.Query().Get("next")), http.StatusSeeOther)
			return
		}
	}
	h.render(w, r, http.StatusOK, "signin", page{Title: "Sign in", Data: signInData{Next: localPath(r.URL.Query().Get("next"))}})
}

func (h *Handler) signIn(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxForm)
	next := localPath(r.PostFormValue("next"))
	if !h.sameOrigin(r) {
		http.Error(w, "cross-site request refused", http.StatusForbidden)
		return
	}
	src, ok := ratelimit.ClientAddr(r, h.proxies)
	if !ok {
		// A trusted proxy that names no address: no bucket to charge.
		http.Error(w, "the client address is unknown (X-Forwarded-For from a trusted proxy)", http.StatusBadRequest)
		return
	}
	if allowed, wait := h.limit.Allow(src); !allowed {
		w.Header().Set("Retry-After", strconv.Itoa(int(wait.Seconds())+1))
		h.render(w, r, http.StatusTooManyRequests, "signin", page{Title: "Sign in", Error: "Too many sign-in attempts from your address; wait a little and try again.", Data: signInData{Next: next}})
		return
	}
	secret, _, expires, err := h.svc.SignIn(r.Context(), strings.TrimSpace(r.PostFormValue("token")), src.String(), h.sessionCookie(r))
	if err != nil {
		code, _, msg := h.errorText(err)
		if code == http.StatusUnauthorized {
			msg = "That token is not valid (unknown, expired or mistyped)."
		}
		h.render(w, r, code, "signin", page{Title: "Sign in", Error: msg, Data: signInData{Next: next}})
		return
	}
	h.setSessionCookie(w, r, secret, expires, 0)
	http.Redirect(w, r, next, http.StatusSeeOther)
}

func (h *Handler) signOut(w http.ResponseWriter, r *http.Request) {
	s := sessionOf(r)
	if err := h.svc.SignOut(r.Context(), s.actor, s.secret); err != nil {
		code, _, msg := h.errorText(err)
		http.Error(w, msg, code)
		return
	}
	h.setSessionCookie(w, r, "", time.Time{}, -1)
	http.Redirect(w, r, "/signin", http.StatusSeeOther)
}

// ---- overview ----

type overviewData struct {
	Counts  map[string]int64 // SIMs by status
	Total   int64
	Gateway fleet.GatewayStats
	HasGW   bool
	Fleet   fleetHealth
	Events  []fleet.Event
}

// fleetHealth is the overview's reading of the nodes and the monitor's
// alerts, shared among viewers like the counts.
type fleetHealth struct {
	Nodes, NodesUp int
	Degraded       []string // "node: why", of the nodes up
	Alerts         int      // in the last day, of the newest overviewAlerts
	Unacknowledged int
	More           bool // overviewAlerts or more in the last day
}

// overviewAlerts bounds the alerts the overview reads: a count beyond it
// says "or more" rather than scan the audit log.
const overviewAlerts = 100

func (h *Handler) readFleetHealth(r *http.Request) (fleetHealth, error) {
	var f fleetHealth
	a := sessionOf(r).actor
	ns, err := h.svc.ListNodes(r.Context(), a)
	if err != nil {
		return f, err
	}
	now := time.Now()
	for _, n := range ns {
		f.Nodes++
		if n.Up(now) {
			f.NodesUp++
			if n.Degraded != "" {
				f.Degraded = append(f.Degraded, n.Name+": "+n.Degraded)
			}
		}
	}
	al, err := h.svc.ListAlerts(r.Context(), a, store.PageRequest{Limit: overviewAlerts})
	if err != nil {
		return f, err
	}
	for _, x := range al.Items {
		if now.Sub(x.Time) > 24*time.Hour {
			break // newest first
		}
		f.Alerts++
		if x.Ack == nil {
			f.Unacknowledged++
		}
	}
	f.More = f.Alerts == overviewAlerts && al.Next != ""
	return f, nil
}

func (h *Handler) overviewData(r *http.Request) (overviewData, error) {
	var d overviewData
	counts, err := h.counts.get(func() (map[fleet.Status]int64, error) { return h.svc.View().CountSIMs(r.Context()) })
	if err != nil {
		return d, err
	}
	d.Counts = make(map[string]int64, len(counts))
	for st, n := range counts {
		d.Counts[string(st)] = n
		d.Total += n
	}
	if d.Fleet, err = h.health.get(func() (fleetHealth, error) { return h.readFleetHealth(r) }); err != nil {
		return d, err
	}
	if h.gw != nil {
		d.HasGW = true
		d.Gateway, _ = h.stats.get(func() (fleet.GatewayStats, error) { return h.gw.Stats(), nil })
	}
	return d, nil
}

func (h *Handler) overview(w http.ResponseWriter, r *http.Request) {
	d, err := h.overviewData(r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	ev, err := h.svc.ListEvents(r.Context(), sessionOf(r).actor, store.EventFilter{PageRequest: store.PageRequest{Limit: 10}})
	if err != nil {
		h.fail(w, r, err)
		return
	}
	d.Events = ev.Items
	h.render(w, r, http.StatusOK, "overview", page{Title: "Overview", Nav: "overview", Data: d})
}

// fail renders err as a page of its own.
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	code, _, msg := h.errorText(err)
	if code == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "5")
	}
	h.render(w, r, code, "error", page{Title: http.StatusText(code), Error: msg})
}

// ---- SIMs ----

// simRow is a SIM with what the list shows beside it.
type simRow struct {
	fleet.SIM
	Group string
	Conn  fleet.Connection
}

type simsData struct {
	Rows    []simRow
	Groups  []fleet.Group
	Q       string
	Status  string
	GroupID string
	Tag     string
	Next    template.URL // the next page's address, "" on the last page
	IDs     string       // the shown SIMs' ids, for the live stream
}

func (h *Handler) groupNames(r *http.Request) ([]fleet.Group, map[string]string, error) {
	pg, err := h.svc.ListGroups(r.Context(), sessionOf(r).actor, store.PageRequest{Limit: store.MaxLimit})
	if err != nil {
		return nil, nil, err
	}
	names := make(map[string]string, len(pg.Items))
	for _, g := range pg.Items {
		names[g.ID] = g.Name
	}
	return pg.Items, names, nil
}

// listWithGroups reads the page of a list the request's cursor names,
// and the groups with their names (the forms' choices, the tables'
// labels), as the list pages show them; ok is false once it answered
// with the error.
func listWithGroups[T any](h *Handler, w http.ResponseWriter, r *http.Request,
	list func(context.Context, controlplane.Actor, store.PageRequest) (store.Page[T], error)) (pg store.Page[T], groups []fleet.Group, names map[string]string, ok bool) {
	pg, err := list(r.Context(), sessionOf(r).actor, store.PageRequest{Limit: pageSize, Cursor: r.URL.Query().Get("cursor")})
	if err == nil {
		groups, names, err = h.groupNames(r)
	}
	if err != nil {
		h.fail(w, r, err)
		return pg, nil, nil, false
	}
	return pg, groups, names, true
}

func (h *Handler) conn(id string) fleet.Connection {
	if h.gw == nil {
		return fleet.Connection{}
	}
	return h.gw.Connection(id)
}

// parseTag reads "key=value" (or "key" alone: the empty value).
func parseTag(s string) (map[string]string, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, nil
	}
	k, v, _ := strings.Cut(s, "=")
	if k = strings.TrimSpace(k); k == "" {
		return nil, fleet.Errorf(fleet.CodeInvalid, "tag", "a tag is key=value")
	}
	return map[string]string{k: strings.TrimSpace(v)}, nil
}

func (h *Handler) sims(w http.ResponseWriter, r *http.Request) {
	a := sessionOf(r).actor
	q := r.URL.Query()
	d := simsData{Q: strings.TrimSpace(q.Get("q")), Status: q.Get("status"), GroupID: q.Get("group"), Tag: q.Get("tag")}
	groups, names, err := h.groupNames(r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	d.Groups = groups
	var sims []fleet.SIM
	var pageErr string
	if isSIMRef(d.Q) {
		// A search names one SIM: by id, IMSI, overlay address or key.
		var sim fleet.SIM
		if strings.HasPrefix(d.Q, "sim_") {
			sim, err = h.svc.GetSIM(r.Context(), a, d.Q)
		} else {
			sim, err = h.svc.FindSIM(r.Context(), a, d.Q)
		}
		if err == nil {
			sims = []fleet.SIM{sim}
		} else if code, _, msg := h.errorText(err); code == http.StatusNotFound || code == http.StatusBadRequest {
			pageErr = "No SIM matches “" + d.Q + "”: " + msg
		} else {
			h.fail(w, r, err)
			return
		}
	} else {
		tags, err := parseTag(d.Tag)
		if err != nil {
			h.fail(w, r, err)
			return
		}
		// Anything else is the start of names, with the filters.
		pg, err := h.svc.ListSIMs(r.Context(), a, store.SIMFilter{PageRequest: store.PageRequest{Limit: pageSize, Cursor: q.Get("cursor")}, Status: fleet.Status(d.Status), GroupID: d.GroupID, Tags: tags, NamePrefix: d.Q})
		if err != nil {
			code, _, msg := h.errorText(err)
			if code != http.StatusBadRequest {
				h.fail(w, r, err)
				return
			}
			pageErr = msg
		}
		sims = pg.Items
		d.Next = nextURL("/sims", pg.Next, q, "q", "status", "group", "tag")
	}
	ids := make([]string, 0, len(sims))
	for _, s := range sims {
		d.Rows = append(d.Rows, simRow{SIM: s, Group: names[s.GroupID], Conn: h.conn(s.ID)})
		ids = append(ids, s.ID)
	}
	d.IDs = strings.Join(ids, ",")
	code := http.StatusOK
	if pageErr != "" && !isSIMRef(d.Q) {
		code = http.StatusBadRequest
	}
	h.render(w, r, code, "sims", page{Title: "SIMs", Nav: "sims", Data: d, Error: pageErr, Flash: r.URL.Query().Get("done")})
}

// isSIMRef says whether a search names one SIM (its id, IMSI, overlay
// address or public key) rather than the start of names.
func isSIMRef(q string) bool {
	if strings.HasPrefix(q, "sim_") || fleet.ValidIMSI(q) {
		return true
	}
	if _, err := netip.ParseAddr(q); err == nil {
		return true
	}
	_, err := wgkey.ParsePublic(q)
	return err == nil
}

// simsBulk applies one action to the SIMs ticked on the list page. Each
// SIM is its own service call (and audit event); failures are reported
// per SIM, and the rest still happen.
func (h *Handler) simsBulk(w http.ResponseWriter, r *http.Request) {
	a := sessionOf(r).actor
	if err := controlplane.Require(a, fleet.RoleOperator); err != nil {
		h.fail(w, r, err)
		return
	}
	ids := r.PostForm["id"]
	if len(ids) == 0 {
		http.Redirect(w, r, "/sims?done="+url.QueryEscape("Nothing was selected."), http.StatusSeeOther)
		return
	}
	if len(ids) > store.MaxLimit {
		h.fail(w, r, fleet.Errorf(fleet.CodeInvalid, "id", "at most %d SIMs at once", store.MaxLimit))
		return
	}
	action := r.PostFormValue("action")
	var do func(id string) error
	switch action {
	case "suspend", "resume":
		to := fleet.StatusSuspended
		if action == "resume" {
			to = fleet.StatusActive
		}
		do = func(id string) error { _, err := h.svc.SetSIMStatus(r.Context(), a, id, to); return err }
	case "group":
		// An explicit choice: "-" takes the SIMs out of every group.
		g := r.PostFormValue("group")
		if g == "" {
			h.fail(w, r, fleet.Errorf(fleet.CodeRequired, "group", "choose the group to move the SIMs to"))
			return
		}
		if g == "-" {
			g = ""
		}
		do = func(id string) error { _, err := h.svc.SetSIMGroup(r.Context(), a, id, g); return err }
	case "tag":
		tag, err := parseTag(r.PostFormValue("tag"))
		if err != nil || tag == nil {
			h.fail(w, r, fleet.Errorf(fleet.CodeInvalid, "tag", "a tag is key=value"))
			return
		}
		do = func(id string) error { _, err := h.svc.AddSIMTags(r.Context(), a, id, tag); return err }
	default:
		h.fail(w, r, fleet.Errorf(fleet.CodeInvalid, "action", "suspend, resume, group or tag"))
		return
	}
	var ok int
	var failed []string
	for _, id := range ids {
		if err := do(id); err != nil {
			_, _, msg := h.errorText(err)
			failed = append(failed, id+": "+msg)
			continue
		}
		ok++
	}
	msg := strconv.Itoa(ok) + " SIM(s): " + action + " done."
	if len(failed) > 0 {
		// A few reasons, not all: the message travels in the redirect.
		shown := failed[:min(len(failed), 3)]
		msg += " " + strconv.Itoa(len(failed)) + " failed: " + strings.Join(shown, "; ")
		if len(failed) > len(shown) {
			msg += "; …"
		}
	}
	http.Redirect(w, r, "/sims?done="+url.QueryEscape(msg), http.StatusSeeOther)
}

type simData struct {
	SIM      fleet.SIM
	Group    string
	Conn     fleet.Connection
	Events   []fleet.Event
	Mappings []mappingRow
	Routes   []fleet.Route
	Form     mappingForm
	// Address6 is the SIM's IPv6 address (invalid when the fleet has none).
	Address6 netip.Addr
	Sessions []store.Presence
	Alerts   []fleet.Alert
	Records  []recordRow // the newest few
}

// simRecords is how many of a SIM's newest records its page shows.
const simRecords = 5

func (h *Handler) sim(w http.ResponseWriter, r *http.Request) {
	h.simPage(w, r, http.StatusOK, page{Flash: r.URL.Query().Get("done")}, mappingForm{})
}

// simPage renders a SIM's page; form is its mapping form as it was sent.
func (h *Handler) simPage(w http.ResponseWriter, r *http.Request, code int, p page, form mappingForm) {
	a := sessionOf(r).actor
	sim, err := h.svc.GetSIM(r.Context(), a, r.PathValue("id"))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if form.Values == nil {
		form.Values = url.Values{"sources": {h.clientSource(r)}, "minutes": {"60"}}
	}
	d := simData{SIM: sim, Conn: h.conn(sim.ID), Form: form}
	if sim.GroupID != "" {
		if g, err := h.svc.GetGroup(r.Context(), a, sim.GroupID); err == nil {
			d.Group = g.Name
		}
	}
	ev, err := h.svc.ListEvents(r.Context(), a, store.EventFilter{PageRequest: store.PageRequest{Limit: 20}, ObjectID: sim.ID})
	if err != nil {
		h.fail(w, r, err)
		return
	}
	d.Events = ev.Items
	ms, err := h.svc.ListMappings(r.Context(), a, store.MappingFilter{PageRequest: store.PageRequest{Limit: 20}, SIMID: sim.ID})
	if err != nil {
		h.fail(w, r, err)
		return
	}
	d.Mappings = mappingRows(ms.Items)
	if d.Routes, err = h.svc.SIMRoutes(r.Context(), a, sim.ID); err != nil {
		h.fail(w, r, err)
		return
	}
	if d.Sessions, err = h.svc.SIMSessions(r.Context(), a, sim.ID); err != nil {
		h.fail(w, r, err)
		return
	}
	al, err := h.svc.SIMAlerts(r.Context(), a, sim.ID, store.PageRequest{Limit: 10})
	if err != nil {
		h.fail(w, r, err)
		return
	}
	d.Alerts = al.Items
	recs, err := h.svc.ListRecords(r.Context(), a, store.RecordFilter{PageRequest: store.PageRequest{Limit: simRecords}, SIMID: sim.ID})
	if err != nil {
		h.fail(w, r, err)
		return
	}
	for _, rec := range recs.Items {
		d.Records = append(d.Records, recordRow{Record: rec, Text: payloadText(rec)})
	}
	if o, err := h.svc.Overlay6(r.Context()); err == nil && o.Enabled() && sim.Address.IsValid() {
		d.Address6 = o.Addr(sim.Address)
	}
	p.Title, p.Nav, p.Data = "SIM "+sim.IMSI, "sims", d
	h.render(w, r, code, "sim", p)
}

func (h *Handler) simAction(w http.ResponseWriter, r *http.Request) {
	a := sessionOf(r).actor
	id := r.PathValue("id")
	var err error
	switch r.PathValue("action") {
	case "suspend":
		_, err = h.svc.SetSIMStatus(r.Context(), a, id, fleet.StatusSuspended)
	case "resume":
		_, err = h.svc.SetSIMStatus(r.Context(), a, id, fleet.StatusActive)
	default:
		http.NotFound(w, r)
		return
	}
	if err != nil {
		h.fail(w, r, err)
		return
	}
	http.Redirect(w, r, "/sims/"+url.PathEscape(id)+"?done="+url.QueryEscape(r.PathValue("action")+" done"), http.StatusSeeOther)
}

// ---- groups ----

type groupsData struct {
	Groups []fleet.Group
	Next   string
	Name   string // the create form's value, kept on an error
	Field  string // the field an error is about
}

func (h *Handler) groupsPage(w http.ResponseWriter, r *http.Request, code int, p page, d groupsData) {
	pg, err := h.svc.ListGroups(r.Context(), sessionOf(r).actor, store.PageRequest{Limit: pageSize, Cursor: r.URL.Query().Get("cursor")})
	if err != nil {
		h.fail(w, r, err)
		return
	}
	d.Groups, d.Next = pg.Items, pg.Next
	p.Title, p.Nav, p.Data = "Groups", "groups", d
	h.render(w, r, code, "groups", p)
}

func (h *Handler) groups(w http.ResponseWriter, r *http.Request) {
	h.groupsPage(w, r, http.StatusOK, page{Flash: r.URL.Query().Get("done")}, groupsData{})
}

func (h *Handler) createGroup(w http.ResponseWriter, r *http.Request) {
	name := strings.TrimSpace(r.PostFormValue("name"))
	g, err := h.svc.CreateGroup(r.Context(), sessionOf(r).actor, name, fleet.GroupSettings{})
	if err != nil {
		h.refused(w, r, err, func(code int, field, msg string) {
			h.groupsPage(w, r, code, page{Error: msg}, groupsData{Name: name, Field: field})
		})
		return
	}
	http.Redirect(w, r, "/groups?done="+url.QueryEscape("Group “"+g.Name+"” created."), http.StatusSeeOther)
}

// ---- auth keys ----

type authKeysData struct {
	Keys   []fleet.AuthKey
	Groups []fleet.Group
	Names  map[string]string
	Next   string
	// Secret is a key just created: shown in this answer only.
	Secret  string
	Created fleet.AuthKey
	Form    url.Values
	Field   string
	Nonce   string // the create form's (submitted)
}

func (h *Handler) authKeysPage(w http.ResponseWriter, r *http.Request, code int, p page, d authKeysData) {
	pg, groups, names, ok := listWithGroups(h, w, r, h.svc.ListAuthKeys)
	if !ok {
		return
	}
	d.Keys, d.Next, d.Groups, d.Names, d.Nonce = pg.Items, pg.Next, groups, names, newNonce()
	p.Title, p.Nav, p.Data = "Auth keys", "authkeys", d
	h.render(w, r, code, "authkeys", p)
}

func (h *Handler) authKeys(w http.ResponseWriter, r *http.Request) {
	h.authKeysPage(w, r, http.StatusOK, page{Flash: r.URL.Query().Get("done")}, authKeysData{})
}

func (h *Handler) createAuthKey(w http.ResponseWriter, r *http.Request) {
	a := sessionOf(r).actor
	f := r.PostForm
	sp := controlplane.AuthKeySpec{Description: strings.TrimSpace(f.Get("description")), GroupID: f.Get("group")}
	again := func(code int, field, msg string) {
		h.authKeysPage(w, r, code, page{Error: msg}, authKeysData{Form: f, Field: field})
	}
	key, prev, first, err := h.sentBefore(r)
	if err != nil {
		again(http.StatusBadRequest, "", err.Error())
		return
	}
	if !first {
		h.authKeysPage(w, r, http.StatusOK, page{Flash: sentAgain("auth key", prev)}, authKeysData{})
		return
	}
	hours, set, err := formInt(f, "hours", "hours", 1, int(controlplane.MaxAuthKeyTTL/time.Hour))
	if set {
		sp.TTL = time.Duration(hours) * time.Hour
	}
	if err == nil {
		sp.MaxUses, _, err = formInt(f, "maxUses", "uses (0: unlimited)", 0, 1<<30)
	}
	var k fleet.AuthKey
	var secret string
	if err == nil {
		k, secret, err = h.svc.CreateAuthKey(r.Context(), a, sp)
	}
	if err != nil {
		h.sent.forget(key)
		h.refused(w, r, err, again)
		return
	}
	h.sent.done(key, k.ID)
	// The secret is rendered into this answer (no-store) and nowhere else.
	h.authKeysPage(w, r, http.StatusCreated, page{}, authKeysData{Secret: secret, Created: k})
}

func (h *Handler) revokeAuthKey(w http.ResponseWriter, r *http.Request) {
	if err := h.svc.RevokeAuthKey(r.Context(), sessionOf(r).actor, r.PathValue("id")); err != nil {
		h.fail(w, r, err)
		return
	}
	http.Redirect(w, r, "/authkeys?done="+url.QueryEscape("Auth key "+r.PathValue("id")+" revoked."), http.StatusSeeOther)
}

// ---- audit ----

type auditData struct {
	Events []fleet.Event
	Next   template.URL
	Object string
	Action string
}

func (h *Handler) audit(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	d := auditData{Object: strings.TrimSpace(q.Get("object")), Action: strings.TrimSpace(q.Get("action"))}
	pg, err := h.svc.ListEvents(r.Context(), sessionOf(r).actor, store.EventFilter{PageRequest: store.PageRequest{Limit: pageSize, Cursor: q.Get("cursor")}, ObjectID: d.Object, Action: d.Action})
	if err != nil {
		h.fail(w, r, err)
		return
	}
	d.Events = pg.Items
	d.Next = nextURL("/audit", pg.Next, q, "object", "action")
	h.render(w, r, http.StatusOK, "audit", page{Title: "Audit log", Nav: "audit", Data: d})
}
