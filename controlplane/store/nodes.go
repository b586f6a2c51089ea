// SPDX-License-Identifier: Apache-2.0

package store

import (
	"context"

	"github.com/wirefleet/wirefleet/fleet"
)

// NodeReader reads the node registry.
type NodeReader interface {
	// ListNodes lists the registered nodes by name.
	ListNodes(ctx context.Context) ([]fleet.Node, error)
}

// NodeWriter writes it.
type NodeWriter interface {
	// PutNode registers a node or replaces its record.
	PutNode(ctx context.Context, n fleet.Node) error
	// DeleteNode forgets a node.
	DeleteNode(ctx context.Context, name string) error
}
