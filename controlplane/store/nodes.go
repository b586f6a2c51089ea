// SPDX-License-Identifier: Apache-2.0

package store

import (
	"context"
	"time"

	"github.com/wirefleet/wirefleet/fleet"
)

// NodeReader reads the node registry.
type NodeReader interface {
	// ListNodes lists the registered nodes by name.
	ListNodes(ctx context.Context) ([]fleet.Node, error)
	// ListLeases lists the cluster-wide jobs' leases by job, expired ones
	// too.
	ListLeases(ctx context.Context) ([]fleet.Lease, error)
}

// NodeWriter writes it.
type NodeWriter interface {
	// PutNode registers a node or replaces its record.
	PutNode(ctx context.Context, n fleet.Node) error
	// DeleteNode forgets a node.
	DeleteNode(ctx context.Context, name string) error
	// TakeLease gives job's lease to holder until the given time, if no
	// one holds it past now or holder holds it already (a renewal), and
	// says whether holder has it. Two nodes taking it at once: one has it.
	TakeLease(ctx context.Context, job, holder string, now, until time.Time) (bool, error)
	// ReleaseLease gives up holder's lease of job (nothing if another
	// holds it).
	ReleaseLease(ctx context.Context, job, holder string) error
}
