package sqlite

import (
	"testing"

	"github.com/certportal/certportal"
	"github.com/certportal/certportal/storetest"
)

// BenchmarkConsole runs the admin console's benchmarks (storetest.BenchConsole,
// 100,000 accounts and certificates) on an SQLite file; the figures are in
// docs/BENCHMARKS.md.
func BenchmarkConsole(b *testing.B) {
	storetest.BenchConsole(b, func(b *testing.B) certportal.Store { return openTemp(b) }, nil)
}
