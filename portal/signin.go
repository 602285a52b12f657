package portal

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/certportal/certportal"
	"github.com/certportal/certportal/ca"
)

// Reasons a sign-in is refused after the credentials were checked. They are
// wrapped in *certportal.Error (code Forbidden), so web/ tells them apart
// with errors.Is and shows the page that applies.
var (
	ErrUseCertificate  = errors.New("this account signs in with its certificate")
	ErrCancelled       = errors.New("account cancelled")
	ErrPasswordExpired = errors.New("temporary password expired")
	ErrCertRevoked     = errors.New("revoked")
	ErrCertExpired     = errors.New("expired")
	ErrCertUnknown     = errors.New("unknown")
	ErrCertCancelled   = errors.New("cancelled")
	// ErrCertForeign comes with ErrCertUnknown when the chain does not
	// lead to this portal's CA (another CA's certificate), as opposed to
	// one of ours that the database does not know.
	ErrCertForeign = errors.New("not issued by this portal")
)

// Reasons an operation could not be done now, wrapped in *certportal.Error
// (code Unavailable) whose message is meant for the user.
var (
	// ErrBusy: every password-hashing slot stayed taken until the
	// request's deadline.
	ErrBusy = errors.New("busy")
	// ErrMailNotSent: a mail that a change depends on (the temporary
	// password) could not be sent, so nothing changed.
	ErrMailNotSent = errors.New("mail not sent")
)

// errBadCredentials is the one answer for a wrong ID, a wrong password, a
// locked ID and a cancelled account before its password is checked.
func errBadCredentials() error {
	return certportal.Errorf(certportal.Unauthorized, "the user ID or password is wrong")
}

func forbidden(reason error, msg string) error {
	return &certportal.Error{Code: certportal.Forbidden, Message: msg, Err: reason}
}

// checkPassword is the credential check shared by sign-in, recovery and the
// password change: the same lockout counter, the same answer and about the
// same time for an unknown, locked or wrong ID. It returns the account on
// success.
//
// The attempt is counted before the password is hashed, in the transaction
// that reads the lockout and holds the (ID, address) lock on every replica:
// however many requests arrive at once, at most LockoutThreshold of them
// are admitted to a password check in LockoutWindow, and a request that
// arrives after the last admitted one failed finds the lock. A success
// forgets the count.
func (s *Service) checkPassword(ctx context.Context, id, password, remote string) (*certportal.Account, error) {
	id = strings.TrimSpace(id) // a space typed after the ID is a slip, not another ID
	if len(password) > certportal.MaxPasswordLength || certportal.ValidateID(id) != nil {
		s.Hasher.Burn(ctx, "")
		return nil, errBadCredentials()
	}
	key, addr := certportal.IDKey(id), attemptAddr(remote)
	var acc *certportal.Account
	admitted := false
	err := s.Store.Update(ctx, func(tx certportal.Tx) error {
		acc, admitted = nil, false
		now := s.now()
		if err := tx.LockAttempts(ctx, key, addr); err != nil {
			return err
		}
		locked, err := tx.LockedUntil(ctx, key, addr)
		if err != nil {
			return err
		}
		acc, err = tx.Account(ctx, id)
		if certportal.ErrorCodeOf(err) == certportal.NotFound {
			acc, err = nil, nil
		}
		if err != nil {
			return err
		}
		n, err := tx.CountFailures(ctx, key, addr, now.Add(-s.Config.LockoutWindow))
		if err != nil {
			return err
		}
		if now.Before(locked) || n >= s.Config.LockoutThreshold {
			return s.audit(ctx, tx, Actor{Name: "anonymous", Remote: remote}, idOf(acc, id), certportal.ActionSignInFailed, "locked")
		}
		admitted = true
		return tx.AddFailure(ctx, key, addr, now)
	})
	if err != nil {
		return nil, err
	}
	if !admitted {
		s.Hasher.Burn(ctx, password)
		return nil, errBadCredentials()
	}
	hash := ""
	if acc != nil {
		hash = acc.PasswordHash
	}
	ok, err := s.Hasher.Verify(ctx, hash, password)
	if err != nil {
		return nil, err
	}
	if !ok || acc == nil {
		return nil, s.recordFailure(ctx, acc, id, remote)
	}
	err = s.Store.Update(ctx, func(tx certportal.Tx) error { return tx.ClearFailures(ctx, key, addr) })
	if err != nil {
		return nil, err
	}
	return acc, nil
}

// attemptAddr is the client address that failures and lockouts are kept
// for: an IPv6 address stands for its /64, which one client usually holds
// whole.
func attemptAddr(remote string) string {
	ip, err := netip.ParseAddr(remote)
	if err != nil {
		return remote
	}
	ip = ip.Unmap()
	if ip.Is4() {
		return ip.String()
	}
	p, err := ip.WithZone("").Prefix(64)
	if err != nil {
		return remote
	}
	return p.String()
}

func idOf(acc *certportal.Account, id string) string {
	if acc != nil {
		return acc.ID
	}
	return ""
}

// recordFailure records a wrong password whose attempt checkPassword
// counted already, and locks the ID for this client address when the
// threshold is reached: once per lock period, so one notice mail.
func (s *Service) recordFailure(ctx context.Context, acc *certportal.Account, id, remote string) error {
	key, addr := certportal.IDKey(id), attemptAddr(remote)
	var until time.Time
	lockedNow := false
	err := s.Store.Update(ctx, func(tx certportal.Tx) error {
		lockedNow = false
		now := s.now()
		if err := tx.LockAttempts(ctx, key, addr); err != nil {
			return err
		}
		detail := "wrong password"
		if acc == nil {
			detail = "unknown user ID " + key
		}
		if err := s.audit(ctx, tx, Actor{Name: "anonymous", Remote: remote}, idOf(acc, id), certportal.ActionSignInFailed, detail); err != nil {
			return err
		}
		locked, err := tx.LockedUntil(ctx, key, addr)
		if err != nil || now.Before(locked) {
			return err // locked already: one lock, one notice
		}
		n, err := tx.CountFailures(ctx, key, addr, now.Add(-s.Config.LockoutWindow))
		if err != nil || n < s.Config.LockoutThreshold {
			return err
		}
		until = now.Add(s.Config.LockoutDuration)
		if err := tx.SetLockout(ctx, key, addr, until); err != nil {
			return err
		}
		if err := tx.ClearFailures(ctx, key, addr); err != nil {
			return err
		}
		lockedNow = true
		if err := s.audit(ctx, tx, Actor{Name: "system", Remote: remote}, idOf(acc, id), certportal.ActionLockout,
			"password sign-in locked until "+until.Format(time.RFC3339)+" for "+key+" from "+addr); err != nil {
			return err
		}
		if acc == nil {
			return nil // an unknown ID has no one to tell
		}
		return s.queueNotice(ctx, tx, acc.ID, NoticeLockout(acc.Email, acc.ID, until))
	})
	if err != nil {
		return err
	}
	if lockedNow && acc != nil {
		s.wakeMailSender()
	}
	return errBadCredentials()
}

// PasswordSignIn checks ID and password for /login. A correct password of an
// account that signs in by certificate, of a cancelled account or an expired
// temporary password is refused with a Forbidden error whose cause is
// ErrUseCertificate, ErrCancelled or ErrPasswordExpired.
func (s *Service) PasswordSignIn(ctx context.Context, id, password, remote string) (_ *certportal.Account, err error) {
	defer func() { s.events().SignIn("password", outcomeOf(err)) }()
	acc, err := s.checkPassword(ctx, id, password, remote)
	if err != nil {
		return nil, err
	}
	var refuse error
	switch {
	case acc.Status == certportal.StatusCancelled:
		refuse = forbidden(ErrCancelled, "this account has been cancelled")
	case acc.Method == certportal.MethodCertificate:
		refuse = forbidden(ErrUseCertificate, "this account signs in with its certificate, not with a password")
	case !acc.PasswordExpires.IsZero() && !s.now().Before(acc.PasswordExpires):
		refuse = forbidden(ErrPasswordExpired, "this temporary password has expired")
	}
	err = s.Store.Update(ctx, func(tx certportal.Tx) error {
		if refuse != nil {
			return s.audit(ctx, tx, Actor{Name: "user:" + acc.ID, Remote: remote}, acc.ID, certportal.ActionSignInRefused, certportal.ErrorMessage(refuse))
		}
		return s.audit(ctx, tx, Actor{Name: "user:" + acc.ID, Remote: remote}, acc.ID, certportal.ActionSignInOK, "password")
	})
	if err != nil {
		return nil, err
	}
	if refuse != nil {
		return acc, refuse
	}
	return acc, nil
}

// CertSignIn identifies the account of a presented certificate chain
// (leaf first). The chain is verified against the CA, then the certificate
// is looked up by the SHA-256 of its DER, never by its CN, on every call,
// so a revocation takes effect at once. Refusals are Forbidden errors whose
// cause is ErrCertRevoked, ErrCertExpired, ErrCertUnknown or ErrCertCancelled.
func (s *Service) CertSignIn(ctx context.Context, chain []*x509.Certificate) (acc *certportal.Account, c *certportal.Certificate, err error) {
	defer func() { s.events().SignIn("certificate", outcomeOf(err)) }()
	return s.identify(ctx, chain)
}

// identify is what CertSignIn and CheckCertificate share: verify the chain,
// then look the certificate up.
func (s *Service) identify(ctx context.Context, chain []*x509.Certificate) (*certportal.Account, *certportal.Certificate, error) {
	leaf, err := s.CA.VerifyClient(chain)
	if err != nil {
		if errors.Is(err, ca.ErrExpired) {
			return nil, nil, forbidden(ErrCertExpired, "this certificate has expired")
		}
		return nil, nil, forbidden(fmt.Errorf("%w: %w", ErrCertUnknown, ErrCertForeign), "this certificate was not issued by this portal")
	}
	return s.lookupCert(ctx, certportal.Fingerprint256(leaf.Raw))
}

// lookupCert finds the account and record of a certificate by the SHA-256
// of its DER and checks that it may sign in (not revoked, not expired, the
// account active): the per-request revocation check.
func (s *Service) lookupCert(ctx context.Context, fp string) (_ *certportal.Account, _ *certportal.Certificate, err error) {
	defer func() {
		if err == nil || certportal.ErrorCodeOf(err) == certportal.Forbidden {
			s.events().RevocationCheck("signin", err == nil)
		}
	}()
	// The store's cache when it can vouch that nothing committed since
	// (sqlite), else one statement shared by the requests that arrived
	// before it started (batch.go): this runs on every request that
	// presents a certificate.
	found, ok, err := read(ctx, s.Store, &s.lookups, strings.ToUpper(fp), certportal.CachedStore.CachedLookup, s.Store.Lookup)
	c, acc := found.Cert, found.Account
	switch {
	case err != nil:
		return nil, nil, err
	case !ok:
		return nil, nil, forbidden(ErrCertUnknown, "this certificate is not known to this portal")
	case acc.Status == certportal.StatusCancelled:
		return acc, c, forbidden(ErrCertCancelled, "the account of this certificate has been cancelled")
	case c.IsRevoked():
		return acc, c, forbidden(ErrCertRevoked, "this certificate has been revoked")
	case !s.now().Before(c.NotAfter):
		return acc, c, forbidden(ErrCertExpired, "this certificate has expired")
	}
	return acc, c, nil
}

// NewSession starts a session for an account and returns the cookie token.
// certSerial binds it to the certificate that started it ("" for password).
// The old session (the token the browser had before, if any) ends: a
// sign-in always rotates the session ID.
func (s *Service) NewSession(ctx context.Context, acc *certportal.Account, cert *certportal.Certificate, remote, oldToken string) (string, error) {
	token, id, err := newToken(s.Rand)
	if err != nil {
		return "", err
	}
	now := s.now()
	sess := &certportal.Session{
		ID: id, AccountID: acc.ID, Remote: remote,
		Created: now, LastSeen: now, Expires: now.Add(s.Config.SessionMax),
	}
	if cert != nil {
		sess.CertSerial = cert.Serial
	}
	err = s.Store.Update(ctx, func(tx certportal.Tx) error {
		if oldToken != "" {
			if err := tx.DeleteSession(ctx, tokenID(oldToken)); err != nil && certportal.ErrorCodeOf(err) != certportal.NotFound {
				return err
			}
		}
		// The account's lock serialises its sign-ins on every replica,
		// so the cap holds however many arrive at once.
		if _, err := tx.LockAccount(ctx, acc.ID); err != nil {
			return err
		}
		if err := tx.CreateSession(ctx, sess); err != nil {
			return err
		}
		if err := tx.TrimSessions(ctx, acc.ID, id, s.Config.MaxSessions); err != nil {
			return err
		}
		if cert != nil {
			// Certificate sign-in is audited once per session.
			return s.audit(ctx, tx, User(acc.ID, remote), acc.ID, certportal.ActionSignInOK, "certificate "+cert.Serial)
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	return token, nil
}

// touchEvery limits writes: LastSeen is refreshed at most once a minute.
const touchEvery = time.Minute

// Session returns the session and account of a cookie token. An unknown,
// idle-expired or absolutely expired session, one of a cancelled account,
// or one whose certificate is no longer valid, is ended and refused
// (Unauthorized).
func (s *Service) Session(ctx context.Context, token string) (*certportal.Session, *certportal.Account, error) {
	if token == "" || len(token) > 100 {
		return nil, nil, certportal.Errorf(certportal.Unauthorized, "not signed in")
	}
	id := tokenID(token)
	now := s.now()
	// One statement for the session, its account and the status of its
	// certificate: this runs on every request of a signed-in browser.
	sess, acc, cert, err := s.Store.LookupSession(ctx, id)
	if certportal.ErrorCodeOf(err) == certportal.NotFound {
		return nil, nil, certportal.Errorf(certportal.Unauthorized, "not signed in")
	}
	if err != nil {
		return nil, nil, err
	}
	valid := now.Before(sess.Expires) && now.Before(sess.LastSeen.Add(s.Config.SessionIdle)) && acc.Status == certportal.StatusActive
	if valid && sess.CertSerial != "" {
		valid = cert != nil && !cert.IsRevoked() && now.Before(cert.NotAfter)
		s.events().RevocationCheck("session", valid)
	}
	if !valid {
		// The session is refused whether or not the row goes now; one
		// left behind is refused again and swept by housekeeping.
		if err := s.Store.Update(ctx, func(tx certportal.Tx) error { return tx.DeleteSession(ctx, id) }); err != nil {
			s.Log.Warn("an ended session could not be deleted", "err", err)
		}
		return nil, nil, certportal.Errorf(certportal.Unauthorized, "your session has ended; sign in again")
	}
	if now.Sub(sess.LastSeen) >= touchEvery {
		if err := s.Store.Update(ctx, func(tx certportal.Tx) error { return tx.TouchSession(ctx, id, now) }); err != nil {
			return nil, nil, err
		}
	}
	return sess, acc, nil
}

// SignOut ends one session; with all set, every session of its account.
func (s *Service) SignOut(ctx context.Context, token string, all bool, remote string) error {
	sess, acc, err := s.Session(ctx, token)
	if certportal.ErrorCodeOf(err) == certportal.Unauthorized {
		return nil // signing out of nothing is not an error
	}
	if err != nil {
		return err // the session may still be valid: say so
	}
	return s.Store.Update(ctx, func(tx certportal.Tx) error {
		detail := "this session"
		if all {
			detail = "every session"
			if err := tx.DeleteSessions(ctx, acc.ID, ""); err != nil {
				return err
			}
		} else if err := tx.DeleteSession(ctx, sess.ID); err != nil {
			return err
		}
		return s.audit(ctx, tx, User(acc.ID, remote), acc.ID, certportal.ActionSignOut, detail)
	})
}

// Home reads what the home page shows of an account in one read
// transaction: its current (unrevoked) certificate, or nil, and its last n
// successful sign-ins, newest first, read by the database without the rest
// of its audit log.
func (s *Service) Home(ctx context.Context, id string, n int) (cur *certportal.Certificate, recent []certportal.AuditEvent, err error) {
	err = s.Store.View(ctx, func(tx certportal.Tx) error {
		if cur, err = currentCertificate(ctx, tx, id); err != nil {
			return err
		}
		recent, err = tx.SearchAudit(ctx, certportal.AuditQuery{AccountID: id, Action: certportal.ActionSignInOK, Limit: n})
		return err
	})
	return cur, recent, err
}
