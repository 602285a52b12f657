package storetest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/certportal/certportal"
)

func accountExists(t *testing.T, s certportal.Store, id string) bool {
	t.Helper()
	var found bool
	view(t, s, func(tx certportal.Tx) error {
		_, err := tx.Account(context.Background(), id)
		if certportal.ErrorCodeOf(err) == certportal.NotFound {
			return nil
		}
		found = err == nil
		return err
	})
	return found
}

func auditCount(t *testing.T, s certportal.Store) int {
	t.Helper()
	var n int
	view(t, s, func(tx certportal.Tx) error {
		events, err := tx.ListAudit(context.Background(), certportal.AuditFilter{})
		n = len(events)
		return err
	})
	return n
}

func testRollbackOnError(t *testing.T, s certportal.Store) {
	ctx := context.Background()
	errStop := errors.New("stop")
	err := s.Update(ctx, func(tx certportal.Tx) error {
		if err := tx.CreateAccount(ctx, newAccount("jack")); err != nil {
			return err
		}
		if err := tx.InsertCertificate(ctx, NewCert("jack", "SOP-ICA1", base)); err != nil {
			return err
		}
		if err := tx.AppendAudit(ctx, &certportal.AuditEvent{Time: base, Actor: "admin", AccountID: "jack", Action: certportal.ActionAccountCreated}); err != nil {
			return err
		}
		if _, err := tx.NextCRLNumber(ctx, "SOP-ICA1"); err != nil {
			return err
		}
		return errStop
	})
	if !errors.Is(err, errStop) {
		t.Fatalf("Update returned %v, want fn's error", err)
	}
	if accountExists(t, s, "jack") {
		t.Error("the account of a failed Update was kept")
	}
	if n := auditCount(t, s); n != 0 {
		t.Errorf("the audit record of a failed Update was kept (%d records)", n)
	}
	// The store still works, and the chain starts at 1.
	update(t, s, func(tx certportal.Tx) error {
		e := &certportal.AuditEvent{Time: base, Actor: "admin", Action: certportal.ActionCRLSigned}
		if err := tx.AppendAudit(ctx, e); err != nil {
			return err
		}
		if e.Seq != 1 {
			t.Errorf("after a rollback the first record has Seq %d, want 1", e.Seq)
		}
		return nil
	})
}

func testRollbackOnPanic(t *testing.T, s certportal.Store) {
	ctx := context.Background()
	func() {
		defer func() {
			if r := recover(); r != "boom" {
				t.Errorf("recovered %v, want the panic of fn passed on", r)
			}
		}()
		s.Update(ctx, func(tx certportal.Tx) error {
			if err := tx.CreateAccount(ctx, newAccount("kate")); err != nil {
				t.Errorf("CreateAccount: %v", err)
			}
			panic("boom")
		})
		t.Error("Update returned after fn panicked")
	}()
	if accountExists(t, s, "kate") {
		t.Error("the account of a panicked Update was kept")
	}
	// The store is usable after the panic (the writer was released).
	done := make(chan error, 1)
	go func() {
		done <- s.Update(ctx, func(tx certportal.Tx) error { return tx.CreateAccount(ctx, newAccount("kate")) })
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Update after a panic: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Update after a panic hangs: the transaction was not released")
	}
}

func testViewReadOnly(t *testing.T, s certportal.Store) {
	ctx := context.Background()
	err := s.View(ctx, func(tx certportal.Tx) error { return tx.CreateAccount(ctx, newAccount("leo")) })
	if err == nil {
		t.Error("CreateAccount in a View succeeded")
	}
	if accountExists(t, s, "leo") {
		t.Error("a View wrote an account")
	}
	if err := s.Ping(ctx); err != nil {
		t.Errorf("Ping: %v", err)
	}
}

func testSessions(t *testing.T, s certportal.Store) {
	ctx := context.Background()
	mk := func(id, account string, expires time.Time) *certportal.Session {
		return &certportal.Session{ID: id, AccountID: account, Remote: "192.0.2.1", Created: base, LastSeen: base, Expires: expires}
	}
	s1 := mk("s1", "Mia", base.Add(12*time.Hour))
	s1.CertSerial = "7A01"
	s2 := mk("s2", "mia", base.Add(12*time.Hour))
	s3 := mk("s3", "MIA", base.Add(time.Minute))
	s4 := mk("s4", "ned", base.Add(time.Minute))
	update(t, s, func(tx certportal.Tx) error {
		for _, id := range []string{"Mia", "ned"} {
			if err := tx.CreateAccount(ctx, newAccount(id)); err != nil {
				return err
			}
		}
		for _, x := range []*certportal.Session{s1, s2, s3, s4} {
			if err := tx.CreateSession(ctx, x); err != nil {
				return err
			}
		}
		return nil
	})
	touched := base.Add(5 * time.Minute)
	update(t, s, func(tx certportal.Tx) error { return tx.TouchSession(ctx, "s1", touched) })
	view(t, s, func(tx certportal.Tx) error {
		got, err := tx.Session(ctx, "s1")
		if err != nil {
			return err
		}
		if got.ID != "s1" || got.AccountID != "Mia" && got.AccountID != "mia" || got.CertSerial != "7A01" || got.Remote != s1.Remote {
			t.Errorf("Session: got %+v, want %+v", got, s1)
		}
		sameTime(t, "Created", got.Created, base)
		sameTime(t, "LastSeen", got.LastSeen, touched)
		sameTime(t, "Expires", got.Expires, s1.Expires)
		return nil
	})
	exists := func(id string) bool {
		var ok bool
		view(t, s, func(tx certportal.Tx) error {
			_, err := tx.Session(ctx, id)
			if certportal.ErrorCodeOf(err) == certportal.NotFound {
				return nil
			}
			ok = err == nil
			return err
		})
		return ok
	}
	check := func(step string, want map[string]bool) {
		t.Helper()
		for id, w := range want {
			if got := exists(id); got != w {
				t.Errorf("%s: session %s exists = %v, want %v", step, id, got, w)
			}
		}
	}
	update(t, s, func(tx certportal.Tx) error { return tx.DeleteExpiredSessions(ctx, base.Add(time.Hour)) })
	check("DeleteExpiredSessions", map[string]bool{"s1": true, "s2": true, "s3": false, "s4": false})
	update(t, s, func(tx certportal.Tx) error { return tx.DeleteSessions(ctx, "MIA", "s1") })
	check("DeleteSessions(keep s1)", map[string]bool{"s1": true, "s2": false})
	update(t, s, func(tx certportal.Tx) error { return tx.CreateSession(ctx, mk("s5", "ned", base.Add(time.Hour))) })
	update(t, s, func(tx certportal.Tx) error { return tx.DeleteSessions(ctx, "mia", "") })
	check("DeleteSessions(all)", map[string]bool{"s1": false, "s5": true})
	update(t, s, func(tx certportal.Tx) error { return tx.DeleteSession(ctx, "s5") })
	check("DeleteSession", map[string]bool{"s5": false})

	// TrimSessions keeps the newest n with keep, whatever its age.
	update(t, s, func(tx certportal.Tx) error {
		for i, id := range []string{"t1", "t2", "t3", "t4"} {
			sess := mk(id, "ned", base.Add(time.Hour))
			sess.Created = base.Add(time.Duration(i) * time.Minute)
			if err := tx.CreateSession(ctx, sess); err != nil {
				return err
			}
		}
		return nil
	})
	update(t, s, func(tx certportal.Tx) error { return tx.TrimSessions(ctx, "NED", "t1", 3) })
	check("TrimSessions(keep t1, 3)", map[string]bool{"t1": true, "t2": false, "t3": true, "t4": true})
	update(t, s, func(tx certportal.Tx) error { return tx.TrimSessions(ctx, "ned", "", 1) })
	check("TrimSessions(1)", map[string]bool{"t1": false, "t3": false, "t4": true})

	err := s.View(ctx, func(tx certportal.Tx) error { _, err := tx.Session(ctx, "s5"); return err })
	wantCode(t, "Session(deleted)", err, certportal.NotFound)
	err = s.Update(ctx, func(tx certportal.Tx) error { return tx.TouchSession(ctx, "s5", base) })
	wantCode(t, "TouchSession(deleted)", err, certportal.NotFound)
	err = s.Update(ctx, func(tx certportal.Tx) error { return tx.CreateSession(ctx, mk("s6", "nobody", base)) })
	if err == nil {
		t.Error("CreateSession for an unknown account succeeded")
	}
}

func testLockouts(t *testing.T, s certportal.Store) {
	ctx := context.Background()
	const a, b = "192.0.2.1", "198.51.100.7"
	update(t, s, func(tx certportal.Tx) error {
		for i := range 4 {
			if err := tx.AddFailure(ctx, "olga", a, base.Add(time.Duration(i)*time.Minute)); err != nil {
				return err
			}
		}
		if err := tx.AddFailure(ctx, "OLGA", b, base); err != nil {
			return err
		}
		return tx.AddFailure(ctx, "unknown-id", a, base)
	})
	count := func(key, remote string, since time.Time) int {
		var n int
		view(t, s, func(tx certportal.Tx) error {
			var err error
			n, err = tx.CountFailures(ctx, key, remote, since)
			return err
		})
		return n
	}
	for _, tc := range []struct {
		key, remote string
		since       time.Time
		want        int
	}{
		{"olga", a, base, 4},
		{"olga", a, base.Add(2 * time.Minute), 2},
		{"olga", b, base, 1},
		{"unknown-id", a, base, 1},
		{"olga", "203.0.113.9", base, 0},
	} {
		if got := count(tc.key, tc.remote, tc.since); got != tc.want {
			t.Errorf("CountFailures(%s, %s, %v) = %d, want %d", tc.key, tc.remote, tc.since, got, tc.want)
		}
	}
	update(t, s, func(tx certportal.Tx) error { return tx.ClearFailures(ctx, "olga", b) })
	if got := count("olga", b, base); got != 0 {
		t.Errorf("after ClearFailures: %d failures", got)
	}
	if got := count("olga", a, base); got != 4 {
		t.Errorf("ClearFailures cleared another address: %d failures left, want 4", got)
	}

	until := base.Add(15 * time.Minute)
	locked := func(key, remote string) time.Time {
		var u time.Time
		view(t, s, func(tx certportal.Tx) error {
			var err error
			u, err = tx.LockedUntil(ctx, key, remote)
			return err
		})
		return u
	}
	if u := locked("olga", a); !u.IsZero() {
		t.Errorf("LockedUntil before any lockout = %v, want zero", u)
	}
	update(t, s, func(tx certportal.Tx) error { return tx.SetLockout(ctx, "olga", a, base) })
	update(t, s, func(tx certportal.Tx) error { return tx.SetLockout(ctx, "olga", a, until) }) // replaces
	update(t, s, func(tx certportal.Tx) error { return tx.SetLockout(ctx, "olga", b, until) })
	update(t, s, func(tx certportal.Tx) error { return tx.SetLockout(ctx, "pete", a, until) })
	sameTime(t, "LockedUntil", locked("OLGA", a), until)
	update(t, s, func(tx certportal.Tx) error { return tx.Unlock(ctx, "Olga") })
	if u := locked("olga", a); !u.IsZero() {
		t.Errorf("after Unlock, LockedUntil = %v", u)
	}
	if u := locked("olga", b); !u.IsZero() {
		t.Errorf("after Unlock, LockedUntil(other address) = %v", u)
	}
	if got := count("olga", a, base); got != 0 {
		t.Errorf("after Unlock: %d failures", got)
	}
	sameTime(t, "another account's lockout", locked("pete", a), until)
	if got := count("unknown-id", a, base); got != 1 {
		t.Errorf("Unlock cleared another account's failures")
	}
}

func testTickets(t *testing.T, s certportal.Store) {
	ctx := context.Background()
	tk := &certportal.Ticket{ID: "t1", AccountID: "Quinn", Expires: base.Add(5 * time.Minute)}
	update(t, s, func(tx certportal.Tx) error {
		if err := tx.CreateAccount(ctx, newAccount("Quinn")); err != nil {
			return err
		}
		return tx.CreateTicket(ctx, tk)
	})
	err := s.Update(ctx, func(tx certportal.Tx) error { return tx.CreateTicket(ctx, tk) })
	wantCode(t, "duplicate ticket", err, certportal.Conflict)
	update(t, s, func(tx certportal.Tx) error {
		got, err := tx.ConsumeTicket(ctx, "t1")
		if err != nil {
			return err
		}
		if got.ID != "t1" || got.AccountID != "Quinn" && got.AccountID != "quinn" {
			t.Errorf("ConsumeTicket = %+v, want %+v", got, tk)
		}
		sameTime(t, "ticket Expires", got.Expires, tk.Expires)
		return nil
	})
	for _, id := range []string{"t1", "never"} {
		err := s.Update(ctx, func(tx certportal.Tx) error { _, err := tx.ConsumeTicket(ctx, id); return err })
		wantCode(t, "ConsumeTicket("+id+")", err, certportal.NotFound)
	}
	// A ticket consumed in a failed Update is still there.
	update(t, s, func(tx certportal.Tx) error {
		return tx.CreateTicket(ctx, &certportal.Ticket{ID: "t2", AccountID: "quinn", Expires: base})
	})
	s.Update(ctx, func(tx certportal.Tx) error {
		tx.ConsumeTicket(ctx, "t2")
		return errors.New("stop")
	})
	update(t, s, func(tx certportal.Tx) error { _, err := tx.ConsumeTicket(ctx, "t2"); return err })

	// Ticket reads without consuming.
	update(t, s, func(tx certportal.Tx) error {
		return tx.CreateTicket(ctx, &certportal.Ticket{ID: "peek", AccountID: "quinn", Expires: base})
	})
	for range 2 {
		view(t, s, func(tx certportal.Tx) error {
			tk, err := tx.Ticket(ctx, "peek")
			if err == nil && (tk.ID != "peek" || certportal.IDKey(tk.AccountID) != "quinn" || !tk.Expires.Equal(base)) {
				t.Errorf("Ticket(peek) = %+v", tk)
			}
			return err
		})
	}
	update(t, s, func(tx certportal.Tx) error { _, err := tx.ConsumeTicket(ctx, "peek"); return err })
	err = s.View(ctx, func(tx certportal.Tx) error { _, err := tx.Ticket(ctx, "peek"); return err })
	wantCode(t, "Ticket(consumed)", err, certportal.NotFound)

	// DeleteTickets deletes every ticket of one account, no other.
	update(t, s, func(tx certportal.Tx) error {
		if err := tx.CreateAccount(ctx, newAccount("Rita")); err != nil {
			return err
		}
		for _, tk := range []certportal.Ticket{{ID: "q1", AccountID: "quinn"}, {ID: "q2", AccountID: "quinn"}, {ID: "r1", AccountID: "rita"}} {
			tk.Expires = base
			if err := tx.CreateTicket(ctx, &tk); err != nil {
				return err
			}
		}
		return tx.DeleteTickets(ctx, "QUINN")
	})
	for id, want := range map[string]certportal.ErrorCode{"q1": certportal.NotFound, "q2": certportal.NotFound, "r1": ""} {
		err := s.Update(ctx, func(tx certportal.Tx) error { _, err := tx.ConsumeTicket(ctx, id); return err })
		if certportal.ErrorCodeOf(err) != want {
			t.Errorf("ConsumeTicket(%s) after DeleteTickets(quinn): %v, want %q", id, err, want)
		}
	}
}

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

// testAttemptsSerialised runs what portal does before it checks a
// password, from 40 goroutines at once for one (ID, address): lock the
// pair, count, and add an attempt while fewer than 5 are counted. Exactly 5
// are admitted, and another address is not held up by the first.
func testAttemptsSerialised(t *testing.T, s certportal.Store) {
	ctx := context.Background()
	const workers, limit = 40, 5
	var mu sync.Mutex
	admitted := map[string]int{}
	var wg sync.WaitGroup
	for i := range workers {
		remote := []string{"192.0.2.50", "2001:db8::/64"}[i%2]
		wg.Go(func() {
			ok := false
			err := s.Update(ctx, func(tx certportal.Tx) error {
				ok = false
				if err := tx.LockAttempts(ctx, "paula", remote); err != nil {
					return err
				}
				n, err := tx.CountFailures(ctx, "paula", remote, base)
				if err != nil || n >= limit {
					return err
				}
				ok = true
				return tx.AddFailure(ctx, "PAULA", remote, base.Add(time.Second))
			})
			if err != nil {
				t.Error(err)
			}
			if ok {
				mu.Lock()
				admitted[remote]++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	for _, remote := range []string{"192.0.2.50", "2001:db8::/64"} {
		if admitted[remote] != limit {
			t.Errorf("%d attempts admitted from %s, want %d", admitted[remote], remote, limit)
		}
	}
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

// testLookup: Lookup returns what a View of the certificate and its
// account returns, sees a revocation and a cancellation at once, and is
// NotFound for an unknown fingerprint.
func testLookup(t *testing.T, s certportal.Store) {
	ctx := context.Background()
	c := NewCert("Lena", "SOP-ICA1", base)
	update(t, s, func(tx certportal.Tx) error {
		if err := tx.CreateAccount(ctx, newAccount("Lena")); err != nil {
			return err
		}
		return tx.InsertCertificate(ctx, c)
	})
	var want *certportal.Certificate
	var wantAcc *certportal.Account
	view(t, s, func(tx certportal.Tx) error {
		var err error
		if want, err = tx.CertificateBySHA256(ctx, c.SHA256); err != nil {
			return err
		}
		wantAcc, err = tx.Account(ctx, "lena")
		return err
	})
	got, acc, err := s.Lookup(ctx, strings.ToLower(c.SHA256))
	if err != nil {
		t.Fatalf("Lookup: %v", err)
	}
	if !reflect.DeepEqual(got, want) || !reflect.DeepEqual(acc, wantAcc) {
		t.Errorf("Lookup = %+v, %+v\nwant %+v, %+v", got, acc, want, wantAcc)
	}
	update(t, s, func(tx certportal.Tx) error {
		return tx.RevokeCertificate(ctx, c.Serial, base, certportal.ReasonKeyCompromise)
	})
	if got, _, err := s.Lookup(ctx, c.SHA256); err != nil || !got.IsRevoked() || got.Reason != certportal.ReasonKeyCompromise {
		t.Errorf("Lookup after a revocation: %+v, %v", got, err)
	}
	update(t, s, func(tx certportal.Tx) error {
		a, err := tx.LockAccount(ctx, "lena")
		if err != nil {
			return err
		}
		a.Status = certportal.StatusCancelled
		return tx.UpdateAccount(ctx, a)
	})
	if _, acc, err := s.Lookup(ctx, c.SHA256); err != nil || acc.Status != certportal.StatusCancelled {
		t.Errorf("Lookup after a cancellation: %+v, %v", acc, err)
	}
	_, _, err = s.Lookup(ctx, certportal.Fingerprint256([]byte("nothing")))
	wantCode(t, "Lookup(unknown)", err, certportal.NotFound)
}

// testLookupSession: LookupSession returns the session and account a View
// returns, the bound certificate's status (seeing a revocation at once),
// nil for a password session, and NotFound for an unknown session.
func testLookupSession(t *testing.T, s certportal.Store) {
	ctx := context.Background()
	c := NewCert("Sami", "SOP-ICA1", base)
	pw := &certportal.Session{ID: "ls-pw", AccountID: "sami", Remote: "192.0.2.9", Created: base, LastSeen: base.Add(time.Minute), Expires: base.Add(time.Hour)}
	bound := *pw
	bound.ID, bound.CertSerial = "ls-cert", c.Serial
	update(t, s, func(tx certportal.Tx) error {
		if err := tx.CreateAccount(ctx, newAccount("Sami")); err != nil {
			return err
		}
		if err := tx.InsertCertificate(ctx, c); err != nil {
			return err
		}
		if err := tx.CreateSession(ctx, pw); err != nil {
			return err
		}
		return tx.CreateSession(ctx, &bound)
	})
	for _, id := range []string{"ls-pw", "ls-cert"} {
		var want *certportal.Session
		var wantAcc *certportal.Account
		view(t, s, func(tx certportal.Tx) error {
			var err error
			if want, err = tx.Session(ctx, id); err != nil {
				return err
			}
			wantAcc, err = tx.Account(ctx, want.AccountID)
			return err
		})
		sess, acc, cert, err := s.LookupSession(ctx, id)
		if err != nil {
			t.Fatalf("LookupSession(%s): %v", id, err)
		}
		if !reflect.DeepEqual(sess, want) || !reflect.DeepEqual(acc, wantAcc) {
			t.Errorf("LookupSession(%s) = %+v, %+v\nwant %+v, %+v", id, sess, acc, want, wantAcc)
		}
		switch {
		case id == "ls-pw" && cert != nil:
			t.Errorf("a password session came with a certificate: %+v", cert)
		case id == "ls-cert" && (cert == nil || cert.Serial != c.Serial || cert.IsRevoked() || !cert.NotAfter.Equal(c.NotAfter)):
			t.Errorf("the bound certificate: %+v, want serial %s valid until %v", cert, c.Serial, c.NotAfter)
		}
	}
	update(t, s, func(tx certportal.Tx) error {
		return tx.RevokeCertificate(ctx, c.Serial, base, certportal.ReasonSuperseded)
	})
	if _, _, cert, err := s.LookupSession(ctx, "ls-cert"); err != nil || cert == nil || !cert.IsRevoked() || cert.Reason != certportal.ReasonSuperseded {
		t.Errorf("after a revocation: %+v, %v", cert, err)
	}
	_, _, _, err := s.LookupSession(ctx, "no-such-session")
	wantCode(t, "LookupSession(unknown)", err, certportal.NotFound)
}
