package portal

import (
	"context"
	"crypto/x509"
	"time"

	"github.com/certportal/certportal"
	"github.com/certportal/certportal/ca"
)

// Enrollment: the key is made on the user's machine and only a CSR
// (checked by ca.ParseCSR) reaches the portal, by EST (RFC 7030) or the
// home page's form. The certificate is the portal's profile for the
// account, whatever the CSR asked for, and it is recorded by the same
// transaction as every other issuance (RecordIssue): the previous
// certificate is superseded, the sign-in method becomes certificate, the
// account's other sessions end, and all of it is audited.

// Enrolled is a certificate issued for a key the portal never saw.
type Enrolled struct {
	Cert *certportal.Certificate // the record
	Leaf *x509.Certificate
	// Chain is the CA certificates above Leaf: its issuing CA, then the root.
	Chain []*x509.Certificate
}

// EnrollRequest asks for a first certificate for a CSR.
type EnrollRequest struct {
	ID  string
	CSR *ca.CSR
	// KeepSession is the session that asked (it survives; the account's
	// other sessions end). "" when no session asked (EST).
	KeepSession string
}

// Enroll issues a certificate for a CSR to an active account whose sign-in
// method is password, as Issue does for a signed-in user: the caller has
// authenticated the account (a password session, or EnrollWithPassword).
// The method is checked again in the issuing transaction, so two requests
// at once cannot both pass as a first certificate. An account that signs in
// by certificate is refused with ErrUseCertificate (Forbidden).
func (s *Service) Enroll(ctx context.Context, a Actor, req EnrollRequest) (*Enrolled, error) {
	acc, err := s.Account(ctx, req.ID)
	if err != nil {
		return nil, err
	}
	if err := enrollable(acc); err != nil {
		return nil, err
	}
	return s.issueCSR(ctx, a, acc, req.CSR, IssueRequest{
		KeepSession: req.KeepSession,
		renewing: func(_ context.Context, _ certportal.Tx, acc *certportal.Account, _ *certportal.Certificate) (*certportal.Certificate, error) {
			return nil, enrollable(acc)
		},
	})
}

// enrollable refuses a first certificate to an account that has one.
func enrollable(acc *certportal.Account) error {
	switch {
	case acc.Status != certportal.StatusActive:
		return forbidden(ErrCancelled, "this account has been cancelled")
	case acc.Method != certportal.MethodPassword:
		return forbidden(ErrUseCertificate, "this account signs in with its certificate; to get a new one, renew it in its last days or change the sign-in method first")
	}
	return nil
}

// EnrollWithPassword is EST's simpleenroll: ID and password are checked
// as /login checks them (PasswordSignIn: the same lockout counter, audit
// records and refusals: a cancelled account, one that signs in by
// certificate, an expired temporary password), then Enroll issues the
// certificate. No session is started, so every session of the account ends.
func (s *Service) EnrollWithPassword(ctx context.Context, id, password, remote string, csr *ca.CSR) (*Enrolled, error) {
	acc, err := s.PasswordSignIn(ctx, id, password, remote)
	if err != nil {
		return nil, err
	}
	return s.Enroll(ctx, User(acc.ID, remote), EnrollRequest{ID: acc.ID, CSR: csr})
}

// Reenroll is EST's simplereenroll: a certificate for a CSR in place of
// old, the certificate the caller authenticated (mutual TLS) and looked
// up with its account (CertSignIn). The rules are Renew's (renewRefusal):
// checked on what the sign-in read, so a refused request costs no
// signature, and again in the issuing transaction, which decides; the
// old certificate is superseded and the renewal audited naming both
// serials.
func (s *Service) Reenroll(ctx context.Context, a Actor, acc *certportal.Account, old *certportal.Certificate, csr *ca.CSR) (*Enrolled, error) {
	if err := s.renewRefusal(acc, old); err != nil {
		return nil, err
	}
	return s.issueCSR(ctx, a, acc, csr, IssueRequest{
		renewing: func(ctx context.Context, tx certportal.Tx, acc *certportal.Account, rec *certportal.Certificate) (*certportal.Certificate, error) {
			return s.recordRenewal(ctx, tx, a, acc, old.Serial, rec, "")
		},
	})
}

// issueCSR signs the certificate for csr and records it with the step
// every issuance shares (issue; req carries the session to keep and the
// check to run with the account locked).
func (s *Service) issueCSR(ctx context.Context, a Actor, acc *certportal.Account, csr *ca.CSR, req IssueRequest) (_ *Enrolled, err error) {
	defer func(start time.Time) { s.events().Issued(time.Since(start), err) }(time.Now())
	if csr == nil {
		return nil, certportal.Errorf(certportal.Invalid, "no certificate request was sent")
	}
	rec, leaf, err := s.issue(ctx, a, acc, req, func() (*x509.Certificate, error) {
		return s.CA.IssueCSR(ca.LeafRequest{ID: acc.ID, Email: acc.Email}, csr)
	})
	if err != nil {
		return nil, err
	}
	return &Enrolled{Cert: rec, Leaf: leaf, Chain: []*x509.Certificate{s.CA.Issuing, s.CA.Root}}, nil
}
