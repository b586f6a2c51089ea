// SPDX-License-Identifier: Apache-2.0

package main

import (
	"context"
	"log/slog"

	"github.com/wirefleet/wirefleet/controlplane/store"
	"github.com/wirefleet/wirefleet/controlplane/store/pgstore"
)

func openPostgres(ctx context.Context, dsn string, log *slog.Logger) (store.Store, string, error) {
	st, err := pgstore.Open(ctx, dsn, log)
	// The DSN may hold a password: name the backend only.
	return st, "postgres", err
}
