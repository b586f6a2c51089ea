// SPDX-License-Identifier: Apache-2.0

package controlplane

import (
	"context"

	"github.com/wirefleet/wirefleet/controlplane/store"
	"github.com/wirefleet/wirefleet/fleet"
)

// ListRecords lists the data store's records of one SIM or one group
// (exactly one of f.SIMID, f.GroupID), newest first. The SIM or group
// must exist.
func (s *Service) ListRecords(ctx context.Context, a Actor, f store.RecordFilter) (store.Page[fleet.Record], error) {
	if err := require(a, fleet.RoleViewer); err != nil {
		return store.Page[fleet.Record]{}, err
	}
	var err error
	switch {
	case f.SIMID != "" && f.GroupID == "":
		_, err = s.st.SIM(ctx, f.SIMID)
	case f.GroupID != "" && f.SIMID == "":
		_, err = s.st.Group(ctx, f.GroupID)
	default:
		return store.Page[fleet.Record]{}, fleet.Errorf(fleet.CodeInvalid, "id", "give a SIM or a group")
	}
	if err != nil {
		return store.Page[fleet.Record]{}, storeErr(err, "id")
	}
	if f.Cursor != "" {
		if _, _, err := store.ParseRecordCursor(f.Cursor); err != nil {
			return store.Page[fleet.Record]{}, fleet.Errorf(fleet.CodeInvalid, "cursor", "not a cursor this API returned")
		}
	}
	if f.Category != "" && !fleet.ValidCategory(f.Category) {
		return store.Page[fleet.Record]{}, fleet.Errorf(fleet.CodeInvalid, "category", "not a category")
	}
	if !f.From.IsZero() && !f.To.IsZero() && !f.From.Before(f.To) {
		return store.Page[fleet.Record]{}, fleet.Errorf(fleet.CodeInvalid, "to", "must be after from")
	}
	return s.st.ListRecords(ctx, f)
}
