// Package pgtest gives tests a PostgreSQL database of their own on the
// server named by CERTPORTAL_TEST_POSTGRES_DSN. scripts/test (and so CI)
// always sets it; a test that needs PostgreSQL fails without it, never
// skips, so the PostgreSQL code cannot go untested by accident.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"testing"

	"github.com/jackc/pgx/v5"
)

// Env names the PostgreSQL server of the tests.
const Env = "CERTPORTAL_TEST_POSTGRES_DSN"

// ServerDSN returns the server's URL, failing the test when it is not set.
func ServerDSN(t testing.TB) string {
	t.Helper()
	dsn := os.Getenv(Env)
	if dsn == "" {
		t.Fatalf("%s is not set: this test needs a real PostgreSQL server "+
			"(scripts/test starts one and sets it; by hand: %s=postgres://postgres@127.0.0.1:5432/test?sslmode=disable)",
			Env, Env)
	}
	return dsn
}

// FreshDatabase creates an empty database on the server and returns its
// URL; the database is dropped (with its connections) when the test ends,
// after the test's own clean-ups, which were registered later and run first.
func FreshDatabase(t testing.TB) string {
	t.Helper()
	ctx := context.Background()
	server := ServerDSN(t)
	admin, err := pgx.Connect(ctx, server)
	if err != nil {
		t.Fatalf("connecting to %s (%s): %v", Env, server, err)
	}
	defer admin.Close(ctx)
	b := make([]byte, 6)
	rand.Read(b)
	name := "certportal_test_" + hex.EncodeToString(b)
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("CREATE DATABASE %s: %v", name, err)
	}
	t.Cleanup(func() {
		c, err := pgx.Connect(ctx, server)
		if err != nil {
			t.Errorf("dropping %s: %v", name, err)
			return
		}
		defer c.Close(ctx)
		if _, err := c.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("DROP DATABASE %s: %v", name, err)
		}
	})
	u, err := url.Parse(server)
	if err != nil {
		t.Fatalf("%s is not a URL: %v", Env, err)
	}
	u.Path = "/" + name
	return u.String()
}
