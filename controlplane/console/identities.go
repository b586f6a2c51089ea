// SPDX-License-Identifier: Apache-2.0

package console

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/wirefleet/wirefleet/attest"
	"github.com/wirefleet/wirefleet/controlplane"
	"github.com/wirefleet/wirefleet/controlplane/store"
	"github.com/wirefleet/wirefleet/fleet"
)

// Hardware identities: batches of identity public keys from
// manufacturing, with which devices bootstrap by attestation
// (docs/keystores.md).

type identitiesData struct {
	Batches []fleet.IdentityBatch
	Next    string
	Groups  []fleet.Group
	Names   map[string]string
	// Batch, when set, is the batch whose identities are listed.
	Batch      *fleet.IdentityBatch
	Identities []fleet.Identity
	IdentNext  string
	Form       url.Values
	Field      string
}

func (h *Handler) identitiesPage(w http.ResponseWriter, r *http.Request, code int, p page, d identitiesData) {
	a := sessionOf(r).actor
	q := r.URL.Query()
	pg, groups, names, ok := listWithGroups(h, w, r, h.svc.ListIdentityBatches)
	if !ok {
		return
	}
	d.Batches, d.Next, d.Groups, d.Names = pg.Items, pg.Next, groups, names
	if id := q.Get("batch"); id != "" {
		b, err := h.svc.GetIdentityBatch(r.Context(), a, id)
		if err != nil {
			h.fail(w, r, err)
			return
		}
		ids, err := h.svc.ListIdentities(r.Context(), a, store.IdentityFilter{PageRequest: store.PageRequest{Limit: pageSize, Cursor: q.Get("icursor")}, BatchID: id})
		if err != nil {
			h.fail(w, r, err)
			return
		}
		d.Batch, d.Identities, d.IdentNext = &b, ids.Items, ids.Next
	}
	p.Title, p.Nav, p.Data = "Hardware identities", "identities", d
	h.render(w, r, code, "identities", p)
}

func (h *Handler) identities(w http.ResponseWriter, r *http.Request) {
	h.identitiesPage(w, r, http.StatusOK, page{Flash: r.URL.Query().Get("done")}, identitiesData{})
}

// importIdentities registers a batch: one identity public key a line, all
// or nothing, as the API does.
func (h *Handler) importIdentities(w http.ResponseWriter, r *http.Request) {
	f := r.PostForm
	again := func(code int, field, msg string) {
		h.identitiesPage(w, r, code, page{Error: msg}, identitiesData{Form: f, Field: field})
	}
	sp := controlplane.IdentityBatchSpec{Name: strings.TrimSpace(f.Get("name")), GroupID: f.Get("group")}
	tags, err := parseTag(f.Get("tag"))
	if err != nil {
		h.refused(w, r, err, again)
		return
	}
	sp.Tags = tags
	i := 0
	for line := range strings.SplitSeq(f.Get("keys"), "\n") {
		if line = strings.TrimSpace(line); line == "" {
			continue
		}
		k, err := attest.ParsePublicKey(line)
		if err != nil {
			h.refused(w, r, fleet.Errorf(fleet.CodeInvalid, fmt.Sprintf("publicKeys[%d]", i), "line %d: %v", i+1, err), again)
			return
		}
		sp.Keys = append(sp.Keys, k)
		i++
	}
	b, err := h.svc.ImportIdentities(r.Context(), sessionOf(r).actor, sp)
	if err != nil {
		h.refused(w, r, err, again)
		return
	}
	http.Redirect(w, r, "/identities?batch="+url.QueryEscape(b.ID)+"&done="+url.QueryEscape(fmt.Sprintf("Batch “%s” imported: %d identities.", b.Name, b.Count)), http.StatusSeeOther)
}

func (h *Handler) revokeIdentityBatch(w http.ResponseWriter, r *http.Request) {
	if err := h.svc.RevokeIdentityBatch(r.Context(), sessionOf(r).actor, r.PathValue("id")); err != nil {
		h.fail(w, r, err)
		return
	}
	http.Redirect(w, r, "/identities?done="+url.QueryEscape("Batch revoked: its identities bootstrap nothing more."), http.StatusSeeOther)
}

func (h *Handler) revokeIdentity(w http.ResponseWriter, r *http.Request) {
	if err := h.svc.RevokeIdentity(r.Context(), sessionOf(r).actor, r.PathValue("id")); err != nil {
		h.fail(w, r, err)
		return
	}
	http.Redirect(w, r, "/identities?batch="+url.QueryEscape(r.PostFormValue("batch"))+"&done="+url.QueryEscape("Identity revoked."), http.StatusSeeOther)
}
