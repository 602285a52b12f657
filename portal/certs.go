package portal

import (
	"context"
	"crypto/x509"
	"errors"
	"time"

	"github.com/certportal/certportal"
	"github.com/certportal/certportal/ca"
)

// IssueRequest asks for a certificate for one account.
type IssueRequest struct {
	ID          string
	P12Password string
	Legacy      bool       // 3DES/SHA-1 PKCS#12 for old systems
	KeyType     ca.KeyType // "" = Config.UserKeyType
	// KeepSession is the session that asked (it survives; the account's
	// other sessions end). "" for the command line.
	KeepSession string
	// RejectAccountPassword refuses a PKCS#12 password equal to the
	// account password. The portal sets it for users; it costs one
	// argon2id verification, which an administrator's issuance skips.
	RejectAccountPassword bool

	// renewing, set by Renew, Reenroll and Enroll, runs in the issuing
	// transaction once the account is locked and before its certificates
	// are revoked: it checks that the certificate being renewed is still
	// the current one (or, for a first certificate, that there is none).
	// A renewal returns that certificate, which is then all there is to
	// supersede (see recordIssue); nil leaves the search to revokeAll.
	renewing func(ctx context.Context, tx certportal.Tx, acc *certportal.Account, rec *certportal.Certificate) (*certportal.Certificate, error)
}

// Issued is the result of an issuance: the record and the PKCS#12 file.
// The private key exists only inside P12.
type Issued struct {
	Cert *certportal.Certificate
	P12  []byte
}

// Issue issues a certificate for an active account and returns it as a
// PKCS#12 file. In one transaction it revokes the account's previous
// certificate (superseded), records the new one, sets the sign-in method to
// certificate and audits all of it; the CRL is re-signed after the commit,
// outside the transaction (see CRL). The key is generated here and dropped
// once the file is made.
func (s *Service) Issue(ctx context.Context, a Actor, req IssueRequest) (_ *Issued, err error) {
	defer func(start time.Time) { s.events().Issued(time.Since(start), err) }(time.Now())
	if err := certportal.ValidateP12Password(req.P12Password); err != nil {
		return nil, err
	}
	kt := req.KeyType
	if kt == "" {
		kt = s.Config.UserKeyType
	}
	acc, err := s.Account(ctx, req.ID)
	if err != nil {
		return nil, err
	}
	if acc.Status != certportal.StatusActive {
		return nil, certportal.Errorf(certportal.Forbidden, "the account %q is cancelled", acc.ID)
	}
	if req.RejectAccountPassword {
		if ok, err := s.Hasher.Verify(ctx, acc.PasswordHash, req.P12Password); err != nil {
			return nil, err
		} else if ok {
			return nil, certportal.Errorf(certportal.Invalid, "choose a password for the certificate file that is not your account password")
		}
	}
	var p12 []byte
	rec, _, err := s.issue(ctx, a, acc, req, func() (*x509.Certificate, error) {
		leaf, key, err := s.CA.Issue(ca.LeafRequest{ID: acc.ID, Email: acc.Email, KeyType: kt})
		if err != nil {
			return nil, err
		}
		p12, err = s.CA.PKCS12(key, leaf, req.P12Password, req.Legacy)
		return leaf, err
	})
	if err != nil {
		return nil, err
	}
	return &Issued{Cert: rec, P12: p12}, nil
}

// issue is the step every issuance shares once its checks passed,
// whatever makes the certificate (a key made here for a PKCS#12, or a
// CSR): sign, then record it with recordIssue's transaction, which also
// queues the notice mail; after the commit it wakes the CRL signer (the
// previous certificate, if any, is revoked) and the mail sender.
//
// Serials are 127 random bits; a collision is all but impossible, but the
// database's unique key decides, and sign is called again for a new
// serial.
func (s *Service) issue(ctx context.Context, a Actor, acc *certportal.Account, req IssueRequest, sign func() (*x509.Certificate, error)) (*certportal.Certificate, *x509.Certificate, error) {
	for attempt := 0; ; attempt++ {
		leaf, err := sign()
		if err != nil {
			return nil, nil, err
		}
		rec := certRecord(leaf, acc.ID, s.now())
		err = s.Store.Update(ctx, func(tx certportal.Tx) error {
			return s.recordIssue(ctx, tx, a, rec, req)
		})
		if attempt < 3 && errors.Is(err, certportal.ErrSerialTaken) {
			continue
		}
		if err != nil {
			return nil, nil, err
		}
		s.crlsChanged()
		s.wakeMailSender()
		return rec, leaf, nil
	}
}

// RecordIssue is the step of every issuance that happens in the database,
// whatever made the certificate (a key made here for a PKCS#12, or a CSR):
// in tx, lock the account (a cancelled one is refused), revoke its valid
// certificates as superseded, insert rec, audit the issue, set the sign-in
// method to certificate, end the account's sessions but keepSession, and
// queue the notice mail in the outbox (sent after the commit, at least
// once, and audited when it went out: see outbox.go). The storage tests
// run it as the product does.
func (s *Service) RecordIssue(ctx context.Context, tx certportal.Tx, a Actor, rec *certportal.Certificate, keepSession string) error {
	return s.recordIssue(ctx, tx, a, rec, IssueRequest{KeepSession: keepSession})
}

func (s *Service) recordIssue(ctx context.Context, tx certportal.Tx, a Actor, rec *certportal.Certificate, req IssueRequest) error {
	acc, err := tx.LockAccount(ctx, rec.AccountID)
	if err != nil {
		return err
	}
	if acc.Status != certportal.StatusActive {
		return certportal.Errorf(certportal.Forbidden, "the account %q is cancelled", acc.ID)
	}
	var renewed *certportal.Certificate
	if req.renewing != nil {
		if renewed, err = req.renewing(ctx, tx, acc, rec); err != nil {
			return err
		}
	}
	if renewed != nil {
		// The certificate renewed is valid and the account's, and an
		// account has at most one valid certificate (the stores' unique
		// index certificates_one_valid, which InsertCertificate below
		// would also trip over): it is the one to supersede, without
		// listing the account's certificates in the turn of every
		// renewal.
		if err := s.revokeOne(ctx, tx, a, renewed, certportal.ReasonSuperseded); err != nil {
			return err
		}
	} else if err := s.revokeAll(ctx, tx, a, acc.ID, certportal.ReasonSuperseded); err != nil {
		return err
	}
	if err := tx.InsertCertificate(ctx, rec); err != nil {
		return err
	}
	if err := s.audit(ctx, tx, a, acc.ID, certportal.ActionCertIssued,
		"serial "+rec.Serial+" thumbprint "+rec.Thumbprint+" issuer "+rec.Issuer); err != nil {
		return err
	}
	if acc.Method != certportal.MethodCertificate {
		acc.Method = certportal.MethodCertificate
		if err := s.audit(ctx, tx, a, acc.ID, certportal.ActionMethodChanged, "to certificate"); err != nil {
			return err
		}
	}
	now := s.now()
	acc.Updated = now
	if err := tx.UpdateAccount(ctx, acc); err != nil {
		return err
	}
	if err := tx.DeleteSessions(ctx, acc.ID, req.KeepSession); err != nil {
		return err
	}
	return s.queueNotice(ctx, tx, acc.ID, NoticeCertificateIssued(acc.Email, acc.ID, rec.Serial, rec.Thumbprint, rec.NotAfter))
}

func certRecord(leaf *x509.Certificate, id string, now time.Time) *certportal.Certificate {
	return &certportal.Certificate{
		Serial:     certportal.FormatSerial(leaf.SerialNumber),
		AccountID:  id,
		Issuer:     leaf.Issuer.CommonName,
		NotBefore:  leaf.NotBefore.UTC(),
		NotAfter:   leaf.NotAfter.UTC(),
		Thumbprint: certportal.Thumbprint(leaf.Raw),
		SHA256:     certportal.Fingerprint256(leaf.Raw),
		DER:        leaf.Raw,
		Issued:     now,
		Reason:     certportal.ReasonNone,
	}
}

// revokeAll revokes every unrevoked certificate of an account in tx. It
// signs no CRL: the store counts each revocation in tx, Service.CRL serves
// no CRL that misses a committed one, and the caller calls crlsChanged
// once tx has committed.
func (s *Service) revokeAll(ctx context.Context, tx certportal.Tx, a Actor, id string, reason certportal.RevocationReason) error {
	certs, err := tx.ListCertificates(ctx, certportal.CertFilter{AccountID: id, Unrevoked: true})
	if err != nil {
		return err
	}
	for _, c := range certs {
		if err := s.revokeOne(ctx, tx, a, &c, reason); err != nil {
			return err
		}
	}
	return nil
}

func (s *Service) revokeOne(ctx context.Context, tx certportal.Tx, a Actor, c *certportal.Certificate, reason certportal.RevocationReason) error {
	if err := tx.RevokeCertificate(ctx, c.Serial, s.now(), reason); err != nil {
		return err
	}
	return s.audit(ctx, tx, a, c.AccountID, certportal.ActionCertRevoked, "serial "+c.Serial+" reason "+reason.String())
}

// Revoke revokes one certificate by serial (as typed by an administrator).
func (s *Service) Revoke(ctx context.Context, a Actor, serial string, reason certportal.RevocationReason) (*certportal.Certificate, error) {
	sn, err := certportal.NormalizeSerial(serial)
	if err != nil {
		return nil, err
	}
	var c *certportal.Certificate
	err = s.Store.Update(ctx, func(tx certportal.Tx) error {
		c, err = tx.Certificate(ctx, sn)
		if err != nil {
			return err
		}
		if c.IsRevoked() {
			return certportal.Errorf(certportal.Conflict, "the certificate %s is revoked already", sn)
		}
		if _, err := tx.LockAccount(ctx, c.AccountID); err != nil {
			return err
		}
		if err := s.revokeOne(ctx, tx, a, c, reason); err != nil {
			return err
		}
		// An administrator revokes because something is wrong (a lost
		// laptop, a stolen key): every session of the account ends, a
		// password session too.
		return tx.DeleteSessions(ctx, c.AccountID, "")
	})
	if err != nil {
		return c, err
	}
	s.crlsChanged()
	return c, nil
}

// Certificates lists certificates, for one account ("" = all).
func (s *Service) Certificates(ctx context.Context, id string) ([]certportal.Certificate, error) {
	var list []certportal.Certificate
	err := s.Store.View(ctx, func(tx certportal.Tx) error {
		if id != "" {
			if _, err := tx.Account(ctx, id); err != nil {
				return err
			}
		}
		var err error
		list, err = tx.ListCertificates(ctx, certportal.CertFilter{AccountID: id})
		return err
	})
	return list, err
}

// CurrentCertificate returns the account's unrevoked certificate, or nil.
func (s *Service) CurrentCertificate(ctx context.Context, id string) (*certportal.Certificate, error) {
	var cur *certportal.Certificate
	err := s.Store.View(ctx, func(tx certportal.Tx) error {
		var err error
		cur, err = currentCertificate(ctx, tx, id)
		return err
	})
	return cur, err
}

func currentCertificate(ctx context.Context, tx certportal.Tx, id string) (*certportal.Certificate, error) {
	list, err := tx.ListCertificates(ctx, certportal.CertFilter{AccountID: id, Unrevoked: true})
	if err != nil || len(list) == 0 {
		return nil, err
	}
	return &list[len(list)-1], nil
}

// OCSP answers an OCSP request (DER) for one of the issuing CAs (the one
// the request's CertID names), looking the status up in the database on
// every request.
func (s *Service) OCSP(ctx context.Context, der []byte) (ca.OCSPAnswer, error) {
	req, err := s.CA.ParseOCSPRequest(der)
	if err != nil {
		return ca.OCSPAnswer{}, err
	}
	st := ca.OCSPStatus{}
	s.events().OCSPRequest(req.Nonce == nil)
	if req.KnownIssuer {
		// The store's cache, else one statement shared by the requests
		// that arrived before it started (batch.go), as the sign-in's
		// lookup.
		c, ok, err := read(ctx, s.Store, &s.statuses, certportal.FormatSerial(req.Serial), certportal.CachedStore.CachedStatus, s.Store.Statuses)
		if err != nil {
			return ca.OCSPAnswer{}, err
		}
		// The CertID names one issuing CA; a serial of another is
		// "unknown" to it.
		issuer := req.Issuer
		if issuer == "" {
			issuer = s.CA.Issuing.Subject.CommonName
		}
		if ok && c.Issuer == issuer {
			st = ca.OCSPStatus{Known: true, Revoked: c.Revoked, Reason: c.Reason}
		}
	}
	return s.CA.OCSPAnswer(req, st)
}
