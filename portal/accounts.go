package portal

import (
	"context"

	"github.com/certportal/certportal"
)

// AddUser creates an account that signs in by password. With an empty
// password it generates one and returns it (the only time it is shown).
func (s *Service) AddUser(ctx context.Context, a Actor, id, email, password string) (*certportal.Account, string, error) {
	if err := certportal.ValidateID(id); err != nil {
		return nil, "", err
	}
	if err := certportal.ValidateEmail(email); err != nil {
		return nil, "", err
	}
	generated := ""
	if password == "" {
		p, err := GeneratePassword(s.Rand, 16)
		if err != nil {
			return nil, "", err
		}
		password, generated = p, p
	} else if err := certportal.ValidatePassword(password); err != nil {
		return nil, "", err
	}
	hash, err := s.Hasher.Hash(ctx, password)
	if err != nil {
		return nil, "", err
	}
	now := s.now()
	acc := &certportal.Account{
		ID: id, Email: email, PasswordHash: hash,
		Method: certportal.MethodPassword, Status: certportal.StatusActive,
		Created: now, Updated: now,
	}
	err = s.Store.Update(ctx, func(tx certportal.Tx) error {
		if err := tx.CreateAccount(ctx, acc); err != nil {
			return err
		}
		return s.audit(ctx, tx, a, id, certportal.ActionAccountCreated, "email "+email)
	})
	if err != nil {
		return nil, "", err
	}
	return acc, generated, nil
}

// Account returns one account.
func (s *Service) Account(ctx context.Context, id string) (*certportal.Account, error) {
	var acc *certportal.Account
	err := s.Store.View(ctx, func(tx certportal.Tx) error {
		var err error
		acc, err = tx.Account(ctx, id)
		return err
	})
	return acc, err
}

// Accounts lists every account.
func (s *Service) Accounts(ctx context.Context) ([]certportal.Account, error) {
	var list []certportal.Account
	err := s.Store.View(ctx, func(tx certportal.Tx) error {
		var err error
		list, err = tx.ListAccounts(ctx)
		return err
	})
	return list, err
}

// CancelUser cancels an account: its certificates are revoked
// (cessationOfOperation), its sessions end, every sign-in is refused from
// now on, and its records are kept.
func (s *Service) CancelUser(ctx context.Context, a Actor, id string) error {
	var acc *certportal.Account
	err := s.Store.Update(ctx, func(tx certportal.Tx) error {
		var err error
		acc, err = tx.LockAccount(ctx, id)
		if err != nil {
			return err
		}
		if acc.Status == certportal.StatusCancelled {
			return certportal.Errorf(certportal.Conflict, "the account %q is cancelled already", acc.ID)
		}
		if err := s.revokeAll(ctx, tx, a, acc.ID, certportal.ReasonCessationOfOperation); err != nil {
			return err
		}
		acc.Status = certportal.StatusCancelled
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
		if err := s.audit(ctx, tx, a, acc.ID, certportal.ActionAccountCanceled, ""); err != nil {
			return err
		}
		return s.queueNotice(ctx, tx, acc.ID, NoticeCancelled(acc.Email, acc.ID))
	})
	if err != nil {
		return err
	}
	s.crlsChanged()
	s.wakeMailSender()
	return nil
}

// Unlock lifts every lockout of an account and returns the account.
func (s *Service) Unlock(ctx context.Context, a Actor, id string) (*certportal.Account, error) {
	var acc *certportal.Account
	err := s.Store.Update(ctx, func(tx certportal.Tx) error {
		var err error
		if acc, err = tx.Account(ctx, id); err != nil {
			return err
		}
		if err := tx.Unlock(ctx, certportal.IDKey(acc.ID)); err != nil {
			return err
		}
		return s.audit(ctx, tx, a, acc.ID, certportal.ActionUnlock, "")
	})
	return acc, err
}

// Audit returns the audit log, for one account or all.
func (s *Service) Audit(ctx context.Context, f certportal.AuditFilter) ([]certportal.AuditEvent, error) {
	var list []certportal.AuditEvent
	err := s.Store.View(ctx, func(tx certportal.Tx) error {
		var err error
		list, err = tx.ListAudit(ctx, f)
		return err
	})
	return list, err
}

// SetEmail changes the registered address; a notice goes to the old and
// the new address. Certificates issued before keep the old address in
// their SAN until they are replaced.
func (s *Service) SetEmail(ctx context.Context, a Actor, id, email string) (*certportal.Account, error) {
	if err := certportal.ValidateEmail(email); err != nil {
		return nil, err
	}
	var acc *certportal.Account
	var old string
	err := s.Store.Update(ctx, func(tx certportal.Tx) error {
		var err error
		if acc, err = tx.LockAccount(ctx, id); err != nil {
			return err
		}
		if acc.Email == email {
			return certportal.Errorf(certportal.Conflict, "%s is the registered address already", email)
		}
		old = acc.Email
		acc.Email = email
		acc.Updated = s.now()
		if err := tx.UpdateAccount(ctx, acc); err != nil {
			return err
		}
		if err := s.audit(ctx, tx, a, acc.ID, certportal.ActionEmailChanged, "from "+old+" to "+email); err != nil {
			return err
		}
		if err := s.queueNotice(ctx, tx, acc.ID, NoticeEmailChanged(old, acc.ID, old, email)); err != nil {
			return err
		}
		return s.queueNotice(ctx, tx, acc.ID, NoticeEmailChanged(email, acc.ID, old, email))
	})
	if err != nil {
		return nil, err
	}
	s.wakeMailSender()
	return acc, nil
}

// Record appends one audit record in its own transaction, for what an
// administrator does outside the service's operations (a backup, a root
// key export), with the service's clock.
func (s *Service) Record(ctx context.Context, a Actor, account, action, detail string) error {
	return s.Store.Update(ctx, func(tx certportal.Tx) error {
		return s.audit(ctx, tx, a, account, action, detail)
	})
}

// Sweep deletes what has expired for good: sessions past their absolute
// expiry (an idle one is refused at its next use and swept later).
func (s *Service) Sweep(ctx context.Context) error {
	now := s.now()
	return s.Store.Update(ctx, func(tx certportal.Tx) error { return tx.DeleteExpiredSessions(ctx, now) })
}
