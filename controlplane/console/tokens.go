// SPDX-License-Identifier: Apache-2.0

package console

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/wirefleet/wirefleet/controlplane"
	"github.com/wirefleet/wirefleet/controlplane/store"
	"github.com/wirefleet/wirefleet/fleet"
)

// Operator tokens: admins only, as in the API.

type tokensData struct {
	Tokens []fleet.Token
	Next   string
	Self   string // the signed-in token's id
	// Secret is a token just created: shown in this answer only.
	Secret  string
	Created fleet.Token
	Form    url.Values
	Field   string
}

func (h *Handler) tokensPage(w http.ResponseWriter, r *http.Request, code int, p page, d tokensData) {
	a := sessionOf(r).actor
	pg, err := h.svc.ListTokens(r.Context(), a, store.PageRequest{Limit: pageSize, Cursor: r.URL.Query().Get("cursor")})
	if err != nil {
		h.fail(w, r, err)
		return
	}
	d.Tokens, d.Next, d.Self = pg.Items, pg.Next, a.ID
	if d.Form == nil {
		d.Form = url.Values{}
	}
	p.Title, p.Nav, p.Data = "Operator tokens", "tokens", d
	h.render(w, r, code, "tokens", p)
}

func (h *Handler) tokens(w http.ResponseWriter, r *http.Request) {
	h.tokensPage(w, r, http.StatusOK, page{Flash: r.URL.Query().Get("done")}, tokensData{})
}

func (h *Handler) createToken(w http.ResponseWriter, r *http.Request) {
	a := sessionOf(r).actor
	f := r.PostForm
	var ttl time.Duration
	if v := strings.TrimSpace(f.Get("days")); v != "" {
		n, err := strconv.Atoi(v)
		if maxDays := int(controlplane.MaxTokenTTL / (24 * time.Hour)); err != nil || n <= 0 || n > maxDays {
			h.tokensPage(w, r, http.StatusBadRequest, page{Error: "days: a whole number from 1 to " + strconv.Itoa(maxDays) + ", or empty for never"}, tokensData{Form: f, Field: "days"})
			return
		}
		ttl = time.Duration(n) * 24 * time.Hour
	}
	t, secret, err := h.svc.CreateExpiringToken(r.Context(), a, fleet.Role(f.Get("role")), strings.TrimSpace(f.Get("description")), ttl)
	if err != nil {
		code, field, msg := h.errorText(err)
		if code == http.StatusForbidden {
			h.fail(w, r, err)
			return
		}
		h.tokensPage(w, r, code, page{Error: msg}, tokensData{Form: f, Field: field})
		return
	}
	h.tokensPage(w, r, http.StatusCreated, page{}, tokensData{Secret: secret, Created: t})
}

func (h *Handler) deleteToken(w http.ResponseWriter, r *http.Request) {
	a := sessionOf(r).actor
	id := r.PathValue("id")
	if err := h.svc.DeleteToken(r.Context(), a, id); err != nil {
		h.fail(w, r, err)
		return
	}
	if id == a.ID {
		// This session went with its token.
		h.setSessionCookie(w, r, "", time.Time{}, -1)
		http.Redirect(w, r, "/signin", http.StatusSeeOther)
		return
	}
	http.Redirect(w, r, "/tokens?done="+url.QueryEscape("Token "+id+" revoked; its console sessions ended."), http.StatusSeeOther)
}
