package portal

import (
	"context"
	"fmt"
	"time"

	"github.com/certportal/certportal"
)

// RecoverBegin is the first step of "If your certificate has been revoked":
// it checks ID and password exactly as sign-in does (same answer, same
// lockout counter) but accepts an account that signs in by certificate and
// an expired temporary password. It returns a single-use ticket for the
// confirmation page's "OK".
func (s *Service) RecoverBegin(ctx context.Context, id, password, remote string) (*certportal.Account, string, error) {
	acc, err := s.checkPassword(ctx, id, password, remote)
	if err != nil {
		return nil, "", err
	}
	if acc.Status == certportal.StatusCancelled {
		return nil, "", forbidden(ErrCancelled, "this account has been cancelled")
	}
	if err := s.recoveryAllowed(ctx, acc.ID); err != nil {
		return nil, "", err
	}
	token, tid, err := newToken(s.Rand)
	if err != nil {
		return nil, "", err
	}
	err = s.Store.Update(ctx, func(tx certportal.Tx) error {
		if err := tx.CreateTicket(ctx, &certportal.Ticket{ID: tid, AccountID: acc.ID, Expires: s.now().Add(s.Config.TicketTTL)}); err != nil {
			return err
		}
		return s.audit(ctx, tx, User(acc.ID, remote), acc.ID, certportal.ActionRecoveryStarted, "confirmation page shown")
	})
	if err != nil {
		return nil, "", err
	}
	return acc, token, nil
}

func (s *Service) recoveryAllowed(ctx context.Context, id string) error {
	return s.Store.View(ctx, func(tx certportal.Tx) error { return s.recoveryLimit(ctx, tx, id) })
}

// recoveryLimit refuses (RateLimited) when the account has had
// RecoveriesPerDay recoveries in the last 24 hours.
func (s *Service) recoveryLimit(ctx context.Context, tx certportal.Tx, id string) error {
	n, err := tx.CountAudit(ctx, id, certportal.ActionRecovery, s.now().Add(-24*time.Hour))
	if err != nil {
		return err
	}
	if n >= s.Config.RecoveriesPerDay {
		return certportal.Errorf(certportal.RateLimited,
			"the sign-in method of this account has been changed %d times today; try again tomorrow or ask your administrator", n)
	}
	return nil
}

// RecoverConfirm is the "OK": it consumes the ticket, revokes the account's
// certificates, sets the sign-in method back to password and replaces the
// password with a temporary one that is mailed to the registered address.
// The mail goes out before the change commits: if it cannot be sent,
// nothing changes (the ticket stays usable) and the error says to try later.
func (s *Service) RecoverConfirm(ctx context.Context, ticket, remote string) (*certportal.Account, error) {
	if ticket == "" || len(ticket) > 100 {
		return nil, certportal.Errorf(certportal.Invalid, "the confirmation is missing or malformed; start again")
	}
	return s.resetPassword(ctx, User("", remote), "", tokenID(ticket), "recovery by the user")
}

// ResetPassword does for an administrator what recovery does for a user,
// without the user's password.
func (s *Service) ResetPassword(ctx context.Context, a Actor, id string) (*certportal.Account, error) {
	return s.resetPassword(ctx, a, id, "", "reset by an administrator")
}

func (s *Service) resetPassword(ctx context.Context, a Actor, id, ticketID, why string) (*certportal.Account, error) {
	temp, err := GeneratePassword(s.Rand, 16)
	if err != nil {
		return nil, err
	}
	hash, err := s.Hasher.Hash(ctx, temp)
	if err != nil {
		return nil, err
	}
	var acc *certportal.Account
	expires := s.now().Add(s.Config.TempPasswordTTL)
	err = s.Store.Update(ctx, func(tx certportal.Tx) error {
		used := certportal.Errorf(certportal.Invalid, "this confirmation has been used or has expired; start again")
		if ticketID != "" {
			// The account is locked before its ticket is taken, like every
			// change of an account: confirmations racing on replicas queue
			// on the account instead of deadlocking on each other's tickets.
			t, err := tx.Ticket(ctx, ticketID)
			if certportal.ErrorCodeOf(err) == certportal.NotFound {
				return used
			}
			if err != nil {
				return err
			}
			id = t.AccountID
		}
		acc, err = tx.LockAccount(ctx, id)
		if err != nil {
			return err
		}
		if ticketID != "" {
			t, err := tx.ConsumeTicket(ctx, ticketID)
			if certportal.ErrorCodeOf(err) == certportal.NotFound {
				return used // taken meanwhile, or ended by a password change
			}
			if err != nil {
				return err
			}
			if !s.now().Before(t.Expires) {
				return certportal.Errorf(certportal.Invalid, "this confirmation has expired; start again")
			}
		}
		if a.Name == "user:" {
			a = User(acc.ID, a.Remote)
		}
		if acc.Status != certportal.StatusActive {
			return forbidden(ErrCancelled, "this account has been cancelled")
		}
		if ticketID != "" {
			// Checked again here, under the account's lock: tickets
			// made before the limit was reached must not pass it.
			if err := s.recoveryLimit(ctx, tx, acc.ID); err != nil {
				return err
			}
		}
		if err := s.revokeAll(ctx, tx, a, acc.ID, certportal.ReasonNone); err != nil {
			return err
		}
		if acc.Method != certportal.MethodPassword {
			acc.Method = certportal.MethodPassword
			if err := s.audit(ctx, tx, a, acc.ID, certportal.ActionMethodChanged, "to password ("+why+")"); err != nil {
				return err
			}
		}
		acc.PasswordHash = hash
		acc.PasswordExpires = expires
		acc.Updated = s.now()
		if err := tx.UpdateAccount(ctx, acc); err != nil {
			return err
		}
		if err := tx.DeleteSessions(ctx, acc.ID, ""); err != nil {
			return err
		}
		if err := tx.DeleteTickets(ctx, acc.ID); err != nil {
			return err
		}
		if err := tx.Unlock(ctx, certportal.IDKey(acc.ID)); err != nil {
			return err
		}
		if err := s.audit(ctx, tx, a, acc.ID, certportal.ActionRecovery, why+"; temporary password mailed"); err != nil {
			return err
		}
		// Last step before the commit: the mail. If it fails, the
		// transaction rolls back and the user keeps the old state. Every
		// lock this transaction needs is held by now (account, audit
		// head), so a retry of fn after the mail went out cannot come from
		// a deadlock; only the commit remains.
		m := TemporaryPasswordMail(acc.Email, acc.ID, temp, s.Config.PortalURL, expires)
		if err := s.Mailer.Send(ctx, m); err != nil {
			s.Log.Warn("temporary password mail failed", "account", acc.ID, "err", err)
			return certportal.WrapError(certportal.Unavailable, fmt.Errorf("%w: %w", ErrMailNotSent, err),
				"the e-mail with your temporary password could not be sent, so nothing was changed; please try again later")
		}
		return s.audit(ctx, tx, Actor{Name: "system", Remote: "-"}, acc.ID, certportal.ActionMailSent, "temporary password")
	})
	if certportal.ErrorCodeOf(err) == certportal.Unavailable && acc != nil {
		s.auditAlone(ctx, a, acc.ID, certportal.ActionMailFailed, "temporary password; nothing changed")
	}
	if err != nil {
		return nil, err
	}
	s.crlsChanged()
	return acc, nil
}

// ChangePassword changes the password of a signed-in account. The other
// sessions of the account end; keepSession is the one that asked.
func (s *Service) ChangePassword(ctx context.Context, id, current, next, remote, keepSession string) error {
	if err := certportal.ValidatePassword(next); err != nil {
		return err
	}
	if current == next {
		return certportal.Errorf(certportal.Invalid, "the new password must differ from the current one")
	}
	// The same lockout as /login: a stolen session must not let anyone
	// guess the current password without limit.
	acc, err := s.checkPassword(ctx, id, current, remote)
	if err != nil {
		return err
	}
	hash, err := s.Hasher.Hash(ctx, next)
	if err != nil {
		return err
	}
	err = s.Store.Update(ctx, func(tx certportal.Tx) error {
		acc, err = tx.LockAccount(ctx, id)
		if err != nil {
			return err
		}
		acc.PasswordHash = hash
		acc.PasswordExpires = time.Time{}
		acc.Updated = s.now()
		if err := tx.UpdateAccount(ctx, acc); err != nil {
			return err
		}
		if err := tx.DeleteSessions(ctx, acc.ID, keepSession); err != nil {
			return err
		}
		if err := tx.DeleteTickets(ctx, acc.ID); err != nil {
			return err
		}
		if err := s.audit(ctx, tx, User(acc.ID, remote), acc.ID, certportal.ActionPasswordChanged, ""); err != nil {
			return err
		}
		return s.queueNotice(ctx, tx, acc.ID, NoticePasswordChanged(acc.Email, acc.ID))
	})
	if err != nil {
		return err
	}
	s.wakeMailSender()
	return nil
}

// SessionID returns the database ID of a cookie token, for KeepSession.
func SessionID(token string) string { return tokenID(token) }
