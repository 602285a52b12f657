package portal

import (
	"context"
	"crypto/x509"

	"github.com/certportal/certportal"
)

// CheckCertificate answers, for the /check page, what a certificate
// sign-in with chain would answer: the same chain verification and the
// same lookup by the SHA-256 of the DER as CertSignIn, so the page can never
// disagree with the sign-in it explains. It is not a sign-in: it starts no
// session, writes no audit record and reports no sign-in to Events, so a
// help desk opening /check again and again does not look like failed
// sign-ins on the dashboards.
func (s *Service) CheckCertificate(ctx context.Context, chain []*x509.Certificate) (*certportal.Account, *certportal.Certificate, error) {
	return s.identify(ctx, chain)
}
