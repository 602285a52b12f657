package portal_test

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/certportal/certportal"
	"github.com/certportal/certportal/ca"
	"github.com/certportal/certportal/portal"
)

func newCSR(t testing.TB, cn string) (crypto.Signer, *ca.CSR) {
	t.Helper()
	key, err := ca.GenerateKey(nil, ca.P256)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: cn}}, key)
	if err != nil {
		t.Fatal(err)
	}
	csr, err := ca.ParseCSR(der)
	if err != nil {
		t.Fatal(err)
	}
	return key, csr
}

// TestEnrollWithPassword: the EST first certificate follows /login's
// rules and lockout, and POST /certificate's one-certificate rule.
func TestEnrollWithPassword(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	e.addUser(t, "erin")
	key, csr := newCSR(t, "somebody-else")
	const remote = "192.0.2.7"

	// A wrong password is a failed sign-in, counted by the lockout.
	_, err := e.svc.EnrollWithPassword(ctx, "erin", "wrong password!", remote, csr)
	if certportal.ErrorCodeOf(err) != certportal.Unauthorized {
		t.Fatalf("wrong password: %v, want Unauthorized", err)
	}
	if n := countActions(t, e, "erin", certportal.ActionSignInFailed); n != 1 {
		t.Errorf("%d sign-in failures audited, want 1", n)
	}
	if certs, _ := e.svc.Certificates(ctx, "erin"); len(certs) != 0 {
		t.Fatalf("a wrong password recorded %d certificates", len(certs))
	}

	en, err := e.svc.EnrollWithPassword(ctx, " erin ", "account password erin", remote, csr)
	if err != nil {
		t.Fatalf("EnrollWithPassword: %v", err)
	}
	if !key.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(en.Leaf.PublicKey) {
		t.Error("the certificate does not carry the CSR's key")
	}
	if en.Leaf.Subject.CommonName != "erin" || len(en.Chain) != 2 {
		t.Errorf("CN %q, chain of %d; want erin and issuing + root", en.Leaf.Subject.CommonName, len(en.Chain))
	}
	acc, _ := e.svc.Account(ctx, "erin")
	if acc.Method != certportal.MethodCertificate {
		t.Errorf("method %s after enrollment, want certificate", acc.Method)
	}

	// Now the account signs in by certificate: a second first certificate
	// is refused as /login and POST /certificate refuse it.
	_, csr2 := newCSR(t, "erin")
	_, err = e.svc.EnrollWithPassword(ctx, "erin", "account password erin", remote, csr2)
	if !errors.Is(err, portal.ErrUseCertificate) || certportal.ErrorCodeOf(err) != certportal.Forbidden {
		t.Fatalf("second enrollment: %v, want ErrUseCertificate", err)
	}
	if _, err := e.svc.Enroll(ctx, portal.User("erin", remote), portal.EnrollRequest{ID: "erin", CSR: csr2}); !errors.Is(err, portal.ErrUseCertificate) {
		t.Fatalf("Enroll for a certificate account: %v, want ErrUseCertificate", err)
	}
	if certs, _ := e.svc.Certificates(ctx, "erin"); len(certs) != 1 {
		t.Fatalf("%d certificates, want 1", len(certs))
	}
}

// TestEnrollLockout: after five wrong passwords even the right one is
// refused, with the same answer, and nothing is issued.
func TestEnrollLockout(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	e.addUser(t, "lou")
	_, csr := newCSR(t, "lou")
	for i := 0; i < 5; i++ {
		if _, err := e.svc.EnrollWithPassword(ctx, "lou", "wrong password!", "192.0.2.8", csr); certportal.ErrorCodeOf(err) != certportal.Unauthorized {
			t.Fatalf("attempt %d: %v", i, err)
		}
	}
	if _, err := e.svc.EnrollWithPassword(ctx, "lou", "account password lou", "192.0.2.8", csr); certportal.ErrorCodeOf(err) != certportal.Unauthorized {
		t.Fatalf("right password after the lockout: %v, want Unauthorized", err)
	}
	if n := countActions(t, e, "lou", certportal.ActionLockout); n != 1 {
		t.Errorf("%d lockouts audited, want 1", n)
	}
	if certs, _ := e.svc.Certificates(ctx, "lou"); len(certs) != 0 {
		t.Fatalf("%d certificates issued through a lockout", len(certs))
	}
}

// TestEnrollConcurrent: two first certificates at once, one wins; the
// method check runs with the account locked.
func TestEnrollConcurrent(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	e.addUser(t, "cora")
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			_, csr := newCSR(t, "cora")
			_, errs[i] = e.svc.Enroll(ctx, portal.User("cora", "192.0.2.9"), portal.EnrollRequest{ID: "cora", CSR: csr})
		}(i)
	}
	wg.Wait()
	ok := 0
	for _, err := range errs {
		switch {
		case err == nil:
			ok++
		case !errors.Is(err, portal.ErrUseCertificate) && certportal.ErrorCodeOf(err) != certportal.Unavailable:
			t.Errorf("unexpected error: %v", err)
		}
	}
	certs, _ := e.svc.Certificates(ctx, "cora")
	if ok != 1 || len(certs) != 1 {
		t.Fatalf("%d enrollments succeeded, %d certificates recorded; want 1 and 1", ok, len(certs))
	}
}

// TestReenroll: renewal by CSR follows Renew's window, supersedes the old
// certificate, and refuses a superseded one.
func TestReenroll(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	clock := e.withClock(time.Now().UTC().Truncate(time.Second))
	e.addUser(t, "ray")
	_, csr := newCSR(t, "ray")
	first, err := e.svc.Enroll(ctx, portal.User("ray", "192.0.2.10"), portal.EnrollRequest{ID: "ray", CSR: csr})
	if err != nil {
		t.Fatal(err)
	}
	user := portal.User("ray", "192.0.2.10")
	_, csr2 := newCSR(t, "ray")
	acc, old, err := e.svc.CertSignInVerified(ctx, first.Leaf)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Reenroll(ctx, user, acc, old, csr2); !errors.Is(err, portal.ErrRenewTooEarly) {
		t.Fatalf("re-enrollment a year before expiry: %v, want ErrRenewTooEarly", err)
	}
	// The transaction decides the window, not the record the caller read:
	// one that claims to expire tomorrow is refused all the same, and
	// nothing is recorded.
	forged := *old
	forged.NotAfter = clock.Now().Add(24 * time.Hour)
	if _, err := e.svc.Reenroll(ctx, user, acc, &forged, csr2); !errors.Is(err, portal.ErrRenewTooEarly) {
		t.Fatalf("re-enrollment with a record read as expiring tomorrow: %v, want ErrRenewTooEarly from the transaction", err)
	}
	if certs, _ := e.svc.Certificates(ctx, "ray"); len(certs) != 1 {
		t.Fatalf("%d certificates after two refused re-enrollments, want 1", len(certs))
	}
	clock.Set(first.Cert.NotAfter.Add(-24 * time.Hour))
	second, err := e.svc.Reenroll(ctx, user, acc, old, csr2)
	if err != nil {
		t.Fatalf("Reenroll in the window: %v", err)
	}
	certs, _ := e.svc.Certificates(ctx, "ray")
	for _, c := range certs {
		switch c.Serial {
		case first.Cert.Serial:
			if c.Reason != certportal.ReasonSuperseded || !c.IsRevoked() {
				t.Errorf("the old certificate: revoked %v, reason %s; want superseded", c.IsRevoked(), c.Reason)
			}
		case second.Cert.Serial:
			if c.IsRevoked() {
				t.Error("the new certificate is revoked")
			}
		}
	}
	if n := countActions(t, e, "ray", certportal.ActionCertRenewed); n != 1 {
		t.Errorf("%d renewals audited, want 1", n)
	}
	// Read before the renewal, the old record looks current; the
	// transaction sees it superseded.
	if _, err := e.svc.Reenroll(ctx, user, acc, old, csr2); certportal.ErrorCodeOf(err) != certportal.Conflict {
		t.Fatalf("re-enrollment with the superseded certificate, read before it was: %v, want Conflict", err)
	}
	if _, _, err := e.svc.CertSignInVerified(ctx, first.Leaf); !errors.Is(err, portal.ErrCertRevoked) {
		t.Fatalf("sign-in with the superseded certificate: %v, want ErrCertRevoked", err)
	}
}

func countActions(t *testing.T, e *env, id, action string) int {
	t.Helper()
	list, err := e.svc.Audit(context.Background(), certportal.AuditFilter{AccountID: id})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, ev := range list {
		if ev.Action == action {
			n++
		}
	}
	return n
}

// TestIssuanceQueuesItsNotice: the notice of an issuance is written into
// the outbox by the issuing transaction, not sent on the request's path;
// the sender delivers it after the commit and audits it then.
func TestIssuanceQueuesItsNotice(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	e.addUser(t, "nina")
	_, csr := newCSR(t, "nina")
	en, err := e.svc.Enroll(ctx, portal.User("nina", "192.0.2.11"), portal.EnrollRequest{ID: "nina", CSR: csr})
	if err != nil {
		t.Fatal(err)
	}
	var queued []certportal.QueuedMail
	err = e.svc.Store.View(ctx, func(tx certportal.Tx) error {
		queued, err = tx.QueuedMails(ctx, "nina")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(queued) != 1 || queued[0].Kind != certportal.MailNotice || queued[0].To != "nina@example.com" ||
		!queued[0].Sent.IsZero() || !strings.Contains(queued[0].Body, en.Cert.Serial) {
		t.Fatalf("after the issuance the outbox holds %+v; want one unsent notice to nina@example.com naming %s", queued, en.Cert.Serial)
	}
	if n := countActions(t, e, "nina", certportal.ActionMailSent); n != 0 {
		t.Fatalf("%d mail.sent records before the sender ran, want 0", n)
	}
	if n, err := e.svc.SendQueuedMail(ctx); n != 1 || err != nil {
		t.Fatalf("the sender sent %d, %v; want 1", n, err)
	}
	files, _ := filepath.Glob(filepath.Join(e.outbox, "*.eml"))
	if len(files) != 1 {
		t.Fatalf("%d mails in the .eml outbox, want 1", len(files))
	}
	if b, _ := os.ReadFile(files[0]); !strings.Contains(string(b), "Subject: A new certificate was issued for your account") {
		t.Errorf("the mail sent is not the issuance notice:\n%s", b)
	}
	if n := countActions(t, e, "nina", certportal.ActionMailSent); n != 1 {
		t.Errorf("%d mail.sent records after the sender ran, want 1", n)
	}
	if n, err := e.svc.SendQueuedMail(ctx); n != 0 || err != nil {
		t.Errorf("a second round sent %d, %v; want nothing", n, err)
	}
}
