package clientstore

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/certportal/certportal"
	pkcs12 "software.sslmate.com/src/go-pkcs12"
)

// fakePortal answers /api/whoami the way the portal does, from the client
// certificate it is shown: it verifies the chain the client sent against
// the test root only (so the intermediate must come from the client), and
// looks the certificate up by SHA-256 in status.
func fakePortal(t *testing.T, p *testPKI, serverCert tls.Certificate, status map[string]string) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	var chainLen atomic.Int32
	roots := x509.NewCertPool()
	roots.AddCert(p.root)
	ts := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		answer := func(code int, v any) {
			w.WriteHeader(code)
			json.NewEncoder(w).Encode(v)
		}
		if r.URL.Path != "/api/whoami" {
			http.NotFound(w, r)
			return
		}
		peer := r.TLS.PeerCertificates
		if len(peer) == 0 {
			answer(http.StatusUnauthorized, map[string]string{"error": "unauthenticated"})
			return
		}
		chainLen.Store(int32(len(peer)))
		inter := x509.NewCertPool()
		for _, c := range peer[1:] {
			inter.AddCert(c)
		}
		if _, err := peer[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
			answer(http.StatusForbidden, map[string]string{"error": "unknown"})
			return
		}
		switch st := status[certportal.Fingerprint256(peer[0].Raw)]; st {
		case "valid":
			answer(http.StatusOK, WhoamiResult{ID: peer[0].Subject.CommonName, Method: "certificate", Serial: certportal.FormatSerial(peer[0].SerialNumber)})
		case "":
			answer(http.StatusForbidden, map[string]string{"error": "unknown"})
		default:
			answer(http.StatusForbidden, map[string]string{"error": st})
		}
	}))
	ts.Config.ErrorLog = log.New(io.Discard, "", 0) // refused handshakes are expected
	ts.TLS = &tls.Config{Certificates: []tls.Certificate{serverCert}, ClientAuth: tls.RequestClientCert}
	ts.StartTLS()
	t.Cleanup(ts.Close)
	return ts, &chainLen
}

func TestWhoami(t *testing.T) {
	p := newPKI(t, "p256", "alice")
	s := importedStore(t, p)
	ts, chainLen := fakePortal(t, p, p.serverCert(t), map[string]string{certportal.Fingerprint256(p.leaf.Raw): "valid"})
	ctx := context.Background()

	got, err := Whoami(ctx, ts.URL+"/", s, "")
	if err != nil {
		t.Fatalf("Whoami: %v", err)
	}
	want := WhoamiResult{ID: "alice", Method: "certificate", Serial: certportal.FormatSerial(p.leaf.SerialNumber)}
	if *got != want {
		t.Errorf("Whoami = %+v, want %+v", *got, want)
	}
	if n := chainLen.Load(); n != 2 {
		t.Errorf("the client sent %d certificates, want 2 (leaf and intermediate, not the root)", n)
	}

	// The same portal refusing the certificate for each reason.
	for reason, sentence := range map[string]string{
		"revoked":   "the portal refused the certificate: it has been revoked",
		"expired":   "the portal refused the certificate: it has expired",
		"cancelled": "the portal refused the certificate: the account has been cancelled",
	} {
		t.Run(reason, func(t *testing.T) {
			ts, _ := fakePortal(t, p, p.serverCert(t), map[string]string{certportal.Fingerprint256(p.leaf.Raw): reason})
			_, err := Whoami(ctx, ts.URL, s, "")
			e := wantCode(t, err, certportal.Forbidden)
			if e.Message != sentence {
				t.Errorf("message %q, want %q", e.Message, sentence)
			}
		})
	}
}

func TestWhoamiFailures(t *testing.T) {
	p := newPKI(t, "p256", "alice")
	foreign := newPKI(t, "p256", "mallory")
	s := importedStore(t, p)
	valid := map[string]string{certportal.Fingerprint256(p.leaf.Raw): "valid"}
	foreignPortal, _ := fakePortal(t, p, foreign.serverCert(t), valid)
	// A port that refuses connections: listen, note the address, close.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := l.Addr().String()
	l.Close()
	// A server that does not speak TLS.
	plain := httptest.NewServer(http.NotFoundHandler())
	t.Cleanup(plain.Close)
	noCert := openStore(t)

	tests := []struct {
		name  string
		url   string
		store *Store
		code  certportal.ErrorCode
		want  string
	}{
		{"root not in store", foreignPortal.URL, s, certportal.Unavailable, "the portal's certificate is not issued by a root in your store"},
		{"connection refused", "https://" + closed, s, certportal.Unavailable, "could not connect to " + closed + ": connection refused"},
		{"plain HTTP server", "https://" + strings.TrimPrefix(plain.URL, "http://"), s, certportal.Unavailable, "does not speak HTTPS"},
		{"http URL", plain.URL, s, certportal.Invalid, "must start with https://"},
		{"not a URL", "portal", s, certportal.Invalid, "not a portal URL"},
		{"empty store", foreignPortal.URL, noCert, certportal.NotFound, "no certificate in the personal store"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			r, err := Whoami(ctx, tt.url, tt.store, "")
			if err == nil {
				t.Fatalf("Whoami = %+v, want an error", r)
			}
			e := wantCode(t, err, tt.code)
			if !strings.Contains(e.Message, tt.want) {
				t.Errorf("message %q does not contain %q", e.Message, tt.want)
			}
			for _, raw := range []string{"x509:", "tls:", "dial tcp", "Get \""} {
				if strings.Contains(err.Error(), raw) {
					t.Errorf("error %q shows the raw Go error (%q)", err, raw)
				}
			}
		})
	}
}

// TestClientConfigPicks checks the choice of certificate: the newest one
// that chains to a root in the store, ignoring one from an unknown CA.
func TestClientConfigPicks(t *testing.T) {
	p := newPKI(t, "p256", "alice")
	s := importedStore(t, p)
	newer := *p
	newer.leaf, newer.leafKey = p.issueLeaf(t, "p256", "alice", time.Now().Add(-time.Minute))
	if _, err := s.Import(newer.p12(t, pkcs12.Modern2023), testPassword); err != nil {
		t.Fatal(err)
	}
	// A personal certificate from another CA, imported without its
	// root: it must not be chosen, however new.
	stranger := newPKI(t, "p256", "alice")
	strangerP12, err := pkcs12.Modern2023.Encode(stranger.leafKey, stranger.leaf, []*x509.Certificate{stranger.ica}, testPassword)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Import(strangerP12, testPassword); err != nil {
		t.Fatal(err)
	}

	cfg, e, err := s.ClientConfig("")
	if err != nil {
		t.Fatal(err)
	}
	if e.Thumbprint != certportal.Thumbprint(newer.leaf.Raw) {
		t.Errorf("ClientConfig chose %s, want the newest anchored one %s", e.Thumbprint, certportal.Thumbprint(newer.leaf.Raw))
	}
	if cfg.RootCAs == nil || !cfg.RootCAs.Equal(poolOf(p.root)) {
		t.Errorf("RootCAs is not exactly the store's root")
	}
	c, err := cfg.GetClientCertificate(&tls.CertificateRequestInfo{})
	if err != nil || len(c.Certificate) != 2 {
		t.Errorf("client certificate chain has %d certificates (err %v), want leaf + intermediate", len(c.Certificate), err)
	}

	// Named explicitly, the older and the stranger's are used.
	for _, want := range []*x509.Certificate{p.leaf, stranger.leaf} {
		_, e, err := s.ClientConfig(strings.ToLower(certportal.Thumbprint(want.Raw)))
		if err != nil || e.Thumbprint != certportal.Thumbprint(want.Raw) {
			t.Errorf("ClientConfig(%s) = %v, %v", certportal.Thumbprint(want.Raw), e, err)
		}
	}
	// Without its root, nothing is anchored.
	if err := s.Delete(certportal.Thumbprint(p.root.Raw), Root); err != nil {
		t.Fatal(err)
	}
	_, _, err = s.ClientConfig("")
	wantCode(t, err, certportal.NotFound)
}

func poolOf(certs ...*x509.Certificate) *x509.CertPool {
	p := x509.NewCertPool()
	for _, c := range certs {
		p.AddCert(c)
	}
	return p
}
