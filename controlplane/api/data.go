// SPDX-License-Identifier: Apache-2.0

package api

import (
	"context"
	"net/http"
	"time"

	"github.com/wirefleet/wirefleet/controlplane"
	"github.com/wirefleet/wirefleet/controlplane/api/apiv1"
	"github.com/wirefleet/wirefleet/controlplane/store"
	"github.com/wirefleet/wirefleet/fleet"
)

var dataQuery = []string{"limit", "cursor", "from", "to", "category"}

func init() {
	schemas["DataRecord"] = obj(props{"id": integer(), "simId": str(""), "groupId": str("the SIM's group when it was written"),
		"time": dateTime(), "received": dateTime(), "category": str(""), "contentType": str("as the device sent it"), "size": integer(),
		"payload": map[string]any{"description": "the payload, when it is JSON"}, "payloadBase64": str("the payload in base64, when it is not JSON")})
	schemas["DataRecordPage"] = page("DataRecord")
	schemas["GroupSettings"].(map[string]any)["properties"].(props)["dataStore"] = obj(props{"enabled": boolean(), "maxPayload": integer(),
		"timestampPointer": str("JSON pointer to Unix milliseconds or an RFC 3339 string"), "batchPointer": str("JSON pointer to an array; \"#\" for the whole body"),
		"category": str(""), "retention": str("Go duration or days, like 720h or 30d; empty keeps records forever")})
}

// dataRoutes are the data store's read routes (data.go).
func (h *Handler) dataRoutes() []route {
	list := func(by string) func(ctx context.Context, a controlplane.Actor, r *http.Request) (any, error) {
		return func(ctx context.Context, a controlplane.Actor, r *http.Request) (any, error) {
			p, err := pageReq(r)
			if err != nil {
				return nil, err
			}
			q := r.URL.Query()
			f := store.RecordFilter{PageRequest: p, Category: q.Get("category")}
			if by == "sim" {
				f.SIMID = r.PathValue("id")
			} else {
				f.GroupID = r.PathValue("id")
			}
			for name, dst := range map[string]*time.Time{"from": &f.From, "to": &f.To} {
				if v := q.Get(name); v != "" {
					if *dst, err = time.Parse(time.RFC3339Nano, v); err != nil {
						return nil, errorf(fleet.CodeInvalid, name, "must be an RFC 3339 time")
					}
				}
			}
			page, err := h.svc.ListRecords(ctx, a, f)
			if err != nil {
				return nil, err
			}
			out := store.Page[apiv1.DataRecord]{Items: make([]apiv1.DataRecord, 0, len(page.Items)), Next: page.Next}
			for _, rec := range page.Items {
				out.Items = append(out.Items, apiv1.NewDataRecord(rec))
			}
			return out, nil
		}
	}
	return []route{
		{method: "GET", path: "/api/v1/sims/{id}/data", summary: "A SIM's data-store records, newest first (from inclusive, to exclusive, RFC 3339).", role: fleet.RoleViewer, response: "DataRecordPage", query: dataQuery, handle: list("sim")},
		{method: "GET", path: "/api/v1/groups/{id}/data", summary: "The data-store records written by a group's SIMs while in the group, newest first.", role: fleet.RoleViewer, response: "DataRecordPage", query: dataQuery, handle: list("group")},
	}
}
