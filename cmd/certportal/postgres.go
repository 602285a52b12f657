package main

import (
	"context"

	"github.com/certportal/certportal"
)

// openPostgres is where the PostgreSQL store will be opened; until it
// exists, a postgres:// URL gets a clear refusal.
func openPostgres(ctx context.Context, dsn string, create bool) (certportal.Store, error) {
	return nil, certportal.Errorf(certportal.Invalid, "PostgreSQL storage is not available in this build yet; use sqlite")
}
