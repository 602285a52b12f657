package postgres

import (
	"context"
	"testing"

	"github.com/certportal/certportal"
	"github.com/certportal/certportal/storetest"
)

// BenchmarkConsole runs the admin console's benchmarks (storetest.BenchConsole,
// 100,000 accounts and certificates) on a fresh PostgreSQL database; the
// figures are in docs/BENCHMARKS.md. The tables are analysed after the
// filling, as autovacuum does after a change this size: without
// statistics the planner guesses that a range matches few rows, and pages
// deep into a search of every account sort the whole table (60 ms).
func BenchmarkConsole(b *testing.B) {
	var db *DB
	storetest.BenchConsole(b, func(b *testing.B) certportal.Store {
		db, _ = openFresh(b)
		return db
	}, func(b *testing.B) {
		if _, err := db.pool.Exec(context.Background(), `ANALYZE`); err != nil {
			b.Fatal(err)
		}
	})
}
