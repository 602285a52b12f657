package web_test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/certportal/certportal"
	"github.com/certportal/certportal/ca"
	"github.com/certportal/certportal/internal/testpki"
	"github.com/certportal/certportal/mail"
	"github.com/certportal/certportal/portal"
)

const (
	aliceMail = "alice@example.com"
	alicePW   = "alice password 1"
)

// TestStories walks SPEC stories 1–3 end to end: a certificate for a new
// user, certificate-only sign-in, revocation at the next request on the
// same connection, and recovery by mail up to a new certificate.
func TestStories(t *testing.T) {
	e := newEnv(t)
	e.addUser("alice", aliceMail, alicePW)
	b := e.client(nil)

	// Story 1: no credential -> the sign-in page, with the seed's words.
	if r := e.get(b, "/"); r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != "/login" {
		t.Fatalf("GET / without credentials: %d %q, want 303 to /login", r.StatusCode, r.Header.Get("Location"))
	}
	r := e.get(b, "/login")
	for _, want := range []string{">Login<", `href="/recover"`, "If your certificate has been revoked", `name="id"`, `name="password"`} {
		if !strings.Contains(r.body, want) {
			t.Errorf("GET /login lacks %q", want)
		}
	}
	r = e.post(b, "/login", url.Values{"id": {"alice"}, "password": {alicePW}})
	if r.StatusCode != http.StatusSeeOther {
		t.Fatalf("POST /login: %d, want 303", r.StatusCode)
	}
	checkCookie(t, r.Response)
	r = e.get(b, "/")
	if r.StatusCode != http.StatusOK || !strings.Contains(r.body, "alice") || !strings.Contains(r.body, `action="/certificate"`) ||
		!strings.Contains(r.body, "legacy (for macOS Keychain and older Windows)") {
		t.Fatalf("home page after password sign-in: %d, no certificate form:\n%.500s", r.StatusCode, r.body)
	}

	cert1, chain := e.getCertificate(b, "alice")
	if len(chain) != 3 || chain[0].Subject.CommonName != "alice" {
		t.Fatalf("the PKCS#12 holds %d certificates (leaf CN %q), want leaf alice + issuing + root", len(chain), chain[0].Subject.CommonName)
	}
	if m := e.account("alice").Method; m != certportal.MethodCertificate {
		t.Errorf("method after issuing = %s, want certificate", m)
	}
	// The issuing session survives, but may not issue again.
	if r := e.post(b, "/certificate", url.Values{"p12_password": {p12Password}, "p12_password_confirm": {p12Password}}); r.StatusCode != http.StatusForbidden {
		t.Errorf("second POST /certificate: %d, want 403", r.StatusCode)
	}

	// Story 2: the certificate is the only way in.
	r = e.post(e.client(nil), "/login", url.Values{"id": {"alice"}, "password": {alicePW}})
	if r.StatusCode != http.StatusForbidden || !strings.Contains(r.body, `href="/recover"`) || !strings.Contains(r.body, "If your certificate has been revoked") {
		t.Errorf("password sign-in of a certificate account: %d, want 403 with a link to /recover:\n%.400s", r.StatusCode, r.body)
	}
	c := e.client(cert1)
	var reused []bool
	trace := &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) { reused = append(reused, i.Reused) }}
	getTraced := func(path string) *response {
		req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), http.MethodGet, e.srv.URL+path, nil)
		return e.do(c, req)
	}
	r = getTraced("/")
	serial := certportal.FormatSerial(chain[0].SerialNumber)
	if r.StatusCode != http.StatusOK || !strings.Contains(r.body, serial) || !strings.Contains(r.body, certportal.Thumbprint(chain[0].Raw)) {
		t.Fatalf("GET / with the certificate: %d, want the home page with serial %s:\n%.500s", r.StatusCode, serial, r.body)
	}
	checkCookie(t, r.Response)
	if r := getTraced("/"); r.StatusCode != http.StatusOK {
		t.Fatalf("second GET / with the session: %d", r.StatusCode)
	}
	if n := countAudit(e.audit(), certportal.ActionSignInOK, "certificate"); n != 1 {
		t.Errorf("certificate sign-ins audited: %d, want 1 (once per session)", n)
	}
	w := whoamiOf(t, e, e.client(cert1))
	if w.code != http.StatusOK || w.ID != "alice" || w.Method != "certificate" || w.Serial != serial {
		t.Errorf("whoami with the certificate: %+v", w)
	}
	if n := countAudit(e.audit(), certportal.ActionSignInOK, "certificate"); n != 1 {
		t.Errorf("/api/whoami by certificate wrote a sign-in record (%d)", n)
	}

	// A revocation takes effect at the next request, on the same
	// keep-alive connection, and ends the session bound to the certificate.
	if _, err := e.svc.Revoke(context.Background(), portal.Admin, serial, certportal.ReasonKeyCompromise); err != nil {
		t.Fatal(err)
	}
	r = getTraced("/")
	if r.StatusCode != http.StatusForbidden || !strings.Contains(r.body, "revoked") || !strings.Contains(r.body, `href="/recover"`) {
		t.Errorf("GET / after revocation: %d, want 403 saying revoked with a link to /recover:\n%.400s", r.StatusCode, r.body)
	}
	if len(reused) != 3 || !reused[1] || !reused[2] {
		t.Errorf("connection reuse %v: the revocation check must run on the same connection", reused)
	}
	if w := whoamiOf(t, e, c); w.code != http.StatusForbidden || w.Error != "revoked" {
		t.Errorf("whoami with a revoked certificate: %+v", w)
	}

	// Story 3: "If your certificate has been revoked".
	d := e.client(nil)
	r = e.get(d, "/recover")
	if !strings.Contains(r.body, "Change Sign in Method") {
		t.Errorf("GET /recover lacks the \"Change Sign in Method\" button")
	}
	if r := e.post(d, "/recover", url.Values{"id": {"alice"}, "password": {"wrong password"}}); r.StatusCode != http.StatusUnauthorized {
		t.Errorf("POST /recover with a wrong password: %d, want 401", r.StatusCode)
	}
	r = e.confirmPage(d, e.post(d, "/recover", url.Values{"id": {"alice"}, "password": {alicePW}}))
	if !strings.Contains(r.body, ">OK<") {
		t.Errorf("confirmation page lacks the OK button")
	}
	// Reloading the confirmation shows it again; it never resends a form.
	ticket := e.hiddenTicket(d, e.post(d, "/recover", url.Values{"id": {"alice"}, "password": {alicePW}}))

	// The mail cannot go out: nothing changes and the page says so.
	good := e.svc.Mailer
	e.svc.Mailer = &mail.Outbox{Dir: "/dev/null/outbox"}
	r = e.post(d, "/recover/confirm", url.Values{"ticket": {ticket}})
	e.svc.Mailer = good
	if r.StatusCode != http.StatusServiceUnavailable || !strings.Contains(r.body, "try again later") {
		t.Errorf("confirm with the mail down: %d, want 503 saying try again later:\n%.400s", r.StatusCode, r.body)
	}
	if a := e.account("alice"); a.Method != certportal.MethodCertificate {
		t.Errorf("the method changed although the mail failed")
	}

	r = e.post(d, "/recover/confirm", url.Values{"ticket": {ticket}})
	if r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != "/recover/done" {
		t.Fatalf("POST /recover/confirm: %d %q, want 303 to /recover/done", r.StatusCode, r.Header.Get("Location"))
	}
	r = e.get(d, "/recover/done")
	for _, want := range []string{"Sign Now", `href="/login"`, "Identification", "registered e-mail address"} {
		if !strings.Contains(r.body, want) {
			t.Errorf("/recover/done lacks %q", want)
		}
	}
	if r := e.post(d, "/recover/confirm", url.Values{"ticket": {ticket}}); r.StatusCode != http.StatusBadRequest {
		t.Errorf("reusing a ticket: %d, want 400", r.StatusCode)
	}
	if a := e.account("alice"); a.Method != certportal.MethodPassword {
		t.Errorf("method after recovery = %s, want password", a.Method)
	}
	temp := e.lastTempPassword(aliceMail)

	e.login(d, "alice", temp)
	cert2, chain2 := e.getCertificate(d, "alice")
	if r := e.get(e.client(cert2), "/"); r.StatusCode != http.StatusOK || !strings.Contains(r.body, certportal.FormatSerial(chain2[0].SerialNumber)) {
		t.Errorf("GET / with the new certificate: %d", r.StatusCode)
	}
	for _, c := range e.certificates("alice") {
		if want := c.Serial == serial; c.IsRevoked() != want {
			t.Errorf("certificate %s revoked = %v, want %v (only the first one revoked)", c.Serial, c.IsRevoked(), want)
		}
	}

	// The temporary password appears in no page and no audit record.
	for _, body := range e.bodies {
		if strings.Contains(body, temp) {
			t.Fatal("the temporary password appears in a page")
		}
	}
	for _, ev := range e.audit() {
		if strings.Contains(ev.Detail, temp) || strings.Contains(ev.Actor, temp) {
			t.Fatalf("the temporary password appears in audit record %d", ev.Seq)
		}
	}
	if _, err := certportal.VerifyAuditChain(e.audit()); err != nil {
		t.Errorf("audit chain: %v", err)
	}
}

// checkCookie checks the session cookie's attributes as sent.
func checkCookie(t *testing.T, resp *http.Response) {
	t.Helper()
	for _, line := range resp.Header.Values("Set-Cookie") {
		if !strings.HasPrefix(line, "__Host-certportal=") || strings.HasPrefix(line, "__Host-certportal=;") {
			continue
		}
		for _, want := range []string{"Path=/", "Secure", "HttpOnly", "SameSite=Lax"} {
			if !strings.Contains(line, want) {
				t.Errorf("session cookie %q lacks %s", line, want)
			}
		}
		if strings.Contains(strings.ToLower(line), "domain=") {
			t.Errorf("session cookie %q has a Domain", line)
		}
		return
	}
	t.Errorf("no session cookie set; Set-Cookie: %q", resp.Header.Values("Set-Cookie"))
}

// confirmPage follows POST /recover's 303 (the ticket travels in a
// cookie, never in the URL) and returns the confirmation page.
func (e *env) confirmPage(c *http.Client, r *response) *response {
	e.t.Helper()
	if r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != "/recover/confirm" {
		e.t.Fatalf("POST /recover: %d to %q, want 303 to /recover/confirm:\n%.400s", r.StatusCode, r.Header.Get("Location"), r.body)
	}
	if strings.Contains(r.Header.Get("Location"), "ticket") {
		e.t.Fatalf("the ticket is in the URL: %s", r.Header.Get("Location"))
	}
	return e.get(c, "/recover/confirm")
}

// hiddenTicket returns the ticket of the confirmation page that POST
// /recover (r) leads to.
func (e *env) hiddenTicket(c *http.Client, r *response) string {
	e.t.Helper()
	page := e.confirmPage(c, r)
	const marker = `name="ticket" value="`
	i := strings.Index(page.body, marker)
	if page.StatusCode != http.StatusOK || i < 0 {
		e.t.Fatalf("GET /recover/confirm: %d, no hidden ticket:\n%.400s", page.StatusCode, page.body)
	}
	rest := page.body[i+len(marker):]
	return rest[:strings.IndexByte(rest, '"')]
}

type whoamiResult struct {
	code   int
	ID     string `json:"id"`
	Method string `json:"method"`
	Serial string `json:"serial"`
	Error  string `json:"error"`
}

func whoamiOf(t *testing.T, e *env, c *http.Client) whoamiResult {
	t.Helper()
	r := e.get(c, "/api/whoami")
	var w whoamiResult
	if err := json.Unmarshal([]byte(r.body), &w); err != nil {
		t.Fatalf("/api/whoami: %d, not JSON: %q", r.StatusCode, r.body)
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("/api/whoami Content-Type %q", ct)
	}
	w.code = r.StatusCode
	return w
}

// TestRefusedCertificates: expired, foreign and cancelled certificates get
// a 403 page (not a TLS error) and the matching /api/whoami error.
func TestRefusedCertificates(t *testing.T) {
	e := newEnv(t)
	e.addUser("alice", aliceMail, alicePW)
	b := e.client(nil)
	e.login(b, "alice", alicePW)
	cert, _ := e.getCertificate(b, "alice")

	other := testpki.New(t)
	leaf, key, err := other.Issue(ca.LeafRequest{ID: "alice", Email: aliceMail})
	if err != nil {
		t.Fatal(err)
	}
	foreign := &tls.Certificate{Certificate: [][]byte{leaf.Raw, other.Issuing.Raw}, PrivateKey: key, Leaf: leaf}

	check := func(name string, c *tls.Certificate, reason, words string) {
		t.Helper()
		r := e.get(e.client(c), "/")
		if r.StatusCode != http.StatusForbidden || !strings.Contains(r.body, words) || !strings.Contains(r.body, `href="/recover"`) {
			t.Errorf("%s: GET / = %d, want 403 with %q and a link to /recover:\n%.400s", name, r.StatusCode, words, r.body)
		}
		if w := whoamiOf(t, e, e.client(c)); w.code != http.StatusForbidden || w.Error != reason {
			t.Errorf("%s: whoami = %+v, want 403 %q", name, w, reason)
		}
	}
	check("foreign CA", foreign, "unknown", "not issued by this portal")
	if w := whoamiOf(t, e, e.client(nil)); w.code != http.StatusUnauthorized || w.Error != "unauthenticated" {
		t.Errorf("whoami without credentials = %+v, want 401 unauthenticated", w)
	}

	now := e.pki.Clock.Now()
	e.pki.Clock.Set(now.Add(400 * 24 * time.Hour))
	check("expired", cert, "expired", "expired")
	e.pki.Clock.Set(now)

	if r := e.get(e.client(cert), "/"); r.StatusCode != http.StatusOK {
		t.Fatalf("the certificate should work again once the clock is back: %d", r.StatusCode)
	}
	if err := e.svc.CancelUser(context.Background(), portal.Admin, "alice"); err != nil {
		t.Fatal(err)
	}
	check("cancelled", cert, "cancelled", "cancelled")
	if r := e.post(e.client(nil), "/login", url.Values{"id": {"alice"}, "password": {alicePW}}); r.StatusCode != http.StatusForbidden {
		t.Errorf("password sign-in of a cancelled account with the right password: %d, want 403", r.StatusCode)
	}
	if r := e.post(e.client(nil), "/login", url.Values{"id": {"alice"}, "password": {"wrong password"}}); r.StatusCode != http.StatusUnauthorized {
		t.Errorf("password sign-in of a cancelled account with a wrong password: %d, want 401", r.StatusCode)
	}
}
