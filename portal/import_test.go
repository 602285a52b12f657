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
	"github.com/certportal/certportal/mail"
	"github.com/certportal/certportal/portal"
)

func TestParseAccountsCSV(t *testing.T) {
	ok := []struct {
		name, csv string
		want      string // id/email/role;...
	}{
		{"plain", "alice,alice@example.com\nbob,bob@example.com,helpdesk\n", "alice/alice@example.com/user;bob/bob@example.com/helpdesk"},
		{"header, BOM, CRLF, spaces", "\xef\xbb\xbfid,email,role\r\n alice , alice@example.com , ADMIN \r\n", "alice/alice@example.com/admin"},
		{"quoted, empty role, blank last line", "\"carol\",\"carol@example.com\",\n\n", "carol/carol@example.com/user"},
	}
	for _, tc := range ok {
		rows, err := portal.ParseAccountsCSV(strings.NewReader(tc.csv))
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		var got []string
		for _, r := range rows {
			got = append(got, r.ID+"/"+r.Email+"/"+string(r.Role))
		}
		if strings.Join(got, ";") != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, strings.Join(got, ";"), tc.want)
		}
	}
	bad := []struct {
		name, csv, want string
	}{
		{"invalid e-mail", "alice,alice@example.com\nbob,not-an-address\n", "line 2: "},
		{"e-mail with a space", "id,email\nalice,alice @example.com\n", "line 2: "},
		{"duplicate ID, other case", "alice,a@example.com\nbob,b@example.com\nALICE,c@example.com\n", `line 3: the user ID "ALICE" is on line 1 already`},
		{"unknown role", "alice,a@example.com,root\n", `line 1: unknown role "root"`},
		{"formula in the ID", "\"=HYPERLINK(\"\"http://evil.example/\"\")\",a@example.com\n", `line 1: the cell "=HYPERLINK(\"http://evil.example/\")" starts with "="`},
		{"formula in the e-mail", "alice,@SUM(1+1)\n", "line 1: the cell \"@SUM(1+1)\" starts with \"@\""},
		{"formula in the role", "alice,a@example.com,+user\n", "starts with \"+\""},
		{"leading minus", "-alice,a@example.com\n", "starts with \"-\""},
		{"leading tab", "\talice,a@example.com\n", "starts with \"\\t\""},
		{"bad ID", "a b,a@example.com\n", "line 1: the user ID \"a b\" may contain only"},
		{"one column", "alice\n", "line 1: a row has 2 or 3 columns"},
		{"four columns", "alice,a@example.com,user,x\n", "this one has 4"},
		{"bad quoting", "alice,a@example.com\nbob,\"b@example.com\n", "line 2: the CSV is malformed"},
		{"empty", "", "holds no accounts"},
		{"header only", "id,email,role\n", "holds no accounts"},
	}
	for _, tc := range bad {
		rows, err := portal.ParseAccountsCSV(strings.NewReader(tc.csv))
		if err == nil || certportal.ErrorCodeOf(err) != certportal.Invalid || !strings.Contains(certportal.ErrorMessage(err), tc.want) {
			t.Errorf("%s: rows %v, err %v; want Invalid with %q", tc.name, rows, err, tc.want)
		}
	}
}

// mailsTo reads the .eml outbox: the files per recipient, and each
// temporary password.
func mailsTo(t *testing.T, dir string) (files map[string][]string, passwords map[string]string) {
	t.Helper()
	files, passwords = map[string][]string{}, map[string]string{}
	names, _ := filepath.Glob(filepath.Join(dir, "*.eml"))
	to := regexp.MustCompile(`(?m)^To: <?([^>\r\n]+)>?\r?$`)
	pw := regexp.MustCompile(`(?m)^Temporary password: (\S+)\r?$`)
	for _, n := range names {
		b, err := os.ReadFile(n)
		if err != nil {
			t.Fatal(err)
		}
		m := to.FindSubmatch(b)
		if m == nil {
			t.Fatalf("%s has no To line", n)
		}
		addr := string(m[1])
		files[addr] = append(files[addr], filepath.Base(n))
		if p := pw.FindSubmatch(b); p != nil {
			passwords[addr] = string(p[1])
		}
	}
	return files, passwords
}

func csvOf(ids ...string) string {
	var b strings.Builder
	b.WriteString("id,email,role\n")
	for _, id := range ids {
		fmt.Fprintf(&b, "%s,%s@example.com,user\n", id, strings.ToLower(id))
	}
	return b.String()
}

func importCSV(t *testing.T, e *env, csv string) error {
	t.Helper()
	rows, err := portal.ParseAccountsCSV(strings.NewReader(csv))
	if err != nil {
		t.Fatalf("parsing: %v", err)
	}
	return e.svc.Import(context.Background(), portal.Admin, "test.csv", rows)
}

// TestImportAllOrNothing: an ID that is taken fails the import at its
// line, and nothing of the rows before it is kept: no account, no audit
// record, no queued mail.
func TestImportAllOrNothing(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.addUser(t, "taken")
	before, _ := e.svc.Audit(ctx, certportal.AuditFilter{})
	err := importCSV(t, e, csvOf("new1", "new2", "TAKEN", "new3"))
	if certportal.ErrorCodeOf(err) != certportal.Conflict || !strings.Contains(certportal.ErrorMessage(err), `line 4: the user ID "TAKEN" is taken`) {
		t.Fatalf("import with a taken ID: %v; want Conflict naming line 4", err)
	}
	for _, id := range []string{"new1", "new2", "new3"} {
		if _, err := e.svc.Account(ctx, id); certportal.ErrorCodeOf(err) != certportal.NotFound {
			t.Errorf("%s exists after the failed import (%v)", id, err)
		}
	}
	after, _ := e.svc.Audit(ctx, certportal.AuditFilter{})
	if len(after) != len(before) {
		t.Errorf("the failed import left %d audit records", len(after)-len(before))
	}
	if ov, err := e.svc.ConsoleOverview(ctx); err != nil || ov.PendingMail != 0 {
		t.Errorf("the failed import queued mail: %+v, %v", ov, err)
	}
}

// TestImport10000 imports 10,000 rows in one call (one transaction): every
// account is there, with a queued mail each, and no mail was sent while
// the import ran.
func TestImport10000(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	ids := make([]string, 10_000)
	for i := range ids {
		ids[i] = fmt.Sprintf("bulk%05d", i)
	}
	start := time.Now()
	if err := importCSV(t, e, csvOf(ids...)); err != nil {
		t.Fatal(err)
	}
	t.Logf("10,000 accounts imported in %v", time.Since(start))
	ov, err := e.svc.ConsoleOverview(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if ov.Accounts != 10_000 || ov.PendingMail != 10_000 {
		t.Errorf("after the import: %d accounts, %d queued mails; want 10,000 each", ov.Accounts, ov.PendingMail)
	}
	if files, _ := mailsTo(t, e.outbox); len(files) != 0 {
		t.Errorf("the import sent %d mails itself; they are the sender's job", len(files))
	}
	acc, err := e.svc.Account(ctx, "BULK09999")
	if err != nil || acc.PasswordHash != "" || acc.Method != certportal.MethodPassword || acc.RoleOf() != certportal.RoleUser {
		t.Errorf("an imported account: %+v, %v; want method password, no password before its mail", acc, err)
	}
	list, _ := e.svc.AuditLog(ctx, certportal.AuditQuery{Action: certportal.ActionAccountsImported})
	if len(list) != 1 || list[0].Detail != "10000 accounts from test.csv" {
		t.Errorf("import audit records: %+v", list)
	}
}

// clock is a settable clock for the service.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// mailerFunc adapts a function to certportal.Mailer.
type mailerFunc func(context.Context, certportal.Mail) error

func (f mailerFunc) Send(ctx context.Context, m certportal.Mail) error { return f(ctx, m) }

// TestOutboxCrashSafety simulates a crash at each step of a mail's way out
// and restarts the sender (a new Service on the same database, as a new
// process would be): every new user ends with exactly one mail in the .eml
// outbox, and the password in it signs in.
func TestOutboxCrashSafety(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	clk := &clock{t: time.Now().UTC()}
	e.svc.Now = clk.Now
	box := &mail.Outbox{Dir: e.outbox}
	if err := importCSV(t, e, csvOf("crash1", "crash2", "crash3", "crash4")); err != nil {
		t.Fatal(err)
	}

	// A new process on the same database and outbox; its mailer is given.
	restart := func(m certportal.Mailer) *portal.Service {
		s := portal.New(e.svc.Store, e.svc.CA, m, portal.Config{}, nil)
		s.Now = clk.Now
		return s
	}

	// 1. Crash after the commit, before anything was sent: the import
	// above queued the mails and nothing ran.
	// 2. Crash while sending crash1's mail (after its password was made
	// and written into the outbox): the mailer never returns; the
	// process dies (its context ends, so nothing more is recorded).
	dying, die := context.WithCancel(ctx)
	s := restart(mailerFunc(func(ctx context.Context, m certportal.Mail) error {
		die()
		<-ctx.Done()
		return ctx.Err()
	}))
	if n, _ := s.SendQueuedMail(dying); n != 0 {
		t.Fatalf("the dying sender reports %d mails sent", n)
	}
	// 3. Crash after crash2's mail went out, before it was marked sent.
	clk.Add(6 * time.Minute) // crash1's lease lapses
	var sentOnce []string
	dying, die = context.WithCancel(ctx)
	s = restart(mailerFunc(func(ctx context.Context, m certportal.Mail) error {
		if err := box.Send(ctx, m); err != nil {
			return err
		}
		sentOnce = append(sentOnce, m.To[0])
		die() // the process dies before MailSent commits
		return nil
	}))
	s.SendQueuedMail(dying) //nolint:errcheck // dies on purpose
	if len(sentOnce) != 1 {
		t.Fatalf("the second dying sender sent %v, want one mail", sentOnce)
	}
	files, first := mailsTo(t, e.outbox)
	if len(files) != 1 {
		t.Fatalf("outbox after the crashes: %v", files)
	}

	// The restarted sender, after the leases lapsed, sends the rest.
	clk.Add(6 * time.Minute)
	s = restart(box)
	n, err := s.SendQueuedMail(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n != 4 {
		t.Errorf("the restarted sender sent %d mails, want 4 (one of them again)", n)
	}
	if n, _ := s.SendQueuedMail(ctx); n != 0 {
		t.Errorf("a second run sent %d more", n)
	}
	files, passwords := mailsTo(t, e.outbox)
	for _, id := range []string{"crash1", "crash2", "crash3", "crash4"} {
		addr := id + "@example.com"
		if len(files[addr]) != 1 {
			t.Errorf("%s: %d mails in the outbox (%v), want exactly one", id, len(files[addr]), files[addr])
			continue
		}
		if _, err := s.PasswordSignIn(ctx, id, passwords[addr], "192.0.2.1"); err != nil {
			t.Errorf("%s: the mailed temporary password does not sign in: %v", id, err)
		}
	}
	// The mail sent twice was the same message: the same password.
	if again := passwords[sentOnce[0]]; again != first[sentOnce[0]] {
		t.Errorf("the mail sent again carries another password")
	}
	// Its body left the database once sent.
	_ = s.Store.View(ctx, func(tx certportal.Tx) error {
		for _, id := range []string{"crash1", "crash2"} {
			list, err := tx.QueuedMails(ctx, id)
			if err != nil || len(list) != 1 || list[0].Sent.IsZero() || list[0].Body != "" {
				t.Errorf("%s's queued mail after sending: %+v, %v; want sent, body erased", id, list, err)
			}
		}
		return nil
	})
}

// TestMailSenderHoldsNoLock: while the sender waits for a slow mail
// server, other changes commit (on SQLite, whose write lock is one for the
// whole database), and a failed send is retried later, not lost.
func TestMailSenderHoldsNoLock(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	clk := &clock{t: time.Now().UTC()}
	e.svc.Now = clk.Now
	if err := importCSV(t, e, csvOf("slow1")); err != nil {
		t.Fatal(err)
	}
	inSend, release := make(chan struct{}), make(chan struct{})
	e.svc.Mailer = mailerFunc(func(ctx context.Context, m certportal.Mail) error {
		close(inSend)
		<-release
		return certportal.Errorf(certportal.Unavailable, "the mail server is down")
	})
	done := make(chan error, 1)
	go func() { _, err := e.svc.SendQueuedMail(ctx); done <- err }()
	<-inSend
	if _, _, err := e.svc.AddUser(ctx, portal.Admin, "meanwhile", "m@example.com", "a password 123"); err != nil {
		t.Fatalf("a change while the sender sends: %v", err)
	}
	close(release)
	if err := <-done; certportal.ErrorCodeOf(err) != certportal.Unavailable {
		t.Fatalf("SendQueuedMail: %v, want the mail server's failure", err)
	}
	list, _ := e.svc.AuditLog(ctx, certportal.AuditQuery{AccountID: "slow1", Action: certportal.ActionMailFailed})
	if len(list) != 1 {
		t.Errorf("the failure was audited %d times, want once", len(list))
	}
	e.svc.Mailer = &mail.Outbox{Dir: e.outbox}
	if n, _ := e.svc.SendQueuedMail(ctx); n != 0 {
		t.Errorf("retried %d mails before the retry time", n)
	}
	clk.Add(2 * time.Minute)
	if n, err := e.svc.SendQueuedMail(ctx); n != 1 || err != nil {
		t.Errorf("the retry sent %d, %v; want 1", n, err)
	}
	if files, _ := mailsTo(t, e.outbox); len(files["slow1@example.com"]) != 1 {
		t.Errorf("outbox: %v", files)
	}
}

// TestSetRole: audited with the actor, no change of one's own role, no
// change to the same role, none on a cancelled account.
func TestSetRole(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.addUser(t, "boss")
	e.addUser(t, "worker")
	if _, err := e.svc.SetRole(ctx, portal.Admin, "boss", certportal.RoleAdmin); err != nil {
		t.Fatal(err)
	}
	boss, _ := e.svc.Account(ctx, "boss")
	at := portal.Console(boss, "192.0.2.9")
	if at.Name != "admin:boss" {
		t.Errorf("console actor %q, want admin:boss", at.Name)
	}
	if _, err := e.svc.SetRole(ctx, at, "BOSS", certportal.RoleUser); certportal.ErrorCodeOf(err) != certportal.Forbidden {
		t.Errorf("changing one's own role: %v, want Forbidden", err)
	}
	if _, err := e.svc.SetRole(ctx, at, "worker", certportal.RoleHelpdesk); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.SetRole(ctx, at, "worker", certportal.RoleHelpdesk); certportal.ErrorCodeOf(err) != certportal.Conflict {
		t.Errorf("the same role again: %v, want Conflict", err)
	}
	if _, err := e.svc.SetRole(ctx, at, "worker", "root"); certportal.ErrorCodeOf(err) != certportal.Invalid {
		t.Errorf("role root: %v, want Invalid", err)
	}
	list, _ := e.svc.AuditLog(ctx, certportal.AuditQuery{AccountID: "worker", Action: certportal.ActionRoleChanged})
	if len(list) != 1 || list[0].Actor != "admin:boss" || list[0].Remote != "192.0.2.9" || list[0].Detail != "from user to helpdesk" {
		t.Errorf("role audit: %+v", list)
	}
	if err := e.svc.CancelUser(ctx, at, "worker"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.SetRole(ctx, at, "worker", certportal.RoleAdmin); certportal.ErrorCodeOf(err) != certportal.Conflict {
		t.Errorf("role of a cancelled account: %v, want Conflict", err)
	}
}
