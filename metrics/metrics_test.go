package metrics

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/certportal/certportal"
)

type failingMailer struct{ fail bool }

func (f failingMailer) Send(context.Context, certportal.Mail) error {
	if f.fail {
		return errors.New("smtp down")
	}
	return nil
}

// TestEventsAppearInTheScrape reports one event of each kind and reads
// them back over HTTP in the Prometheus text format.
func TestEventsAppearInTheScrape(t *testing.T) {
	m := New()
	m.Issued(3*time.Millisecond, nil)
	m.Issued(time.Millisecond, errors.New("database down"))
	m.SignIn("password", "ok")
	m.SignIn("certificate", "revoked")
	m.RevocationCheck("signin", true)
	m.RevocationCheck("session", false)
	m.OCSPRequest(true)
	m.OCSPRequest(false)
	m.CRLSigned("SOP-ICA1", 20*time.Millisecond, nil)
	ctx := context.Background()
	_ = m.Mailer(failingMailer{}).Send(ctx, certportal.Mail{})
	if err := m.Mailer(failingMailer{fail: true}).Send(ctx, certportal.Mail{}); err == nil {
		t.Error("the counting mailer hid the error")
	}
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`certportal_certificates_issued_total{result="ok"} 1`,
		`certportal_certificates_issued_total{result="error"} 1`,
		`certportal_certificate_issue_seconds_count 1`,
		`certportal_signins_total{method="password",outcome="ok"} 1`,
		`certportal_signins_total{method="certificate",outcome="revoked"} 1`,
		`certportal_revocation_checks_total{result="good",source="signin"} 1`,
		`certportal_revocation_checks_total{result="refused",source="session"} 1`,
		`certportal_ocsp_requests_total{kind="cache"} 1`,
		`certportal_ocsp_requests_total{kind="nonce"} 1`,
		`certportal_crl_generation_seconds_count{issuer="SOP-ICA1"} 1`,
		`certportal_mail_total{result="sent"} 1`,
		`certportal_mail_total{result="failed"} 1`,
		`go_goroutines `,
	} {
		if !strings.Contains(string(body), want+"\n") && !strings.Contains(string(body), want) {
			t.Errorf("the scrape lacks %q", want)
		}
	}
}
