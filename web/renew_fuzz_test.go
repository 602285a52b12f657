package web

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/certportal/certportal"
)

// FuzzRenewAPIBody feeds POST /api/renew's body reader any content type and
// body: it must never panic, must refuse with an *certportal.Error (or the
// 413 of an oversized body), and what it accepts must be one valid-UTF-8
// password and a format field, never more than MaxBody bytes read.
func FuzzRenewAPIBody(f *testing.F) {
	for _, seed := range []struct{ ct, body string }{
		{"application/json", `{"p12_password":"a long password 123"}`},
		{"application/json", `{"p12_password":"a long password 123","format":"legacy"}`},
		{"application/json", `{"p12_password":"x"}{}`},
		{"application/json; charset=utf-8", `{"p12_password":"\ud800"}`},
		{"application/x-www-form-urlencoded", "p12_password=a+long+password+123&p12_password_confirm=a+long+password+123"},
		{"application/x-www-form-urlencoded", "p12_password=%ff"},
		{"text/plain", "a long password 123"},
		{"", ""},
	} {
		f.Add(seed.ct, seed.body)
	}
	s := &Server{MaxBody: 1 << 10}
	f.Fuzz(func(t *testing.T, contentType, body string) {
		r := httptest.NewRequest(http.MethodPost, "/api/renew", strings.NewReader(body))
		r.Header.Set("Content-Type", contentType)
		req, err := s.readRenewAPI(httptest.NewRecorder(), r)
		if err != nil {
			if statusOf(err) != http.StatusBadRequest && statusOf(err) != http.StatusRequestEntityTooLarge {
				t.Fatalf("refusal with status %d (%v), want 400 or 413", statusOf(err), err)
			}
			if statusOf(err) == http.StatusBadRequest && certportal.ErrorMessage(err) == "" {
				t.Fatalf("a refusal without a message")
			}
			return
		}
		if !utf8.ValidString(req.P12Password) || int64(len(req.P12Password)) > s.MaxBody {
			t.Fatalf("accepted a password of %d bytes (valid UTF-8: %v) from a body of %d bytes",
				len(req.P12Password), utf8.ValidString(req.P12Password), len(body))
		}
	})
}
