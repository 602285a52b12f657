package portal

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/certportal/certportal"
)

// ErrRenewTooEarly is the cause of the Conflict that Renew returns for a
// certificate that is not yet in its renewal window.
var ErrRenewTooEarly = errors.New("not yet renewable")

// RenewRequest asks to renew the certificate a user signed in with.
type RenewRequest struct {
	// Serial is the certificate being renewed: the one the session is
	// bound to, or the one presented on the request. The caller has
	// authenticated it; Renew checks that it is still current.
	Serial      string
	P12Password string
	Legacy      bool // 3DES/SHA-1 PKCS#12 for old systems
	// KeepSession is the session that asked, "" for none. It survives and
	// is bound to the new certificate (the old one is revoked as
	// superseded, not because it is unsafe, so the user who renewed stays
	// signed in); the account's other sessions end, as with Issue.
	KeepSession string
}

// RenewableFrom returns when a certificate's renewal window opens.
func (s *Service) RenewableFrom(c *certportal.Certificate) time.Time {
	return c.NotAfter.Add(-s.Config.RenewWindow)
}

// CanRenew reports whether a certificate may be renewed now: unrevoked,
// unexpired and inside its renewal window.
func (s *Service) CanRenew(c *certportal.Certificate) bool {
	now := s.now()
	return c != nil && !c.IsRevoked() && now.Before(c.NotAfter) && !now.Before(s.RenewableFrom(c))
}

// Renew issues a new certificate in place of the one a user signed in
// with, without a password, during that certificate's last days
// (Config.RenewWindow). It is Issue for the certificate's account, with the
// same transaction: the old certificate is revoked as superseded, the new
// one recorded, the CRL re-signed and everything audited (plus an
// ActionCertRenewed record naming both serials). A certificate outside its
// window is refused with a Conflict whose cause is ErrRenewTooEarly and
// whose message says from when it can be renewed; a revoked or expired one
// with Forbidden (ErrCertRevoked, ErrCertExpired), as at sign-in.
func (s *Service) Renew(ctx context.Context, a Actor, req RenewRequest) (*Issued, error) {
	sn, acc, err := s.renewable(ctx, req.Serial)
	if err != nil {
		return nil, err
	}
	return s.Issue(ctx, a, IssueRequest{
		ID: acc.ID, P12Password: req.P12Password, Legacy: req.Legacy, KeepSession: req.KeepSession,
		// The file leaves the server and can be attacked offline, so it
		// must not share the account password, as in a user's Issue.
		RejectAccountPassword: true,
		renewing: func(ctx context.Context, tx certportal.Tx, acc *certportal.Account, rec *certportal.Certificate) (*certportal.Certificate, error) {
			return s.recordRenewal(ctx, tx, a, acc, sn, rec, req.KeepSession)
		},
	})
}

// renewable checks that the certificate with the given serial may be
// renewed now (renewRefusal), for Renew. It returns the normalised serial
// and the account.
func (s *Service) renewable(ctx context.Context, serial string) (string, *certportal.Account, error) {
	sn, err := certportal.NormalizeSerial(serial)
	if err != nil {
		return "", nil, err
	}
	var old *certportal.Certificate
	var acc *certportal.Account
	err = s.Store.View(ctx, func(tx certportal.Tx) error {
		var err error
		if old, err = tx.Certificate(ctx, sn); err != nil {
			return err
		}
		acc, err = tx.Account(ctx, old.AccountID)
		return err
	})
	switch {
	case certportal.ErrorCodeOf(err) == certportal.NotFound:
		return "", nil, forbidden(ErrCertUnknown, "this certificate is not known to this portal")
	case err != nil:
		return "", nil, err
	}
	if err := s.renewRefusal(acc, old); err != nil {
		return "", nil, err
	}
	return sn, acc, nil
}

// renewRefusal is the rule of renewal, for Renew and Reenroll, before the
// certificate is signed and again in the issuing transaction: the
// account is active, the certificate unrevoked, unexpired and inside its
// renewal window. It returns nil when old may be renewed now.
func (s *Service) renewRefusal(acc *certportal.Account, old *certportal.Certificate) error {
	switch {
	case acc.Status != certportal.StatusActive:
		return forbidden(ErrCertCancelled, "the account of this certificate has been cancelled")
	case old.IsRevoked():
		return forbidden(ErrCertRevoked, "this certificate has been revoked, so it cannot be renewed; change the sign-in method to get a new one")
	case !s.now().Before(old.NotAfter):
		return forbidden(ErrCertExpired, "this certificate has expired, so it cannot be renewed; change the sign-in method to get a new one")
	}
	if from := s.RenewableFrom(old); s.now().Before(from) {
		return &certportal.Error{Code: certportal.Conflict, Err: ErrRenewTooEarly,
			Message: "your certificate can be renewed from " + day(from) + ", in the last " + daysIn(old.NotAfter.Sub(from)) +
				" before it expires on " + day(old.NotAfter)}
	}
	return nil
}

// recordRenewal runs in the issuing transaction, with the account locked:
// it checks that the certificate being renewed is still the account's
// current one (two renewals at once must not both supersede it) and still
// renewable (renewRefusal: the window is decided by the transaction, not
// by a read before it), rebinds the renewing session to the new
// certificate, and audits the renewal. It returns the certificate
// renewed, which the issuance supersedes.
func (s *Service) recordRenewal(ctx context.Context, tx certportal.Tx, a Actor, acc *certportal.Account, serial string, rec *certportal.Certificate, keep string) (*certportal.Certificate, error) {
	old, err := tx.Certificate(ctx, serial)
	if err != nil {
		return nil, err
	}
	if old.IsRevoked() || certportal.IDKey(old.AccountID) != certportal.IDKey(acc.ID) {
		return nil, certportal.Errorf(certportal.Conflict, "this certificate has been renewed or revoked meanwhile; sign in again with your current certificate")
	}
	if err := s.renewRefusal(acc, old); err != nil {
		return nil, err
	}
	if keep != "" {
		sess, err := tx.Session(ctx, keep)
		switch {
		case certportal.ErrorCodeOf(err) == certportal.NotFound:
		case err != nil:
			return nil, err
		case sess.CertSerial == old.Serial:
			// A session keeps its ID (the cookie stays valid) and is bound
			// to the new certificate: delete and create it again, as the
			// store offers no update of the binding.
			if err := tx.DeleteSession(ctx, sess.ID); err != nil {
				return nil, err
			}
			sess.CertSerial = rec.Serial
			if err := tx.CreateSession(ctx, sess); err != nil {
				return nil, err
			}
		}
	}
	return old, s.audit(ctx, tx, a, acc.ID, certportal.ActionCertRenewed, "serial "+old.Serial+" renewed as "+rec.Serial)
}

// day formats a date for a message: "26 October 2027" (UTC).
func day(t time.Time) string { return t.UTC().Format("2 January 2006") }

// daysIn says a duration in whole days: "30 days".
func daysIn(d time.Duration) string {
	n := int(d.Round(time.Hour) / (24 * time.Hour))
	if n == 1 {
		return "1 day"
	}
	return strconv.Itoa(n) + " days"
}
