package portal

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/certportal/certportal"
	"github.com/certportal/certportal/internal/golden"
)

// testPassword has "=" and "/", which any transfer encoding would change.
const testPassword = "Xy7=kQ/p+9Lr2w"

func TestNotices(t *testing.T) {
	notAfter := time.Date(2027, 11, 25, 9, 10, 0, 0, time.UTC)
	// An expiry given in another zone is shown in UTC.
	expires := time.Date(2026, 11, 26, 10, 15, 0, 0, time.FixedZone("CET", 3600))
	tests := []struct {
		name string
		mail certportal.Mail
		has  []string // exact lines of the body
	}{
		{"temporary-password", TemporaryPasswordMail("alice@example.org", "alice", testPassword, "https://portal.example.com/", expires),
			[]string{"Temporary password: " + testPassword}},
		{"certificate-issued", NoticeCertificateIssued("alice@example.org", "alice", "5A0C39F4D2E1B8A7", "3F2A9C1B7D6E5F4A3B2C1D0E9F8A7B6C5D4E3F2A", notAfter),
			[]string{"  Serial:       5A0C39F4D2E1B8A7", "  Thumbprint:   3F2A9C1B7D6E5F4A3B2C1D0E9F8A7B6C5D4E3F2A"}},
		{"password-changed", NoticePasswordChanged("alice@example.org", "alice"), nil},
		{"lockout", NoticeLockout("alice@example.org", "alice", expires), nil},
		{"cancelled", NoticeCancelled("alice@example.org", "alice"), nil},
		{"email-changed", NoticeEmailChanged("old@example.org", "alice", "old@example.org", "new@example.org"), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := tt.mail
			if len(m.To) != 1 || !strings.HasSuffix(m.To[0], "@example.org") {
				t.Errorf("To = %v, want the one address given", m.To)
			}
			if m.Subject == "" || strings.ContainsAny(m.Subject, "\r\n") {
				t.Errorf("Subject %q is empty or not one line", m.Subject)
			}
			if !strings.Contains(m.Body, "alice") {
				t.Errorf("body does not name the user ID")
			}
			lines := strings.Split(m.Body, "\n")
			for _, want := range tt.has {
				if !slices.Contains(lines, want) {
					t.Errorf("body lacks the line %q", want)
				}
			}
			if !strings.Contains(m.Body, notMe+"\n") {
				t.Errorf("body does not say what to do if it was not them")
			}
			pw := strings.Contains(m.Body, testPassword) || strings.Contains(strings.ToLower(m.Body), "temporary password:")
			if pw != (tt.name == "temporary-password") {
				t.Errorf("password in body = %v; only the temporary-password mail may carry one", pw)
			}
			for i, l := range lines {
				if len(l) > 998 || strings.Contains(l, "\r") {
					t.Errorf("line %d is too long or has a CR", i+1)
				}
			}
			golden.Check(t, "notice-"+tt.name+".txt", []byte("To: "+strings.Join(m.To, ", ")+"\nSubject: "+m.Subject+"\n\n"+m.Body))
		})
	}
}

func TestTemporaryPasswordDetails(t *testing.T) {
	expires := time.Date(2026, 11, 26, 10, 15, 0, 0, time.FixedZone("CET", 3600))
	for _, url := range []string{"https://portal.example.com", "https://portal.example.com/"} {
		m := TemporaryPasswordMail("a@example.org", "alice", "pw-0123456789", url, expires)
		if !strings.Contains(m.Body, "https://portal.example.com/login ") {
			t.Errorf("portal URL %q: body does not point at https://portal.example.com/login", url)
		}
		if !strings.Contains(m.Body, "Thursday 26 November 2026 at 09:15 UTC") {
			t.Errorf("body does not give the expiry in UTC:\n%s", m.Body)
		}
		if !strings.Contains(m.Body, "new certificate") {
			t.Errorf("body does not say to request a new certificate")
		}
	}
}
