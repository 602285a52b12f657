package portal_test

import (
	"context"
	"testing"
	"time"
)

// BenchmarkCRL10k: one issuing CA's CRL with 10,000 revoked entries, the
// whole path (list, sign, store, audit), as the CRL signer runs it: the
// clock moves a day each time, so every call signs a new CRL.
func BenchmarkCRL10k(b *testing.B) {
	e := newEnv(b)
	clock := e.withClock(time.Now().UTC())
	e.addRevoked(b, 10000)
	issuer := e.svc.CA.Issuing.Subject.CommonName
	ctx := context.Background()
	b.ResetTimer()
	for b.Loop() {
		clock.Advance(25 * time.Hour)
		if _, err := e.svc.CRL(ctx, issuer); err != nil {
			b.Fatal(err)
		}
	}
}
