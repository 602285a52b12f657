package mail

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"math/big"
	"mime/quotedprintable"
	"net"
	netmail "net/mail"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/certportal/certportal"
	"github.com/certportal/certportal/portal"
	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// Credentials of the test server's one account.
const (
	smtpUser     = "portal-sender"
	smtpPassword = "S3cret-smtp-Pa55word"
)

// received is one message the test server accepted, with how it came in.
type received struct {
	user string // signed-in user, "" without AUTH
	tls  bool
	from string
	to   []string
	data []byte
}

// backend is a go-smtp backend that records what it receives. It refuses
// recipients at refuse.example (for good) and at later.example (for now).
type backend struct {
	mu        sync.Mutex
	msgs      []received
	authTries int
}

func (b *backend) NewSession(c *smtp.Conn) (smtp.Session, error) {
	return &session{b: b, c: c}, nil
}

// messages returns what the server has accepted so far.
func (b *backend) messages() []received {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.msgs)
}

// tries returns how many AUTH exchanges the server saw.
func (b *backend) tries() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.authTries
}

type session struct {
	b   *backend
	c   *smtp.Conn
	cur received
}

func (s *session) AuthMechanisms() []string { return []string{sasl.Plain} }

func (s *session) Auth(mech string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(identity, user, pass string) error {
		s.b.mu.Lock()
		s.b.authTries++
		s.b.mu.Unlock()
		if user != smtpUser || pass != smtpPassword {
			return smtp.ErrAuthFailed
		}
		s.cur.user = user
		return nil
	}), nil
}

func (s *session) Mail(from string, _ *smtp.MailOptions) error {
	s.cur.from = from
	return nil
}

func (s *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	switch {
	case strings.HasSuffix(to, "@refuse.example"):
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"}
	case strings.HasSuffix(to, "@later.example"):
		return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "try later"}
	}
	s.cur.to = append(s.cur.to, to)
	return nil
}

func (s *session) Data(r io.Reader) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	_, s.cur.tls = s.c.TLSConnectionState()
	s.cur.data = data
	s.b.mu.Lock()
	s.b.msgs = append(s.b.msgs, s.cur)
	s.b.mu.Unlock()
	return nil
}

func (s *session) Reset()        { s.cur = received{user: s.cur.user} }
func (s *session) Logout() error { return nil }

// testCert returns a self-signed server certificate for 127.0.0.1 and
// localhost, and a pool that trusts it.
func testCert(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "test smtp server"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		DNSNames:              []string{"localhost"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: cert}, pool
}

// Modes of the test server.
const (
	modeSTARTTLS = "starttls" // plain greeting, STARTTLS offered, AUTH only after it
	modeTLS      = "tls"      // implicit TLS
	modePlain    = "plain"    // no TLS at all, so no AUTH either
)

// startServer runs a go-smtp server on 127.0.0.1:0 and returns its
// recorder, its port and a pool trusting its certificate.
func startServer(t *testing.T, mode string) (*backend, int, *x509.CertPool) {
	t.Helper()
	cert, pool := testCert(t)
	be := &backend{}
	srv := smtp.NewServer(be)
	srv.Domain = "localhost"
	srv.ReadTimeout = 10 * time.Second
	srv.WriteTimeout = 10 * time.Second
	srv.AllowInsecureAuth = false // AUTH only over TLS, as a real server
	srv.ErrorLog = testLogger{t}
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	switch mode {
	case modeSTARTTLS:
		srv.TLSConfig = cfg
	case modeTLS:
		srv.TLSConfig = cfg
		l = tls.NewListener(l, cfg)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(l)
	}()
	t.Cleanup(func() {
		// Closing l too: srv.Close misses a listener that Serve has not
		// registered yet.
		_ = srv.Close()
		_ = l.Close()
		<-done
	})
	return be, l.Addr().(*net.TCPAddr).Port, pool
}

// testLogger sends the server's log to the test log.
type testLogger struct{ t *testing.T }

func (l testLogger) Printf(format string, v ...any) { l.t.Logf("smtp server: "+format, v...) }
func (l testLogger) Println(v ...any)               { l.t.Log(append([]any{"smtp server:"}, v...)...) }

// bodyOf decodes a message's body according to its transfer encoding.
func bodyOf(t *testing.T, msg *netmail.Message) string {
	t.Helper()
	var r io.Reader = msg.Body
	if strings.EqualFold(msg.Header.Get("Content-Transfer-Encoding"), "quoted-printable") {
		r = quotedprintable.NewReader(r)
	}
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestSMTPDelivers(t *testing.T) {
	tests := []struct {
		name, mode, scheme string
		user               string
	}{
		{"STARTTLS with AUTH PLAIN", modeSTARTTLS, "smtp", smtpUser},
		{"implicit TLS with AUTH PLAIN", modeTLS, "smtps", smtpUser},
		{"plain to a loopback catcher", modePlain, "smtp+insecure", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			be, port, pool := startServer(t, tt.mode)
			url := fmt.Sprintf("%s://127.0.0.1:%d", tt.scheme, port)
			password := ""
			if tt.user != "" {
				url = fmt.Sprintf("%s://%s@127.0.0.1:%d", tt.scheme, tt.user, port)
				password = smtpPassword
			}
			s, err := NewSMTP(SMTPConfig{
				URL: url, Password: password, From: "certportal <portal@example.com>",
				RootCAs: pool, Timeout: 5 * time.Second,
				Now: func() time.Time { return fixedTime },
			})
			if err != nil {
				t.Fatal(err)
			}
			m := portal.TemporaryPasswordMail("alice@example.org", "alice", testPassword, "https://portal.example.com", fixedTime.Add(24*time.Hour))
			if err := s.Send(t.Context(), m); err != nil {
				t.Fatalf("Send: %v", err)
			}
			msgs := be.messages()
			if len(msgs) != 1 {
				t.Fatalf("server received %d messages, want 1", len(msgs))
			}
			got := msgs[0]
			if got.user != tt.user {
				t.Errorf("signed in as %q, want %q", got.user, tt.user)
			}
			if wantTLS := tt.mode != modePlain; got.tls != wantTLS {
				t.Errorf("TLS = %v, want %v", got.tls, wantTLS)
			}
			if got.from != "portal@example.com" || !slices.Equal(got.to, []string{"alice@example.org"}) {
				t.Errorf("envelope from %q to %v, want portal@example.com to [alice@example.org]", got.from, got.to)
			}
			msg, err := netmail.ReadMessage(bytes.NewReader(got.data))
			if err != nil {
				t.Fatalf("received message does not parse: %v", err)
			}
			for k, want := range map[string]string{
				"From":    `"certportal" <portal@example.com>`,
				"To":      "<alice@example.org>",
				"Subject": m.Subject,
				"Date":    "Wed, 25 Nov 2026 09:15:00 +0000",
			} {
				if got := msg.Header.Get(k); got != want {
					t.Errorf("header %s = %q, want %q", k, got, want)
				}
			}
			if !strings.HasSuffix(msg.Header.Get("Message-Id"), "@example.com>") {
				t.Errorf("Message-ID %q is not at the sender's domain", msg.Header.Get("Message-Id"))
			}
			line := "Temporary password: " + testPassword
			if !slices.Contains(strings.Split(bodyOf(t, msg), "\r\n"), line) {
				t.Errorf("body lacks the line %q:\n%s", line, got.data)
			}
		})
	}
}

// assertNoSecret fails if the password shows in err or anything it wraps.
func assertNoSecret(t *testing.T, err error) {
	t.Helper()
	for e := err; e != nil; e = errors.Unwrap(e) {
		for _, s := range []string{e.Error(), fmt.Sprintf("%+v", e), fmt.Sprintf("%#v", e)} {
			if strings.Contains(s, smtpPassword) {
				t.Fatalf("error text contains the password: %s", s)
			}
		}
	}
}

func TestSMTPFailures(t *testing.T) {
	_, tlsPort, pool := startServer(t, modeSTARTTLS)
	_, implicitPort, implicitPool := startServer(t, modeTLS)
	plainBE, plainPort, _ := startServer(t, modePlain)

	tests := []struct {
		name     string
		url      string
		password string
		roots    *x509.CertPool
		to       string
		code     certportal.ErrorCode
		says     string // part of the message
	}{
		{"wrong password", fmt.Sprintf("smtp://%s@127.0.0.1:%d", smtpUser, tlsPort), smtpPassword + "-wrong", pool, "a@example.org",
			certportal.Unavailable, "refused the portal's sign-in"},
		{"wrong password over implicit TLS", fmt.Sprintf("smtps://%s@127.0.0.1:%d", smtpUser, implicitPort), "x" + smtpPassword, implicitPool, "a@example.org",
			certportal.Unavailable, "refused the portal's sign-in"},
		{"untrusted certificate", fmt.Sprintf("smtp://%s@127.0.0.1:%d", smtpUser, tlsPort), smtpPassword, x509.NewCertPool(), "a@example.org",
			certportal.Unavailable, "not trusted"},
		{"server without STARTTLS", fmt.Sprintf("smtp://%s@127.0.0.1:%d", smtpUser, plainPort), smtpPassword, pool, "a@example.org",
			certportal.Unavailable, "STARTTLS"},
		{"smtps to a STARTTLS port", fmt.Sprintf("smtps://%s@127.0.0.1:%d", smtpUser, tlsPort), smtpPassword, pool, "a@example.org",
			certportal.Unavailable, "did not answer with TLS"},
		{"recipient refused", fmt.Sprintf("smtp://%s@127.0.0.1:%d", smtpUser, tlsPort), smtpPassword, pool, "a@refuse.example",
			certportal.Invalid, "refused the recipient"},
		{"recipient deferred", fmt.Sprintf("smtp://%s@127.0.0.1:%d", smtpUser, tlsPort), smtpPassword, pool, "a@later.example",
			certportal.Unavailable, "try again later"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := NewSMTP(SMTPConfig{URL: tt.url, Password: tt.password, From: "portal@example.com", RootCAs: tt.roots, Timeout: 5 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			err = s.Send(t.Context(), certportal.Mail{To: []string{tt.to}, Subject: "s", Body: "b"})
			if code := certportal.ErrorCodeOf(err); code != tt.code {
				t.Fatalf("Send error = %v (code %q), want code %q", err, code, tt.code)
			}
			if !strings.Contains(err.Error(), tt.says) || !strings.HasPrefix(err.Error(), "mail: ") {
				t.Errorf("error %q does not start with \"mail: \" and say %q", err, tt.says)
			}
			assertNoSecret(t, err)
			// The variants with a typo'd password must not leak that either.
			if strings.Contains(err.Error(), tt.password) {
				t.Errorf("error contains the configured password")
			}
		})
	}
	if n := plainBE.tries(); n != 0 {
		t.Errorf("the password was offered %d times to a server without TLS", n)
	}
}

func TestSMTPServerDown(t *testing.T) {
	// A port nobody listens on: take one, then close it.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedPort := l.Addr().(*net.TCPAddr).Port
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	// A server that accepts connections and then says nothing.
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = silent.Close() })
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			_ = c.Close()
		}
	})

	const timeout = 500 * time.Millisecond
	tests := []struct {
		name string
		port int
		says string
	}{
		{"connection refused", closedPort, "could not be reached"},
		{"server silent", silent.Addr().(*net.TCPAddr).Port, "did not answer in time"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := NewSMTP(SMTPConfig{
				URL: "smtp://" + smtpUser + "@127.0.0.1:" + strconv.Itoa(tt.port), Password: smtpPassword,
				From: "portal@example.com", Timeout: timeout,
			})
			if err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			err = s.Send(t.Context(), certportal.Mail{To: []string{"a@example.org"}, Subject: "s", Body: "b"})
			elapsed := time.Since(start)
			if certportal.ErrorCodeOf(err) != certportal.Unavailable {
				t.Fatalf("Send error = %v, want code unavailable", err)
			}
			if !strings.Contains(err.Error(), tt.says) {
				t.Errorf("error %q does not say %q", err, tt.says)
			}
			// The timeout plus scheduling slack on a busy machine.
			if elapsed > timeout+time.Second {
				t.Errorf("Send took %v, want at most the %v timeout (plus slack)", elapsed, timeout)
			}
			assertNoSecret(t, err)
		})
	}
}

func TestSMTPCancelled(t *testing.T) {
	_, port, pool := startServer(t, modeSTARTTLS)
	s, err := NewSMTP(SMTPConfig{URL: fmt.Sprintf("smtp://%s@127.0.0.1:%d", smtpUser, port), Password: smtpPassword, RootCAs: pool})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	err = s.Send(ctx, certportal.Mail{To: []string{"a@example.org"}, Subject: "s", Body: "b"})
	if certportal.ErrorCodeOf(err) != certportal.Unavailable || !strings.Contains(err.Error(), "cancelled") {
		t.Fatalf("Send with a cancelled context = %v, want unavailable, cancelled", err)
	}
}
