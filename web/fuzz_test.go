package web_test

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ocsp"

	"github.com/certportal/certportal/ca"
	"github.com/certportal/certportal/internal/testpki"
	certmail "github.com/certportal/certportal/mail"
	"github.com/certportal/certportal/portal"
	"github.com/certportal/certportal/sqlite"
	"github.com/certportal/certportal/web"
)

// fuzzPortal is the real service and handler without sockets: fuzzing
// calls the handler directly, many times a second.
func fuzzPortal(tb testing.TB) (*portal.Service, http.Handler, *testpki.PKI) {
	tb.Helper()
	dir := tb.TempDir()
	pki := testpki.New(tb)
	db, err := sqlite.Open(context.Background(), filepath.Join(dir, "portal.db"), true)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	log := slog.New(slog.DiscardHandler)
	svc := portal.New(db, pki.Authority, &certmail.Outbox{Dir: filepath.Join(dir, "outbox")}, portal.Config{}, log)
	svc.Now = pki.Clock.Now
	return svc, web.New(svc, log).Handler(), pki
}

func serve(h http.Handler, r *http.Request) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	return rec
}

func FuzzLoginForm(f *testing.F) {
	svc, h, _ := fuzzPortal(f)
	if _, _, err := svc.AddUser(context.Background(), portal.Admin, "fuzz", "fuzz@example.com", "fuzz password"); err != nil {
		f.Fatal(err)
	}
	form := "application/x-www-form-urlencoded"
	f.Add(form, "id=fuzz&password=fuzz+password")
	f.Add(form, "id=fuzz&password=wrong+password")
	f.Add(form, "id=%ff&password=x")
	f.Add(form, "id=a&id=b&password=x")
	f.Add("application/json", `{"id":"fuzz"}`)
	f.Add("multipart/form-data; boundary=x", "--x--")
	f.Add(form, "id="+strings.Repeat("a", 300)+"&password=x")
	f.Fuzz(func(t *testing.T, ctype, body string) {
		for _, path := range []string{"/login", "/recover"} {
			r := httptest.NewRequest(http.MethodPost, path, strings.NewReader(body))
			r.Header.Set("Content-Type", ctype)
			rec := serve(h, r)
			switch rec.Code {
			case 200, 303, 400, 401, 403, 413, 429:
			default:
				t.Fatalf("POST %s %q %q: status %d", path, ctype, body, rec.Code)
			}
			if rec.Code >= 400 && !strings.Contains(rec.Body.String(), "</html>") {
				t.Fatalf("POST %s: status %d without an HTML page", path, rec.Code)
			}
		}
	})
}

func FuzzCertificateForm(f *testing.F) {
	svc, h, _ := fuzzPortal(f)
	ctx := context.Background()
	acc, _, err := svc.AddUser(ctx, portal.Admin, "fuzz", "fuzz@example.com", "fuzz password")
	if err != nil {
		f.Fatal(err)
	}
	token, err := svc.NewSession(ctx, acc, nil, "192.0.2.1", "")
	if err != nil {
		f.Fatal(err)
	}
	form := "application/x-www-form-urlencoded"
	f.Add(form, "p12_password=aaaaaaaaaaaa&p12_password_confirm=aaaaaaaaaaab")
	f.Add(form, "p12_password=short&p12_password_confirm=short")
	f.Add(form, "p12_password=aaaaaaaaaaaa&p12_password_confirm=aaaaaaaaaaaa&format=zip")
	f.Add(form, "p12_password=%80&p12_password_confirm=%80")
	f.Add(form, "format=legacy")
	f.Add("text/plain", "p12_password=x")
	f.Fuzz(func(t *testing.T, ctype, body string) {
		r := httptest.NewRequest(http.MethodPost, "/certificate", strings.NewReader(body))
		r.Header.Set("Content-Type", ctype)
		r.AddCookie(&http.Cookie{Name: web.CookieName, Value: token})
		rec := serve(h, r)
		switch rec.Code {
		case 200:
			if rec.Header().Get("Content-Type") != "application/x-pkcs12" {
				t.Fatalf("200 without a PKCS#12 file for %q", body)
			}
		case 400, 401, 403, 413:
		default:
			t.Fatalf("POST /certificate %q %q: status %d", ctype, body, rec.Code)
		}
	})
}

func FuzzOCSPGet(f *testing.F) {
	_, h, pki := fuzzPortal(f)
	leaf, _, err := pki.Issue(ca.LeafRequest{ID: "fuzz", Email: "fuzz@example.com"})
	if err != nil {
		f.Fatal(err)
	}
	for _, issuer := range []*x509.Certificate{pki.Issuing, pki.Root} {
		req, err := ocsp.CreateRequest(leaf, issuer, nil)
		if err != nil {
			f.Fatal(err)
		}
		b64 := base64.StdEncoding.EncodeToString(req)
		f.Add(b64)
		f.Add(url.QueryEscape(b64))
	}
	f.Add("")
	f.Add("//")
	f.Add("%2F%2F")
	f.Add("../../login")
	f.Fuzz(func(t *testing.T, path string) {
		u, err := url.Parse("/ocsp/" + path)
		if err != nil || u.Host != "" || u.Scheme != "" {
			return // not something a client can put in a request line
		}
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.URL = u
		rec := serve(h, r)
		if rec.Code != http.StatusOK || rec.Header().Get("Content-Type") != "application/ocsp-response" || rec.Body.Len() == 0 {
			t.Fatalf("GET /ocsp/%q: status %d, type %q", path, rec.Code, rec.Header().Get("Content-Type"))
		}
		if _, err := ocsp.ParseResponse(rec.Body.Bytes(), nil); err != nil {
			if _, malformed := err.(ocsp.ResponseError); !malformed {
				t.Fatalf("GET /ocsp/%q: the answer is not an OCSP response: %v", path, err)
			}
		}
	})
}
