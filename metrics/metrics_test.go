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

// TestRootCRLExpiry: the gauge reads nextUpdate at each scrape, so a root
// CRL re-signed meanwhile shows at once; an unreadable one shows 0.
func TestRootCRLExpiry(t *testing.T) {
	m := New()
	next, fail := time.Now().Add(48*time.Hour), false
	m.WatchRootCRL(func() (time.Time, error) {
		if fail {
			return time.Time{}, errors.New("root.crl is missing")
		}
		return next, nil
	})
	value := func() float64 {
		mfs, err := m.Registry.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() == "certportal_root_crl_expiry_seconds" {
				return mf.GetMetric()[0].GetGauge().GetValue()
			}
		}
		t.Fatal("no certportal_root_crl_expiry_seconds in the scrape")
		return 0
	}
	if v := value(); v < 47*3600 || v > 48*3600 {
		t.Errorf("two days before nextUpdate the gauge says %v s", v)
	}
	next = time.Now().Add(-time.Hour)
	if v := value(); v > -3599 || v < -3601 {
		t.Errorf("an hour past nextUpdate the gauge says %v s, want about -3600", v)
	}
	fail = true
	if v := value(); v != 0 {
		t.Errorf("with the root CRL unreadable the gauge says %v, want 0", v)
	}
}
