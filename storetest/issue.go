package storetest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/certportal/certportal"
)

// testConcurrentIssue runs what portal does when it issues a certificate,
// from 50 goroutines for 10 accounts at once: lock the account, revoke its
// valid certificate, insert the new one. Every Update must succeed (they
// queue, they do not fail) and each account must end with exactly one valid
// certificate.
func testConcurrentIssue(t *testing.T, s certportal.Store) {
	ctx := context.Background()
	const accounts, workers = 10, 50
	update(t, s, func(tx certportal.Tx) error {
		for i := range accounts {
			if err := tx.CreateAccount(ctx, newAccount(fmt.Sprintf("User%02d", i))); err != nil {
				return err
			}
		}
		return nil
	})
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			id := fmt.Sprintf("user%02d", w%accounts)
			at := base.Add(time.Duration(w) * time.Second)
			err := s.Update(ctx, func(tx certportal.Tx) error {
				return Supersede(ctx, tx, NewCert(id, "SOP-ICA1", at), "")
			})
			if err != nil {
				errs <- fmt.Errorf("worker %d: %w", w, err)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	view(t, s, func(tx certportal.Tx) error {
		all, err := tx.ListCertificates(ctx, certportal.CertFilter{})
		if err != nil {
			return err
		}
		if len(all) != workers {
			t.Errorf("%d certificates, want %d", len(all), workers)
		}
		for i := range accounts {
			id := fmt.Sprintf("USER%02d", i)
			valid, err := tx.ListCertificates(ctx, certportal.CertFilter{AccountID: id, Unrevoked: true})
			if err != nil {
				return err
			}
			if len(valid) != 1 {
				t.Errorf("%s has %d valid certificates, want 1", id, len(valid))
			}
		}
		events, err := tx.ListAudit(ctx, certportal.AuditFilter{})
		if err != nil {
			return err
		}
		CheckIssueAudit(t, events, accounts, workers)
		if bad, err := certportal.VerifyAuditChain(events); err != nil {
			t.Errorf("audit chain broken at %d: %v", bad, err)
		}
		return nil
	})
}

// CheckIssueAudit checks the audit log after issues issuances (Supersede)
// spread over accounts accounts that started with no certificate: one
// cert.issued each, a cert.revoked for every one superseded, and one
// method change per account.
func CheckIssueAudit(t *testing.T, events []certportal.AuditEvent, accounts, issues int) {
	t.Helper()
	n := map[string]int{}
	for _, e := range events {
		n[e.Action]++
	}
	want := map[string]int{
		certportal.ActionCertIssued:    issues,
		certportal.ActionCertRevoked:   issues - accounts,
		certportal.ActionMethodChanged: accounts,
	}
	for action, w := range want {
		if n[action] != w {
			t.Errorf("%d %s audit records, want %d", n[action], action, w)
		}
	}
	if len(events) != issues+issues-accounts+accounts {
		t.Errorf("%d audit records, want %d", len(events), 2*issues)
	}
}
