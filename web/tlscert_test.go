package web_test

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptrace"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/certportal/certportal/ca"
	"github.com/certportal/certportal/internal/testpki"
	"github.com/certportal/certportal/portal"
	"github.com/certportal/certportal/web"
)

// serveTLS runs the web handler on a real TLS listener with the server
// certificate from certs, as serve does, and returns its base URL.
func serveTLS(t *testing.T, p *testpki.PKI, certs web.CertSource) string {
	t.Helper()
	srv := web.New(portal.New(nil, p.Authority, nil, portal.Config{}, nil), nil)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go hs.Serve(tls.NewListener(ln, srv.TLSConfigFrom(certs)))
	t.Cleanup(func() { hs.Close() })
	return "https://" + ln.Addr().String()
}

// probe is an HTTP/1.1 client with keep-alive that reports, per request,
// whether the connection was reused and the serial of the server
// certificate on it.
type probe struct {
	t *testing.T
	c *http.Client
}

func newProbe(t *testing.T, p *testpki.PKI) *probe {
	roots := x509.NewCertPool()
	roots.AddCert(p.Root)
	tr := &http.Transport{
		// The clock of the test runs ahead; the client follows it.
		TLSClientConfig:     &tls.Config{RootCAs: roots, Time: p.Clock.Now},
		MaxIdleConnsPerHost: 1,
		IdleConnTimeout:     time.Minute,
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &probe{t, &http.Client{Transport: tr}}
}

func (pr *probe) get(url string) (serial string, reused bool) {
	pr.t.Helper()
	var info httptrace.GotConnInfo
	req, _ := http.NewRequest("GET", url+"/ca/root.crt", nil)
	req = req.WithContext(httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{
		GotConn: func(i httptrace.GotConnInfo) { info = i },
	}))
	resp, err := pr.c.Do(req)
	if err != nil {
		pr.t.Fatalf("GET: %v", err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Proto != "HTTP/1.1" {
		pr.t.Fatalf("GET: %s %s", resp.Proto, resp.Status)
	}
	return resp.TLS.PeerCertificates[0].SerialNumber.Text(16), info.Reused
}

// TestCertificateSwitchKeepsConnections renews the server certificate
// while a client holds a kept-alive connection: requests on that
// connection go on (with the old certificate), and the next new
// connection gets the new one.
func TestCertificateSwitchKeepsConnections(t *testing.T) {
	p := testpki.New(t)
	certFile, keyFile := p.ServerCertificatePaths()
	r, err := web.NewCertReloader(p.ServerCertificate, nil, certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	r.Due = func(c *tls.Certificate) bool { return ca.RenewalDue(c.Leaf, p.Clock.Now()) }
	r.Renew = p.RenewServerCertificate
	url := serveTLS(t, p, r)

	held := newProbe(t, p)
	first, reused := held.get(url)
	if reused {
		t.Fatal("the first request reused a connection")
	}
	r.Poll() // not due: nothing changes
	if s, reused := held.get(url); s != first || !reused {
		t.Fatalf("before renewal: serial %s reused %v, want %s on the same connection", s, reused, first)
	}

	p.Clock.Advance(300 * 24 * time.Hour) // 97 of 397 days left
	r.Poll()
	renewed := r.Certificate().Leaf.SerialNumber.Text(16)
	if renewed == first {
		t.Fatal("Poll did not renew a due certificate")
	}
	for range 3 {
		if s, reused := held.get(url); s != first || !reused {
			t.Fatalf("the held connection after renewal: serial %s reused %v, want %s, reused", s, reused, first)
		}
	}
	fresh := newProbe(t, p)
	if s, reused := fresh.get(url); s != renewed || reused {
		t.Fatalf("a new connection after renewal: serial %s reused %v, want %s", s, reused, renewed)
	}
	// Another replica sharing DATA/ca renews: the files change, and the
	// next poll serves its certificate.
	other, err := ca.Load(p.Dir, "")
	if err != nil {
		t.Fatal(err)
	}
	other.Now = p.Clock.Now
	theirs, err := other.RenewServerCertificate()
	if err != nil {
		t.Fatal(err)
	}
	r.Poll()
	if s, _ := newProbe(t, p).get(url); s != theirs.Leaf.SerialNumber.Text(16) {
		t.Fatalf("after another replica's renewal: serial %s, want %s", s, theirs.Leaf.SerialNumber.Text(16))
	}
	if s, reused := held.get(url); s != first || !reused {
		t.Fatalf("the held connection at the end: serial %s reused %v", s, reused)
	}
}

// TestCertReloaderFiles is the --tls-cert case: changed files are loaded,
// a bad file keeps the certificate in use and is logged, and Reload (the
// SIGHUP) reports the error.
func TestCertReloaderFiles(t *testing.T) {
	p := testpki.New(t)
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	copyPair := func(from *testpki.PKI) {
		t.Helper()
		for src, dst := range map[string]string{ca.ServerCertFile: certFile, ca.ServerKeyFile: keyFile} {
			b, err := os.ReadFile(filepath.Join(from.Dir, src))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(dst, b, 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	copyPair(p)
	var logs bytes.Buffer
	load := func() (*tls.Certificate, error) {
		c, err := tls.LoadX509KeyPair(certFile, keyFile)
		return &c, err
	}
	r, err := web.NewCertReloader(load, slog.New(slog.NewTextHandler(&logs, nil)), certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	url := serveTLS(t, p, r)
	held := newProbe(t, p)
	first, _ := held.get(url)

	// A half-written or wrong file: the old certificate stays.
	if err := os.WriteFile(certFile, []byte("-----BEGIN CERTIFICATE-----\nnot base64\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r.Poll()
	if s, _ := newProbe(t, p).get(url); s != first {
		t.Fatalf("after a bad file: serial %s, want the old %s", s, first)
	}
	if !strings.Contains(logs.String(), "TLS certificate not reloaded") {
		t.Errorf("a bad file was not logged: %s", logs.String())
	}
	if err := r.Reload(); err == nil {
		t.Error("Reload of a bad file reported no error")
	}

	// A good new pair (another installation's, as an administrator would
	// install a certificate from elsewhere) is picked up.
	q := testpki.New(t)
	copyPair(q)
	r.Poll()
	newProbeQ := newProbe(t, q)
	s, _ := newProbeQ.get(url)
	want, _ := q.ServerCertificate()
	if s != want.Leaf.SerialNumber.Text(16) {
		t.Fatalf("after new files: serial %s, want %s", s, want.Leaf.SerialNumber.Text(16))
	}
	if !strings.Contains(logs.String(), "TLS certificate switched") {
		t.Errorf("the switch was not logged: %s", logs.String())
	}
}
