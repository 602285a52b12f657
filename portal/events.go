package portal

import (
	"context"
	"crypto/x509"
	"errors"
	"time"

	"github.com/certportal/certportal"
)

// Events hears what the service did, so cmd/certportal can count it (the
// metrics package turns it into Prometheus metrics) without portal knowing
// of any metrics library. Methods are called on the request's goroutine and
// must be quick and safe for concurrent use.
type Events interface {
	// Issued reports one issuance: how long the whole of Issue took and
	// whether it succeeded.
	Issued(d time.Duration, err error)
	// SignIn reports one sign-in attempt: method is "password" or
	// "certificate"; outcome is "ok", "failed" (wrong or unknown
	// credentials, lockout), a refusal reason such as "revoked",
	// "expired", "unknown", "cancelled", "use_certificate",
	// "password_expired", or "error" (the check itself failed).
	SignIn(method, outcome string)
	// RevocationCheck reports one lookup of a certificate's status in the
	// database: source is "signin" or "session"; good says whether the
	// certificate may still be used.
	RevocationCheck(source string, good bool)
	// OCSPRequest reports one parsed OCSP request; cacheable is true for a
	// request without a nonce, which the CA answers from its cache of
	// signed responses unless the status changed or the cached one is old.
	OCSPRequest(cacheable bool)
	// CRLSigned reports one CRL signed (listing and signing the entries).
	CRLSigned(issuer string, d time.Duration, err error)
}

// noEvents is the Events of a Service without one.
type noEvents struct{}

func (noEvents) Issued(time.Duration, error)            {}
func (noEvents) SignIn(string, string)                  {}
func (noEvents) RevocationCheck(string, bool)           {}
func (noEvents) OCSPRequest(bool)                       {}
func (noEvents) CRLSigned(string, time.Duration, error) {}

func (s *Service) events() Events {
	if s.Events == nil {
		return noEvents{}
	}
	return s.Events
}

// reasons are the refusals the service names, with the word programs see
// (metrics, /api/* answers): each a sentinel its errors wrap.
var reasons = []struct {
	err  error
	name string
}{
	{ErrCertRevoked, "revoked"}, {ErrCertExpired, "expired"}, {ErrCertUnknown, "unknown"},
	{ErrCertCancelled, "cancelled"}, {ErrCancelled, "cancelled"},
	{ErrUseCertificate, "use_certificate"}, {ErrPasswordExpired, "password_expired"},
}

// Reason names the refusal err carries ("revoked", "expired", "unknown",
// "cancelled", "use_certificate", "password_expired"), or "" for another
// error.
func Reason(err error) string {
	for _, r := range reasons {
		if errors.Is(err, r.err) {
			return r.name
		}
	}
	return ""
}

// outcomeOf names the outcome of a sign-in for SignIn.
func outcomeOf(err error) string {
	if err == nil {
		return "ok"
	}
	if r := Reason(err); r != "" {
		return r
	}
	switch certportal.ErrorCodeOf(err) {
	case certportal.Unauthorized, certportal.Locked:
		return "failed"
	}
	return "error"
}

// CertSignInVerified is CertSignIn for a leaf whose chain CertSignIn (that
// is, CA.VerifyClient) accepted earlier on the same TLS connection: web/
// keeps that verdict per connection, because the chain's signature check is
// most of a request's cost and its answer cannot change while the
// connection lasts (the caller re-checks the dates it depends on). Nothing
// else is skipped: the certificate is looked up by the SHA-256 of its DER
// on every call, so revocation, expiry and cancellation take effect at the
// next request, as with CertSignIn. A leaf this CA never issued is not in
// the database, so a wrong caller still cannot sign in with one.
func (s *Service) CertSignInVerified(ctx context.Context, leaf *x509.Certificate) (*certportal.Account, *certportal.Certificate, error) {
	return s.CertSignInFingerprint(ctx, certportal.Fingerprint256(leaf.Raw))
}

// CertSignInFingerprint is CertSignInVerified for a caller that keeps the
// verified certificate's fingerprint (certportal.Fingerprint256), as the
// web server does for each connection.
func (s *Service) CertSignInFingerprint(ctx context.Context, fp string) (*certportal.Account, *certportal.Certificate, error) {
	acc, c, err := s.lookupCert(ctx, fp)
	s.events().SignIn("certificate", outcomeOf(err))
	return acc, c, err
}
