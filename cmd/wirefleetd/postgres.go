package main

import (
	"context"
	"errors"

	"github.com/wirefleet/wirefleet/store"
)

func openPostgres(ctx context.Context, dsn string) (store.Store, string, error) {
	return nil, "", errors.New("--postgres: PostgreSQL backend not built into this binary yet")
}
