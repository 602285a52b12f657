package storetest

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/certportal/certportal"
)

// testRoles: an account's role round-trips through CreateAccount,
// UpdateAccount and Lookup; an account made without one is a user; the
// staff list holds exactly the others.
func testRoles(t *testing.T, s certportal.Store) {
	ctx := context.Background()
	plain := newAccount("Paula")
	helper := newAccount("Hal")
	helper.Role = certportal.RoleHelpdesk
	update(t, s, func(tx certportal.Tx) error {
		for _, a := range []*certportal.Account{plain, helper, newAccount("zed")} {
			if err := tx.CreateAccount(ctx, a); err != nil {
				return err
			}
		}
		return tx.InsertCertificate(ctx, NewCert("Hal", "SOP-ICA1", base))
	})
	role := func(id string) certportal.Role {
		var r certportal.Role
		view(t, s, func(tx certportal.Tx) error {
			a, err := tx.Account(ctx, id)
			if err == nil {
				r = a.Role
			}
			return err
		})
		return r
	}
	if r := role("paula"); r != certportal.RoleUser {
		t.Errorf("an account made without a role reads back as %q, want user", r)
	}
	if r := role("HAL"); r != certportal.RoleHelpdesk {
		t.Errorf("role = %q, want helpdesk", r)
	}
	update(t, s, func(tx certportal.Tx) error {
		a, err := tx.LockAccount(ctx, "paula")
		if err != nil {
			return err
		}
		a.Role = certportal.RoleAdmin
		return tx.UpdateAccount(ctx, a)
	})
	if r := role("Paula"); r != certportal.RoleAdmin {
		t.Errorf("after UpdateAccount: role %q, want admin", r)
	}
	// The database refuses a role that is none of the three.
	err := s.Update(ctx, func(tx certportal.Tx) error {
		a, err := tx.LockAccount(ctx, "zed")
		if err != nil {
			return err
		}
		a.Role = "root"
		return tx.UpdateAccount(ctx, a)
	})
	if err == nil || role("zed") != certportal.RoleUser {
		t.Errorf("UpdateAccount with role \"root\": err %v, role now %q; want an error and user", err, role("zed"))
	}
	var staff []certportal.Account
	view(t, s, func(tx certportal.Tx) error {
		var err error
		staff, err = tx.StaffAccounts(ctx)
		return err
	})
	if len(staff) != 2 || staff[0].ID != "Hal" || staff[1].ID != "Paula" {
		t.Errorf("StaffAccounts = %v, want Hal and Paula", accountIDs(staff))
	}
	var c *certportal.Certificate
	view(t, s, func(tx certportal.Tx) error {
		list, err := tx.ListCertificates(ctx, certportal.CertFilter{AccountID: "hal"})
		if err == nil {
			c = &list[0]
		}
		return err
	})
	_, acc, err := lookupOne(ctx, s, c.SHA256)
	if err != nil || acc.Role != certportal.RoleHelpdesk {
		t.Errorf("Lookup: account %+v, %v; want role helpdesk", acc, err)
	}
}

func accountIDs(list []certportal.Account) []string {
	var out []string
	for _, a := range list {
		out = append(out, a.ID)
	}
	return out
}

// testSearchAccounts: by ID prefix first (ID order), then by e-mail
// prefix (e-mail order), each account once, any case, paged.
func testSearchAccounts(t *testing.T, s certportal.Store) {
	ctx := context.Background()
	accounts := []struct{ id, email string }{
		{"ann", "zz-ann@example.com"},
		{"Anna.B", "anna@example.com"},
		{"bob", "ANNE.bob@example.org"}, // matches "an" by e-mail only
		{"carl", "carl@example.com"},
		{"dora", "an@example.net"}, // matches "an" by e-mail only
		{"an", "x@example.com"},
		{"ao", "ao@example.com"}, // just after the "an" range
		{"am", "am@example.com"}, // just before it
	}
	update(t, s, func(tx certportal.Tx) error {
		for _, a := range accounts {
			acc := newAccount(a.id)
			acc.Email = a.email
			if err := tx.CreateAccount(ctx, acc); err != nil {
				return err
			}
		}
		return nil
	})
	search := func(q string, offset, limit int) []string {
		var got []certportal.Account
		view(t, s, func(tx certportal.Tx) error {
			var err error
			got, err = tx.SearchAccounts(ctx, q, offset, limit)
			return err
		})
		return accountIDs(got)
	}
	for _, tc := range []struct {
		q             string
		offset, limit int
		want          string
	}{
		{"an", 0, 10, "an ann Anna.B dora bob"}, // IDs, then e-mails an@ < anne.bob@
		{"AN", 0, 10, "an ann Anna.B dora bob"},
		{"an", 0, 2, "an ann"},
		{"an", 2, 2, "Anna.B dora"},
		{"an", 4, 2, "bob"},
		{"an", 5, 2, ""},
		{"anna", 0, 10, "Anna.B"}, // anna@ is Anna.B's own e-mail: listed once
		{"anne.", 0, 10, "bob"},
		{"carl@example.com", 0, 10, "carl"},
		{"", 0, 3, "am an ann"},
		{"", 0, 100, "am an ann Anna.B ao bob carl dora"},
		{"nobody", 0, 10, ""},
		{"é", 0, 10, ""},
		{"a\x00", 0, 10, ""},
		{"%", 0, 10, ""}, // no LIKE: a wildcard is a character
		{"_", 0, 10, ""},
	} {
		if got := strings.Join(search(tc.q, tc.offset, tc.limit), " "); got != tc.want {
			t.Errorf("SearchAccounts(%q, %d, %d) = %q, want %q", tc.q, tc.offset, tc.limit, got, tc.want)
		}
	}
	var n int
	view(t, s, func(tx certportal.Tx) error {
		var err error
		n, err = tx.CountAccounts(ctx)
		return err
	})
	if n != len(accounts) {
		t.Errorf("CountAccounts = %d, want %d", n, len(accounts))
	}
}

// testConsoleReads: lockouts in force, the audit log newest first with
// filters, certificate counts by issuer and state, the inventory's pages.
func testConsoleReads(t *testing.T, s certportal.Store) {
	ctx := context.Background()
	update(t, s, func(tx certportal.Tx) error {
		for _, id := range []string{"Lena", "mo"} {
			if err := tx.CreateAccount(ctx, newAccount(id)); err != nil {
				return err
			}
		}
		if err := tx.SetLockout(ctx, "lena", "192.0.2.1", base.Add(10*time.Minute)); err != nil {
			return err
		}
		if err := tx.SetLockout(ctx, "LENA", "2001:db8::/64", base.Add(20*time.Minute)); err != nil {
			return err
		}
		if err := tx.SetLockout(ctx, "lena", "198.51.100.1", base.Add(-time.Minute)); err != nil { // over
			return err
		}
		return tx.SetLockout(ctx, "mo", "192.0.2.1", base.Add(time.Hour))
	})
	view(t, s, func(tx certportal.Tx) error {
		list, err := tx.Lockouts(ctx, "Lena", base)
		if err != nil {
			return err
		}
		if len(list) != 2 || list[0].Remote != "2001:db8::/64" || list[1].Remote != "192.0.2.1" {
			t.Errorf("Lockouts = %+v, want the /64 then 192.0.2.1", list)
		} else {
			sameTime(t, "Lockout.Until", list[0].Until, base.Add(20*time.Minute))
		}
		return nil
	})

	// Audit: 6 records over 6 minutes, two accounts, two actions.
	update(t, s, func(tx certportal.Tx) error {
		for i := range 6 {
			acc, action := "Lena", certportal.ActionSignInFailed
			if i%2 == 1 {
				acc = "mo"
			}
			if i >= 4 {
				action = certportal.ActionUnlock
			}
			e := &certportal.AuditEvent{Time: base.Add(time.Duration(i) * time.Minute), Actor: "admin:x", AccountID: acc,
				Action: action, Detail: fmt.Sprint(i), Remote: "cli"}
			if err := tx.AppendAudit(ctx, e); err != nil {
				return err
			}
		}
		return nil
	})
	audit := func(q certportal.AuditQuery) string {
		var list []certportal.AuditEvent
		view(t, s, func(tx certportal.Tx) error {
			var err error
			list, err = tx.SearchAudit(ctx, q)
			return err
		})
		var d []string
		for _, e := range list {
			d = append(d, e.Detail)
		}
		return strings.Join(d, ",")
	}
	for _, tc := range []struct {
		name string
		q    certportal.AuditQuery
		want string
	}{
		{"all", certportal.AuditQuery{}, "5,4,3,2,1,0"},
		{"limit", certportal.AuditQuery{Limit: 2}, "5,4"},
		{"page back", certportal.AuditQuery{BeforeSeq: 5, Limit: 2}, "3,2"},
		{"account", certportal.AuditQuery{AccountID: "LENA"}, "4,2,0"},
		{"action", certportal.AuditQuery{Action: certportal.ActionUnlock}, "5,4"},
		{"account and action", certportal.AuditQuery{AccountID: "mo", Action: certportal.ActionSignInFailed}, "3,1"},
		{"account, action and limit (the home page's last sign-ins)", certportal.AuditQuery{AccountID: "mo", Action: certportal.ActionSignInFailed, Limit: 1}, "3"},
		{"from", certportal.AuditQuery{From: base.Add(3 * time.Minute)}, "5,4,3"},
		{"to", certportal.AuditQuery{To: base.Add(2 * time.Minute)}, "1,0"},
		{"range", certportal.AuditQuery{From: base.Add(time.Minute), To: base.Add(3 * time.Minute)}, "2,1"},
		{"nothing", certportal.AuditQuery{AccountID: "nobody"}, ""},
	} {
		if got := audit(tc.q); got != tc.want {
			t.Errorf("SearchAudit %s: %q, want %q", tc.name, got, tc.want)
		}
	}

	// Certificates: Lena has a revoked and a valid one of ICA1; mo an
	// expired one of ICA2.
	revoked := NewCert("Lena", "SOP-ICA1", base.Add(-time.Hour))
	valid := NewCert("lena", "SOP-ICA1", base)
	expired := NewCert("mo", "SOP-ICA2", base.AddDate(-2, 0, 0))
	update(t, s, func(tx certportal.Tx) error {
		for _, c := range []*certportal.Certificate{revoked, valid, expired} {
			if c == valid {
				if err := tx.RevokeCertificate(ctx, revoked.Serial, base, certportal.ReasonSuperseded); err != nil {
					return err
				}
			}
			if err := tx.InsertCertificate(ctx, c); err != nil {
				return err
			}
		}
		return nil
	})
	view(t, s, func(tx certportal.Tx) error {
		counts, err := tx.CertificateCounts(ctx, base)
		if err != nil {
			return err
		}
		want := []certportal.CertificateCount{{Issuer: "SOP-ICA1", Valid: 1, Revoked: 1}, {Issuer: "SOP-ICA2", Expired: 1}}
		if fmt.Sprint(counts) != fmt.Sprint(want) {
			t.Errorf("CertificateCounts = %+v, want %+v", counts, want)
		}
		return nil
	})
	var inv []certportal.Certificate
	after := ""
	for {
		var page []certportal.Certificate
		view(t, s, func(tx certportal.Tx) error {
			var err error
			page, err = tx.Inventory(ctx, after, 2)
			return err
		})
		if len(page) > 2 {
			t.Fatalf("Inventory returned %d certificates, limit 2", len(page))
		}
		if len(page) == 0 {
			break
		}
		inv = append(inv, page...)
		after = page[len(page)-1].Serial
	}
	if len(inv) != 3 {
		t.Fatalf("Inventory: %d certificates, want 3", len(inv))
	}
	for i := range inv {
		if i > 0 && inv[i-1].Serial >= inv[i].Serial {
			t.Errorf("Inventory is not in serial order: %s before %s", inv[i-1].Serial, inv[i].Serial)
		}
		if inv[i].DER != nil {
			t.Errorf("Inventory returned the DER of %s", inv[i].Serial)
		}
		var want *certportal.Certificate
		for _, c := range []*certportal.Certificate{revoked, valid, expired} {
			if c.Serial == inv[i].Serial {
				want = c
			}
		}
		if want == nil || inv[i].Thumbprint != want.Thumbprint || !strings.EqualFold(inv[i].AccountID, want.AccountID) ||
			inv[i].Issuer != want.Issuer || !inv[i].NotAfter.Equal(want.NotAfter) {
			t.Errorf("Inventory row %+v does not match the certificate inserted", inv[i])
		}
		if inv[i].Serial == revoked.Serial && (inv[i].Reason != certportal.ReasonSuperseded || !inv[i].IsRevoked()) {
			t.Errorf("Inventory: the revoked certificate reads %v / %v", inv[i].Revoked, inv[i].Reason)
		}
	}
}

// testOutbox: mails queue in the transaction of their change (and vanish
// with its rollback); a claim leases them; a lapsed lease makes them due
// again; a failure sets the next try; a sent mail loses its body.
func testOutbox(t *testing.T, s certportal.Store) {
	ctx := context.Background()
	update(t, s, func(tx certportal.Tx) error { return tx.CreateAccount(ctx, newAccount("Nora")) })
	queue := func(tx certportal.Tx, kind string) (*certportal.QueuedMail, error) {
		m := &certportal.QueuedMail{AccountID: "Nora", Kind: kind, Created: base, NextTry: base}
		return m, tx.QueueMail(ctx, m)
	}
	var first, second *certportal.QueuedMail
	update(t, s, func(tx certportal.Tx) error {
		var err error
		if first, err = queue(tx, certportal.MailTemporaryPassword); err != nil {
			return err
		}
		second, err = queue(tx, "notice")
		return err
	})
	if first.ID == 0 || second.ID <= first.ID {
		t.Fatalf("QueueMail IDs %d, %d: want increasing, non-zero", first.ID, second.ID)
	}
	// Rolled back with its transaction.
	err := s.Update(ctx, func(tx certportal.Tx) error {
		if _, err := queue(tx, "notice"); err != nil {
			return err
		}
		return certportal.Errorf(certportal.Invalid, "no")
	})
	wantCode(t, "the rolled-back Update", err, certportal.Invalid)
	err = s.Update(ctx, func(tx certportal.Tx) error {
		m := &certportal.QueuedMail{AccountID: "nobody", Kind: "notice", Created: base, NextTry: base}
		return tx.QueueMail(ctx, m)
	})
	wantCode(t, "QueueMail for an unknown account", err, certportal.NotFound)
	pending := func() int {
		var n int
		view(t, s, func(tx certportal.Tx) error {
			var err error
			n, err = tx.PendingMail(ctx)
			return err
		})
		return n
	}
	if n := pending(); n != 2 {
		t.Fatalf("PendingMail = %d, want 2", n)
	}
	claim := func(now time.Time) []certportal.QueuedMail {
		var got []certportal.QueuedMail
		update(t, s, func(tx certportal.Tx) error {
			var err error
			got, err = tx.ClaimMail(ctx, now, now.Add(time.Minute), 10)
			return err
		})
		return got
	}
	got := claim(base)
	if len(got) != 2 || got[0].ID != first.ID || got[0].Kind != certportal.MailTemporaryPassword || got[0].AccountID != "Nora" {
		t.Fatalf("ClaimMail = %+v, want both mails, oldest first", got)
	}
	if again := claim(base.Add(30 * time.Second)); len(again) != 0 {
		t.Errorf("a claimed mail was claimed again within its lease: %+v", again)
	}
	update(t, s, func(tx certportal.Tx) error {
		if err := tx.PrepareMail(ctx, first.ID, "nora@example.com", "Subject", "Temporary password: x"); err != nil {
			return err
		}
		return tx.MailSent(ctx, first.ID, base.Add(10*time.Second))
	})
	update(t, s, func(tx certportal.Tx) error {
		return tx.MailFailed(ctx, second.ID, base.Add(5*time.Minute), "connection refused")
	})
	// The lease of the second lapsed, but the failure moved it later.
	if again := claim(base.Add(2 * time.Minute)); len(again) != 0 {
		t.Errorf("claimed before its next try: %+v", again)
	}
	got = claim(base.Add(5 * time.Minute))
	if len(got) != 1 || got[0].ID != second.ID || got[0].Attempts != 1 || got[0].LastError != "connection refused" {
		t.Errorf("after the failure: ClaimMail = %+v, want the second mail, 1 attempt", got)
	}
	// A claim that was never finished (a crash) lapses: due again.
	got = claim(base.Add(7 * time.Minute))
	if len(got) != 1 || got[0].ID != second.ID {
		t.Errorf("after the lease lapsed: ClaimMail = %+v, want the second mail again", got)
	}
	err = s.Update(ctx, func(tx certportal.Tx) error { return tx.MailSent(ctx, first.ID, base) })
	wantCode(t, "MailSent twice", err, certportal.NotFound)
	if n := pending(); n != 1 {
		t.Errorf("PendingMail = %d, want 1", n)
	}
	view(t, s, func(tx certportal.Tx) error {
		list, err := tx.QueuedMails(ctx, "NORA")
		if err != nil {
			return err
		}
		if len(list) != 2 || list[0].Sent.IsZero() || list[0].Body != "" || list[0].To != "nora@example.com" {
			t.Errorf("QueuedMails = %+v, want the first sent, its body erased", list)
		} else {
			sameTime(t, "Sent", list[0].Sent, base.Add(10*time.Second))
		}
		return nil
	})
}
