// SPDX-License-Identifier: Apache-2.0

package console

import (
	"fmt"
	"html/template"
	"net/http"
	"strings"

	qrcode "github.com/skip2/go-qrcode"

	"github.com/wirefleet/wirefleet/controlplane"
	"github.com/wirefleet/wirefleet/fleet"
)

// wgQuickFile serves the SIM's session as a wg-quick file, its private
// key a placeholder (the platform does not hold device keys).
func (h *Handler) wgQuickFile(w http.ResponseWriter, r *http.Request) {
	sim, sess, err := h.svc.SessionFor(r.Context(), sessionOf(r).actor, r.PathValue("id"))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="`+fileName(sim)+`.conf"`)
	w.Header().Set("Cache-Control", "no-store")
	fmt.Fprint(w, controlplane.WireGuardConfig(sim, sess))
}

// fileName is a SIM's name for files: its IMSI, or its id.
func fileName(sim fleet.SIM) string {
	if sim.IMSI != "" {
		return "wirefleet-" + sim.IMSI
	}
	return "wirefleet-" + sim.ID
}

type rekeyData struct {
	SIM    fleet.SIM
	Config string
	QR     template.HTML
}

// rekeyConfig gives the SIM a key made by the platform and shows the
// complete wg-quick file with its QR code (for the WireGuard apps), in
// this answer only: the private key is not stored. The device's old key
// stops working, so the form asks for a confirmation.
func (h *Handler) rekeyConfig(w http.ResponseWriter, r *http.Request) {
	a := sessionOf(r).actor
	id := r.PathValue("id")
	if r.PostFormValue("confirm") != "on" {
		h.simPage(w, r, http.StatusBadRequest, page{Error: "Tick the box: the device's current key stops working when the SIM gets a new one."}, mappingForm{})
		return
	}
	_, priv, err := h.svc.SetSIMKey(r.Context(), a, id, controlplane.KeySpec{GenerateKey: true})
	if err != nil {
		h.fail(w, r, err)
		return
	}
	sim, sess, err := h.svc.SessionFor(r.Context(), a, id)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	sess.PrivateKey = priv
	conf := controlplane.WireGuardConfig(sim, sess)
	qr, err := qrSVG(conf)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.render(w, r, http.StatusOK, "rekey", page{Title: "New key for SIM " + sim.IMSI, Nav: "sims", Data: rekeyData{SIM: sim, Config: conf, QR: qr}})
}

// qrSVG draws text as a QR code in SVG: one path of unit squares, drawn
// here so the page needs no script, no image file and no inline style.
func qrSVG(text string) (template.HTML, error) {
	q, err := qrcode.New(text, qrcode.Medium)
	if err != nil {
		return "", err
	}
	bits := q.Bitmap() // with its quiet zone
	var d strings.Builder
	for y, row := range bits {
		for x, on := range row {
			if on {
				fmt.Fprintf(&d, "M%d %dh1v1h-1z", x, y)
			}
		}
	}
	n := len(bits)
	// Only numbers and the fixed markup go in: safe as HTML.
	return template.HTML(fmt.Sprintf(`<svg class="qr" viewBox="0 0 %d %d" role="img" aria-label="QR code of the WireGuard configuration" shape-rendering="crispEdges"><rect width="%d" height="%d" fill="#fff"/><path fill="#000" d="%s"/></svg>`, n, n, n, n, d.String())), nil
}
