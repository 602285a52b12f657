package portal_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/certportal/certportal"
	"github.com/certportal/certportal/ca"
	"github.com/certportal/certportal/internal/pgtest"
	"github.com/certportal/certportal/internal/testpki"
	"github.com/certportal/certportal/mail"
	"github.com/certportal/certportal/portal"
	"github.com/certportal/certportal/postgres"
	"github.com/certportal/certportal/sqlite"
)

// cluster is two portal replicas on one database (two SQLite connections
// to one file, or two PostgreSQL pools), one CA, one outbox and one clock:
// what several `serve` processes share.
type cluster struct {
	replicas []*portal.Service
	outbox   string
	clock    *testpki.Clock
}

// svc returns replica i, modulo the number of replicas.
func (c *cluster) svc(i int) *portal.Service { return c.replicas[i%len(c.replicas)] }

// eachDatabase runs f on a two-replica cluster over SQLite and over
// PostgreSQL.
func eachDatabase(t *testing.T, f func(t *testing.T, c *cluster)) {
	for _, kind := range []string{"sqlite", "postgres"} {
		t.Run(kind, func(t *testing.T) { f(t, newCluster(t, kind)) })
	}
}

func newCluster(t *testing.T, kind string) *cluster {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	caPath := filepath.Join(dir, "ca")
	if _, err := ca.Create(ca.InitOptions{Dir: caPath, URL: "http://localhost:8080"}); err != nil {
		t.Fatal(err)
	}
	c := &cluster{outbox: filepath.Join(dir, "outbox"), clock: testpki.NewClock(time.Now().UTC().Truncate(time.Second))}
	dsn := ""
	if kind == "postgres" {
		dsn = pgtest.FreshDatabase(t)
	}
	for i := range 2 {
		var store certportal.Store
		var err error
		if kind == "postgres" {
			store, err = postgres.Open(ctx, dsn, i == 0)
		} else {
			store, err = sqlite.Open(ctx, filepath.Join(dir, "db.sqlite"), i == 0)
		}
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { store.Close() })
		auth, err := ca.Load(caPath, "http://localhost:8080")
		if err != nil {
			t.Fatal(err)
		}
		svc := portal.New(store, auth, &mail.Outbox{Dir: c.outbox, From: "portal@example.com", Now: c.clock.Now}, portal.Config{}, nil)
		svc.Now, svc.CA.Now = c.clock.Now, c.clock.Now
		c.replicas = append(c.replicas, svc)
	}
	return c
}

func (c *cluster) addUser(t *testing.T, id string) {
	t.Helper()
	if _, _, err := c.svc(0).AddUser(context.Background(), portal.Admin, id, id+"@example.com", "account password "+id); err != nil {
		t.Fatal(err)
	}
}

// mails counts the outbox mails whose text contains s.
func (c *cluster) mails(t *testing.T, s string) int {
	t.Helper()
	// Notices wait in the database's outbox until the sender, which serve
	// runs, sends them: send what is due, as it would.
	if _, err := c.svc(0).SendQueuedMail(context.Background()); err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob(filepath.Join(c.outbox, "*.eml"))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(b), s) {
			n++
		}
	}
	return n
}

// audited counts an account's audit records with action and, when detail
// is not "", that detail.
func (c *cluster) audited(t *testing.T, id, action, detail string) int {
	t.Helper()
	events, err := c.svc(0).Audit(context.Background(), certportal.AuditFilter{AccountID: id})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range events {
		if e.Action == action && (detail == "" || e.Detail == detail) {
			n++
		}
	}
	return n
}

const lockoutMail = "Password sign-in to your account is locked"

// TestLockoutHoldsUnderConcurrency is the review's attack: many wrong
// passwords at once, spread over two replicas, then the right one. At most
// five passwords are checked (counted from the audit log), the right one
// is refused, and exactly one lockout is recorded and mailed.
func TestLockoutHoldsUnderConcurrency(t *testing.T) {
	eachDatabase(t, func(t *testing.T, c *cluster) {
		ctx := context.Background()
		c.addUser(t, "mallory-target")
		const guesses = 60
		var wg sync.WaitGroup
		errs := make(chan error, guesses)
		for i := range guesses {
			wg.Go(func() {
				_, err := c.svc(i).PasswordSignIn(ctx, "mallory-target", fmt.Sprintf("wrong guess %03d", i), "192.0.2.7")
				errs <- err
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if certportal.ErrorCodeOf(err) != certportal.Unauthorized {
				t.Fatalf("a wrong guess: %v, want Unauthorized", err)
			}
		}
		_, err := c.svc(1).PasswordSignIn(ctx, "mallory-target", "account password mallory-target", "192.0.2.7")
		if certportal.ErrorCodeOf(err) != certportal.Unauthorized {
			t.Fatalf("the right password after the attack: %v, want Unauthorized", err)
		}
		if n := c.audited(t, "mallory-target", certportal.ActionSignInFailed, "wrong password"); n != 5 {
			t.Errorf("%d passwords were checked and found wrong, want exactly 5", n)
		}
		if n := c.audited(t, "mallory-target", certportal.ActionSignInFailed, "locked"); n != guesses-5+1 {
			t.Errorf("%d attempts refused unchecked, want %d", n, guesses-5+1)
		}
		if n := c.audited(t, "mallory-target", certportal.ActionLockout, ""); n != 1 {
			t.Errorf("%d lockout records, want 1", n)
		}
		if n := c.mails(t, lockoutMail); n != 1 {
			t.Errorf("%d lockout mails, want 1", n)
		}
	})
}

// TestLockoutBoundaries pins the numbers: the 4th failure does not lock,
// the 5th does; the lock lasts 15 minutes to the second; failures older
// than 15 minutes do not count.
func TestLockoutBoundaries(t *testing.T) {
	c := newCluster(t, "sqlite")
	ctx := context.Background()
	svc := c.svc(0)
	c.addUser(t, "bob")
	right := "account password bob"
	fail := func(n int, remote string) {
		t.Helper()
		for i := range n {
			if _, err := svc.PasswordSignIn(ctx, "bob", "wrong password!", remote); certportal.ErrorCodeOf(err) != certportal.Unauthorized {
				t.Fatalf("failure %d: %v", i+1, err)
			}
		}
	}
	// Four failures, then the right password: signed in, and the count
	// starts again.
	fail(4, "10.1.0.1")
	if _, err := svc.PasswordSignIn(ctx, "bob", right, "10.1.0.1"); err != nil {
		t.Fatalf("the right password after 4 failures: %v", err)
	}
	if n := c.audited(t, "bob", certportal.ActionLockout, ""); n != 0 {
		t.Fatalf("4 failures locked the ID")
	}
	// Five failures lock; the sixth attempt is not even checked.
	fail(5, "10.1.0.1")
	if n := c.audited(t, "bob", certportal.ActionLockout, ""); n != 1 {
		t.Fatalf("after the 5th failure: %d lockout records, want 1", n)
	}
	if _, err := svc.PasswordSignIn(ctx, "bob", right, "10.1.0.1"); certportal.ErrorCodeOf(err) != certportal.Unauthorized {
		t.Fatalf("the right password after the 5th failure: %v, want Unauthorized", err)
	}
	c.clock.Advance(15*time.Minute - time.Second)
	if _, err := svc.PasswordSignIn(ctx, "bob", right, "10.1.0.1"); certportal.ErrorCodeOf(err) != certportal.Unauthorized {
		t.Fatalf("the right password 1 s before the lock ends: %v, want Unauthorized", err)
	}
	c.clock.Advance(time.Second)
	if _, err := svc.PasswordSignIn(ctx, "bob", right, "10.1.0.1"); err != nil {
		t.Fatalf("the right password when the lock ends: %v", err)
	}
	// The window: 4 failures, 15 minutes pass, then 4 more do not lock.
	fail(4, "10.1.0.2")
	c.clock.Advance(15*time.Minute + time.Second)
	fail(4, "10.1.0.2")
	if _, err := svc.PasswordSignIn(ctx, "bob", right, "10.1.0.2"); err != nil {
		t.Fatalf("failures older than the window counted: %v", err)
	}
	if n := c.mails(t, lockoutMail); n != 1 {
		t.Errorf("%d lockout mails, want 1", n)
	}
}

// TestIPv6LockoutByPrefix: addresses of one /64 share a counter; another
// /64 does not.
func TestIPv6LockoutByPrefix(t *testing.T) {
	c := newCluster(t, "sqlite")
	ctx := context.Background()
	svc := c.svc(0)
	c.addUser(t, "carol")
	for i := range 5 {
		remote := fmt.Sprintf("2001:db8:1:2::%x", i+1)
		if _, err := svc.PasswordSignIn(ctx, "carol", "wrong password!", remote); certportal.ErrorCodeOf(err) != certportal.Unauthorized {
			t.Fatal(err)
		}
	}
	if _, err := svc.PasswordSignIn(ctx, "carol", "account password carol", "2001:db8:1:2:ffff:1:2:3"); certportal.ErrorCodeOf(err) != certportal.Unauthorized {
		t.Fatalf("another address of the locked /64 got in: %v", err)
	}
	if _, err := svc.PasswordSignIn(ctx, "carol", "account password carol", "2001:db8:1:3::1"); err != nil {
		t.Fatalf("an address of another /64: %v", err)
	}
}

// TestPasswordChangeSharesTheLockout: with a stolen session, the current
// password cannot be guessed without limit, and the guesses lock /login
// too.
func TestPasswordChangeSharesTheLockout(t *testing.T) {
	eachDatabase(t, func(t *testing.T, c *cluster) {
		ctx := context.Background()
		c.addUser(t, "dan")
		var wg sync.WaitGroup
		for i := range 20 {
			wg.Go(func() {
				err := c.svc(i).ChangePassword(ctx, "dan", fmt.Sprintf("guess number %02d", i), "a brand new password", "198.51.100.4", "")
				if certportal.ErrorCodeOf(err) != certportal.Unauthorized {
					t.Errorf("guess %d: %v, want Unauthorized", i, err)
				}
			})
		}
		wg.Wait()
		err := c.svc(0).ChangePassword(ctx, "dan", "account password dan", "a brand new password", "198.51.100.4", "")
		if certportal.ErrorCodeOf(err) != certportal.Unauthorized {
			t.Fatalf("the right current password after 20 guesses: %v, want Unauthorized", err)
		}
		if _, err := c.svc(1).PasswordSignIn(ctx, "dan", "account password dan", "198.51.100.4"); certportal.ErrorCodeOf(err) != certportal.Unauthorized {
			t.Fatalf("/login after /password guesses: %v, want Unauthorized", err)
		}
		if n := c.audited(t, "dan", certportal.ActionSignInFailed, "wrong password"); n != 5 {
			t.Errorf("%d passwords checked, want 5", n)
		}
		if n := c.mails(t, lockoutMail); n != 1 {
			t.Errorf("%d lockout mails, want 1", n)
		}
	})
}

var tempPasswordLine = regexp.MustCompile(`(?m)^Temporary password: (\S+)\r?$`)

// lastTempPassword returns the temporary password of the newest mail that
// carries one.
func (c *cluster) lastTempPassword(t *testing.T) string {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(c.outbox, "*.eml"))
	var newest time.Time
	pw := ""
	for _, f := range files {
		b, _ := os.ReadFile(f)
		fi, _ := os.Stat(f)
		if m := tempPasswordLine.FindSubmatch(b); m != nil && !fi.ModTime().Before(newest) {
			newest, pw = fi.ModTime(), string(m[1])
		}
	}
	if pw == "" {
		t.Fatal("no temporary password in the outbox")
	}
	return pw
}

// TestRecoveryTicketsDieWithThePassword is the review's bypass: five
// tickets, then five confirmations, at once on two replicas: one
// recovery, one mail; the other tickets were made under the old password
// and are dead.
func TestRecoveryTicketsDieWithThePassword(t *testing.T) {
	eachDatabase(t, func(t *testing.T, c *cluster) {
		ctx := context.Background()
		c.addUser(t, "erin")
		var tickets []string
		for i := range 5 {
			_, tk, err := c.svc(i).RecoverBegin(ctx, "erin", "account password erin", "203.0.113.9")
			if err != nil {
				t.Fatal(err)
			}
			tickets = append(tickets, tk)
		}
		if n := c.audited(t, "erin", certportal.ActionRecoveryStarted, ""); n != 5 {
			t.Errorf("%d recovery.started records, want 5", n)
		}
		var wg sync.WaitGroup
		var mu sync.Mutex
		ok := 0
		for i, tk := range tickets {
			wg.Go(func() {
				_, err := c.svc(i).RecoverConfirm(ctx, tk, "203.0.113.9")
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil:
					ok++
				case certportal.ErrorCodeOf(err) == certportal.Invalid:
				default:
					t.Errorf("confirmation %d: %v", i, err)
				}
			})
		}
		wg.Wait()
		if ok != 1 {
			t.Errorf("%d recoveries from 5 tickets, want 1", ok)
		}
		if n := c.mails(t, "Temporary password: "); n != 1 {
			t.Errorf("%d temporary-password mails, want 1", n)
		}
		// A ticket made before a password change dies with it.
		temp := c.lastTempPassword(t)
		_, tk, err := c.svc(0).RecoverBegin(ctx, "erin", temp, "203.0.113.9")
		if err != nil {
			t.Fatal(err)
		}
		if err := c.svc(1).ChangePassword(ctx, "erin", temp, "erin's own new password", "203.0.113.9", ""); err != nil {
			t.Fatal(err)
		}
		if _, err := c.svc(0).RecoverConfirm(ctx, tk, "203.0.113.9"); certportal.ErrorCodeOf(err) != certportal.Invalid {
			t.Fatalf("a ticket from before the password change: %v, want Invalid", err)
		}
	})
}

// TestRecoveryLimitBoundary: the 3rd recovery of a day passes, the 4th is
// refused; a day later recovery works again.
func TestRecoveryLimitBoundary(t *testing.T) {
	c := newCluster(t, "sqlite")
	ctx := context.Background()
	svc := c.svc(0)
	c.addUser(t, "fay")
	pw := "account password fay"
	for i := range 3 {
		_, tk, err := svc.RecoverBegin(ctx, "fay", pw, "10.2.0.1")
		if err != nil {
			t.Fatalf("recovery %d: %v", i+1, err)
		}
		if _, err := svc.RecoverConfirm(ctx, tk, "10.2.0.1"); err != nil {
			t.Fatalf("recovery %d: %v", i+1, err)
		}
		c.clock.Advance(time.Second) // mail files are told apart by time
		pw = c.lastTempPassword(t)
	}
	if _, _, err := svc.RecoverBegin(ctx, "fay", pw, "10.2.0.1"); certportal.ErrorCodeOf(err) != certportal.RateLimited {
		t.Fatalf("4th recovery in a day: %v, want RateLimited", err)
	}
	c.clock.Advance(24 * time.Hour)
	if _, _, err := svc.RecoverBegin(ctx, "fay", pw, "10.2.0.1"); err != nil {
		t.Fatalf("a day later: %v", err)
	}
}

// TestTicketExpiryBoundary: a ticket is good for 5 minutes: at 4:59 it
// completes a recovery, at 5:00 it does not.
func TestTicketExpiryBoundary(t *testing.T) {
	c := newCluster(t, "sqlite")
	ctx := context.Background()
	svc := c.svc(0)
	c.addUser(t, "gil")
	_, tk, err := svc.RecoverBegin(ctx, "gil", "account password gil", "10.3.0.1")
	if err != nil {
		t.Fatal(err)
	}
	c.clock.Advance(5 * time.Minute)
	if _, err := svc.RecoverConfirm(ctx, tk, "10.3.0.1"); certportal.ErrorCodeOf(err) != certportal.Invalid {
		t.Fatalf("a ticket at 5:00: %v, want Invalid", err)
	}
	_, tk, err = svc.RecoverBegin(ctx, "gil", "account password gil", "10.3.0.1")
	if err != nil {
		t.Fatal(err)
	}
	c.clock.Advance(5*time.Minute - time.Second)
	if _, err := svc.RecoverConfirm(ctx, tk, "10.3.0.1"); err != nil {
		t.Fatalf("a ticket at 4:59: %v", err)
	}
}

// TestSessionLimits pins the session rules: idle 30 minutes, 12 hours in
// all, 20 per account (the oldest ends), also with many sign-ins at once
// on two replicas.
func TestSessionLimits(t *testing.T) {
	eachDatabase(t, func(t *testing.T, c *cluster) {
		ctx := context.Background()
		c.addUser(t, "hal")
		acc, err := c.svc(0).Account(ctx, "hal")
		if err != nil {
			t.Fatal(err)
		}
		alive := func(token string) bool {
			_, _, err := c.svc(1).Session(ctx, token)
			if err != nil && certportal.ErrorCodeOf(err) != certportal.Unauthorized {
				t.Fatal(err)
			}
			return err == nil
		}
		// Idle: used at 29:59 it lives; left for 30:00 it ends.
		tok, err := c.svc(0).NewSession(ctx, acc, nil, "10.4.0.1", "")
		if err != nil {
			t.Fatal(err)
		}
		c.clock.Advance(30*time.Minute - time.Second)
		if !alive(tok) {
			t.Fatal("a session ended after 29:59 idle")
		}
		c.clock.Advance(30 * time.Minute)
		if alive(tok) {
			t.Fatal("a session lived after 30:00 idle")
		}
		// Absolute: used every 20 minutes, it lives until 12 h.
		tok, err = c.svc(0).NewSession(ctx, acc, nil, "10.4.0.1", "")
		if err != nil {
			t.Fatal(err)
		}
		for range 12*3 - 1 {
			c.clock.Advance(20 * time.Minute)
			if !alive(tok) {
				t.Fatal("a session in use ended before 12 h")
			}
		}
		c.clock.Advance(20*time.Minute - time.Second)
		if !alive(tok) {
			t.Fatal("a session ended at 11:59:59")
		}
		c.clock.Advance(time.Second)
		if alive(tok) {
			t.Fatal("a session lived at 12:00:00")
		}
		// 20 at most: 40 sign-ins at once keep exactly 20.
		const n = 40
		tokens := make([]string, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				tok, err := c.svc(i).NewSession(ctx, acc, nil, "10.4.0.1", "")
				if err != nil {
					t.Error(err)
				}
				tokens[i] = tok
			})
		}
		wg.Wait()
		living := 0
		for _, tok := range tokens {
			if alive(tok) {
				living++
			}
		}
		if living != 20 {
			t.Errorf("%d sessions live after %d sign-ins, want 20", living, n)
		}
		// One more ends exactly the oldest.
		c.clock.Advance(time.Second)
		var first []string
		for range 20 {
			c.clock.Advance(time.Millisecond)
			tok, err := c.svc(0).NewSession(ctx, acc, nil, "10.4.0.1", "")
			if err != nil {
				t.Fatal(err)
			}
			first = append(first, tok)
		}
		c.clock.Advance(time.Millisecond)
		if _, err := c.svc(1).NewSession(ctx, acc, nil, "10.4.0.1", ""); err != nil {
			t.Fatal(err)
		}
		if alive(first[0]) {
			t.Error("the oldest session lived on as the 21st began")
		}
		if !alive(first[1]) {
			t.Error("the second oldest session ended with the 21st")
		}
	})
}

// TestAdminRevocationEndsPasswordSessions: a password session (the one
// that asked for the certificate) ends when an administrator revokes the
// certificate, for any reason.
func TestAdminRevocationEndsPasswordSessions(t *testing.T) {
	eachDatabase(t, func(t *testing.T, c *cluster) {
		ctx := context.Background()
		c.addUser(t, "ivy")
		acc, err := c.svc(0).PasswordSignIn(ctx, "ivy", "account password ivy", "10.5.0.1")
		if err != nil {
			t.Fatal(err)
		}
		tok, err := c.svc(0).NewSession(ctx, acc, nil, "10.5.0.1", "")
		if err != nil {
			t.Fatal(err)
		}
		res, err := c.svc(0).Issue(ctx, portal.User("ivy", "10.5.0.1"), portal.IssueRequest{ID: "ivy", P12Password: p12pw, KeepSession: portal.SessionID(tok)})
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := c.svc(1).Session(ctx, tok); err != nil {
			t.Fatalf("the session that asked for the certificate: %v", err)
		}
		if _, err := c.svc(1).Revoke(ctx, portal.Admin, res.Cert.Serial, certportal.ReasonKeyCompromise); err != nil {
			t.Fatal(err)
		}
		if _, _, err := c.svc(0).Session(ctx, tok); certportal.ErrorCodeOf(err) != certportal.Unauthorized {
			t.Fatalf("a password session after keyCompromise: %v, want Unauthorized", err)
		}
	})
}
