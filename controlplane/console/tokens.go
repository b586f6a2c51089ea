// SPDX-License-Identifier: Apache-2.0

package console

import (
	"net/http"
	"net/url"
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
	Nonce   string // the create form's (submitted)
}

func (h *Handler) tokensPage(w http.ResponseWriter, r *http.Request, code int, p page, d tokensData) {
	a := sessionOf(r).actor
	pg, err := h.svc.ListTokens(r.Context(), a, store.PageRequest{Limit: pageSize, Cursor: r.URL.Query().Get("cursor")})
	if err != nil {
		h.fail(w, r, err)
		return
	}
	d.Tokens, d.Next, d.Self, d.Nonce = pg.Items, pg.Next, a.ID, newNonce()
	p.Title, p.Nav, p.Data = "Operator tokens", "tokens", d
	h.render(w, r, code, "tokens", p)
}

func (h *Handler) tokens(w http.ResponseWriter, r *http.Request) {
	h.tokensPage(w, r, http.StatusOK, page{Flash: r.URL.Query().Get("done")}, tokensData{})
}

func (h *Handler) createToken(w http.ResponseWriter, r *http.Request) {
	a := sessionOf(r).actor
	f := r.PostForm
	key, prev, first, err := h.sentBefore(r)
	if err != nil {
		h.tokensPage(w, r, http.StatusBadRequest, page{Error: err.Error()}, tokensData{Form: f})
		return
	}
	if !first {
		h.tokensPage(w, r, http.StatusOK, page{Flash: sentAgain("token", prev)}, tokensData{})
		return
	}
	days, _, err := formInt(f, "days", "days (empty: never)", 1, int(controlplane.MaxTokenTTL/(24*time.Hour)))
	var t fleet.Token
	var secret string
	if err == nil {
		t, secret, err = h.svc.CreateExpiringToken(r.Context(), a, fleet.Role(f.Get("role")), strings.TrimSpace(f.Get("description")), time.Duration(days)*24*time.Hour)
	}
	if err != nil {
		h.sent.forget(key)
		h.refused(w, r, err, func(code int, field, msg string) {
			h.tokensPage(w, r, code, page{Error: msg}, tokensData{Form: f, Field: field})
		})
		return
	}
	h.sent.done(key, t.ID)
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
