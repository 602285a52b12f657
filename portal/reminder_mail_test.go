package portal

import (
	"github.com/certportal/certportal/internal/golden"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestReminderExpiry(t *testing.T) {
	// Given in another zone: the mail says UTC.
	notAfter := time.Date(2027, 11, 25, 10, 10, 0, 0, time.FixedZone("CET", 3600))
	tests := []struct {
		name     string
		daysLeft int
		url      string
		subject  string // a part of the subject
		lines    []string
	}{
		{"30", 30, "https://portal.example.com/", "expires in 30 days",
			[]string{"  certportal store renew --url https://portal.example.com"}},
		{"7", 7, "https://portal.example.com", "expires in 7 days",
			[]string{"  Serial:       5A0C39F4D2E1B8A7", "  Valid until:  Thursday 25 November 2027 at 09:10 UTC"}},
		{"1", 1, "https://portal.example.com", "expires within a day", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := ReminderExpiry("alice@example.org", "alice", "5A0C39F4D2E1B8A7", notAfter, tt.daysLeft, tt.url)
			if len(m.To) != 1 || m.To[0] != "alice@example.org" {
				t.Errorf("To = %v, want only alice@example.org", m.To)
			}
			if !strings.Contains(m.Subject, tt.subject) || strings.ContainsAny(m.Subject, "\r\n") {
				t.Errorf("Subject %q: want one line containing %q", m.Subject, tt.subject)
			}
			lines := strings.Split(m.Body, "\n")
			for _, want := range append(tt.lines, "1. Open https://portal.example.com/ in the browser where your certificate is installed, and choose this certificate when the browser asks.") {
				if !slices.Contains(lines, want) {
					t.Errorf("body lacks the line %q", want)
				}
			}
			for _, want := range []string{`"Renew your certificate"`, "certportal store renew --url", signature} {
				if !strings.Contains(m.Body, want) {
					t.Errorf("body does not say %q", want)
				}
			}
			if strings.Contains(strings.ToLower(m.Body), "password:") {
				t.Errorf("a reminder carries no password line")
			}
			golden.Check(t, "reminder-"+tt.name+".txt", []byte("To: "+strings.Join(m.To, ", ")+"\nSubject: "+m.Subject+"\n\n"+m.Body))
		})
	}
}
