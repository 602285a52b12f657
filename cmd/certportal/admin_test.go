package main

import (
	"encoding/json"
	"io"
	"mime"
	"mime/quotedprintable"
	"net/http"
	"net/mail"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"
)

// The administrator's rescue tools (user unlock, reset-password,
// set-email), tested as an administrator uses them: against a data dir
// whose portal is running, with the effects seen through the portal, the
// outbox and the audit log.

// sentMail is one .eml of the outbox, decoded.
type sentMail struct {
	file, to, subject, body string
}

// outbox returns the mails in DATA/outbox, oldest first.
func outbox(t *testing.T, data string) []sentMail {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(data, "outbox", "*.eml"))
	sort.Strings(files) // named by the time of sending
	var list []sentMail
	for _, f := range files {
		raw, err := os.Open(f)
		if err != nil {
			t.Fatal(err)
		}
		m, err := mail.ReadMessage(raw)
		if err != nil {
			raw.Close()
			t.Fatalf("%s: %v", f, err)
		}
		var body io.Reader = m.Body
		if strings.EqualFold(m.Header.Get("Content-Transfer-Encoding"), "quoted-printable") {
			body = quotedprintable.NewReader(body)
		}
		b, err := io.ReadAll(body)
		raw.Close()
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		subject, _ := new(mime.WordDecoder).DecodeHeader(m.Header.Get("Subject"))
		list = append(list, sentMail{file: filepath.Base(f), to: m.Header.Get("To"), subject: subject, body: string(b)})
	}
	return list
}

// auditOf returns the audit records of one account.
func auditOf(t *testing.T, data, id string) []struct{ Actor, Action, Detail, Remote string } {
	t.Helper()
	var events []struct{ Actor, Action, Detail, Remote string }
	if err := json.Unmarshal([]byte(ok(t, "", "audit", "--data", data, "--id", id, "--json")), &events); err != nil {
		t.Fatal(err)
	}
	return events
}

// hasAdminRecord reports whether the audit log of id has action done by
// the administrator from the command line.
func hasAdminRecord(t *testing.T, data, id, action string) bool {
	t.Helper()
	for _, e := range auditOf(t, data, id) {
		if e.Action == action && e.Actor == "admin" && e.Remote == "cli" {
			return true
		}
	}
	return false
}

// login posts the sign-in form and returns the status.
func (p *portalProc) login(t *testing.T, id, password string) int {
	t.Helper()
	resp, err := p.client.PostForm(p.base+"/login", url.Values{"id": {id}, "password": {password}})
	if err != nil {
		t.Fatalf("POST /login: %v", err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestAdminUnlock locks an account through the portal with five wrong
// passwords, checks that the right one is refused, lifts the lock with
// `user unlock` and signs in.
func TestAdminUnlock(t *testing.T) {
	data := newData(t)
	ok(t, "the right password\n", "user", "add", "--data", data, "--id", "alice", "--email", "alice@example.com", "--password-file", "-")
	p := startPortal(t, data)
	for i := range 5 {
		if i == 4 {
			// Four failures lock nothing yet: `user show` says so.
			if out := ok(t, "", "user", "show", "--data", data, "--id", "alice"); !strings.Contains(out, "Not locked out.") {
				t.Errorf("after 4 failures user show says:\n%s", out)
			}
		}
		if code := p.login(t, "alice", "a wrong password"); code != http.StatusUnauthorized {
			t.Fatalf("wrong password %d: status %d, want 401", i+1, code)
		}
	}
	out := ok(t, "", "user", "show", "--data", data, "--id", "alice")
	if !regexp.MustCompile(`Locked out for sign-ins from 127\.0\.0\.1 until \d{4}-\d\d-\d\d \d\d:\d\d UTC; .certportal user unlock --id alice. lifts it`).MatchString(out) {
		t.Errorf("after the 5th failure user show says:\n%s", out)
	}
	var shown accountShowJSON
	if err := json.Unmarshal([]byte(ok(t, "", "user", "show", "--data", data, "--id", "alice", "--json")), &shown); err != nil {
		t.Fatal(err)
	}
	if len(shown.Lockouts) != 1 || shown.Lockouts[0].From != "127.0.0.1" {
		t.Fatalf("user show --json lockouts = %+v, want one from 127.0.0.1", shown.Lockouts)
	}
	if until, err := time.Parse(time.RFC3339, shown.Lockouts[0].Until); err != nil || time.Until(until) < 14*time.Minute || time.Until(until) > 15*time.Minute {
		t.Errorf("lockout until %q (%v), want about 15 minutes from now", shown.Lockouts[0].Until, err)
	}
	if code := p.login(t, "alice", "the right password"); code != http.StatusUnauthorized {
		t.Fatalf("after five wrong passwords the right one got %d, want 401 (locked)", code)
	}
	locked := false
	for _, e := range auditOf(t, data, "alice") {
		locked = locked || e.Action == "signin.lockout"
	}
	if !locked {
		t.Fatal("the portal did not record the lockout")
	}

	out = ok(t, "", "user", "unlock", "--data", data, "--id", "ALICE")
	if !strings.Contains(strings.ToLower(out), "unlocked alice") {
		t.Errorf("user unlock says %q", out)
	}
	if out := ok(t, "", "user", "show", "--data", data, "--id", "alice"); !strings.Contains(out, "Not locked out.") {
		t.Errorf("after user unlock, user show says:\n%s", out)
	}
	if code := p.login(t, "alice", "the right password"); code != http.StatusSeeOther {
		t.Fatalf("after user unlock the right password got %d, want 303", code)
	}
	if !hasAdminRecord(t, data, "alice", "signin.unlock") {
		t.Error("user unlock is not in the audit log as the administrator's")
	}
	fails(t, 1, "no user", "", "user", "unlock", "--data", data, "--id", "nobody")
}

var tempPasswordRe = regexp.MustCompile(`(?m)^Temporary password: (\S+)\r?$`)

// TestAdminResetPassword resets an account that signs in by certificate:
// its certificates are revoked, the method is password, a temporary
// password goes to the registered address only (and nowhere else), and the
// user signs in with it at the portal.
func TestAdminResetPassword(t *testing.T) {
	data := newData(t)
	ok(t, "", "user", "add", "--data", data, "--id", "alice", "--email", "alice@example.com")
	ok(t, "", "user", "add", "--data", data, "--id", "bob", "--email", "bob@example.com")
	p12pw := writeSecret(t, "a long p12 password")
	issueCert(t, data, "alice", p12pw)
	issueCert(t, data, "alice", p12pw)
	p := startPortal(t, data)
	before := len(outbox(t, data))

	out := ok(t, "", "user", "reset-password", "--data", data, "--id", "alice")
	if !strings.Contains(out, "temporary password") {
		t.Errorf("user reset-password says %q", out)
	}
	mails := outbox(t, data)[before:]
	var temp string
	for _, m := range mails {
		if g := tempPasswordRe.FindStringSubmatch(m.body); g != nil {
			if temp != "" {
				t.Fatal("two mails carry a temporary password")
			}
			temp = g[1]
			if !strings.Contains(m.to, "alice@example.com") || strings.Contains(m.to, ",") {
				t.Errorf("the temporary password went to %q, want the registered address only", m.to)
			}
		}
	}
	if temp == "" {
		t.Fatalf("no mail with the line \"Temporary password: ...\" among %d new mails", len(mails))
	}
	if strings.Contains(out, temp) {
		t.Error("the command printed the temporary password")
	}

	var acc accountJSON
	json.Unmarshal([]byte(ok(t, "", "user", "show", "--data", data, "--id", "alice", "--json")), &acc)
	if acc.Method != "password" || acc.PasswordExpires == "" {
		t.Errorf("after reset-password: %+v, want method password with an expiring password", acc)
	}
	var certs []certJSON
	json.Unmarshal([]byte(ok(t, "", "cert", "list", "--data", data, "--id", "alice", "--json")), &certs)
	if len(certs) != 2 {
		t.Fatalf("alice has %d certificates, want 2", len(certs))
	}
	for _, c := range certs {
		if c.Status != "revoked" {
			t.Errorf("certificate %s is %s after reset-password, want revoked", c.Serial, c.Status)
		}
	}
	if code := p.login(t, "alice", temp); code != http.StatusSeeOther {
		t.Errorf("signing in with the temporary password: %d, want 303", code)
	}
	for _, action := range []string{"recovery", "method.changed", "cert.revoked"} {
		if !hasAdminRecord(t, data, "alice", action) {
			t.Errorf("the audit log has no %s by the administrator", action)
		}
	}
	mailed := false
	for _, e := range auditOf(t, data, "alice") {
		mailed = mailed || e.Action == "mail.sent" && strings.Contains(e.Detail, "temporary password")
		if strings.Contains(e.Detail, temp) {
			t.Fatal("the temporary password reached the audit log")
		}
	}
	if !mailed {
		t.Error("the audit log does not record the mail with the temporary password")
	}
	// Bob was not touched; an unknown or cancelled account is refused.
	var bob accountJSON
	json.Unmarshal([]byte(ok(t, "", "user", "show", "--data", data, "--id", "bob", "--json")), &bob)
	if bob.PasswordExpires != "" {
		t.Error("reset-password of alice changed bob")
	}
	fails(t, 1, "no user", "", "user", "reset-password", "--data", data, "--id", "nobody")
	ok(t, "", "user", "cancel", "--data", data, "--id", "bob")
	fails(t, 1, "cancelled", "", "user", "reset-password", "--data", data, "--id", "bob")
}

// TestAdminSetEmail changes the registered address: a notice goes to the
// old and to the new address, and later mail goes to the new one.
func TestAdminSetEmail(t *testing.T) {
	data := newData(t)
	ok(t, "", "user", "add", "--data", data, "--id", "alice", "--email", "alice@old.example")
	before := len(outbox(t, data))
	out := ok(t, "", "user", "set-email", "--data", data, "--id", "alice", "--email", "alice@new.example")
	if !strings.Contains(out, "alice@new.example") {
		t.Errorf("user set-email says %q", out)
	}
	mails := outbox(t, data)[before:]
	to := map[string]bool{}
	for _, m := range mails {
		if strings.Contains(m.body, "alice@old.example") && strings.Contains(m.body, "alice@new.example") {
			to[strings.Trim(m.to, "<> ")] = true
		}
	}
	for _, addr := range []string{"alice@old.example", "alice@new.example"} {
		found := false
		for k := range to {
			found = found || strings.Contains(k, addr)
		}
		if !found {
			t.Errorf("no notice of the change went to %s (mails: %+v)", addr, mails)
		}
	}
	var acc accountJSON
	json.Unmarshal([]byte(ok(t, "", "user", "show", "--data", data, "--id", "alice", "--json")), &acc)
	if acc.Email != "alice@new.example" {
		t.Errorf("the registered address is %q", acc.Email)
	}
	if !hasAdminRecord(t, data, "alice", "email.changed") {
		t.Error("set-email is not in the audit log as the administrator's")
	}
	// Later mail goes to the new address only.
	before = len(outbox(t, data))
	ok(t, "", "user", "reset-password", "--data", data, "--id", "alice")
	for _, m := range outbox(t, data)[before:] {
		if tempPasswordRe.MatchString(m.body) && (!strings.Contains(m.to, "alice@new.example") || strings.Contains(m.to, "old.example")) {
			t.Errorf("the temporary password went to %q after the change", m.to)
		}
	}
	for _, c := range []struct{ email, want string }{
		{"alice@new.example", "already"},
		{"not-an-address", "not an e-mail address"},
	} {
		fails(t, 1, c.want, "", "user", "set-email", "--data", data, "--id", "alice", "--email", c.email)
	}
}
