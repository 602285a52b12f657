package portal

import (
	"context"
	"errors"
	"strconv"

	"github.com/certportal/certportal"
)

// The admin console's operations (SPEC.md "Roles and the admin console").
// Who may call which is decided by web/'s route table from the console
// user's role; the operations that change something are the service's own
// (Unlock, ResetPassword, Revoke, CancelUser, Import, SetRole), run with the
// console user as actor, so the audit log names the person at the console.

// Console returns the actor of an account working in the admin console:
// its name is "<role>:<id>" ("admin:alice", "helpdesk:bob"), so the audit
// log tells a console action (and the role it was done with) from the
// command line's "admin" and from a user's own "user:<id>".
func Console(acc *certportal.Account, remote string) Actor {
	return Actor{Name: string(acc.RoleOf()) + ":" + acc.ID, Remote: remote, Account: acc.ID}
}

// ErrOwnRole refuses a change of one's own role: an administrator cannot
// lock themselves out of the console, nor raise a role they hold.
var ErrOwnRole = errors.New("own role")

// SetRole sets the role of an account, audited. A console user cannot
// change their own role (Forbidden); setting the role an account has is a
// Conflict, and a cancelled account keeps its role.
func (s *Service) SetRole(ctx context.Context, a Actor, id string, role certportal.Role) (*certportal.Account, error) {
	if !role.Valid() {
		return nil, certportal.Errorf(certportal.Invalid, "unknown role %q; use user, helpdesk or admin", role)
	}
	if a.Account != "" && certportal.IDKey(a.Account) == certportal.IDKey(id) {
		return nil, certportal.WrapError(certportal.Forbidden, ErrOwnRole,
			"you cannot change your own role; ask another administrator")
	}
	var acc *certportal.Account
	err := s.Store.Update(ctx, func(tx certportal.Tx) error {
		var err error
		if acc, err = tx.LockAccount(ctx, id); err != nil {
			return err
		}
		old := acc.RoleOf()
		if old == role {
			return certportal.Errorf(certportal.Conflict, "%s has the role %s already", acc.ID, role)
		}
		if acc.Status != certportal.StatusActive {
			return certportal.Errorf(certportal.Conflict, "the account %s is cancelled; its role stays %s", acc.ID, old)
		}
		acc.Role = role
		acc.Updated = s.now()
		if err := tx.UpdateAccount(ctx, acc); err != nil {
			return err
		}
		return s.audit(ctx, tx, a, acc.ID, certportal.ActionRoleChanged, "from "+string(old)+" to "+string(role))
	})
	if err != nil {
		return nil, err
	}
	return acc, nil
}

// MaxSearchPage bounds the page number of a search: a page is cut from
// the first page×size index entries, and a search that needs to go that
// deep should be narrowed instead.
const MaxSearchPage = 200

// SearchAccounts returns page (from 1) of the accounts whose ID or e-mail
// address starts with prefix (SearchAccounts of the store), size per page,
// and whether a next page has any.
func (s *Service) SearchAccounts(ctx context.Context, prefix string, page, size int) ([]certportal.Account, bool, error) {
	if page < 1 || page > MaxSearchPage {
		return nil, false, certportal.Errorf(certportal.Invalid, "the page number must be between 1 and %d; narrow the search instead", MaxSearchPage)
	}
	if len(prefix) > certportal.MaxEmailLength {
		return nil, false, certportal.Errorf(certportal.Invalid, "the search is longer than any ID or e-mail address")
	}
	var list []certportal.Account
	err := s.Store.View(ctx, func(tx certportal.Tx) error {
		var err error
		list, err = tx.SearchAccounts(ctx, prefix, (page-1)*size, size+1)
		return err
	})
	if err != nil {
		return nil, false, err
	}
	more := len(list) > size
	if more {
		list = list[:size]
	}
	return list, more, nil
}

// AccountView is what the console's account page shows.
type AccountView struct {
	Account      *certportal.Account
	Certificates []certportal.Certificate // newest first
	Lockouts     []certportal.Lockout
	Audit        []certportal.AuditEvent // the newest records
	Mails        []certportal.QueuedMail
}

// AccountAudit is how many of an account's newest audit records its
// console page shows.
const AccountAudit = 20

// AccountPage reads an account's console page in one read transaction.
func (s *Service) AccountPage(ctx context.Context, id string) (*AccountView, error) {
	v := &AccountView{}
	now := s.now()
	err := s.Store.View(ctx, func(tx certportal.Tx) error {
		var err error
		if v.Account, err = tx.Account(ctx, id); err != nil {
			return err
		}
		if v.Certificates, err = tx.ListCertificates(ctx, certportal.CertFilter{AccountID: v.Account.ID}); err != nil {
			return err
		}
		if v.Lockouts, err = tx.Lockouts(ctx, v.Account.ID, now); err != nil {
			return err
		}
		if v.Audit, err = tx.SearchAudit(ctx, certportal.AuditQuery{AccountID: v.Account.ID, Limit: AccountAudit}); err != nil {
			return err
		}
		v.Mails, err = tx.QueuedMails(ctx, v.Account.ID)
		return err
	})
	if err != nil {
		return nil, err
	}
	for i, j := 0, len(v.Certificates)-1; i < j; i, j = i+1, j-1 {
		v.Certificates[i], v.Certificates[j] = v.Certificates[j], v.Certificates[i]
	}
	return v, nil
}

// Overview is what the console's first page shows.
type Overview struct {
	Accounts    int
	Staff       []certportal.Account
	PendingMail int
}

// ConsoleOverview reads the console's first page.
func (s *Service) ConsoleOverview(ctx context.Context) (*Overview, error) {
	o := &Overview{}
	err := s.Store.View(ctx, func(tx certportal.Tx) error {
		var err error
		if o.Accounts, err = tx.CountAccounts(ctx); err != nil {
			return err
		}
		if o.Staff, err = tx.StaffAccounts(ctx); err != nil {
			return err
		}
		o.PendingMail, err = tx.PendingMail(ctx)
		return err
	})
	return o, err
}

// AuditLog returns the audit records q selects, newest first.
func (s *Service) AuditLog(ctx context.Context, q certportal.AuditQuery) ([]certportal.AuditEvent, error) {
	var list []certportal.AuditEvent
	err := s.Store.View(ctx, func(tx certportal.Tx) error {
		var err error
		list, err = tx.SearchAudit(ctx, q)
		return err
	})
	return list, err
}

// CertificateCounts counts the certificates of each issuer by state.
func (s *Service) CertificateCounts(ctx context.Context) ([]certportal.CertificateCount, error) {
	var list []certportal.CertificateCount
	now := s.now()
	err := s.Store.View(ctx, func(tx certportal.Tx) error {
		var err error
		list, err = tx.CertificateCounts(ctx, now)
		return err
	})
	return list, err
}

// inventoryPage is how many certificates each of the inventory's read
// transactions reads.
const inventoryPage = 1000

// Inventory calls fn with every certificate (without its DER) in serial
// order, reading a page at a time in short read transactions, so a slow
// download holds no transaction open. The export is audited once, with
// the number of certificates, when it is complete.
func (s *Service) Inventory(ctx context.Context, a Actor, fn func(*certportal.Certificate) error) error {
	after, n := "", 0
	for {
		var page []certportal.Certificate
		err := s.Store.View(ctx, func(tx certportal.Tx) error {
			var err error
			page, err = tx.Inventory(ctx, after, inventoryPage)
			return err
		})
		if err != nil {
			return err
		}
		for i := range page {
			if err := fn(&page[i]); err != nil {
				return err
			}
		}
		n += len(page)
		if len(page) < inventoryPage {
			break
		}
		after = page[len(page)-1].Serial
	}
	s.auditAlone(ctx, a, "", certportal.ActionInventoryExported, "certificates.csv, "+strconv.Itoa(n)+" certificates")
	return nil
}

// Certificate returns one certificate by serial, as typed (any case,
// colons, a leading 0x).
func (s *Service) Certificate(ctx context.Context, serial string) (*certportal.Certificate, error) {
	sn, err := certportal.NormalizeSerial(serial)
	if err != nil {
		return nil, err
	}
	var c *certportal.Certificate
	err = s.Store.View(ctx, func(tx certportal.Tx) error {
		var err error
		c, err = tx.Certificate(ctx, sn)
		return err
	})
	return c, err
}
