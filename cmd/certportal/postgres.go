package main

import (
	"context"

	"github.com/certportal/certportal"
	"github.com/certportal/certportal/postgres"
)

// openPostgres opens the PostgreSQL store named by dsn (a postgres:// URL
// without a password; openStore has refused one with a password already).
// create is init's: the database must be empty, and gets the schema.
func openPostgres(ctx context.Context, dsn string, create bool) (certportal.Store, error) {
	db, err := postgres.Open(ctx, dsn, create)
	if err != nil {
		return nil, err
	}
	return db, nil
}
