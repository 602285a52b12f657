package storetest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/certportal/certportal"
)

// ConsoleAccounts is the size of the console benchmarks' database: SPEC.md
// asks for searches and account pages within 50 ms with 100,000 accounts
// and 100,000 certificates.
const ConsoleAccounts = 100_000

// BenchConsole measures the admin console's reads on a store holding
// ConsoleAccounts accounts, each with a certificate (IDs u00000…, e-mail
// addresses person.00000@…, so the two searches find different
// accounts), and five audit records for each of the first 10,000:
//
//   - Search/IDPrefix: the first page (50) of the 10,000 IDs that begin
//     with "u0";
//   - Search/EmailPrefix: the first page of the 10,000 whose e-mail
//     address begins with "person.0" (and no ID does);
//   - Search/Page100: page 100 of every account (49,50 skipped);
//   - Search/NoMatch: a prefix nothing has;
//   - AccountPage: one account's page: the account, its certificates,
//     lockouts, last 20 audit records and queued mails, in one View.
//
// settle, when set, runs after the filling (postgres: ANALYZE, which
// autovacuum would run soon after such a change).
func BenchConsole(b *testing.B, open func(b *testing.B) certportal.Store, settle func(b *testing.B)) {
	s := open(b)
	start := time.Now()
	fillConsole(b, s)
	if settle != nil {
		settle(b)
	}
	b.Logf("filled %d accounts and certificates in %v", ConsoleAccounts, time.Since(start).Round(time.Millisecond))
	ctx := context.Background()
	search := func(prefix string, offset int) func(b *testing.B) {
		return func(b *testing.B) {
			for b.Loop() {
				err := s.View(ctx, func(tx certportal.Tx) error {
					_, err := tx.SearchAccounts(ctx, prefix, offset, 51)
					return err
				})
				if err != nil {
					b.Fatal(err)
				}
			}
		}
	}
	b.Run("Search/IDPrefix", search("u0", 0))
	b.Run("Search/EmailPrefix", search("person.0", 0))
	b.Run("Search/Page100", search("", 99*50))
	b.Run("Search/NoMatch", search("zzz", 0))
	b.Run("AccountPage", func(b *testing.B) {
		now := time.Now()
		for b.Loop() {
			id := fmt.Sprintf("u%05d", rand.IntN(10_000))
			err := s.View(ctx, func(tx certportal.Tx) error {
				acc, err := tx.Account(ctx, id)
				if err != nil {
					return err
				}
				if _, err := tx.ListCertificates(ctx, certportal.CertFilter{AccountID: acc.ID}); err != nil {
					return err
				}
				if _, err := tx.Lockouts(ctx, acc.ID, now); err != nil {
					return err
				}
				list, err := tx.SearchAudit(ctx, certportal.AuditQuery{AccountID: acc.ID, Limit: 20})
				if err != nil {
					return err
				}
				if len(list) != 5 {
					return fmt.Errorf("%s has %d audit records, want 5", id, len(list))
				}
				_, err = tx.QueuedMails(ctx, acc.ID)
				return err
			})
			if err != nil {
				b.Fatal(err)
			}
		}
	})
}

// fillConsole fills the console benchmarks' store in batches of 5,000.
func fillConsole(b *testing.B, s certportal.Store) {
	ctx := context.Background()
	now := time.Now()
	const batch = 5000
	for from := 0; from < ConsoleAccounts; from += batch {
		err := s.Update(ctx, func(tx certportal.Tx) error {
			for i := from; i < from+batch; i++ {
				id := fmt.Sprintf("u%05d", i)
				acc := newAccount(id)
				acc.Email = fmt.Sprintf("person.%05d@example.org", (i*7919)%ConsoleAccounts)
				acc.Method = certportal.MethodCertificate
				if err := tx.CreateAccount(ctx, acc); err != nil {
					return err
				}
				if err := tx.InsertCertificate(ctx, NewCert(id, "SOP-ICA1", now)); err != nil {
					return err
				}
				if i < 10_000 {
					for k := range 5 {
						e := &certportal.AuditEvent{Time: now, Actor: "system", AccountID: id, Action: certportal.ActionSignInOK,
							Detail: fmt.Sprint(k), Remote: "192.0.2.1"}
						if err := tx.AppendAudit(ctx, e); err != nil {
							return err
						}
					}
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
}
