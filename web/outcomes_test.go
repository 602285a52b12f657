package web_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/certportal/certportal"
	"github.com/certportal/certportal/portal"
)

// TestPasswordOutcomes: the same 401 for unknown and wrong, lockout after
// five failures, an expired temporary password, and the recovery limit.
func TestPasswordOutcomes(t *testing.T) {
	e := newEnv(t)
	e.addUser("bob", "bob@example.com", "bob password 1")
	c := e.client(nil)

	wrong := e.post(c, "/login", url.Values{"id": {"bob"}, "password": {"not the password"}})
	unknown := e.post(c, "/login", url.Values{"id": {"nobody"}, "password": {"not the password"}})
	if wrong.StatusCode != http.StatusUnauthorized || unknown.StatusCode != http.StatusUnauthorized {
		t.Fatalf("wrong password %d, unknown ID %d, want 401 for both", wrong.StatusCode, unknown.StatusCode)
	}
	// The pages differ only in the ID typed, which the form keeps.
	if !strings.Contains(unknown.body, `value="nobody"`) {
		t.Errorf("the login form lost the typed ID")
	}
	if wrong.body != strings.ReplaceAll(unknown.body, `value="nobody"`, `value="bob"`) {
		t.Errorf("the pages for a wrong password and an unknown ID differ")
	}
	if r := e.post(c, "/recover", url.Values{"id": {"bob"}, "password": {"not the password"}}); r.StatusCode != http.StatusUnauthorized {
		t.Errorf("POST /recover with a wrong password: %d, want 401", r.StatusCode)
	}
	// Two failures so far (one on /login, one on /recover: one counter;
	// the unknown ID counts for another ID).
	for i := 0; i < 3; i++ {
		e.post(c, "/login", url.Values{"id": {"bob"}, "password": {"not the password"}})
	}
	locked := e.post(c, "/login", url.Values{"id": {"bob"}, "password": {"bob password 1"}})
	if locked.StatusCode != http.StatusUnauthorized || locked.body != wrong.body {
		t.Errorf("right password after 5 failures: %d, want the same 401 page", locked.StatusCode)
	}
	if r := e.post(c, "/recover", url.Values{"id": {"bob"}, "password": {"bob password 1"}}); r.StatusCode != http.StatusUnauthorized {
		t.Errorf("POST /recover while locked: %d, want 401", r.StatusCode)
	}
	if n := countAudit(e.audit(), certportal.ActionLockout, ""); n != 1 {
		t.Errorf("lockout records: %d, want 1", n)
	}

	// An administrator's reset mails a temporary password; once expired,
	// /login refuses it with a pointer to recovery, and /recover takes it.
	if _, err := e.svc.Unlock(context.Background(), portal.Admin, "bob"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.ResetPassword(context.Background(), portal.Admin, "bob"); err != nil {
		t.Fatal(err)
	}
	temp := e.lastTempPassword("bob@example.com")
	e.pki.Clock.Advance(25 * time.Hour)
	r := e.post(c, "/login", url.Values{"id": {"bob"}, "password": {temp}})
	if r.StatusCode != http.StatusForbidden || !strings.Contains(r.body, `href="/recover"`) || !strings.Contains(r.body, "expired") {
		t.Errorf("expired temporary password: %d, want 403 pointing to /recover:\n%.400s", r.StatusCode, r.body)
	}
	// At most three recoveries a day (the reset is 25 hours old now).
	for i := 0; i < 4; i++ {
		r := e.post(c, "/recover", url.Values{"id": {"bob"}, "password": {temp}})
		if i == 3 {
			if r.StatusCode != http.StatusTooManyRequests {
				t.Errorf("fourth recovery in a day: %d, want 429", r.StatusCode)
			}
			break
		}
		ticket := e.hiddenTicket(c, r)
		if r := e.post(c, "/recover/confirm", url.Values{"ticket": {ticket}}); r.StatusCode != http.StatusSeeOther {
			t.Fatalf("recovery %d: confirm %d", i+1, r.StatusCode)
		}
		temp = e.lastTempPassword("bob@example.com")
	}
}

// TestBadInput: malformed, oversized and wrong-method requests get clear
// answers and change nothing.
func TestBadInput(t *testing.T) {
	e := newEnv(t)
	e.addUser("carol", "carol@example.com", "carol password")
	c := e.client(nil)
	e.login(c, "carol", "carol password")
	before := len(e.audit())

	big := "id=carol&password=" + strings.Repeat("x", 70<<10)
	cases := []struct {
		name, path, ctype, body string
		want                    int
	}{
		{"json login", "/login", "application/json", `{"id":"carol","password":"carol password"}`, 400},
		{"no content type", "/login", "", "id=carol&password=carol+password", 400},
		{"missing field", "/login", "application/x-www-form-urlencoded", "id=carol", 400},
		{"field twice", "/login", "application/x-www-form-urlencoded", "id=carol&id=bob&password=x", 400},
		{"invalid UTF-8", "/login", "application/x-www-form-urlencoded", "id=%ff%fe&password=carol+password", 400},
		{"bad escape", "/login", "application/x-www-form-urlencoded", "id=%zz&password=x", 400},
		{"oversized", "/login", "application/x-www-form-urlencoded", big, 413},
		{"oversized recover", "/recover", "application/x-www-form-urlencoded", big, 413},
		{"multipart certificate", "/certificate", "multipart/form-data; boundary=x", "--x--", 400},
		{"p12 mismatch", "/certificate", "application/x-www-form-urlencoded", "p12_password=aaaaaaaaaaaaa&p12_password_confirm=bbbbbbbbbbbbb", 400},
		{"p12 short", "/certificate", "application/x-www-form-urlencoded", "p12_password=short&p12_password_confirm=short", 400},
		{"p12 format", "/certificate", "application/x-www-form-urlencoded", "p12_password=aaaaaaaaaaaaa&p12_password_confirm=aaaaaaaaaaaaa&format=zip", 400},
		{"p12 same as account", "/certificate", "application/x-www-form-urlencoded", "p12_password=carol+password&p12_password_confirm=carol+password", 400},
		{"oversized certificate", "/certificate", "application/x-www-form-urlencoded", "p12_password=" + strings.Repeat("a", 70<<10), 413},
		{"password mismatch", "/password", "application/x-www-form-urlencoded", "current_password=carol+password&new_password=new+password+1&new_password_confirm=new+password+2", 400},
		{"password short", "/password", "application/x-www-form-urlencoded", "current_password=carol+password&new_password=short&new_password_confirm=short", 400},
		{"empty ticket", "/recover/confirm", "application/x-www-form-urlencoded", "ticket=", 400},
	}
	for _, tc := range cases {
		r := e.postRaw(c, tc.path, tc.ctype, tc.body)
		if r.StatusCode != tc.want {
			t.Errorf("%s: %d, want %d", tc.name, r.StatusCode, tc.want)
		}
		if !strings.HasPrefix(r.Header.Get("Content-Type"), "text/html") || !strings.Contains(r.body, `href="`) {
			t.Errorf("%s: the answer is not a page with a way on: %q", tc.name, r.body)
		}
	}
	if a := e.account("carol"); a.Method != certportal.MethodPassword || !a.PasswordExpires.IsZero() {
		t.Errorf("bad input changed the account: %+v", a)
	}
	if n := len(e.certificates("carol")); n != 0 {
		t.Errorf("bad input issued %d certificates", n)
	}
	if after := len(e.audit()); after != before {
		t.Errorf("bad input wrote %d audit records", after-before)
	}
	e.login(e.client(nil), "carol", "carol password") // password unchanged

	req, _ := http.NewRequest(http.MethodPut, e.srv.URL+"/login", nil)
	r := e.do(c, req)
	if r.StatusCode != http.StatusMethodNotAllowed || !strings.Contains(r.Header.Get("Allow"), "POST") || !strings.Contains(r.body, "<html") {
		t.Errorf("PUT /login: %d, Allow %q, want a 405 page", r.StatusCode, r.Header.Get("Allow"))
	}
	if r := e.get(c, "/no/such/page"); r.StatusCode != http.StatusNotFound || !strings.Contains(r.body, "<html") {
		t.Errorf("unknown page: %d, want a 404 page", r.StatusCode)
	}
	if r := e.get(c, "/certificate"); r.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET /certificate: %d, want 405", r.StatusCode)
	}
}

// TestCrossOrigin: a POST from another site is refused and changes nothing.
func TestCrossOrigin(t *testing.T) {
	e := newEnv(t)
	e.addUser("dave", "dave@example.com", "dave password")
	c := e.client(nil)
	e.login(c, "dave", "dave password")
	for _, h := range []map[string]string{
		{"Sec-Fetch-Site": "cross-site"},
		{"Sec-Fetch-Site": "same-site"},
		{"Origin": "https://evil.example"},
	} {
		for _, rt := range e.web.Routes() { // every route with a body
			if rt.Method == http.MethodGet {
				continue
			}
			path := rt.Path
			req, _ := http.NewRequest(rt.Method, e.srv.URL+path, strings.NewReader("id=dave&password=dave+password"))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			for k, v := range h {
				req.Header.Set(k, v)
			}
			if r := e.do(c, req); r.StatusCode != http.StatusForbidden {
				t.Errorf("POST %s with %v: %d, want 403", path, h, r.StatusCode)
			}
		}
	}
	if r := e.get(c, "/"); r.StatusCode != http.StatusOK {
		t.Errorf("the session ended after refused cross-origin sign-outs: %d", r.StatusCode)
	}
	if n := countAudit(e.audit(), certportal.ActionSignInFailed, ""); n != 0 {
		t.Errorf("a refused cross-origin login reached the service (%d failures)", n)
	}
	req, _ := http.NewRequest(http.MethodPost, e.srv.URL+"/logout", strings.NewReader(""))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	if r := e.do(c, req); r.StatusCode != http.StatusSeeOther {
		t.Errorf("same-origin POST /logout: %d, want 303", r.StatusCode)
	}
}

// TestSessions: rotation at sign-in, sign out, sign out everywhere, and a
// password change that ends the other sessions.
func TestSessions(t *testing.T) {
	e := newEnv(t)
	e.addUser("erin", "erin@example.com", "erin password")
	a, b := e.client(nil), e.client(nil)
	e.login(a, "erin", "erin password")
	u, _ := url.Parse(e.srv.URL)
	old := a.Jar.Cookies(u)
	e.login(a, "erin", "erin password")
	if len(old) != 1 || a.Jar.Cookies(u)[0].Value == old[0].Value {
		t.Fatalf("the session token was not rotated at sign-in")
	}
	stale := e.client(nil)
	stale.Jar.SetCookies(u, old)
	if r := e.get(stale, "/"); r.StatusCode != http.StatusSeeOther {
		t.Errorf("the pre-rotation token still works: %d", r.StatusCode)
	}

	e.login(b, "erin", "erin password")
	r := e.post(a, "/password", url.Values{"current_password": {"wrong password"}, "new_password": {"erin password 2"}, "new_password_confirm": {"erin password 2"}})
	if r.StatusCode != http.StatusUnauthorized {
		t.Errorf("wrong current password: %d, want 401", r.StatusCode)
	}
	if r := e.get(a, "/password"); r.StatusCode != http.StatusOK || !strings.Contains(r.body, `name="new_password_confirm"`) {
		t.Errorf("GET /password: %d", r.StatusCode)
	}
	r = e.post(a, "/password", url.Values{"current_password": {"erin password"}, "new_password": {"erin password 2"}, "new_password_confirm": {"erin password 2"}})
	if r.StatusCode != http.StatusSeeOther {
		t.Fatalf("POST /password: %d, want 303", r.StatusCode)
	}
	if r := e.get(a, r.Header.Get("Location")); r.StatusCode != http.StatusOK || !strings.Contains(r.body, "password has been changed") {
		t.Errorf("after the change: %d", r.StatusCode)
	}
	if r := e.get(b, "/"); r.StatusCode != http.StatusSeeOther {
		t.Errorf("the other session survived a password change: %d", r.StatusCode)
	}
	e.login(b, "erin", "erin password 2")

	if r := e.post(a, "/logout/all", nil); r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != "/" {
		t.Errorf("POST /logout/all: %d", r.StatusCode)
	}
	if r := e.get(b, "/"); r.StatusCode != http.StatusSeeOther {
		t.Errorf("another session survived sign out everywhere: %d", r.StatusCode)
	}
	e.login(a, "erin", "erin password 2")
	e.post(a, "/logout", nil)
	if r := e.get(a, "/"); r.StatusCode != http.StatusOK || !strings.Contains(r.body, "You are signed out") || strings.Contains(r.body, "erin") {
		t.Errorf("GET / after sign out: %d, want the signed-out page:\n%.400s", r.StatusCode, r.body)
	}
	if r := e.get(a, "/password"); r.StatusCode != http.StatusSeeOther {
		t.Errorf("GET /password signed out: %d, want 303 to /login", r.StatusCode)
	}
	if r := e.post(a, "/certificate", url.Values{"p12_password": {p12Password}, "p12_password_confirm": {p12Password}}); r.StatusCode != http.StatusUnauthorized {
		t.Errorf("POST /certificate signed out: %d, want 401", r.StatusCode)
	}
}

// TestHeaders: the security headers on every kind of answer, HSTS only
// for real host names, and 503 when the database is down.
func TestHeaders(t *testing.T) {
	e := newEnv(t)
	c := e.client(nil)
	const csp = "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
	for _, path := range []string{"/", "/login", "/recover", "/about/certificate", "/portal/ctrl/aboutCertificate", "/ca/root.crt", "/api/whoami", "/healthz", "/nope", "/static/style.css"} {
		r := e.get(c, path)
		for h, want := range map[string]string{
			"Content-Security-Policy": csp, "X-Content-Type-Options": "nosniff",
			"Referrer-Policy": "no-referrer", "X-Frame-Options": "DENY", "Strict-Transport-Security": "",
		} {
			if got := r.Header.Get(h); got != want {
				t.Errorf("GET %s: %s = %q, want %q", path, h, got, want)
			}
		}
		if strings.Contains(r.body, "<script") || strings.Contains(r.body, "style=") {
			t.Errorf("GET %s: inline script or style", path)
		}
	}
	r := e.get(c, "/about/certificate")
	root := e.pki.Root
	for _, want := range []string{root.NotAfter.UTC().Format("01/02/2006"), ">01<", certportal.Thumbprint(root.Raw), certportal.Fingerprint256(root.Raw),
		"CN=SOP-RCA", `href="/ca/root.crt"`, `href="/ca/issuing.crt"`, `href="/ca/chain.pem"`, "certportal store delete"} {
		if !strings.Contains(r.body, want) {
			t.Errorf("about page lacks %q", want)
		}
	}
	if r := e.get(c, "/healthz"); r.StatusCode != http.StatusOK || r.body != "ok" {
		t.Errorf("healthz: %d %q", r.StatusCode, r.body)
	}

	// HSTS is decided per request, by the host name it was sent to: one
	// installation answers its real name with HSTS and its IP without.
	for host, hsts := range map[string]bool{
		"portal.example.com": true, "portal.example.com:8443": true, "PORTAL.example.com.": true,
		"localhost": false, "localhost:8443": false, "app.localhost": false,
		"127.0.0.1:8443": false, "10.0.0.1": false, "[::1]:8443": false, "::1": false,
	} {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodGet, "/login", nil)
		req.Host = host
		e.web.Handler().ServeHTTP(rec, req)
		if got := rec.Header().Get("Strict-Transport-Security"); (got == "max-age=63072000") != hsts || (got != "" && got != "max-age=63072000") {
			t.Errorf("Host %s: Strict-Transport-Security %q, want it %v", host, got, hsts)
		}
	}

	e.addUser("fred", "fred@example.com", "fred password")
	e.login(c, "fred", "fred password")
	e.store.Close()
	if r := e.get(c, "/healthz"); r.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("healthz with the database down: %d, want 503", r.StatusCode)
	}
	if r := e.get(c, "/"); r.StatusCode != http.StatusServiceUnavailable || !strings.Contains(r.body, "try again later") {
		t.Errorf("GET / with the database down: %d, want 503", r.StatusCode)
	}
	if r := e.post(e.client(nil), "/login", url.Values{"id": {"fred"}, "password": {"fred password"}}); r.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("POST /login with the database down: %d, want 503", r.StatusCode)
	}
}
