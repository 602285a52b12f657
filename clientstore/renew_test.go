package clientstore

import (
	"net/http"
	"strings"
	"testing"

	"github.com/certportal/certportal"
)

// TestRenewRefusal checks how the portal's answers to POST /api/renew
// become errors: the code, and a sentence that carries the portal's own
// message (cleaned of control characters) or says what happened.
func TestRenewRefusal(t *testing.T) {
	tests := []struct {
		name   string
		status int
		body   string
		code   certportal.ErrorCode
		has    string
	}{
		{"too early", http.StatusConflict, `{"error":"too_early","message":"your certificate can be renewed from 26 October 2027"}`,
			certportal.Conflict, "the portal refused to renew the certificate: your certificate can be renewed from 26 October 2027"},
		{"revoked", http.StatusForbidden, `{"error":"revoked","message":"this certificate has been revoked"}`, certportal.Forbidden, "it has been revoked"},
		{"cancelled", http.StatusForbidden, `{"error":"cancelled","message":"x"}`, certportal.Forbidden, "the account has been cancelled"},
		{"other refusal", http.StatusForbidden, `{"error":"forbidden","message":"not allowed"}`, certportal.Forbidden, "not allowed"},
		{"no certificate", http.StatusUnauthorized, `{"error":"unauthenticated"}`, certportal.Unauthorized, "did not receive a certificate"},
		{"bad request", http.StatusBadRequest, `{"error":"invalid","message":"the request is not the JSON object the portal expects"}`, certportal.Invalid, "not the JSON object"},
		{"old portal", http.StatusNotFound, `<html>`, certportal.Unavailable, "has no renewal API"},
		{"not JSON", http.StatusBadGateway, `<html>bad gateway</html>`, certportal.Unavailable, "HTTP status 502"},
		{"terminal tricks", http.StatusConflict, `{"error":"too_early","message":"wait\u001b[2J\nuntil\u0007 later"}`, certportal.Conflict, "wait[2Juntil later"},
		{"unavailable", http.StatusServiceUnavailable, `{"error":"unavailable","message":"the portal cannot reach its database"}`, certportal.Unavailable, "could not renew the certificate: the portal cannot reach its database"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := renewRefusal(tt.status, []byte(tt.body), "portal.example.com")
			msg := certportal.ErrorMessage(err)
			if certportal.ErrorCodeOf(err) != tt.code || !strings.Contains(msg, tt.has) {
				t.Errorf("renewRefusal(%d, %s) = %q (code %s); want code %s and %q", tt.status, tt.body, msg, certportal.ErrorCodeOf(err), tt.code, tt.has)
			}
			for _, c := range msg {
				if c < ' ' || c == 0x7f {
					t.Errorf("message %q has the control character %U", msg, c)
				}
			}
		})
	}
}

func TestPortalEndpoint(t *testing.T) {
	tests := []struct {
		in, want string
		ok       bool
	}{
		{"https://portal.example.com", "https://portal.example.com/api/renew", true},
		{" https://portal.example.com:8443/prefix/?q=1#f ", "https://portal.example.com:8443/prefix/api/renew", true},
		{"http://portal.example.com", "", false},
		{"portal.example.com", "", false},
		{"", "", false},
	}
	for _, tt := range tests {
		got, _, err := portalEndpoint(tt.in, "/api/renew")
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("portalEndpoint(%q) = %q, %v; want %q (ok %v)", tt.in, got, err, tt.want, tt.ok)
		}
	}
}
