// Package storetest is the suite every certportal.Store must pass: the
// sqlite store runs it in every test run, the postgres store against a real
// server. It uses only the certportal interfaces, so it knows nothing of
// the database behind them.
//
// Times given to the store are cut to the microsecond (PostgreSQL's
// precision) and compared with time.Equal after the round trip.
package storetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/certportal/certportal"
	"github.com/certportal/certportal/portal"
)

// Run runs the shared suite against stores made by open, which returns a
// fresh, empty store on each call (and closes it with t.Cleanup).
func Run(t *testing.T, open func(t *testing.T) certportal.Store) {
	tests := []struct {
		name string
		fn   func(*testing.T, certportal.Store)
	}{
		{"Accounts", testAccounts},
		{"AccountConflicts", testAccountConflicts},
		{"Certificates", testCertificates},
		{"Lookup", testLookup},
		{"LookupMany", testLookupMany},
		{"LookupSession", testLookupSession},
		{"CertificateErrors", testCertificateErrors},
		{"OneValidCertificate", testOneValidCertificate},
		{"Revocations", testRevocations},
		{"UpdateRollsBackOnError", testRollbackOnError},
		{"UpdateRollsBackOnPanic", testRollbackOnPanic},
		{"ViewIsReadOnly", testViewReadOnly},
		{"Sessions", testSessions},
		{"FailuresAndLockouts", testLockouts},
		{"AttemptsSerialised", testAttemptsSerialised},
		{"Tickets", testTickets},
		{"Audit", testAudit},
		{"CRLNumbers", testCRLNumbers},
		{"CRLs", testCRLs},
		{"RevocationCount", testRevocationCount},
		{"RevocationCountConcurrent", testRevocationCountConcurrent},
		{"ConcurrentIssue", testConcurrentIssue},
		{"ExpiringCertificates", testExpiringCertificates},
		{"ClaimReminder", testClaimReminder},
		{"Roles", testRoles},
		{"SearchAccounts", testSearchAccounts},
		{"ConsoleReads", testConsoleReads},
		{"Outbox", testOutbox},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.fn(t, open(t))
		})
	}
}

// base is the suite's clock: a time with microseconds and a zone that is
// not UTC, so a store that drops either fails the round trips.
var base = time.Date(2026, 3, 14, 15, 9, 26, 535897000, time.FixedZone("X", 5*3600+30*60))

// update runs fn in an Update and fails the test on error.
func update(t *testing.T, s certportal.Store, fn func(certportal.Tx) error) {
	t.Helper()
	if err := s.Update(context.Background(), fn); err != nil {
		t.Fatalf("Update: %v", err)
	}
}

// view runs fn in a View and fails the test on error.
func view(t *testing.T, s certportal.Store, fn func(certportal.Tx) error) {
	t.Helper()
	if err := s.View(context.Background(), fn); err != nil {
		t.Fatalf("View: %v", err)
	}
}

// wantCode fails unless err is a *certportal.Error with code.
func wantCode(t *testing.T, what string, err error, code certportal.ErrorCode) {
	t.Helper()
	var ce *certportal.Error
	if !errors.As(err, &ce) {
		t.Fatalf("%s: got %v (%T), want a *certportal.Error with code %s", what, err, err, code)
	}
	if ce.Code != code {
		t.Fatalf("%s: got code %s (%v), want %s", what, ce.Code, err, code)
	}
	if certportal.ErrorMessage(err) == "" {
		t.Fatalf("%s: the error has no message", what)
	}
}

func sameTime(t *testing.T, what string, got, want time.Time) {
	t.Helper()
	if !got.Equal(want) {
		t.Errorf("%s: got %v, want %v", what, got, want)
	}
}

func newAccount(id string) *certportal.Account {
	return &certportal.Account{
		ID:           id,
		Email:        strings.ToLower(id) + "@example.com",
		PasswordHash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA",
		Method:       certportal.MethodPassword,
		Status:       certportal.StatusActive,
		Created:      base,
		Updated:      base,
	}
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	b[0] &= 0x7f
	b[0] |= 0x10 // no leading zero: serials are minimal hex
	return strings.ToUpper(hex.EncodeToString(b))
}

// newCert returns a certificate of an account; its DER is random bytes (the
// store keeps DER, it does not parse it).
func NewCert(account, issuer string, issued time.Time) *certportal.Certificate {
	der := make([]byte, 300)
	rand.Read(der)
	return &certportal.Certificate{
		Serial:     randomHex(16),
		AccountID:  account,
		Issuer:     issuer,
		NotBefore:  issued.Add(-5 * time.Minute),
		NotAfter:   issued.AddDate(1, 0, 0),
		Thumbprint: certportal.Thumbprint(der),
		SHA256:     certportal.Fingerprint256(der),
		DER:        der,
		Issued:     issued,
		Reason:     certportal.ReasonNone,
	}
}

func sameAccount(t *testing.T, got, want *certportal.Account) {
	t.Helper()
	if got.ID != want.ID || got.Email != want.Email || got.PasswordHash != want.PasswordHash ||
		got.Method != want.Method || got.Status != want.Status {
		t.Errorf("account: got %+v, want %+v", got, want)
	}
	sameTime(t, "PasswordExpires", got.PasswordExpires, want.PasswordExpires)
	sameTime(t, "Created", got.Created, want.Created)
	sameTime(t, "Updated", got.Updated, want.Updated)
}

func sameCert(t *testing.T, got, want *certportal.Certificate) {
	t.Helper()
	if got.Serial != want.Serial || !strings.EqualFold(got.AccountID, want.AccountID) || got.Issuer != want.Issuer ||
		got.Thumbprint != want.Thumbprint || got.SHA256 != want.SHA256 || string(got.DER) != string(want.DER) ||
		got.Reason != want.Reason {
		t.Errorf("certificate: got %+v, want %+v", got, want)
	}
	sameTime(t, "NotBefore", got.NotBefore, want.NotBefore)
	sameTime(t, "NotAfter", got.NotAfter, want.NotAfter)
	sameTime(t, "Issued", got.Issued, want.Issued)
	sameTime(t, "Revoked", got.Revoked, want.Revoked)
}

func testAccounts(t *testing.T, s certportal.Store) {
	ctx := context.Background()
	alice := newAccount("Alice.Smith")
	bob := newAccount("bob")
	bob.PasswordExpires = base.Add(24 * time.Hour)
	update(t, s, func(tx certportal.Tx) error {
		if err := tx.CreateAccount(ctx, alice); err != nil {
			return err
		}
		return tx.CreateAccount(ctx, bob)
	})

	for _, id := range []string{"Alice.Smith", "alice.smith", "ALICE.SMITH"} {
		view(t, s, func(tx certportal.Tx) error {
			got, err := tx.Account(ctx, id)
			if err != nil {
				return err
			}
			sameAccount(t, got, alice)
			return nil
		})
	}
	view(t, s, func(tx certportal.Tx) error {
		got, err := tx.Account(ctx, "BOB")
		if err != nil {
			return err
		}
		sameAccount(t, got, bob)
		return nil
	})

	// Update every field that may change, through a lower-case ID.
	changed := *alice
	changed.ID = "alice.smith"
	changed.Email = "alice@example.org"
	changed.PasswordHash = "$argon2id$v=19$m=19456,t=2,p=1$b3RoZXI$aGFzaDI"
	changed.PasswordExpires = base.Add(time.Hour)
	changed.Method = certportal.MethodCertificate
	changed.Status = certportal.StatusCancelled
	changed.Updated = base.Add(time.Minute)
	update(t, s, func(tx certportal.Tx) error {
		got, err := tx.LockAccount(ctx, "ALICE.smith")
		if err != nil {
			return err
		}
		sameAccount(t, got, alice)
		return tx.UpdateAccount(ctx, &changed)
	})
	want := changed
	want.ID = alice.ID // the ID keeps the case it was registered with
	view(t, s, func(tx certportal.Tx) error {
		got, err := tx.Account(ctx, "alice.smith")
		if err != nil {
			return err
		}
		sameAccount(t, got, &want)
		list, err := tx.ListAccounts(ctx)
		if err != nil {
			return err
		}
		if len(list) != 2 {
			t.Fatalf("ListAccounts: got %d accounts, want 2", len(list))
		}
		seen := map[string]bool{}
		for i := range list {
			seen[list[i].ID] = true
			if list[i].ID == bob.ID {
				sameAccount(t, &list[i], bob)
			}
		}
		if !seen["Alice.Smith"] || !seen["bob"] {
			t.Errorf("ListAccounts: got %v, want Alice.Smith and bob", seen)
		}
		return nil
	})
}

func testAccountConflicts(t *testing.T, s certportal.Store) {
	ctx := context.Background()
	update(t, s, func(tx certportal.Tx) error { return tx.CreateAccount(ctx, newAccount("Carol")) })
	for _, id := range []string{"Carol", "carol", "CAROL"} {
		err := s.Update(ctx, func(tx certportal.Tx) error { return tx.CreateAccount(ctx, newAccount(id)) })
		wantCode(t, "CreateAccount "+id, err, certportal.Conflict)
	}
	view(t, s, func(tx certportal.Tx) error {
		list, err := tx.ListAccounts(ctx)
		if err != nil {
			return err
		}
		if len(list) != 1 || list[0].ID != "Carol" {
			t.Errorf("after the conflicts: accounts %+v, want only Carol", list)
		}
		return nil
	})
	err := s.View(ctx, func(tx certportal.Tx) error { _, err := tx.Account(ctx, "dave"); return err })
	wantCode(t, "Account(unknown)", err, certportal.NotFound)
	err = s.Update(ctx, func(tx certportal.Tx) error { _, err := tx.LockAccount(ctx, "dave"); return err })
	wantCode(t, "LockAccount(unknown)", err, certportal.NotFound)
	err = s.Update(ctx, func(tx certportal.Tx) error { return tx.UpdateAccount(ctx, newAccount("dave")) })
	wantCode(t, "UpdateAccount(unknown)", err, certportal.NotFound)
}

func testCertificates(t *testing.T, s certportal.Store) {
	ctx := context.Background()
	c1 := NewCert("Erin", "SOP-ICA1", base)
	c2 := NewCert("frank", "SOP-ICA1", base.Add(time.Second))
	update(t, s, func(tx certportal.Tx) error {
		for _, id := range []string{"Erin", "frank"} {
			if err := tx.CreateAccount(ctx, newAccount(id)); err != nil {
				return err
			}
		}
		if err := tx.InsertCertificate(ctx, c1); err != nil {
			return err
		}
		return tx.InsertCertificate(ctx, c2)
	})
	view(t, s, func(tx certportal.Tx) error {
		for _, c := range []*certportal.Certificate{c1, c2} {
			got, err := tx.Certificate(ctx, c.Serial)
			if err != nil {
				return err
			}
			sameCert(t, got, c)
			got, err = tx.CertificateBySHA256(ctx, c.SHA256)
			if err != nil {
				return err
			}
			sameCert(t, got, c)
		}
		return nil
	})

	revokedAt := base.Add(time.Hour)
	update(t, s, func(tx certportal.Tx) error {
		return tx.RevokeCertificate(ctx, c1.Serial, revokedAt, certportal.ReasonKeyCompromise)
	})
	c1.Revoked, c1.Reason = revokedAt, certportal.ReasonKeyCompromise
	err := s.Update(ctx, func(tx certportal.Tx) error {
		return tx.RevokeCertificate(ctx, c1.Serial, base.Add(2*time.Hour), certportal.ReasonSuperseded)
	})
	wantCode(t, "revoking twice", err, certportal.Conflict)

	list := func(f certportal.CertFilter) []string {
		var out []string
		view(t, s, func(tx certportal.Tx) error {
			cs, err := tx.ListCertificates(ctx, f)
			for i := range cs {
				out = append(out, cs[i].Serial)
				if cs[i].Serial == c1.Serial {
					sameCert(t, &cs[i], c1) // the double revocation changed nothing
				}
			}
			return err
		})
		return out
	}
	for _, tc := range []struct {
		f    certportal.CertFilter
		want []string
	}{
		{certportal.CertFilter{}, []string{c1.Serial, c2.Serial}},
		{certportal.CertFilter{Unrevoked: true}, []string{c2.Serial}},
		{certportal.CertFilter{AccountID: "ERIN"}, []string{c1.Serial}},
		{certportal.CertFilter{AccountID: "erin", Unrevoked: true}, nil},
		{certportal.CertFilter{AccountID: "Frank", Unrevoked: true}, []string{c2.Serial}},
		{certportal.CertFilter{AccountID: "nobody"}, nil},
	} {
		got := list(tc.f)
		if !sameSet(got, tc.want) {
			t.Errorf("ListCertificates(%+v) = %v, want %v", tc.f, got, tc.want)
		}
	}
}

func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	m := map[string]int{}
	for _, s := range a {
		m[s]++
	}
	for _, s := range b {
		m[s]--
	}
	for _, n := range m {
		if n != 0 {
			return false
		}
	}
	return true
}

func testCertificateErrors(t *testing.T, s certportal.Store) {
	ctx := context.Background()
	c := NewCert("gina", "SOP-ICA1", base)
	update(t, s, func(tx certportal.Tx) error {
		if err := tx.CreateAccount(ctx, newAccount("gina")); err != nil {
			return err
		}
		if err := tx.CreateAccount(ctx, newAccount("hank")); err != nil {
			return err
		}
		return tx.InsertCertificate(ctx, c)
	})
	dup := NewCert("hank", "SOP-ICA1", base)
	dup.Serial = c.Serial
	err := s.Update(ctx, func(tx certportal.Tx) error { return tx.InsertCertificate(ctx, dup) })
	wantCode(t, "duplicate serial", err, certportal.Conflict)
	if !errors.Is(err, certportal.ErrSerialTaken) || errors.Is(err, certportal.ErrValidCertificateExists) {
		t.Errorf("duplicate serial: %v, want the cause ErrSerialTaken", err)
	}

	err = s.View(ctx, func(tx certportal.Tx) error { _, err := tx.Certificate(ctx, "7F00"); return err })
	wantCode(t, "Certificate(unknown)", err, certportal.NotFound)
	err = s.View(ctx, func(tx certportal.Tx) error {
		_, err := tx.CertificateBySHA256(ctx, certportal.Fingerprint256([]byte("x")))
		return err
	})
	wantCode(t, "CertificateBySHA256(unknown)", err, certportal.NotFound)
	err = s.Update(ctx, func(tx certportal.Tx) error {
		return tx.RevokeCertificate(ctx, "7F00", base, certportal.ReasonSuperseded)
	})
	wantCode(t, "RevokeCertificate(unknown)", err, certportal.NotFound)
	view(t, s, func(tx certportal.Tx) error {
		cs, err := tx.ListCertificates(ctx, certportal.CertFilter{AccountID: "hank"})
		if len(cs) != 0 {
			t.Errorf("the refused certificate was stored: %+v", cs)
		}
		return err
	})
}

// testOneValidCertificate checks the store's safety net under the
// one-valid-certificate rule: a second unrevoked certificate of an account
// fails, and the whole Update is undone.
func testOneValidCertificate(t *testing.T, s certportal.Store) {
	ctx := context.Background()
	update(t, s, func(tx certportal.Tx) error { return tx.CreateAccount(ctx, newAccount("ivy")) })
	first, second := NewCert("ivy", "SOP-ICA1", base), NewCert("IVY", "SOP-ICA1", base.Add(time.Second))
	err := s.Update(ctx, func(tx certportal.Tx) error {
		if err := tx.InsertCertificate(ctx, first); err != nil {
			return err
		}
		return tx.InsertCertificate(ctx, second)
	})
	wantCode(t, "second valid certificate", err, certportal.Conflict)
	if !errors.Is(err, certportal.ErrValidCertificateExists) || errors.Is(err, certportal.ErrSerialTaken) {
		t.Errorf("second valid certificate: %v, want the cause ErrValidCertificateExists", err)
	}
	view(t, s, func(tx certportal.Tx) error {
		cs, err := tx.ListCertificates(ctx, certportal.CertFilter{AccountID: "ivy"})
		if len(cs) != 0 {
			t.Errorf("the failed Update left %d certificates", len(cs))
		}
		return err
	})
	// Revoking the first in the same transaction is the way.
	update(t, s, func(tx certportal.Tx) error {
		if err := tx.InsertCertificate(ctx, first); err != nil {
			return err
		}
		if err := tx.RevokeCertificate(ctx, first.Serial, base.Add(time.Second), certportal.ReasonSuperseded); err != nil {
			return err
		}
		return tx.InsertCertificate(ctx, second)
	})
	view(t, s, func(tx certportal.Tx) error {
		cs, err := tx.ListCertificates(ctx, certportal.CertFilter{AccountID: "ivy", Unrevoked: true})
		if len(cs) != 1 || cs[0].Serial != second.Serial {
			t.Errorf("valid certificates: %+v, want only %s", cs, second.Serial)
		}
		return err
	})
}

func testRevocations(t *testing.T, s certportal.Store) {
	ctx := context.Background()
	var want []certportal.Revocation
	cutoff := base.AddDate(0, 6, 0)
	update(t, s, func(tx certportal.Tx) error {
		for i := range 12 {
			id := "rev" + string(rune('a'+i))
			if err := tx.CreateAccount(ctx, newAccount(id)); err != nil {
				return err
			}
			issuer := "SOP-ICA1"
			if i%3 == 2 {
				issuer = "SOP-ICA2"
			}
			c := NewCert(id, issuer, base)
			if i%4 == 3 {
				c.NotAfter = cutoff.Add(-time.Microsecond) // expired before the cutoff: left out
			}
			if i == 4 {
				c.NotAfter = cutoff // expires exactly at the cutoff: kept
			}
			if err := tx.InsertCertificate(ctx, c); err != nil {
				return err
			}
			if i%5 == 1 {
				continue // not revoked
			}
			at := base.Add(time.Duration(i) * time.Minute)
			reason := []certportal.RevocationReason{certportal.ReasonNone, certportal.ReasonKeyCompromise,
				certportal.ReasonCessationOfOperation}[i%3]
			if err := tx.RevokeCertificate(ctx, c.Serial, at, reason); err != nil {
				return err
			}
			if issuer == "SOP-ICA1" && !c.NotAfter.Before(cutoff) {
				want = append(want, certportal.Revocation{Serial: c.Serial, Time: at, Reason: reason})
			}
		}
		return nil
	})
	var got []certportal.Revocation
	view(t, s, func(tx certportal.Tx) error {
		var err error
		got, err = tx.Revocations(ctx, "SOP-ICA1", cutoff)
		return err
	})
	if len(got) != len(want) || len(want) < 3 {
		t.Fatalf("Revocations: got %d, want %d (%+v)", len(got), len(want), got)
	}
	byserial := map[string]certportal.Revocation{}
	for _, r := range want {
		byserial[r.Serial] = r
	}
	for i, r := range got {
		if i > 0 && got[i-1].Serial >= r.Serial {
			t.Errorf("Revocations not in serial order: %s before %s", got[i-1].Serial, r.Serial)
		}
		w, ok := byserial[r.Serial]
		if !ok {
			t.Errorf("Revocations: unexpected %s", r.Serial)
			continue
		}
		sameTime(t, "revocation time", r.Time, w.Time)
		if r.Reason != w.Reason {
			t.Errorf("Revocations %s: reason %v, want %v", r.Serial, r.Reason, w.Reason)
		}
	}
	view(t, s, func(tx certportal.Tx) error {
		none, err := tx.Revocations(ctx, "SOP-NONE", base)
		if len(none) != 0 {
			t.Errorf("Revocations(unknown issuer) = %+v", none)
		}
		return err
	})
}

// Supersede issues c in tx with portal's own issuing step
// (Service.RecordIssue), for storage tests of concurrency: lock the
// account, revoke its unrevoked certificates (superseded, at c.Issued),
// insert c, audit, from remote.
func Supersede(ctx context.Context, tx certportal.Tx, c *certportal.Certificate, remote string) error {
	svc := &portal.Service{Now: func() time.Time { return c.Issued }}
	return svc.RecordIssue(ctx, tx, portal.User(c.AccountID, remote), c, "")
}
