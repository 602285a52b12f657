package portal_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/certportal/certportal"
	"github.com/certportal/certportal/internal/testpki"
	"github.com/certportal/certportal/portal"
)

// withClock makes the service and its CA read a clock the test moves.
func (e *env) withClock(start time.Time) *testpki.Clock {
	c := testpki.NewClock(start)
	e.svc.Now = c.Now
	e.svc.CA.Now = c.Now
	return c
}

func TestRenew(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	clock := e.withClock(time.Now().UTC().Truncate(time.Second))
	e.addUser(t, "rita")
	first, err := e.svc.Issue(ctx, portal.Admin, portal.IssueRequest{ID: "rita", P12Password: p12pw})
	if err != nil {
		t.Fatal(err)
	}
	old := first.Cert
	acc, _ := e.svc.Account(ctx, "rita")
	day := 24 * time.Hour
	user := portal.User("rita", "192.0.2.1")

	// Outside the window: refused, with the date it opens.
	clock.Set(old.NotAfter.Add(-40 * day))
	if e.svc.CanRenew(old) {
		t.Errorf("CanRenew 40 days before expiry = true")
	}
	_, err = e.svc.Renew(ctx, user, portal.RenewRequest{Serial: old.Serial, P12Password: p12pw})
	from := old.NotAfter.Add(-30 * day).UTC().Format("2 January 2006")
	if !errors.Is(err, portal.ErrRenewTooEarly) || certportal.ErrorCodeOf(err) != certportal.Conflict ||
		!strings.Contains(certportal.ErrorMessage(err), "your certificate can be renewed from "+from) {
		t.Fatalf("Renew 40 days before expiry: %v (code %s), want Conflict saying it can be renewed from %s", err, certportal.ErrorCodeOf(err), from)
	}

	// Inside the window, from a session bound to the certificate, with a
	// second session elsewhere.
	clock.Set(old.NotAfter.Add(-10 * day))
	if !e.svc.CanRenew(old) {
		t.Errorf("CanRenew 10 days before expiry = false")
	}
	token, err := e.svc.NewSession(ctx, acc, old, "192.0.2.1", "")
	if err != nil {
		t.Fatal(err)
	}
	other, err := e.svc.NewSession(ctx, acc, old, "192.0.2.2", "")
	if err != nil {
		t.Fatal(err)
	}
	// The account password is refused as the file's password.
	if _, err := e.svc.Renew(ctx, user, portal.RenewRequest{Serial: old.Serial, P12Password: "account password rita"}); certportal.ErrorCodeOf(err) != certportal.Invalid {
		t.Errorf("Renew with the account password as PKCS#12 password: %v, want Invalid", err)
	}
	res, err := e.svc.Renew(ctx, user, portal.RenewRequest{Serial: strings.ToLower(old.Serial), P12Password: p12pw, KeepSession: portal.SessionID(token)})
	if err != nil {
		t.Fatalf("Renew 10 days before expiry: %v", err)
	}
	if len(res.P12) == 0 || res.Cert.Serial == old.Serial || res.Cert.AccountID != "rita" {
		t.Fatalf("Renew returned %+v", res.Cert)
	}
	if got := res.Cert.NotAfter.Sub(clock.Now()); got < 360*day {
		t.Errorf("the new certificate is valid for %v from now, want about a year", got)
	}
	certs, _ := e.svc.Certificates(ctx, "rita")
	for _, c := range certs {
		switch c.Serial {
		case old.Serial:
			if !c.IsRevoked() || c.Reason != certportal.ReasonSuperseded {
				t.Errorf("old certificate: revoked %v, reason %v; want superseded", c.Revoked, c.Reason)
			}
		case res.Cert.Serial:
			if c.IsRevoked() {
				t.Errorf("the new certificate is revoked")
			}
		}
	}
	sess, _, err := e.svc.Session(ctx, token)
	if err != nil || sess.CertSerial != res.Cert.Serial {
		t.Errorf("the renewing session: %+v, %v; want it kept and bound to %s", sess, err, res.Cert.Serial)
	}
	if _, _, err := e.svc.Session(ctx, other); err == nil {
		t.Errorf("another session of the account survived the renewal")
	}
	events, _ := e.svc.Audit(ctx, certportal.AuditFilter{AccountID: "rita"})
	renewed := 0
	for _, ev := range events {
		if ev.Action == certportal.ActionCertRenewed && ev.Detail == "serial "+old.Serial+" renewed as "+res.Cert.Serial {
			renewed++
		}
	}
	if renewed != 1 {
		t.Errorf("%d %s records for the renewal, want 1", renewed, certportal.ActionCertRenewed)
	}

	tests := []struct {
		name   string
		serial string
		at     time.Time
		code   certportal.ErrorCode
		cause  error
	}{
		{"old certificate again", old.Serial, clock.Now(), certportal.Forbidden, portal.ErrCertRevoked},
		{"new certificate at once", res.Cert.Serial, clock.Now(), certportal.Conflict, portal.ErrRenewTooEarly},
		{"new certificate after expiry", res.Cert.Serial, res.Cert.NotAfter.Add(time.Hour), certportal.Forbidden, portal.ErrCertExpired},
		{"unknown serial", "0123456789ABCDEF", clock.Now(), certportal.Forbidden, portal.ErrCertUnknown},
		{"malformed serial", "xyz", clock.Now(), certportal.Invalid, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock.Set(tt.at)
			_, err := e.svc.Renew(ctx, user, portal.RenewRequest{Serial: tt.serial, P12Password: p12pw})
			if certportal.ErrorCodeOf(err) != tt.code || (tt.cause != nil && !errors.Is(err, tt.cause)) {
				t.Errorf("Renew: %v (code %s), want code %s, cause %v", err, certportal.ErrorCodeOf(err), tt.code, tt.cause)
			}
		})
	}
}

// TestRenewRace renews one certificate from many goroutines at once:
// exactly one renewal wins, the others are refused, and the account keeps
// one valid certificate.
func TestRenewRace(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	clock := e.withClock(time.Now().UTC().Truncate(time.Second))
	e.addUser(t, "sam")
	first, err := e.svc.Issue(ctx, portal.Admin, portal.IssueRequest{ID: "sam", P12Password: p12pw})
	if err != nil {
		t.Fatal(err)
	}
	clock.Set(first.Cert.NotAfter.Add(-5 * 24 * time.Hour))
	const n = 6
	errs := make(chan error, n)
	for range n {
		go func() {
			_, err := e.svc.Renew(ctx, portal.User("sam", "-"), portal.RenewRequest{Serial: first.Cert.Serial, P12Password: p12pw})
			errs <- err
		}()
	}
	ok := 0
	for range n {
		if err := <-errs; err == nil {
			ok++
		} else if c := certportal.ErrorCodeOf(err); c != certportal.Conflict && c != certportal.Forbidden {
			t.Errorf("a losing renewal failed with %v (code %s), want Conflict or Forbidden", err, c)
		}
	}
	if ok != 1 {
		t.Errorf("%d renewals of one certificate succeeded, want 1", ok)
	}
	cur, err := e.svc.Certificates(ctx, "sam")
	if err != nil {
		t.Fatal(err)
	}
	valid := 0
	for _, c := range cur {
		if !c.IsRevoked() {
			valid++
		}
	}
	if valid != 1 || len(cur) != 2 {
		t.Errorf("%d certificates, %d valid; want 2 and 1", len(cur), valid)
	}
}
