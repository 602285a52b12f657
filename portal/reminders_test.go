package portal_test

import (
	"context"
	"fmt"
	"io"
	"net/mail"
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
	certmail "github.com/certportal/certportal/mail"
	"github.com/certportal/certportal/portal"
	"github.com/certportal/certportal/postgres"
)

// reminder is one reminder mail found in an outbox.
type reminder struct {
	to, subject, serial string
}

var serialLine = regexp.MustCompile(`(?m)^  Serial:       ([0-9A-F]+)\r?$`)

// reminders reads the reminder mails of an outbox directory.
func reminders(t *testing.T, dir string) []reminder {
	t.Helper()
	names, _ := filepath.Glob(filepath.Join(dir, "*.eml"))
	var out []reminder
	for _, n := range names {
		f, err := os.Open(n)
		if err != nil {
			t.Fatal(err)
		}
		m, err := mail.ReadMessage(f)
		if err != nil {
			f.Close()
			t.Fatalf("%s: %v", n, err)
		}
		body, err := io.ReadAll(m.Body)
		f.Close()
		if err != nil {
			t.Fatalf("%s: %v", n, err)
		}
		subject := m.Header.Get("Subject")
		if !strings.HasPrefix(subject, "Your certificate for the portal expires") {
			continue
		}
		s := serialLine.FindStringSubmatch(string(body))
		if s == nil {
			t.Fatalf("%s: a reminder without a serial line:\n%s", n, body)
		}
		out = append(out, reminder{to: m.Header.Get("To"), subject: subject, serial: s[1]})
	}
	return out
}

func TestSendReminders(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	clock := e.withClock(time.Now().UTC().Truncate(time.Second))
	for _, id := range []string{"ann", "bob", "cid"} {
		e.addUser(t, id)
		if _, err := e.svc.Issue(ctx, portal.Admin, portal.IssueRequest{ID: id, P12Password: p12pw}); err != nil {
			t.Fatal(err)
		}
	}
	cur, _ := e.svc.CurrentCertificate(ctx, "ann")
	// bob's certificate is revoked and cid's account cancelled: neither is
	// reminded. (All three were issued at the same instant.)
	if _, err := e.svc.Revoke(ctx, portal.Admin, mustCurrent(t, e, "bob").Serial, certportal.ReasonKeyCompromise); err != nil {
		t.Fatal(err)
	}
	if err := e.svc.CancelUser(ctx, portal.Admin, "cid"); err != nil {
		t.Fatal(err)
	}
	day := 24 * time.Hour
	steps := []struct {
		name    string
		before  time.Duration // before notAfter
		sent    int
		subject string
	}{
		{"40 days before", 40 * day, 0, ""},
		{"29 days before", 29 * day, 1, "expires in 29 days"},
		{"29 days before, again", 29 * day, 0, ""},
		{"10 days before", 10 * day, 0, ""},
		{"6 days and 1 hour before", 6*day + time.Hour, 1, "expires in 7 days"},
		{"12 hours before", 12 * time.Hour, 1, "expires within a day"},
		{"1 hour before", time.Hour, 0, ""},
		{"after expiry", -time.Hour, 0, ""},
	}
	total := 0
	for _, st := range steps {
		clock.Set(cur.NotAfter.Add(-st.before))
		n, err := e.svc.SendReminders(ctx)
		if err != nil || n != st.sent {
			t.Fatalf("%s: SendReminders = %d, %v; want %d", st.name, n, err, st.sent)
		}
		total += n
		got := reminders(t, e.outbox)
		if len(got) != total {
			t.Fatalf("%s: %d reminders in the outbox, want %d", st.name, len(got), total)
		}
		if st.sent > 0 {
			last := got[len(got)-1]
			if last.to != "<ann@example.com>" || last.serial != cur.Serial || !strings.Contains(last.subject, st.subject) {
				t.Errorf("%s: reminder to %s for %s, %q; want to ann@example.com for %s, %q", st.name, last.to, last.serial, last.subject, cur.Serial, st.subject)
			}
		}
	}
	if n := countAudit(t, e.svc, certportal.ActionReminderSent); n != 3 {
		t.Errorf("%d %s audit records, want 3", n, certportal.ActionReminderSent)
	}
}

func mustCurrent(t *testing.T, e *env, id string) *certportal.Certificate {
	t.Helper()
	c, err := e.svc.CurrentCertificate(context.Background(), id)
	if err != nil || c == nil {
		t.Fatalf("current certificate of %s: %v, %v", id, c, err)
	}
	return c
}

// TestRemindersRetryAfterMailFailure: a reminder that cannot be sent is
// not marked sent, is audited as a failed mail, and goes out at the next
// run once mail works again.
func TestRemindersRetryAfterMailFailure(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	clock := e.withClock(time.Now().UTC().Truncate(time.Second))
	e.addUser(t, "dee")
	res, err := e.svc.Issue(ctx, portal.Admin, portal.IssueRequest{ID: "dee", P12Password: p12pw})
	if err != nil {
		t.Fatal(err)
	}
	clock.Set(res.Cert.NotAfter.Add(-3 * 24 * time.Hour))
	// An outbox under a regular file cannot be written: a real failure.
	blocker := filepath.Join(e.dir, "not-a-directory")
	if err := os.WriteFile(blocker, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	working := e.svc.Mailer
	e.svc.Mailer = &certmail.Outbox{Dir: filepath.Join(blocker, "outbox")}
	n, err := e.svc.SendReminders(ctx)
	if n != 0 || certportal.ErrorCodeOf(err) != certportal.Unavailable {
		t.Fatalf("SendReminders with a broken mailer = %d, %v; want 0 and Unavailable", n, err)
	}
	if got := countAudit(t, e.svc, certportal.ActionReminderSent); got != 0 {
		t.Errorf("%d reminders audited as sent after a failed send", got)
	}
	if got := countAudit(t, e.svc, certportal.ActionMailFailed); got != 1 {
		t.Errorf("%d failed mails audited, want 1", got)
	}
	e.svc.Mailer = working
	if n, err := e.svc.SendReminders(ctx); n != 1 || err != nil {
		t.Fatalf("SendReminders once mail works = %d, %v; want 1", n, err)
	}
	if got := reminders(t, e.outbox); len(got) != 1 || !strings.Contains(got[0].subject, "expires in 3 days") {
		t.Errorf("reminders after the retry: %+v, want one that says 3 days", got)
	}
}

func TestRemindersConfigured(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name string
		days []int
		want int // reminders sent over the steps below
	}{
		{"default", nil, 3},
		{"none", []int{}, 0},
		{"one, duplicated, and junk", []int{14, 14, 0, -3}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			e.svc.Config.ReminderDays = tt.days
			clock := e.withClock(time.Now().UTC().Truncate(time.Second))
			e.addUser(t, "eve")
			res, err := e.svc.Issue(ctx, portal.Admin, portal.IssueRequest{ID: "eve", P12Password: p12pw})
			if err != nil {
				t.Fatal(err)
			}
			total := 0
			day := 24 * time.Hour
			for _, before := range []time.Duration{29 * day, 13 * day, 6 * day, 12 * time.Hour} {
				clock.Set(res.Cert.NotAfter.Add(-before))
				n, err := e.svc.SendReminders(ctx)
				if err != nil {
					t.Fatal(err)
				}
				total += n
			}
			if total != tt.want {
				t.Errorf("%d reminders with reminder_days %v, want %d", total, tt.days, tt.want)
			}
		})
	}
}

// TestRemindersTwoReplicasPostgres runs two portal replicas (two Services
// on two PostgreSQL pools, one database, one outbox) that send reminders
// concurrently, many times, while the clock passes every threshold: each
// reminder goes out exactly once and is audited exactly once.
func TestRemindersTwoReplicasPostgres(t *testing.T) {
	ctx := context.Background()
	dsn := pgtest.FreshDatabase(t)
	e := newEnv(t) // for the CA and the outbox directory
	var replicas []*portal.Service
	for range 2 {
		db, err := postgres.Open(ctx, dsn, len(replicas) == 0)
		if err != nil {
			t.Fatalf("opening PostgreSQL: %v", err)
		}
		t.Cleanup(func() { db.Close() })
		auth, err := ca.Load(filepath.Join(e.dir, "ca"), "http://localhost:8080")
		if err != nil {
			t.Fatal(err)
		}
		svc := portal.New(db, auth, &certmail.Outbox{Dir: e.outbox}, portal.Config{}, nil)
		replicas = append(replicas, svc)
	}
	start := time.Now().UTC().Truncate(time.Second)
	clock := testpki.NewClock(start)
	for _, r := range replicas {
		r.Now, r.CA.Now = clock.Now, clock.Now
	}
	const users = 8
	var notAfter time.Time
	for i := range users {
		id := fmt.Sprintf("user%d", i)
		if _, _, err := replicas[0].AddUser(ctx, portal.Admin, id, id+"@example.com", "account password "+id); err != nil {
			t.Fatal(err)
		}
		res, err := replicas[i%2].Issue(ctx, portal.Admin, portal.IssueRequest{ID: id, P12Password: p12pw})
		if err != nil {
			t.Fatal(err)
		}
		notAfter = res.Cert.NotAfter
	}
	day := 24 * time.Hour
	total := 0
	for _, before := range []time.Duration{29 * day, 6 * day, 12 * time.Hour} {
		clock.Set(notAfter.Add(-before))
		var wg sync.WaitGroup
		var mu sync.Mutex
		for w := range 8 {
			wg.Go(func() {
				for range 3 {
					n, err := replicas[w%2].SendReminders(ctx)
					if err != nil {
						t.Errorf("replica %d: SendReminders: %v", w%2, err)
						return
					}
					mu.Lock()
					total += n
					mu.Unlock()
				}
			})
		}
		wg.Wait()
	}
	const want = users * 3
	if total != want {
		t.Errorf("SendReminders reported %d reminders sent in all, want %d", total, want)
	}
	got := reminders(t, e.outbox)
	seen := map[string]int{}
	for _, r := range got {
		seen[r.serial+" "+r.subject]++
	}
	if len(got) != want || len(seen) != want {
		t.Errorf("%d reminder mails, %d distinct (certificate, threshold); want %d of each", len(got), len(seen), want)
	}
	for k, n := range seen {
		if n != 1 {
			t.Errorf("reminder %q sent %d times", k, n)
		}
	}
	if n := countAudit(t, replicas[1], certportal.ActionReminderSent); n != want {
		t.Errorf("%d %s audit records, want %d", n, certportal.ActionReminderSent, want)
	}
	events, _ := replicas[0].Audit(ctx, certportal.AuditFilter{})
	if bad, err := certportal.VerifyAuditChain(events); err != nil {
		t.Errorf("audit chain broken at %d: %v", bad, err)
	}
}
