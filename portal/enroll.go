package portal

import (
	"context"
	"crypto/x509"
	"errors"
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
		renewing: func(_ context.Context, _ certportal.Tx, acc *certportal.Account, _ *certportal.Certificate) error {
			return enrollable(acc)
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
// the certificate with the given serial, which the caller authenticated
// (mutual TLS). The rules are Renew's: the certificate must be the
// account's current one and inside its renewal window; the old one is
// superseded and the renewal audited naming both serials.
func (s *Service) Reenroll(ctx context.Context, a Actor, serial string, csr *ca.CSR) (*Enrolled, error) {
	sn, acc, err := s.renewable(ctx, serial)
	if err != nil {
		return nil, err
	}
	return s.issueCSR(ctx, a, acc, csr, IssueRequest{
		renewing: func(ctx context.Context, tx certportal.Tx, acc *certportal.Account, rec *certportal.Certificate) error {
			return s.recordRenewal(ctx, tx, a, acc, sn, rec, "")
		},
	})
}

// issueCSR signs the certificate for csr and records it with RecordIssue's
// transaction (req carries the session to keep and the check to run with
// the account locked), then wakes the CRL signer and sends the notice.
func (s *Service) issueCSR(ctx context.Context, a Actor, acc *certportal.Account, csr *ca.CSR, req IssueRequest) (_ *Enrolled, err error) {
	defer func(start time.Time) { s.events().Issued(time.Since(start), err) }(time.Now())
	if csr == nil {
		return nil, certportal.Errorf(certportal.Invalid, "no certificate request was sent")
	}
	for attempt := 0; ; attempt++ {
		leaf, err := s.CA.IssueCSR(ca.LeafRequest{ID: acc.ID, Email: acc.Email}, csr)
		if err != nil {
			return nil, err
		}
		rec := certRecord(leaf, acc.ID, s.now())
		err = s.Store.Update(ctx, func(tx certportal.Tx) error {
			return s.recordIssue(ctx, tx, a, rec, req)
		})
		if attempt < 3 && errors.Is(err, certportal.ErrSerialTaken) {
			continue // a random serial met an existing one: sign again
		}
		if err != nil {
			return nil, err
		}
		s.crlsChanged() // the previous certificate, if any, is revoked
		s.notify(ctx, acc.ID, NoticeCertificateIssued(acc.Email, acc.ID, rec.Serial, rec.Thumbprint, rec.NotAfter))
		return &Enrolled{Cert: rec, Leaf: leaf, Chain: []*x509.Certificate{s.CA.Issuing, s.CA.Root}}, nil
	}
}
