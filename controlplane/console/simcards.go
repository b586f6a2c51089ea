// SPDX-License-Identifier: Apache-2.0

package console

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/wirefleet/wirefleet/controlplane"
	"github.com/wirefleet/wirefleet/fleet"
)

// SIM cards: physical USIMs registered from a vendor's CSV, with which
// devices bootstrap by the card's own authentication (docs/simcards.md).
// Their keys are sealed on import and never shown again, here or anywhere.

type simCardsData struct {
	Cards  []fleet.SIMCard
	Next   string
	Groups []fleet.Group
	Names  map[string]string
	Group  string // the import form's group
	Field  string
}

func (h *Handler) simCardsPage(w http.ResponseWriter, r *http.Request, code int, p page, d simCardsData) {
	pg, groups, names, ok := listWithGroups(h, w, r, h.svc.ListSIMCards)
	if !ok {
		return
	}
	d.Cards, d.Next, d.Groups, d.Names = pg.Items, pg.Next, groups, names
	p.Title, p.Nav, p.Data = "SIM cards", "simcards", d
	h.render(w, r, code, "simcards", p)
}

func (h *Handler) simCards(w http.ResponseWriter, r *http.Request) {
	h.simCardsPage(w, r, http.StatusOK, page{Flash: r.URL.Query().Get("done")}, simCardsData{})
}

// importSIMCards registers a vendor's CSV, uploaded as a file or pasted.
// What was pasted is not shown again on a refusal: it holds the cards'
// keys, which the page never echoes.
func (h *Handler) importSIMCards(w http.ResponseWriter, r *http.Request) {
	group := r.PostFormValue("group")
	again := func(code int, field, msg string) {
		h.simCardsPage(w, r, code, page{Error: msg}, simCardsData{Group: group, Field: field})
	}
	var csv io.Reader = strings.NewReader(r.PostFormValue("text"))
	if f, hdr, err := r.FormFile("file"); err == nil {
		defer f.Close()
		if hdr.Size > 0 {
			csv = f
		}
	}
	res, err := h.svc.ImportSIMCards(r.Context(), sessionOf(r).actor, csv, group)
	if err != nil {
		h.refused(w, r, err, again)
		return
	}
	http.Redirect(w, r, "/simcards?done="+url.QueryEscape(fmt.Sprintf("%d cards imported; their keys are sealed and will not be shown.", res.Imported)), http.StatusSeeOther)
}

// updateSIMCard suspends or reactivates a card, or sets the group its
// virtual SIM joins.
func (h *Handler) updateSIMCard(w http.ResponseWriter, r *http.Request) {
	var u controlplane.SIMCardUpdate
	f := r.PostForm
	if f.Has("status") {
		st := fleet.CardStatus(f.Get("status"))
		u.Status = &st
	}
	if f.Has("group") {
		g := f.Get("group")
		u.GroupID = &g
	}
	c, err := h.svc.UpdateSIMCard(r.Context(), sessionOf(r).actor, r.PathValue("iccid"), u)
	if err != nil {
		h.refused(w, r, err, func(code int, field, msg string) {
			h.simCardsPage(w, r, code, page{Error: msg}, simCardsData{Field: field})
		})
		return
	}
	http.Redirect(w, r, "/simcards?done="+url.QueryEscape("Card "+c.ICCID+" is "+string(c.Status)+"."), http.StatusSeeOther)
}

func (h *Handler) deleteSIMCard(w http.ResponseWriter, r *http.Request) {
	iccid := r.PathValue("iccid")
	if err := h.svc.DeleteSIMCard(r.Context(), sessionOf(r).actor, iccid); err != nil {
		h.fail(w, r, err)
		return
	}
	http.Redirect(w, r, "/simcards?done="+url.QueryEscape("Card "+iccid+" and its keys forgotten; its virtual SIM stays."), http.StatusSeeOther)
}
