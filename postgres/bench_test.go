package postgres

import (
	"testing"

	"github.com/certportal/certportal"
	"github.com/certportal/certportal/storetest"
)

// Figures (go test -run XXX -bench . -benchtime=2s -benchmem ./postgres/,
// 2-core AMD EPYC VM shared with other builds, Go 1.26, PostgreSQL 15 on
// the same machine over TCP 127.0.0.1, fsync on), 2026-11-25, load
// average about 2.5; the sqlite figures of the same machine
// (sqlite/bench_test.go) next to them:
//
//	                                        postgres                 sqlite
//	BenchmarkStore/CertificateBySHA256/serial-2     152 µs/op  2.3 KB  39 allocs   15.6 µs/op
//	BenchmarkStore/CertificateBySHA256/parallel-2   121 µs/op                      13.5 µs/op
//	BenchmarkStore/UpdateIssue-2                  1.08 ms/op  9.2 KB 134 allocs    520 µs/op
//
// A View is three round trips (BEGIN, the query, COMMIT); an issuing
// Update is seven (BEGIN, lock, list, revoke, insert, two for the audit
// record) plus COMMIT, which waits for the WAL flush.

// BenchmarkStore runs the shared storage benchmarks (storetest.Bench) on a
// fresh PostgreSQL database.
func BenchmarkStore(b *testing.B) {
	storetest.Bench(b, func(b *testing.B) certportal.Store {
		db, _ := openFresh(b)
		return db
	})
}
