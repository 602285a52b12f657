package web_test

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"golang.org/x/text/unicode/norm"

	"github.com/certportal/certportal"
	"github.com/certportal/certportal/portal"
)

// TestSignOutHolds: a browser that keeps presenting its certificate is not
// signed in again after a sign-out; the signed-out page's button does it,
// and only then is a sign-in recorded.
func TestSignOutHolds(t *testing.T) {
	e := newEnv(t)
	e.addUser("olive", "olive@example.com", "olive password 1")
	b := e.client(nil)
	e.login(b, "olive", "olive password 1")
	cert, _ := e.getCertificate(b, "olive")
	c := e.client(cert)
	if r := e.get(c, "/"); r.StatusCode != http.StatusOK || !strings.Contains(r.body, "Welcome, olive") {
		t.Fatalf("certificate sign-in: %d", r.StatusCode)
	}
	signIns := countAudit(e.audit(), certportal.ActionSignInOK, "certificate ")
	if signIns != 1 {
		t.Fatalf("%d certificate sign-ins recorded, want 1", signIns)
	}
	r := e.post(c, "/logout", nil)
	if r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != "/" {
		t.Fatalf("POST /logout: %d to %q, want 303 to /", r.StatusCode, r.Header.Get("Location"))
	}
	for range 3 { // Back, reload, a new visit
		r = e.get(c, "/")
		if r.StatusCode != http.StatusOK || !strings.Contains(r.body, "You are signed out") ||
			!strings.Contains(r.body, `action="/login/certificate"`) || strings.Contains(r.body, "Welcome") {
			t.Fatalf("GET / after sign-out: %d, want the signed-out page with the certificate button:\n%.600s", r.StatusCode, r.body)
		}
		if got := r.Header.Get("Cache-Control"); got != "no-store" {
			t.Errorf("signed-out page Cache-Control %q", got)
		}
	}
	if n := countAudit(e.audit(), certportal.ActionSignInOK, "certificate "); n != signIns {
		t.Errorf("sign-ins recorded after sign-out: %d, want %d", n, signIns)
	}
	r = e.post(c, "/login/certificate", nil)
	if r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != "/" {
		t.Fatalf("POST /login/certificate: %d to %q", r.StatusCode, r.Header.Get("Location"))
	}
	if r := e.get(c, "/"); r.StatusCode != http.StatusOK || !strings.Contains(r.body, "Welcome, olive") {
		t.Fatalf("home after the button: %d", r.StatusCode)
	}
	if n := countAudit(e.audit(), certportal.ActionSignInOK, "certificate "); n != signIns+1 {
		t.Errorf("sign-ins recorded after the button: %d, want %d", n, signIns+1)
	}
	// The marker is gone: a later visit signs in without the button.
	e.post(c, "/logout", nil)
	e.post(c, "/login/certificate", nil)
	if r := e.get(c, "/"); !strings.Contains(r.body, "Welcome, olive") {
		t.Errorf("after sign-out and the button again: not signed in")
	}
	// Without a certificate, the button explains instead of failing.
	d := e.client(nil)
	if r := e.post(d, "/login/certificate", nil); r.StatusCode != http.StatusUnauthorized || !strings.Contains(r.body, "did not present a certificate") {
		t.Errorf("POST /login/certificate without a certificate: %d", r.StatusCode)
	}
}

// TestPrivatePagesAreNotCached: every page a signed-in user sees says
// no-store, so Back after a sign-out shows nothing private.
func TestPrivatePagesAreNotCached(t *testing.T) {
	e := newEnv(t)
	e.addUser("pia", "pia@example.com", "pia password 1")
	b := e.client(nil)
	e.login(b, "pia", "pia password 1")
	for _, path := range []string{"/", "/password", "/about/certificate"} {
		r := e.get(b, path)
		if r.StatusCode != http.StatusOK || r.Header.Get("Cache-Control") != "no-store" {
			t.Errorf("GET %s: %d, Cache-Control %q, want 200 no-store", path, r.StatusCode, r.Header.Get("Cache-Control"))
		}
	}
}

// TestForgivingInput: a space around the ID and a password typed in NFD
// (macOS keyboards) sign in; another password still does not; the ID
// stays in the form after a mistake.
func TestForgivingInput(t *testing.T) {
	e := newEnv(t)
	const pw = "Crème brûlée 2026"
	if !norm.NFC.IsNormalString(pw) || norm.NFD.String(pw) == pw {
		t.Fatal("the test password must differ between NFC and NFD")
	}
	e.addUser("quinn", "quinn@example.com", pw)
	for _, tc := range []struct{ id, pw string }{
		{"quinn ", pw},
		{"\tquinn", pw},
		{"quinn", norm.NFD.String(pw)},
	} {
		c := e.client(nil)
		r := e.post(c, "/login", url.Values{"id": {tc.id}, "password": {tc.pw}})
		if r.StatusCode != http.StatusSeeOther {
			t.Errorf("ID %q with password %q: %d, want 303", tc.id, tc.pw, r.StatusCode)
		}
	}
	c := e.client(nil)
	r := e.post(c, "/login", url.Values{"id": {" quinn "}, "password": {"Creme brulee 2026"}})
	if r.StatusCode != http.StatusUnauthorized {
		t.Errorf("another password: %d, want 401", r.StatusCode)
	}
	if !strings.Contains(r.body, `value="quinn"`) {
		t.Errorf("the ID was not kept in the form after the mistake")
	}
	// A password set in NFD is checked the same way.
	e.login(c, "quinn", pw)
	r = e.post(c, "/password", url.Values{"current_password": {norm.NFD.String(pw)}, "new_password": {norm.NFD.String("Ångström unit 1")}, "new_password_confirm": {norm.NFD.String("Ångström unit 1")}})
	if r.StatusCode != http.StatusSeeOther {
		t.Fatalf("POST /password with NFD passwords: %d", r.StatusCode)
	}
	e.login(e.client(nil), "quinn", norm.NFC.String("Ångström unit 1"))
}

// TestCertificateFormMistakes: a mistake on the certificate form shows the
// home page again (400) with the message beside the password field, in the
// field's own words, and the form still there.
func TestCertificateFormMistakes(t *testing.T) {
	e := newEnv(t)
	e.addUser("ruth", "ruth@example.com", "ruth password 1")
	b := e.client(nil)
	e.login(b, "ruth", "ruth password 1")
	for _, tc := range []struct {
		name, pw, confirm, want string
	}{
		{"differ", "file password 123", "file password 124", "The two passwords for the certificate file differ"},
		{"short", "short", "short", "The password for the certificate file must have at least 12 characters"},
		{"account password", "ruth password 1", "ruth password 1", "not your account password"},
	} {
		r := e.post(b, "/certificate", url.Values{"p12_password": {tc.pw}, "p12_password_confirm": {tc.confirm}})
		if r.StatusCode != http.StatusBadRequest {
			t.Errorf("%s: %d, want 400", tc.name, r.StatusCode)
		}
		i := strings.Index(r.body, `id="p12_password_error"`)
		if i < 0 || !strings.Contains(r.body[i:], tc.want) || !strings.Contains(r.body, `action="/certificate"`) ||
			!strings.Contains(r.body, `aria-describedby="p12_password_error"`) {
			t.Errorf("%s: the message %q is not beside the field:\n%.1500s", tc.name, tc.want, r.body)
		}
		if strings.Contains(r.body, tc.pw) {
			t.Errorf("%s: the page shows the typed password", tc.name)
		}
	}
	if n := len(e.certificates("ruth")); n != 0 {
		t.Errorf("%d certificates after mistakes, want 0", n)
	}
}

// TestPlainHTTPToTheHTTPSPort: http:// typed with the HTTPS port gets a
// redirect to the same path over HTTPS; the plain-HTTP listener's unknown
// paths lead to the HTTPS portal.
func TestPlainHTTPToTheHTTPSPort(t *testing.T) {
	e := newEnv(t)
	plain := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	u := strings.Replace(e.srv.URL, "https://", "http://", 1)
	resp, err := plain.Get(u + "/login?x=1")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	want := e.srv.URL + "/login?x=1"
	if resp.StatusCode != http.StatusMovedPermanently || resp.Header.Get("Location") != want {
		t.Errorf("plain HTTP to the HTTPS port: %d to %q, want 301 to %q", resp.StatusCode, resp.Header.Get("Location"), want)
	}
	// TLS on the same port still works.
	if r := e.get(e.client(nil), "/login"); r.StatusCode != http.StatusOK {
		t.Errorf("HTTPS after a plain request: %d", r.StatusCode)
	}
	r, err := plain.Get(e.caSrv.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(r.Body)
	r.Body.Close()
	if r.StatusCode != http.StatusNotFound || !strings.Contains(string(b), `href="https://localhost:8443/"`) {
		t.Errorf("plain-HTTP listener's /: %d, want 404 with a link to the HTTPS portal:\n%.500s", r.StatusCode, b)
	}
}

// TestCancelledAccountPassword: a cancelled account's wrong password gets
// the 401 every wrong password gets; only the right one learns, with 403,
// that the account is cancelled — on /login and on /recover.
func TestCancelledAccountPassword(t *testing.T) {
	e := newEnv(t)
	e.addUser("vera", "vera@example.com", "vera password 1")
	if err := e.svc.CancelUser(context.Background(), portal.Admin, "vera"); err != nil {
		t.Fatal(err)
	}
	c := e.client(nil)
	for _, path := range []string{"/login", "/recover"} {
		if r := e.post(c, path, url.Values{"id": {"vera"}, "password": {"not vera's password"}}); r.StatusCode != http.StatusUnauthorized || strings.Contains(r.body, "cancelled") {
			t.Errorf("%s, cancelled account, wrong password: %d, want the plain 401", path, r.StatusCode)
		}
		r := e.post(c, path, url.Values{"id": {"vera"}, "password": {"vera password 1"}})
		if r.StatusCode != http.StatusForbidden || !strings.Contains(r.body, "This account has been cancelled") {
			t.Errorf("%s, cancelled account, right password: %d, want 403 saying it is cancelled:\n%.400s", path, r.StatusCode, r.body)
		}
	}
}
