package portal_test

import (
	"context"
	"crypto/x509"
	"testing"

	"golang.org/x/crypto/ocsp"

	"github.com/certportal/certportal/portal"
)

// BenchmarkOCSPParallel: the responder's per-request work (parse, status
// read from SQLite, the cached signed answer) from as many goroutines as
// there are cores, as serve's handlers call it.
func BenchmarkOCSPParallel(b *testing.B) {
	e := newEnv(b)
	ctx := context.Background()
	e.addUser(b, "alice")
	res, err := e.svc.Issue(ctx, portal.Admin, portal.IssueRequest{ID: "alice", P12Password: p12pw})
	if err != nil {
		b.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(res.Cert.DER)
	if err != nil {
		b.Fatal(err)
	}
	der, err := ocsp.CreateRequest(leaf, e.svc.CA.Issuing, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := e.svc.OCSP(ctx, der); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
