package web_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"io"
	stdlog "log"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/mail"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"

	"software.sslmate.com/src/go-pkcs12"

	"github.com/certportal/certportal"
	"github.com/certportal/certportal/internal/testpki"
	certmail "github.com/certportal/certportal/mail"
	"github.com/certportal/certportal/portal"
	"github.com/certportal/certportal/sqlite"
	"github.com/certportal/certportal/web"
)

// env is a whole portal over real sockets: a CA in a temporary directory,
// a SQLite file, an .eml outbox, the HTTPS server with the web handler and
// the plain-HTTP CA listener.
type env struct {
	t      *testing.T
	dir    string
	pki    *testpki.PKI
	store  *sqlite.DB
	svc    *portal.Service
	web    *web.Server
	srv    *httptest.Server // HTTPS, Handler
	caSrv  plainListener    // plain HTTP, PlainServer as serve runs it
	outbox string
	roots  *x509.CertPool

	mu     sync.Mutex
	bodies []string // every page body a client read, to look for secrets
}

func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{t: t, dir: t.TempDir()}
	e.pki = testpki.New(t)
	db, err := sqlite.Open(context.Background(), filepath.Join(e.dir, "portal.db"), true)
	if err != nil {
		t.Fatalf("opening the database: %v", err)
	}
	e.store = db
	t.Cleanup(func() { db.Close() })
	e.outbox = filepath.Join(e.dir, "outbox")
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	e.svc = portal.New(db, e.pki.Authority, &certmail.Outbox{Dir: e.outbox}, portal.Config{}, log)
	e.svc.Now = e.pki.Clock.Now
	e.web = web.New(e.svc, log)

	cert, err := e.pki.ServerCertificate()
	if err != nil {
		t.Fatalf("server certificate: %v", err)
	}
	e.srv = httptest.NewUnstartedServer(e.web.Handler())
	e.srv.TLS = e.web.TLSConfig(cert)
	e.srv.Listener = web.RedirectPlainHTTP(e.srv.Listener) // as serve does
	e.srv.Config.ErrorLog = stdlog.New(io.Discard, "", 0)  // handshakes cut short by tests
	e.srv.StartTLS()
	t.Cleanup(e.srv.Close)
	e.caSrv = startPlain(t, e.web)

	e.roots = x509.NewCertPool()
	e.roots.AddCert(e.pki.Root)
	return e
}

// addUser creates an account that signs in by password.
func (e *env) addUser(id, email, password string) {
	e.t.Helper()
	if _, _, err := e.svc.AddUser(context.Background(), portal.Admin, id, email, password); err != nil {
		e.t.Fatalf("adding %s: %v", id, err)
	}
}

// client is a browser: a cookie jar, the portal's root trusted, an
// optional client certificate that is always offered, and no automatic
// redirects (the tests check the 303s).
func (e *env) client(cert *tls.Certificate) *http.Client {
	jar, _ := cookiejar.New(nil)
	cfg := &tls.Config{RootCAs: e.roots}
	if cert != nil {
		// Offered whatever CAs the server names, so a foreign certificate
		// reaches the portal as a careless browser would send it.
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return cert, nil }
	}
	return &http.Client{
		Jar:           jar,
		Transport:     &http.Transport{TLSClientConfig: cfg},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// response is what a test looks at.
type response struct {
	*http.Response
	body string
}

func (e *env) do(c *http.Client, req *http.Request) *response {
	e.t.Helper()
	resp, err := c.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatalf("%s %s: reading the body: %v", req.Method, req.URL, err)
	}
	e.mu.Lock()
	e.bodies = append(e.bodies, string(b))
	e.mu.Unlock()
	return &response{Response: resp, body: string(b)}
}

func (e *env) get(c *http.Client, path string) *response {
	e.t.Helper()
	req, err := http.NewRequest(http.MethodGet, e.srv.URL+path, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	return e.do(c, req)
}

// post sends a form the way a browser does.
func (e *env) post(c *http.Client, path string, form url.Values) *response {
	e.t.Helper()
	return e.postRaw(c, path, "application/x-www-form-urlencoded", form.Encode())
}

func (e *env) postRaw(c *http.Client, path, contentType, body string) *response {
	e.t.Helper()
	req, err := http.NewRequest(http.MethodPost, e.srv.URL+path, strings.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	return e.do(c, req)
}

// login signs c in by password and fails the test unless it works.
func (e *env) login(c *http.Client, id, password string) {
	e.t.Helper()
	r := e.post(c, "/login", url.Values{"id": {id}, "password": {password}})
	if r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != "/" {
		e.t.Fatalf("login %s: status %d, Location %q, want 303 to /", id, r.StatusCode, r.Header.Get("Location"))
	}
}

// p12Password is the PKCS#12 password the tests choose.
const p12Password = "file password 123"

// getCertificate asks for a certificate on a signed-in client and returns
// it as the TLS client certificate the p12 holds.
func (e *env) getCertificate(c *http.Client, id string) (*tls.Certificate, []*x509.Certificate) {
	e.t.Helper()
	r := e.post(c, "/certificate", url.Values{"p12_password": {p12Password}, "p12_password_confirm": {p12Password}})
	if r.StatusCode != http.StatusOK {
		e.t.Fatalf("POST /certificate: status %d, body %.300s", r.StatusCode, r.body)
	}
	for h, want := range map[string]string{
		"Content-Type":        "application/x-pkcs12",
		"Cache-Control":       "no-store",
		"Content-Disposition": `attachment; filename="` + id + `.p12"`,
	} {
		if got := r.Header.Get(h); got != want {
			e.t.Errorf("POST /certificate: %s = %q, want %q", h, got, want)
		}
	}
	return decodeP12(e.t, []byte(r.body), p12Password)
}

func decodeP12(t *testing.T, p12 []byte, password string) (*tls.Certificate, []*x509.Certificate) {
	t.Helper()
	key, leaf, cas, err := pkcs12.DecodeChain(p12, password)
	if err != nil {
		t.Fatalf("decoding the PKCS#12 file: %v", err)
	}
	tc := &tls.Certificate{Certificate: [][]byte{leaf.Raw}, PrivateKey: key, Leaf: leaf}
	for _, c := range cas {
		tc.Certificate = append(tc.Certificate, c.Raw)
	}
	return tc, append([]*x509.Certificate{leaf}, cas...)
}

// account reads an account from the service.
func (e *env) account(id string) *certportal.Account {
	e.t.Helper()
	a, err := e.svc.Account(context.Background(), id)
	if err != nil {
		e.t.Fatalf("account %s: %v", id, err)
	}
	return a
}

func (e *env) certificates(id string) []certportal.Certificate {
	e.t.Helper()
	list, err := e.svc.Certificates(context.Background(), id)
	if err != nil {
		e.t.Fatalf("certificates of %s: %v", id, err)
	}
	return list
}

func (e *env) audit() []certportal.AuditEvent {
	e.t.Helper()
	list, err := e.svc.Audit(context.Background(), certportal.AuditFilter{})
	if err != nil {
		e.t.Fatalf("audit: %v", err)
	}
	return list
}

func countAudit(list []certportal.AuditEvent, action, detailPrefix string) int {
	n := 0
	for _, ev := range list {
		if ev.Action == action && strings.HasPrefix(ev.Detail, detailPrefix) {
			n++
		}
	}
	return n
}

// outboxMail is one mail in the outbox.
type outboxMail struct {
	to   []string
	body string
}

// mails reads the outbox in the order the mails were sent.
func (e *env) mails() []outboxMail {
	e.t.Helper()
	names, _ := filepath.Glob(filepath.Join(e.outbox, "*.eml"))
	sort.Strings(names)
	var out []outboxMail
	for _, n := range names {
		f, err := os.Open(n)
		if err != nil {
			e.t.Fatal(err)
		}
		m, err := mail.ReadMessage(f)
		if err != nil {
			f.Close()
			e.t.Fatalf("%s: %v", n, err)
		}
		b, _ := io.ReadAll(m.Body)
		f.Close()
		to, err := m.Header.AddressList("To")
		if err != nil {
			e.t.Fatalf("%s: To: %v", n, err)
		}
		var addrs []string
		for _, a := range to {
			addrs = append(addrs, a.Address)
		}
		out = append(out, outboxMail{to: addrs, body: string(b)})
	}
	return out
}

var tempLine = regexp.MustCompile(`(?m)^Temporary password: (\S+)\r?$`)

// lastTempPassword returns the temporary password of the last such mail
// and checks that it went only to want.
func (e *env) lastTempPassword(want string) string {
	e.t.Helper()
	ms := e.mails()
	for i := len(ms) - 1; i >= 0; i-- {
		if m := tempLine.FindStringSubmatch(ms[i].body); m != nil {
			if len(ms[i].to) != 1 || ms[i].to[0] != want {
				e.t.Errorf("temporary password mail went to %v, want only %s", ms[i].to, want)
			}
			return m[1]
		}
	}
	e.t.Fatal("no mail with a line \"Temporary password: ...\" in the outbox")
	return ""
}

// need fails the test when an outside tool is missing.
func need(t *testing.T, tool string) string {
	t.Helper()
	p, err := exec.LookPath(tool)
	if err != nil {
		t.Fatalf("%s is needed by this test and is not installed (Debian package: %s)", tool, map[string]string{"openssl": "openssl", "curl": "curl"}[tool])
	}
	return p
}

// writePEM writes certificates (and optionally a key) as PEM, 0600.
func writePEM(t *testing.T, path string, typ string, ders ...[]byte) {
	t.Helper()
	var b strings.Builder
	for _, d := range ders {
		_ = pem.Encode(&b, &pem.Block{Type: typ, Bytes: d})
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
}

func run(t *testing.T, name string, args ...string) (string, error) {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	return string(out), err
}

// plainListener is a running plain-HTTP listener.
type plainListener struct{ URL string }

// startPlain serves w's plain-HTTP listener as serve does (PlainServer on
// a real socket) until the test ends.
func startPlain(t testing.TB, w *web.Server) plainListener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := w.PlainServer(func(string, ...any) {})
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	t.Cleanup(func() {
		if err := srv.Shutdown(); err != nil {
			t.Errorf("plain listener shutdown: %v", err)
		}
		if err := <-done; err != nil {
			t.Errorf("plain listener: %v", err)
		}
	})
	return plainListener{URL: "http://" + ln.Addr().String()}
}
