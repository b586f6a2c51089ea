// SPDX-License-Identifier: Apache-2.0

package store

import (
	"context"
	"time"

	"github.com/wirefleet/wirefleet/fleet"
)

// MappingReader reads remote-access port mappings.
type MappingReader interface {
	Mapping(ctx context.Context, id string) (fleet.Mapping, error)
	// ListMappings lists mappings by id (creation order); expired ones
	// are included until deleted.
	ListMappings(ctx context.Context, f MappingFilter) (Page[fleet.Mapping], error)
}

// MappingWriter writes remote-access port mappings.
type MappingWriter interface {
	// InsertMapping stores m; a public port already held by another
	// mapping is a *ConflictError on "publicPort".
	InsertMapping(ctx context.Context, m fleet.Mapping) error
	DeleteMapping(ctx context.Context, id string) error
	// UsedPublicPorts returns the public ports of mappings not expired at now.
	UsedPublicPorts(ctx context.Context, now time.Time) (map[int]bool, error)
	// DeleteExpiredMappingsOnPort removes the mappings expired at now that
	// hold port (it is about to be given again) and returns their ids.
	DeleteExpiredMappingsOnPort(ctx context.Context, port int, now time.Time) ([]string, error)
}

// MappingFilter selects mappings.
type MappingFilter struct {
	PageRequest
	SIMID string
}
