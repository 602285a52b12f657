package portal_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/certportal/certportal"
	"github.com/certportal/certportal/ca"
	"github.com/certportal/certportal/mail"
	"github.com/certportal/certportal/portal"
	"github.com/certportal/certportal/sqlite"
)

// env is a whole portal on real parts: a CA on disk, an SQLite file and
// the .eml outbox.
type env struct {
	svc    *portal.Service
	outbox string
	dir    string
}

func newEnv(tb testing.TB) *env {
	tb.Helper()
	dir := tb.TempDir()
	caPath := filepath.Join(dir, "ca")
	if _, err := ca.Create(ca.InitOptions{Dir: caPath, URL: "http://localhost:8080"}); err != nil {
		tb.Fatal(err)
	}
	auth, err := ca.Load(caPath, "http://localhost:8080")
	if err != nil {
		tb.Fatal(err)
	}
	store, err := sqlite.Open(context.Background(), filepath.Join(dir, "db.sqlite"), true)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { store.Close() })
	outbox := filepath.Join(dir, "outbox")
	svc := portal.New(store, auth, &mail.Outbox{Dir: outbox, From: "portal@example.com", Now: time.Now}, portal.Config{}, nil)
	return &env{svc: svc, outbox: outbox, dir: dir}
}

func (e *env) addUser(tb testing.TB, id string) {
	tb.Helper()
	if _, _, err := e.svc.AddUser(context.Background(), portal.Admin, id, id+"@example.com", "account password "+id); err != nil {
		tb.Fatal(err)
	}
}

const p12pw = "a long pkcs12 password"

func TestConcurrentIssuanceKeepsOneValidCertificate(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	const accounts, issuances = 50, 200
	for i := 0; i < accounts; i++ {
		e.addUser(t, fmt.Sprintf("user%02d", i))
	}
	var wg sync.WaitGroup
	errs := make(chan error, issuances)
	serials := make(chan string, issuances)
	sem := make(chan struct{}, 16)
	for i := 0; i < issuances; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			res, err := e.svc.Issue(ctx, portal.Admin, portal.IssueRequest{ID: fmt.Sprintf("user%02d", i%accounts), P12Password: p12pw})
			if err != nil {
				errs <- err
				return
			}
			serials <- res.Cert.Serial
		}(i)
	}
	wg.Wait()
	close(errs)
	close(serials)
	for err := range errs {
		t.Fatalf("issuance failed: %v", err)
	}
	seen := map[string]bool{}
	for s := range serials {
		if seen[s] {
			t.Fatalf("serial %s issued twice", s)
		}
		seen[s] = true
	}
	if len(seen) != issuances {
		t.Fatalf("%d distinct serials, want %d", len(seen), issuances)
	}
	all, err := e.svc.Certificates(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != issuances {
		t.Fatalf("%d certificates recorded, want %d", len(all), issuances)
	}
	valid := map[string]int{}
	for _, c := range all {
		if !c.IsRevoked() {
			valid[c.AccountID]++
		} else if c.Reason != certportal.ReasonSuperseded {
			t.Errorf("certificate %s revoked with %v, want superseded", c.Serial, c.Reason)
		}
	}
	for i := 0; i < accounts; i++ {
		id := fmt.Sprintf("user%02d", i)
		if valid[id] != 1 {
			t.Errorf("%s has %d valid certificates, want exactly 1", id, valid[id])
		}
		acc, _ := e.svc.Account(ctx, id)
		if acc.Method != certportal.MethodCertificate {
			t.Errorf("%s signs in by %s after issuance", id, acc.Method)
		}
	}
	if rep, err := e.svc.VerifyAudit(ctx, nil); err != nil {
		t.Fatalf("audit chain broken: %v (%+v)", err, rep)
	}
}

func TestCancelRevokesWithCessation(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.addUser(t, "carol")
	res, err := e.svc.Issue(ctx, portal.Admin, portal.IssueRequest{ID: "carol", P12Password: p12pw})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.svc.CancelUser(ctx, portal.Admin, "CAROL"); err != nil {
		t.Fatal(err)
	}
	list, _ := e.svc.Certificates(ctx, "carol")
	if len(list) != 1 || !list[0].IsRevoked() || list[0].Reason != certportal.ReasonCessationOfOperation || list[0].Serial != res.Cert.Serial {
		t.Fatalf("after cancel: %+v", list)
	}
	if _, _, err := e.svc.CertSignIn(ctx, nil); err == nil {
		t.Fatal("an empty chain signed in")
	}
	if _, err := e.svc.PasswordSignIn(ctx, "carol", "account password carol", "10.0.0.1"); certportal.ErrorCodeOf(err) != certportal.Forbidden {
		t.Fatalf("password sign-in of a cancelled account: %v, want Forbidden", err)
	}
	if _, err := e.svc.Issue(ctx, portal.Admin, portal.IssueRequest{ID: "carol", P12Password: p12pw}); err == nil {
		t.Fatal("a cancelled account got a certificate")
	}
}

func TestLockoutAfterFiveFailures(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.addUser(t, "dave")
	for i := 0; i < 5; i++ {
		if _, err := e.svc.PasswordSignIn(ctx, "dave", "wrong password!", "10.0.0.2"); certportal.ErrorCodeOf(err) != certportal.Unauthorized {
			t.Fatalf("attempt %d: %v", i, err)
		}
	}
	_, err := e.svc.PasswordSignIn(ctx, "dave", "account password dave", "10.0.0.2")
	if certportal.ErrorCodeOf(err) != certportal.Unauthorized {
		t.Fatalf("the right password during a lockout: %v, want the same Unauthorized", err)
	}
	// Another client address is not locked out.
	if _, err := e.svc.PasswordSignIn(ctx, "dave", "account password dave", "10.0.0.3"); err != nil {
		t.Fatalf("sign-in from another address: %v", err)
	}
	if _, err := e.svc.Unlock(ctx, portal.Admin, "dave"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.PasswordSignIn(ctx, "dave", "account password dave", "10.0.0.2"); err != nil {
		t.Fatalf("sign-in after unlock: %v", err)
	}
	events, _ := e.svc.Audit(ctx, certportal.AuditFilter{AccountID: "dave"})
	found := false
	for _, ev := range events {
		found = found || ev.Action == certportal.ActionLockout
	}
	if !found {
		t.Error("no lockout record in the audit log")
	}
}

func TestRecoveryWithFailingMailChangesNothing(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.addUser(t, "erin")
	if _, err := e.svc.Issue(ctx, portal.Admin, portal.IssueRequest{ID: "erin", P12Password: p12pw}); err != nil {
		t.Fatal(err)
	}
	_, ticket, err := e.svc.RecoverBegin(ctx, "erin", "account password erin", "10.0.0.4")
	if err != nil {
		t.Fatal(err)
	}
	// A real SMTP client against a port where nothing listens.
	smtp, err := mail.NewSMTP(mail.SMTPConfig{URL: "smtp://127.0.0.1:1", From: "portal@example.com", Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	good := e.svc.Mailer
	e.svc.Mailer = smtp
	if _, err := e.svc.RecoverConfirm(ctx, ticket, "10.0.0.4"); certportal.ErrorCodeOf(err) != certportal.Unavailable {
		t.Fatalf("recovery without mail: %v, want Unavailable", err)
	}
	acc, _ := e.svc.Account(ctx, "erin")
	cur, _ := e.svc.CurrentCertificate(ctx, "erin")
	if acc.Method != certportal.MethodCertificate || cur == nil || !acc.PasswordExpires.IsZero() {
		t.Fatalf("a failed recovery changed the account: method %s, current cert %v", acc.Method, cur)
	}
	// The same ticket works once the mail goes out.
	e.svc.Mailer = good
	if _, err := e.svc.RecoverConfirm(ctx, ticket, "10.0.0.4"); err != nil {
		t.Fatalf("recovery: %v", err)
	}
	acc, _ = e.svc.Account(ctx, "erin")
	cur, _ = e.svc.CurrentCertificate(ctx, "erin")
	if acc.Method != certportal.MethodPassword || cur != nil || acc.PasswordExpires.IsZero() {
		t.Fatalf("after recovery: method %s, current cert %v, expires %v", acc.Method, cur, acc.PasswordExpires)
	}
	if _, err := e.svc.RecoverConfirm(ctx, ticket, "10.0.0.4"); certportal.ErrorCodeOf(err) != certportal.Invalid {
		t.Fatalf("a used ticket: %v, want Invalid", err)
	}
}

// BenchmarkRawIssue is the reference: key generation, signing and PKCS#12
// encoding, with nothing else.
func BenchmarkRawIssue(b *testing.B) {
	e := newEnv(b)
	for b.Loop() {
		leaf, key, err := e.svc.CA.Issue(ca.LeafRequest{ID: "bench", Email: "bench@example.com", KeyType: ca.P256})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := e.svc.CA.PKCS12(key, leaf, p12pw, false); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkIssue is the full path: the same plus the database
// transaction (revoke the previous certificate, insert, method) and
// the audit records. Compare its rate with BenchmarkRawIssue's.
func BenchmarkIssue(b *testing.B) {
	e := newEnv(b)
	for i := 0; i < 50; i++ {
		e.addUser(b, fmt.Sprintf("bench%02d", i))
	}
	ctx := context.Background()
	i := 0
	for b.Loop() {
		if _, err := e.svc.Issue(ctx, portal.Admin, portal.IssueRequest{ID: fmt.Sprintf("bench%02d", i%50), P12Password: p12pw}); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// TestUnknownIDCostsAHash: a sign-in with an unknown ID, or one that is
// not an ID at all, runs exactly as many argon2 computations as a wrong
// password for a real account (one), against a dummy hash with the same
// parameters, so the time taken does not tell which IDs exist. Counted,
// not timed: a timed test fails on a busy machine.
func TestUnknownIDCostsAHash(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.addUser(t, "frank")
	h := e.svc.Hasher
	for i, id := range []string{"frank", "nobody", "not an ID!"} {
		before := h.Argon2Runs()
		_, err := e.svc.PasswordSignIn(ctx, id, "wrong password!", fmt.Sprintf("10.1.%d.1", i))
		if certportal.ErrorCodeOf(err) != certportal.Unauthorized {
			t.Fatalf("%s: %v", id, err)
		}
		if n := h.Argon2Runs() - before; n != 1 {
			t.Errorf("a sign-in as %q ran argon2 %d times, want 1 (a wrong password runs it once)", id, n)
		}
	}
	var hash string
	err := e.svc.Store.View(ctx, func(tx certportal.Tx) error {
		acc, err := tx.Account(ctx, "frank")
		if err == nil {
			hash = acc.PasswordHash
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	// "$argon2id$v=19$m=19456,t=2,p=1$salt$key": the first four fields
	// are the algorithm and its cost.
	params := func(phc string) string { return strings.Join(strings.SplitN(phc, "$", 6)[:4], "$") }
	if got, want := params(h.DummyHash()), params(hash); got != want {
		t.Errorf("the dummy hash costs %q, a real one %q", got, want)
	}
}

// viewCounter counts the read transactions a Store opens.
type viewCounter struct {
	certportal.Store
	views atomic.Int64
}

func (v *viewCounter) View(ctx context.Context, fn func(certportal.Tx) error) error {
	v.views.Add(1)
	return v.Store.View(ctx, fn)
}

// TestHomeOneTransaction: what the home page shows of an account — the
// current certificate and the last sign-ins, newest first — is read in one
// transaction, with only the sign-ins among the account's audit records.
func TestHomeOneTransaction(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	if _, _, err := e.svc.AddUser(ctx, portal.Admin, "hana", "hana@example.com", "hana's password 1"); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := e.svc.PasswordSignIn(ctx, "hana", "hana's password 1", "192.0.2.7"); err != nil {
			t.Fatal(err)
		}
	}
	res, err := e.svc.Issue(ctx, portal.Admin, portal.IssueRequest{ID: "hana", P12Password: "a p12 password 1"})
	if err != nil {
		t.Fatal(err)
	}
	vc := &viewCounter{Store: e.svc.Store}
	e.svc.Store = vc
	cur, recent, err := e.svc.Home(ctx, "hana", 2)
	if err != nil {
		t.Fatal(err)
	}
	if n := vc.views.Load(); n != 1 {
		t.Errorf("Home opened %d read transactions, want 1", n)
	}
	if cur == nil || cur.Serial != res.Cert.Serial {
		t.Errorf("current certificate %+v, want serial %s", cur, res.Cert.Serial)
	}
	if len(recent) != 2 || recent[0].Seq <= recent[1].Seq {
		t.Fatalf("recent sign-ins %+v, want the last 2, newest first", recent)
	}
	for _, ev := range recent {
		if ev.Action != certportal.ActionSignInOK || ev.AccountID != "hana" {
			t.Errorf("a recent sign-in is %s of %s", ev.Action, ev.AccountID)
		}
	}
}

// TestNoticesGoThroughTheOutbox: the e-mail change, password change and
// cancellation notices are queued with their change and go out when the
// outbox is sent, one each (two for an address change: the old and the
// new address); a change refused queues none.
func TestNoticesGoThroughTheOutbox(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.addUser(t, "gina")
	if _, err := e.svc.SendQueuedMail(ctx); err != nil { // the welcome mail
		t.Fatal(err)
	}
	count := func(subject string) int {
		t.Helper()
		files, err := filepath.Glob(filepath.Join(e.outbox, "*.eml"))
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(string(b), "Subject: "+subject) {
				n++
			}
		}
		return n
	}
	moved := portal.NoticeEmailChanged("", "", "", "").Subject
	changed := portal.NoticePasswordChanged("", "").Subject
	cancelled := portal.NoticeCancelled("", "").Subject
	if _, err := e.svc.SetEmail(ctx, portal.Admin, "gina", "gina@example.com"); certportal.ErrorCodeOf(err) != certportal.Conflict {
		t.Fatalf("SetEmail to the same address: %v, want Conflict", err)
	}
	if _, err := e.svc.SetEmail(ctx, portal.Admin, "gina", "gina@example.org"); err != nil {
		t.Fatal(err)
	}
	if err := e.svc.ChangePassword(ctx, "gina", "account password gina", "a brand new password", "192.0.2.9", ""); err != nil {
		t.Fatal(err)
	}
	if err := e.svc.CancelUser(ctx, portal.Admin, "gina"); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{moved, changed, cancelled} {
		if n := count(s); n != 0 {
			t.Errorf("%q: %d sent before the outbox was, want them queued", s, n)
		}
	}
	if n, err := e.svc.SendQueuedMail(ctx); err != nil || n != 4 {
		t.Fatalf("SendQueuedMail: %d, %v; want 4", n, err)
	}
	for s, want := range map[string]int{moved: 2, changed: 1, cancelled: 1} {
		if n := count(s); n != want {
			t.Errorf("%q: %d mails, want %d", s, n, want)
		}
	}
}
