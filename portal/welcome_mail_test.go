package portal

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/certportal/certportal/internal/golden"
)

func TestWelcomeMail(t *testing.T) {
	expires := time.Date(2026, 11, 26, 10, 15, 0, 0, time.FixedZone("CET", 3600))
	m := WelcomeMail("alice@example.org", "alice", testPassword, "https://portal.example.com/", expires)
	if len(m.To) != 1 || m.To[0] != "alice@example.org" {
		t.Errorf("To = %v, want only alice@example.org", m.To)
	}
	lines := strings.Split(m.Body, "\n")
	for _, want := range []string{
		"Temporary password: " + testPassword,
		"1. Open https://portal.example.com/login in your browser. If it asks you to choose a certificate (the \"Identification\" window), press Cancel.",
	} {
		if !slices.Contains(lines, want) {
			t.Errorf("body lacks the line %q", want)
		}
	}
	if !strings.Contains(m.Body, "Thursday 26 November 2026 at 09:15 UTC") || strings.Contains(m.Body, "revoked and no longer work") {
		t.Errorf("body: want the expiry in UTC and no word of revoked certificates:\n%s", m.Body)
	}
	golden.Check(t, "welcome.txt", []byte("To: "+strings.Join(m.To, ", ")+"\nSubject: "+m.Subject+"\n\n"+m.Body))
}
