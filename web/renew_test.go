package web_test

import (
	"crypto/tls"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/certportal/certportal"
)

// TestRenewal walks a user through renewal over mutual TLS: the home page
// offers it only in the certificate's last 30 days, POST
// /certificate/renew answers with the new PKCS#12, the old certificate is
// revoked as superseded while the renewing session stays signed in, and a
// second renewal outside the window is refused with the date it opens.
// POST /api/renew does the same for a client that presents its
// certificate.
func TestRenewal(t *testing.T) {
	e := newEnv(t)
	e.addUser("rita", "rita@example.org", "account password 1")
	pwc := e.client(nil)
	e.login(pwc, "rita", "account password 1")
	cert, _ := e.getCertificate(pwc, "rita")
	oldSerial := certportal.FormatSerial(cert.Leaf.SerialNumber)
	day := 24 * time.Hour

	// A password session cannot renew.
	r := e.post(pwc, "/certificate/renew", url.Values{"p12_password": {p12Password}, "p12_password_confirm": {p12Password}})
	if r.StatusCode != http.StatusForbidden || !strings.Contains(r.body, "Sign in with your certificate to do this") {
		t.Errorf("renewal from a password session: status %d, want 403 asking for the certificate", r.StatusCode)
	}

	// A year ahead of expiry: no form, the date renewal opens, and a
	// refusal that gives it.
	browser := e.client(cert)
	home := e.get(browser, "/")
	from := cert.Leaf.NotAfter.Add(-30 * day).UTC().Format("2006-01-02 15:04 UTC")
	if home.StatusCode != http.StatusOK || strings.Contains(home.body, `action="/certificate/renew"`) ||
		!strings.Contains(home.body, "You can renew this certificate here from "+from) {
		t.Fatalf("home page a year before expiry: status %d; want no renewal form and the date %s:\n%s", home.StatusCode, from, home.body)
	}
	r = e.post(browser, "/certificate/renew", url.Values{"p12_password": {p12Password}, "p12_password_confirm": {p12Password}})
	fromDay := cert.Leaf.NotAfter.Add(-30 * day).UTC().Format("2 January 2006")
	if r.StatusCode != http.StatusConflict || !strings.Contains(r.body, "Your certificate can be renewed from "+fromDay) {
		t.Errorf("early renewal: status %d, want 409 saying it can be renewed from %s:\n%.600s", r.StatusCode, fromDay, r.body)
	}

	// Ten days before expiry the form appears and works.
	e.pki.Clock.Set(cert.Leaf.NotAfter.Add(-10 * day))
	browser = e.client(cert)
	home = e.get(browser, "/")
	if home.StatusCode != http.StatusOK || !strings.Contains(home.body, `action="/certificate/renew"`) || !strings.Contains(home.body, "Renew your certificate") {
		t.Fatalf("home page 10 days before expiry: status %d, want the renewal form:\n%s", home.StatusCode, home.body)
	}
	tests := []struct {
		name string
		form url.Values
		code int
	}{
		{"passwords differ", url.Values{"p12_password": {p12Password}, "p12_password_confirm": {p12Password + "x"}}, http.StatusBadRequest},
		{"password too short", url.Values{"p12_password": {"short"}, "p12_password_confirm": {"short"}}, http.StatusBadRequest},
		{"account password", url.Values{"p12_password": {"account password 1"}, "p12_password_confirm": {"account password 1"}}, http.StatusBadRequest},
		{"unknown format", url.Values{"p12_password": {p12Password}, "p12_password_confirm": {p12Password}, "format": {"pem"}}, http.StatusBadRequest},
	}
	for _, tt := range tests {
		if r := e.post(browser, "/certificate/renew", tt.form); r.StatusCode != tt.code {
			t.Errorf("%s: status %d, want %d", tt.name, r.StatusCode, tt.code)
		}
	}
	if n := len(e.certificates("rita")); n != 1 {
		t.Fatalf("refused renewals left %d certificates, want 1", n)
	}
	r = e.post(browser, "/certificate/renew", url.Values{"p12_password": {p12Password}, "p12_password_confirm": {p12Password}, "format": {"legacy"}})
	if r.StatusCode != http.StatusOK || r.Header.Get("Content-Type") != "application/x-pkcs12" ||
		r.Header.Get("Cache-Control") != "no-store" || r.Header.Get("Content-Disposition") != `attachment; filename="rita.p12"` {
		t.Fatalf("POST /certificate/renew: status %d, headers %v:\n%.300s", r.StatusCode, r.Header, r.body)
	}
	renewed, _ := decodeP12(t, []byte(r.body), p12Password)
	newSerial := certportal.FormatSerial(renewed.Leaf.SerialNumber)
	e.checkRenewed(oldSerial, newSerial)
	if got := renewed.Leaf.NotAfter.Sub(e.pki.Clock.Now()); got < 360*day {
		t.Errorf("the new certificate is valid for %v, want about a year", got)
	}

	// The renewing browser stays signed in (its session now follows the
	// new certificate); the old certificate no longer signs in anywhere.
	if home := e.get(browser, "/"); home.StatusCode != http.StatusOK || !strings.Contains(home.body, newSerial) {
		t.Errorf("the renewing session after renewal: status %d, want the home page with %s", home.StatusCode, newSerial)
	}
	if r := e.get(e.client(cert), "/"); r.StatusCode != http.StatusForbidden || !strings.Contains(r.body, "revoked") {
		t.Errorf("sign-in with the old certificate: status %d, want 403 revoked", r.StatusCode)
	}
	fresh := e.client(renewed)
	if home := e.get(fresh, "/"); home.StatusCode != http.StatusOK || strings.Contains(home.body, `action="/certificate/renew"`) {
		t.Errorf("sign-in with the new certificate: status %d, want the home page without a renewal form", home.StatusCode)
	}
	// A second renewal, now outside the new certificate's window.
	r = e.post(fresh, "/certificate/renew", url.Values{"p12_password": {p12Password}, "p12_password_confirm": {p12Password}})
	if r.StatusCode != http.StatusConflict || !strings.Contains(r.body, "can be renewed from "+renewed.Leaf.NotAfter.Add(-30*day).UTC().Format("2 January 2006")) {
		t.Errorf("second renewal: status %d, want 409 with the date:\n%.600s", r.StatusCode, r.body)
	}

	// The API, as certportal store renew uses it.
	r = e.apiRenew(renewed, "application/json", `{"p12_password":"`+p12Password+`"}`)
	if r.StatusCode != http.StatusConflict || jsonField(t, r.body, "error") != "too_early" ||
		!strings.Contains(jsonField(t, r.body, "message"), "your certificate can be renewed from") {
		t.Errorf("API renewal outside the window: status %d, body %s", r.StatusCode, r.body)
	}
	r = e.apiRenew(cert, "application/json", `{"p12_password":"`+p12Password+`"}`)
	if r.StatusCode != http.StatusForbidden || jsonField(t, r.body, "error") != "revoked" {
		t.Errorf("API renewal with the revoked certificate: status %d, body %s; want 403 revoked", r.StatusCode, r.body)
	}
	e.pki.Clock.Set(renewed.Leaf.NotAfter.Add(-5 * day))
	apiTests := []struct {
		name        string
		cert        *tls.Certificate
		contentType string
		body        string
		code        int
		errName     string
	}{
		{"no certificate", nil, "application/json", `{"p12_password":"` + p12Password + `"}`, http.StatusUnauthorized, "unauthenticated"},
		{"unknown field", renewed, "application/json", `{"p12_password":"` + p12Password + `","id":"bob"}`, http.StatusBadRequest, "invalid"},
		{"two objects", renewed, "application/json", `{"p12_password":"` + p12Password + `"}{}`, http.StatusBadRequest, "invalid"},
		{"short password", renewed, "application/json", `{"p12_password":"short"}`, http.StatusBadRequest, "invalid"},
		{"plain text", renewed, "text/plain", p12Password, http.StatusBadRequest, "invalid"},
		{"too large", renewed, "application/json", `{"p12_password":"` + strings.Repeat("x", 70<<10) + `"}`, http.StatusRequestEntityTooLarge, "too_large"},
	}
	for _, tt := range apiTests {
		r := e.apiRenew(tt.cert, tt.contentType, tt.body)
		if r.StatusCode != tt.code || jsonField(t, r.body, "error") != tt.errName || jsonField(t, r.body, "message") == "" {
			t.Errorf("API, %s: status %d, body %.200s; want %d with error %q and a message", tt.name, r.StatusCode, r.body, tt.code, tt.errName)
		}
	}
	r = e.apiRenew(renewed, "application/x-www-form-urlencoded", url.Values{"p12_password": {p12Password}}.Encode())
	if r.StatusCode != http.StatusOK || r.Header.Get("Content-Type") != "application/x-pkcs12" {
		t.Fatalf("API renewal in the window: status %d, body %.300s", r.StatusCode, r.body)
	}
	third, _ := decodeP12(t, []byte(r.body), p12Password)
	e.checkRenewed(newSerial, certportal.FormatSerial(third.Leaf.SerialNumber))
	if got := countAudit(e.audit(), certportal.ActionCertRenewed, "serial "); got != 2 {
		t.Errorf("%d %s audit records, want 2", got, certportal.ActionCertRenewed)
	}

	// A cross-site form post is refused like every other POST.
	req, _ := http.NewRequest(http.MethodPost, e.srv.URL+"/certificate/renew", strings.NewReader(url.Values{"p12_password": {p12Password}, "p12_password_confirm": {p12Password}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	req.Header.Set("Origin", "https://evil.example")
	if r := e.do(e.client(third), req); r.StatusCode != http.StatusForbidden {
		t.Errorf("cross-site POST /certificate/renew: status %d, want 403", r.StatusCode)
	}
	if n := len(e.certificates("rita")); n != 3 {
		t.Errorf("%d certificates after two renewals, want 3", n)
	}
}

// checkRenewed checks that oldSerial is revoked as superseded and newSerial
// is the account's one valid certificate.
func (e *env) checkRenewed(oldSerial, newSerial string) {
	e.t.Helper()
	valid := 0
	for _, c := range e.certificates("rita") {
		switch {
		case c.Serial == oldSerial && (!c.IsRevoked() || c.Reason != certportal.ReasonSuperseded):
			e.t.Errorf("the renewed certificate %s: revoked %v, reason %v; want revoked as superseded", oldSerial, c.Revoked, c.Reason)
		case c.Serial == newSerial && c.IsRevoked():
			e.t.Errorf("the new certificate %s is revoked", newSerial)
		}
		if !c.IsRevoked() {
			valid++
		}
	}
	if valid != 1 {
		e.t.Errorf("%d valid certificates after renewal, want 1", valid)
	}
}

// apiRenew posts to /api/renew as a command-line client: no cookies, no
// Origin, the certificate presented (or none).
func (e *env) apiRenew(cert *tls.Certificate, contentType, body string) *response {
	e.t.Helper()
	return e.postRaw(e.client(cert), "/api/renew", contentType, body)
}

func jsonField(t *testing.T, body, name string) string {
	t.Helper()
	var m map[string]string
	if err := json.Unmarshal([]byte(body), &m); err != nil {
		return ""
	}
	return m[name]
}
