// SPDX-License-Identifier: Apache-2.0

package store

import (
	"context"
	"time"

	"github.com/wirefleet/wirefleet/fleet"
)

// ConsoleSessionReader reads web console sessions.
type ConsoleSessionReader interface {
	// ConsoleSession finds a session by the hash of its secret.
	ConsoleSession(ctx context.Context, hash string) (fleet.ConsoleSession, error)
}

// ConsoleSessionWriter writes them.
type ConsoleSessionWriter interface {
	InsertConsoleSession(ctx context.Context, s fleet.ConsoleSession) error
	DeleteConsoleSession(ctx context.Context, hash string) error
	// DeleteExpiredConsoleSessions removes the sessions ended at now and
	// says how many.
	DeleteExpiredConsoleSessions(ctx context.Context, now time.Time) (int64, error)
}
