// SPDX-License-Identifier: Apache-2.0

package store

import (
	"context"

	"github.com/wirefleet/wirefleet/fleet"
)

// CaptureReader reads packet capture sessions.
type CaptureReader interface {
	Capture(ctx context.Context, id string) (fleet.Capture, error)
	// ListCaptures pages newest first by id.
	ListCaptures(ctx context.Context, p PageRequest) (Page[fleet.Capture], error)
}

// CaptureWriter writes them.
type CaptureWriter interface {
	// PutCapture inserts or replaces a session.
	PutCapture(ctx context.Context, c fleet.Capture) error
	DeleteCapture(ctx context.Context, id string) error
}
