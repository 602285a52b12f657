package web_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/crypto/ocsp"

	"software.sslmate.com/src/go-pkcs12"

	"github.com/certportal/certportal/internal/testpki"
	certmail "github.com/certportal/certportal/mail"
	"github.com/certportal/certportal/portal"
	"github.com/certportal/certportal/sqlite"
	"github.com/certportal/certportal/web"
)

// benchPortal is a portal over a real TLS socket with one user who holds a
// certificate, for the hot path: a request authenticated by client
// certificate (chain check, revocation lookup in SQLite, JSON answer).
type benchPortal struct {
	srv   *httptest.Server
	svc   *portal.Service
	ws    *web.Server
	pki   *testpki.PKI
	cert  tls.Certificate
	roots *x509.CertPool
}

func newBenchPortal(b testing.TB) *benchPortal {
	b.Helper()
	dir := b.TempDir()
	pki := testpki.New(b)
	db, err := sqlite.Open(context.Background(), filepath.Join(dir, "portal.db"), true)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	svc := portal.New(db, pki.Authority, &certmail.Outbox{Dir: filepath.Join(dir, "outbox")}, portal.Config{}, log)
	svc.Now = pki.Clock.Now
	ws := web.New(svc, log)
	scert, err := pki.ServerCertificate()
	if err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(ws.Handler())
	srv.Config.ConnContext = ws.ConnContext // as serve does
	srv.TLS = ws.TLSConfig(scert)
	srv.StartTLS()
	b.Cleanup(srv.Close)
	ctx := context.Background()
	if _, _, err := svc.AddUser(ctx, portal.Admin, "bench", "bench@example.com", "bench password 1"); err != nil {
		b.Fatal(err)
	}
	const pw = "bench p12 password"
	is, err := svc.Issue(ctx, portal.Admin, portal.IssueRequest{ID: "bench", P12Password: pw})
	if err != nil {
		b.Fatal(err)
	}
	key, leaf, _, err := pkcs12.DecodeChain(is.P12, pw)
	if err != nil {
		b.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(pki.Root)
	return &benchPortal{
		srv: srv, svc: svc, ws: ws, pki: pki, roots: roots,
		cert: tls.Certificate{Certificate: [][]byte{leaf.Raw}, PrivateKey: key, Leaf: leaf},
	}
}

func (p *benchPortal) client(keepAlive bool) *http.Client {
	return &http.Client{Transport: &http.Transport{
		TLSClientConfig:   &tls.Config{RootCAs: p.roots, Certificates: []tls.Certificate{p.cert}, CurvePreferences: []tls.CurveID{tls.X25519}},
		DisableKeepAlives: !keepAlive,
		ForceAttemptHTTP2: false,
	}}
}

func (p *benchPortal) whoami(b testing.TB, c *http.Client) {
	resp, err := c.Get(p.srv.URL + "/api/whoami")
	if err != nil {
		b.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b.Fatalf("GET /api/whoami: %s", resp.Status)
	}
}

// BenchmarkWhoamiKeepAlive is GET /api/whoami by client certificate on
// kept-alive connections: per request the chain is checked and the
// certificate's status looked up in the database. The goal of issue 8 is
// 10,000 requests per second on 2 cores, load generator included.
func BenchmarkWhoamiKeepAlive(b *testing.B) {
	p := newBenchPortal(b)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		c := p.client(true)
		defer c.CloseIdleConnections()
		for pb.Next() {
			p.whoami(b, c)
		}
	})
}

// BenchmarkWhoamiNewConn is the same with a new TCP and TLS connection (a
// full handshake, X25519, no resumption) for every request.
func BenchmarkWhoamiNewConn(b *testing.B) {
	p := newBenchPortal(b)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		c := p.client(false)
		for pb.Next() {
			p.whoami(b, c)
		}
	})
}

// BenchmarkCertSignIn is the certificate check without HTTP: chain
// verification plus the database lookup, what every request by
// certificate pays before the per-connection cache.
func BenchmarkCertSignIn(b *testing.B) {
	p := newBenchPortal(b)
	chain := []*x509.Certificate{p.cert.Leaf}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := p.svc.CertSignIn(ctx, chain); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkOCSPPlainKeepAlive is POST /ocsp to the plain-HTTP listener as
// serve runs it (PlainServer on a socket), on kept-alive connections from
// as many clients as cores: the security headers, the status from the
// store's cache and the cached signed answer. The client's side (net/http)
// is in the figure too.
func BenchmarkOCSPPlainKeepAlive(b *testing.B) {
	p := newBenchPortal(b)
	der, err := ocsp.CreateRequest(p.cert.Leaf, p.pki.Issuing, nil)
	if err != nil {
		b.Fatal(err)
	}
	u := startPlain(b, p.ws).URL + "/ocsp"
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: runtime.GOMAXPROCS(0)}}
	defer client.CloseIdleConnections()
	body := string(der)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			resp, err := client.Post(u, "application/ocsp-request", strings.NewReader(body))
			if err != nil {
				b.Fatal(err)
			}
			got, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil || resp.StatusCode != http.StatusOK || len(got) < 100 {
				b.Fatalf("POST /ocsp: %d, %d bytes, %v", resp.StatusCode, len(got), err)
			}
		}
	})
}
