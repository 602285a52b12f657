package web_test

import (
	"net/url"
	"os/exec"
	"strings"
	"testing"
)

// TestTLSSuitesWithOpenSSL: OpenSSL's client gets TLS 1.2 only with an
// ECDHE AEAD suite: CBC with SHA-1 or SHA-256 MACs and static RSA are
// refused; TLS 1.3 and 1.1 behave as SPEC.md says.
func TestTLSSuitesWithOpenSSL(t *testing.T) {
	openssl := need(t, "openssl")
	e := newEnv(t)
	u, _ := url.Parse(e.srv.URL)
	connect := func(args ...string) (string, bool) {
		t.Helper()
		cmd := exec.Command(openssl, append([]string{"s_client", "-connect", u.Host, "-servername", "localhost"}, args...)...)
		cmd.Stdin = strings.NewReader("")
		out, err := cmd.CombinedOutput()
		return string(out), err == nil && strings.Contains(string(out), "Cipher is ") && !strings.Contains(string(out), "Cipher is (NONE)")
	}
	for _, tc := range []struct {
		args []string
		ok   bool
	}{
		{[]string{"-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256"}, true},
		{[]string{"-tls1_2", "-cipher", "ECDHE-ECDSA-CHACHA20-POLY1305"}, true},
		{[]string{"-tls1_3"}, true},
		{[]string{"-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-SHA"}, false},
		{[]string{"-tls1_2", "-cipher", "ECDHE-ECDSA-AES256-SHA"}, false},
		{[]string{"-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-SHA256"}, false},
		{[]string{"-tls1_2", "-cipher", "AES128-GCM-SHA256"}, false},
		{[]string{"-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0"}, false},
	} {
		out, ok := connect(tc.args...)
		if ok != tc.ok {
			t.Errorf("openssl s_client %v: handshake %v, want %v\n%.600s", tc.args, ok, tc.ok, out)
		}
	}
}
