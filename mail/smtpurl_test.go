package mail

import (
	"errors"
	"io"
	"mime/quotedprintable"
	"strings"
	"testing"
	"time"

	"github.com/certportal/certportal"
	"github.com/certportal/certportal/portal"
	gomail "github.com/wneessen/go-mail"
)

func TestParseSMTPURL(t *testing.T) {
	good := []struct {
		raw  string
		want SMTPURL
	}{
		{"smtp://mail.example.com", SMTPURL{Scheme: "smtp", Host: "mail.example.com", Port: 587}},
		{"smtp://sender@mail.example.com:2525", SMTPURL{Scheme: "smtp", Host: "mail.example.com", Port: 2525, Username: "sender"}},
		{"SMTPS://portal%40example.com@mail.example.com", SMTPURL{Scheme: "smtps", Host: "mail.example.com", Port: 465, Username: "portal@example.com"}},
		{"smtps://[2001:db8::25]:465/", SMTPURL{Scheme: "smtps", Host: "2001:db8::25", Port: 465}},
		{"smtp+insecure://localhost:1025", SMTPURL{Scheme: "smtp+insecure", Host: "localhost", Port: 1025}},
		{"smtp+insecure://[::1]:1025", SMTPURL{Scheme: "smtp+insecure", Host: "::1", Port: 1025}},
		{"smtp+insecure://127.0.0.2:25", SMTPURL{Scheme: "smtp+insecure", Host: "127.0.0.2", Port: 25}},
	}
	for _, tt := range good {
		t.Run(tt.raw, func(t *testing.T) {
			got, err := ParseSMTPURL(tt.raw)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("ParseSMTPURL(%q) = %+v, want %+v", tt.raw, got, tt.want)
			}
		})
	}

	const secret = "hunter2-Secret"
	bad := []struct {
		raw  string
		says []string
	}{
		{"smtp://user:" + secret + "@mail.example.com", []string{"must not contain a password", "--smtp-password-file", "config file"}},
		{"smtps://user:" + secret + "@mail.example.com:465", []string{"--smtp-password-file"}},
		{"smtp://user:@mail.example.com", []string{"must not contain a password"}},
		{"smtp://user:" + secret + "%zz@mail.example.com", []string{"malformed"}},
		{"http://mail.example.com", []string{`"http" is not known`}},
		{"mail.example.com:587", []string{"not known"}},
		{"smtp://", []string{"no host"}},
		{"smtp://mail.example.com:0", []string{"port"}},
		{"smtp://mail.example.com:70000", []string{"port"}},
		{"smtp://mail.example.com/inbox", []string{"only scheme, user, host and port"}},
		{"smtp://mail.example.com?auth=plain", []string{"only scheme, user, host and port"}},
		{"smtp+insecure://mail.example.com:25", []string{"only to localhost or a loopback"}},
		{"smtp+insecure://10.0.0.1:25", []string{"only to localhost or a loopback"}},
		{"smtp+insecure://localhost", []string{"needs a port"}},
		{"smtp+insecure://user@localhost:1025", []string{"cannot sign in"}},
	}
	for _, tt := range bad {
		t.Run(tt.raw, func(t *testing.T) {
			_, err := ParseSMTPURL(tt.raw)
			if certportal.ErrorCodeOf(err) != certportal.Invalid {
				t.Fatalf("ParseSMTPURL(%q) = %v, want an Invalid error", tt.raw, err)
			}
			for _, s := range tt.says {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not say %q", err, s)
				}
			}
			for e := err; e != nil; e = errors.Unwrap(e) {
				if strings.Contains(e.Error(), secret) {
					t.Errorf("error repeats the password: %q", e)
				}
			}
		})
	}
}

func TestNewSMTPRefuses(t *testing.T) {
	tests := []struct {
		name string
		cfg  SMTPConfig
		says string
	}{
		{"password without user", SMTPConfig{URL: "smtp://mail.example.com", Password: "pw-1234567890"}, "names no user"},
		{"user without password", SMTPConfig{URL: "smtp://sender@mail.example.com"}, "no password was given"},
		{"bad sender", SMTPConfig{URL: "smtp://mail.example.com", From: "portal at example"}, "sender address"},
		{"negative timeout", SMTPConfig{URL: "smtp://mail.example.com", Timeout: -time.Second}, "timeout"},
		{"password in URL", SMTPConfig{URL: "smtp://u:p@mail.example.com", Password: "p"}, "--smtp-password-file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewSMTP(tt.cfg)
			if certportal.ErrorCodeOf(err) != certportal.Invalid || !strings.Contains(err.Error(), tt.says) {
				t.Fatalf("NewSMTP = %v, want an Invalid error saying %q", err, tt.says)
			}
		})
	}
	if _, err := NewSMTP(SMTPConfig{URL: "smtps://sender@mail.example.com", Password: "pw-1234567890"}); err != nil {
		t.Errorf("a good config is refused: %v", err)
	}
}

// TestComposeWithout8bit covers a server without 8BITMIME: the body is
// quoted-printable and decodes back to the very text given.
func TestComposeWithout8bit(t *testing.T) {
	m := portal.TemporaryPasswordMail("a@example.org", "alice", testPassword, "https://portal.example.com", fixedTime)
	tests := []struct {
		allow8bit bool
		want      gomail.Encoding
	}{
		{true, gomail.NoEncoding},
		{false, gomail.EncodingQP},
	}
	for _, tt := range tests {
		c, err := compose(m, "", fixedTime, nil, tt.allow8bit)
		if err != nil {
			t.Fatal(err)
		}
		if got := c.msg.Encoding(); got != string(tt.want) {
			t.Errorf("allow8bit=%v: encoding %q, want %q", tt.allow8bit, got, tt.want)
		}
		var b strings.Builder
		if _, err := c.msg.WriteTo(&b); err != nil {
			t.Fatal(err)
		}
		_, body, _ := strings.Cut(b.String(), "\r\n\r\n")
		if tt.want == gomail.EncodingQP {
			d, err := io.ReadAll(quotedprintable.NewReader(strings.NewReader(body)))
			if err != nil {
				t.Fatal(err)
			}
			body = string(d)
		}
		if want := normalizeBody(m.Body); body != want {
			t.Errorf("allow8bit=%v: body does not round-trip:\n%q\nwant\n%q", tt.allow8bit, body, want)
		}
	}
}

// FuzzParseSMTPURL checks that any input either parses into a usable
// address or gives an Invalid error, and that a password placed in the URL
// is never echoed.
func FuzzParseSMTPURL(f *testing.F) {
	for _, s := range []string{"smtp://u@h", "smtps://h:465", "smtp+insecure://[::1]:25", "smtp://u:p@h", "smtp://[::1", "%zz"} {
		f.Add(s, "Pw-0123456789")
	}
	f.Fuzz(func(t *testing.T, raw, password string) {
		p, err := ParseSMTPURL(raw)
		if err == nil {
			if p.Host == "" || p.Port < 1 || p.Port > 65535 {
				t.Fatalf("ParseSMTPURL(%q) = %+v without error", raw, p)
			}
		} else if certportal.ErrorCodeOf(err) != certportal.Invalid {
			t.Fatalf("ParseSMTPURL(%q) error %v is not Invalid", raw, err)
		}
		if len(password) < 8 || strings.ContainsAny(password, "@/?#:%[]") {
			return
		}
		withPw := "smtp://user:" + password + "@" + raw
		if _, err := ParseSMTPURL(withPw); err == nil {
			t.Fatalf("ParseSMTPURL(%q) accepted a password", withPw)
		} else if strings.Contains(err.Error(), password) {
			t.Fatalf("error %q repeats the password", err)
		}
	})
}
