// SPDX-License-Identifier: Apache-2.0

package api

import (
	"context"
	"errors"
	"net/http"

	"github.com/wirefleet/wirefleet/controlplane"
	"github.com/wirefleet/wirefleet/fleet"
)

func init() {
	schemas["SIMCard"] = obj(props{"iccid": str(""), "imsi": str(""), "status": enum("active", "suspended"), "groupId": str("the group its virtual SIM joins"),
		"simId": str("the virtual SIM it bootstrapped"), "created": dateTime(), "updated": dateTime()})
	schemas["SIMCardPage"] = page("SIMCard")
	schemas["SIMCardImport"] = obj(props{"imported": integer()})
	schemas["SIMCardUpdate"] = obj(props{"status": enum("active", "suspended"), "groupId": str("")})
}

// simCardRoutes are the physical SIM cards' routes (SIM-card bootstrap).
func (h *Handler) simCardRoutes() []route {
	return []route{
		{method: "GET", path: "/api/v1/sim-cards", summary: "List SIM cards (never their keys).", role: fleet.RoleViewer, response: "SIMCardPage", query: pageQuery, handle: listed(h.svc.ListSIMCards)},
		{method: "POST", path: "/api/v1/sim-cards/import", summary: "Import SIM cards from the vendor's CSV (text/csv: ICCID, IMSI, Ki, OPc), all or nothing; keys sealed at rest. Admins only.",
			role: fleet.RoleAdmin, response: "SIMCardImport", query: []string{"groupId"}, handle: h.importSIMCards, maxBody: fleet.MaxCardCSV},
		{method: "GET", path: "/api/v1/sim-cards/{id}", summary: "Get a SIM card by ICCID.", role: fleet.RoleViewer, response: "SIMCard", handle: byID(h.svc.GetSIMCard)},
		{method: "PATCH", path: "/api/v1/sim-cards/{id}", summary: "Suspend or reactivate a SIM card, or change the group its virtual SIM joins.", role: fleet.RoleOperator, request: "SIMCardUpdate", response: "SIMCard", handle: h.updateSIMCard},
		{method: "DELETE", path: "/api/v1/sim-cards/{id}", summary: "Forget a SIM card and its keys (its virtual SIM stays). Admins only.", role: fleet.RoleAdmin, handle: removeByID(h.svc.DeleteSIMCard)},
	}
}

func (h *Handler) importSIMCards(ctx context.Context, a controlplane.Actor, r *http.Request) (any, error) {
	res, err := h.svc.ImportSIMCards(ctx, a, r.Body, r.URL.Query().Get("groupId"))
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return nil, errorf(fleet.CodeInvalid, "csv", "larger than %d bytes: import in parts", fleet.MaxCardCSV)
	}
	if err != nil {
		return nil, err
	}
	return created{res}, nil
}

func (h *Handler) updateSIMCard(ctx context.Context, a controlplane.Actor, r *http.Request) (any, error) {
	var u controlplane.SIMCardUpdate
	if err := decode(r, &u); err != nil {
		return nil, err
	}
	return h.svc.UpdateSIMCard(ctx, a, r.PathValue("id"), u)
}
