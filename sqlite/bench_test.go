package sqlite

import (
	"testing"

	"github.com/certportal/certportal"
	"github.com/certportal/certportal/storetest"
)

// Figures (go test -run XXX -bench . -benchtime=2s -benchmem ./sqlite/,
// 2-core AMD EPYC VM shared with other builds, Go 1.26, ext4 on virtio),
// 2026-11-25, load average about 3:
//
//	BenchmarkStore/CertificateBySHA256/serial-2     15.6 µs/op  4.4 KB  84 allocs
//	BenchmarkStore/CertificateBySHA256/parallel-2   13.5 µs/op
//	BenchmarkStore/UpdateIssue-2                    520 µs/op  (synchronous=FULL: one fsync per commit)
//	BenchmarkStore/Revocations-2                     96 ms/op  (100k of 200k revoked rows listed)
//
// Without the prepared-statement cache the lookup took 42 µs (23 µs with it,
// same run); before the CRL index covered its query, Revocations took 816 ms.
//
// Group commit (group.go), 2026-12-04, -benchtime 2s -count 3, load average
// 0.6-1.6, before and after in turns: UpdateIssue 507-662 µs before and
// 565-643 µs after (one writer: no change beyond the fsync's spread);
// UpdateIssueParallel (16 goroutines) 567-697 µs per issuance before,
// 296-424 µs after.

// BenchmarkStore runs the shared storage benchmarks (storetest.Bench) on
// an SQLite file.
func BenchmarkStore(b *testing.B) {
	storetest.Bench(b, func(b *testing.B) certportal.Store { return openTemp(b) })
}
