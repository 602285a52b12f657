package portal_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"testing"
	"time"

	"github.com/certportal/certportal"
	"github.com/certportal/certportal/portal"
)

// addRevoked records n revoked certificates of the issuing CA that have not
// expired, as a portal that has run for a while has them; their DER is
// random bytes (only the CRL reads them, by serial).
func (e *env) addRevoked(tb testing.TB, n int) {
	tb.Helper()
	ctx := context.Background()
	e.addUser(tb, "revoked")
	issuer := e.svc.CA.Issuing.Subject.CommonName
	now := time.Now().UTC().Truncate(time.Microsecond)
	err := e.svc.Store.Update(ctx, func(tx certportal.Tx) error {
		for i := 0; i < n; i++ {
			der := make([]byte, 64)
			rand.Read(der)
			der[0] = der[0]&0x7f | 0x10 // a serial without a leading zero byte
			c := &certportal.Certificate{
				Serial: fmt.Sprintf("%X", der[:16]), AccountID: "revoked", Issuer: issuer,
				NotBefore: now.Add(-time.Hour), NotAfter: now.AddDate(1, 0, 0),
				Thumbprint: certportal.Thumbprint(der), SHA256: certportal.Fingerprint256(der),
				DER: der, Issued: now.Add(-time.Hour),
			}
			if err := tx.InsertCertificate(ctx, c); err != nil {
				return err
			}
			if err := tx.RevokeCertificate(ctx, c.Serial, now, certportal.ReasonSuperseded); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
}

// BenchmarkIssueRevoked20k is BenchmarkIssue on a portal whose issuing CA
// has 20,000 unexpired revoked certificates: every issuance to an account
// that has a certificate revokes it (superseded), which must not cost a
// signature over the whole CRL.
func BenchmarkIssueRevoked20k(b *testing.B) {
	e := newEnv(b)
	e.addRevoked(b, 20_000)
	for i := 0; i < 50; i++ {
		e.addUser(b, fmt.Sprintf("bench%02d", i))
	}
	ctx := context.Background()
	i := 0
	for b.Loop() {
		if _, err := e.svc.Issue(ctx, portal.Admin, portal.IssueRequest{ID: fmt.Sprintf("bench%02d", i%50), P12Password: p12pw}); err != nil {
			b.Fatal(err)
		}
		i++
	}
}
