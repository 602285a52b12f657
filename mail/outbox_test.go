package mail

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	netmail "net/mail"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/certportal/certportal"
	"github.com/certportal/certportal/internal/golden"
	"github.com/certportal/certportal/portal"
)

// fixedTime is the clock of the tests: a Wednesday, so day names show up.
var fixedTime = time.Date(2026, 11, 25, 9, 15, 0, 123456789, time.UTC)

// testPassword contains "=" and "/" so quoted-printable or any other
// encoding would visibly change it.
const testPassword = "Xy7=kQ/p+9Lr2w"

// fileName is the pattern of an outbox file.
var fileName = regexp.MustCompile(`^\d{8}T\d{6}\.\d{9}Z-[0-9a-f]{16}\.eml$`)

// readOutbox returns the names of the .eml files in dir and fails the test
// if anything else (a temporary file) is there.
func readOutbox(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		if !fileName.MatchString(e.Name()) {
			t.Errorf("unexpected file in outbox: %q", e.Name())
			continue
		}
		names = append(names, e.Name())
	}
	return names
}

// parse reads an .eml file with net/mail and returns it and its body.
func parse(t *testing.T, path string) (*netmail.Message, string, []byte) {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	msg, err := netmail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("%s does not parse as a mail: %v", path, err)
	}
	body, err := io.ReadAll(msg.Body)
	if err != nil {
		t.Fatal(err)
	}
	return msg, string(body), raw
}

func TestOutboxSend(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "outbox")
	o := &Outbox{Dir: dir, From: "Portal <portal@example.com>", Now: func() time.Time { return fixedTime }}
	m := portal.TemporaryPasswordMail("alice@example.org", "alice", testPassword, "https://portal.example.com/", fixedTime.Add(24*time.Hour))
	if err := o.Send(context.Background(), m); err != nil {
		t.Fatal(err)
	}

	st, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o700 {
		t.Errorf("outbox directory mode = %v, want 0700", st.Mode().Perm())
	}
	names := readOutbox(t, dir)
	if len(names) != 1 {
		t.Fatalf("outbox holds %d files, want 1", len(names))
	}
	if !strings.HasPrefix(names[0], "20261125T091500.123456789Z-") {
		t.Errorf("file name %q does not start with the send time", names[0])
	}
	path := filepath.Join(dir, names[0])
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("file mode = %v, want 0600", fi.Mode().Perm())
	}

	msg, body, raw := parse(t, path)
	headers := map[string]string{
		"From":                      `"Portal" <portal@example.com>`,
		"To":                        "<alice@example.org>",
		"Subject":                   m.Subject,
		"Date":                      "Wed, 25 Nov 2026 09:15:00 +0000",
		"Mime-Version":              "1.0",
		"Content-Type":              "text/plain; charset=UTF-8",
		"Content-Transfer-Encoding": "8bit",
	}
	for k, want := range headers {
		if got := msg.Header.Get(k); got != want {
			t.Errorf("header %s = %q, want %q", k, got, want)
		}
	}
	id := msg.Header.Get("Message-Id")
	if want := "<" + strings.TrimSuffix(names[0], ".eml") + "@example.com>"; id != want {
		t.Errorf("Message-ID = %q, want %q (the file name, at the sender's domain)", id, want)
	}
	if _, err := msg.Header.Date(); err != nil {
		t.Errorf("Date does not parse: %v", err)
	}
	line := "Temporary password: " + testPassword
	if !slices.Contains(strings.Split(body, "\r\n"), line) {
		t.Errorf("body has no line %q:\n%s", line, body)
	}
	if !bytes.Contains(raw, []byte("\r\n"+line+"\r\n")) {
		t.Errorf("the file does not hold the line %q verbatim", line)
	}
	if bytes.Contains(bytes.ReplaceAll(raw, []byte("\r\n"), nil), []byte("\n")) {
		t.Errorf("the file has a bare LF; RFC 5322 lines end in CRLF")
	}
}

func TestOutboxEncoding(t *testing.T) {
	tests := []struct {
		name     string
		mail     certportal.Mail
		cte      string   // Content-Transfer-Encoding
		rawHas   []string // must appear in the file as is
		rawLacks []string // must not appear in the file
	}{
		{
			name:     "non-ASCII subject is RFC 2047, body stays 8bit",
			mail:     certportal.Mail{To: []string{"b@example.org"}, Subject: "Zertifikat für Jürgen", Body: "Grüße, Jürgen\n"},
			cte:      "8bit",
			rawHas:   []string{"Subject: =?UTF-8?q?Zertifikat_f=C3=BCr_J=C3=BCrgen?=\r\n", "Grüße, Jürgen\r\n"},
			rawLacks: []string{"Subject: Zertifikat für"},
		},
		{
			name:     "a line break in the subject cannot add a header",
			mail:     certportal.Mail{To: []string{"b@example.org"}, Subject: "Hello\r\nBcc: evil@example.net", Body: "x"},
			cte:      "8bit",
			rawHas:   []string{"Subject: Hello Bcc: evil@example.net\r\n"},
			rawLacks: []string{"\r\nBcc:"},
		},
		{
			name:   "a line longer than 998 octets is quoted-printable",
			mail:   certportal.Mail{To: []string{"b@example.org"}, Subject: "long", Body: strings.Repeat("a", 1200) + "\n"},
			cte:    "quoted-printable",
			rawHas: []string{"=\r\n"},
		},
		{
			name:   "several recipients",
			mail:   certportal.Mail{To: []string{"old@example.org", "new@example.org"}, Subject: "s", Body: "b"},
			cte:    "8bit",
			rawHas: []string{"To: <old@example.org>, <new@example.org>\r\n", "\r\n\r\nb\r\n"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			o := &Outbox{Dir: dir, Now: func() time.Time { return fixedTime }}
			if err := o.Send(context.Background(), tt.mail); err != nil {
				t.Fatal(err)
			}
			names := readOutbox(t, dir)
			if len(names) != 1 {
				t.Fatalf("outbox holds %d files, want 1", len(names))
			}
			msg, _, raw := parse(t, filepath.Join(dir, names[0]))
			if got := msg.Header.Get("Content-Transfer-Encoding"); got != tt.cte {
				t.Errorf("Content-Transfer-Encoding = %q, want %q", got, tt.cte)
			}
			subj, err := new(mime.WordDecoder).DecodeHeader(msg.Header.Get("Subject"))
			if err != nil {
				t.Fatal(err)
			}
			if want := cleanSubject(tt.mail.Subject); subj != want {
				t.Errorf("decoded Subject = %q, want %q", subj, want)
			}
			if got := msg.Header.Get("From"); got != `"certportal" <certportal@localhost>` {
				t.Errorf("default From = %q", got)
			}
			for _, s := range tt.rawHas {
				if !bytes.Contains(raw, []byte(s)) {
					t.Errorf("file lacks %q:\n%s", s, raw)
				}
			}
			for _, s := range tt.rawLacks {
				if bytes.Contains(raw, []byte(s)) {
					t.Errorf("file contains %q:\n%s", s, raw)
				}
			}
		})
	}
}

func TestOutboxRefuses(t *testing.T) {
	dir := t.TempDir()
	notADir := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(notADir, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	ok := certportal.Mail{To: []string{"a@example.org"}, Subject: "s", Body: "b"}
	tests := []struct {
		name string
		o    *Outbox
		ctx  context.Context
		mail certportal.Mail
		code certportal.ErrorCode
	}{
		{"no recipient", &Outbox{Dir: dir}, context.Background(), certportal.Mail{Subject: "s"}, certportal.Invalid},
		{"bad recipient", &Outbox{Dir: dir}, context.Background(), certportal.Mail{To: []string{"not an address"}}, certportal.Invalid},
		{"bad sender", &Outbox{Dir: dir, From: "nobody"}, context.Background(), ok, certportal.Invalid},
		{"directory is a file", &Outbox{Dir: notADir}, context.Background(), ok, certportal.Unavailable},
		{"cancelled", &Outbox{Dir: dir}, cancelled, ok, certportal.Unavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.o.Send(tt.ctx, tt.mail)
			if code := certportal.ErrorCodeOf(err); code != tt.code {
				t.Fatalf("Send error = %v (code %q), want code %q", err, code, tt.code)
			}
			var e *certportal.Error
			if !errors.As(err, &e) || !strings.HasPrefix(err.Error(), "mail: ") {
				t.Errorf("error %q is not a *certportal.Error prefixed \"mail: \"", err)
			}
		})
	}
	if names := readOutbox(t, dir); len(names) != 0 {
		t.Errorf("refused mails left files: %v", names)
	}
}

func TestOutboxConcurrent(t *testing.T) {
	const n = 20
	dir := t.TempDir()
	// Every goroutine sees the same instant, so only the random part keeps
	// the names apart.
	o := &Outbox{Dir: dir, Now: func() time.Time { return fixedTime }}
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			errs <- o.Send(context.Background(), certportal.Mail{
				To:      []string{fmt.Sprintf("user%d@example.org", i)},
				Subject: fmt.Sprintf("mail %d", i),
				Body:    fmt.Sprintf("body %d\n", i),
			})
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	names := readOutbox(t, dir)
	if len(names) != n {
		t.Fatalf("outbox holds %d files, want %d", len(names), n)
	}
	seen := map[string]bool{}
	for _, name := range names {
		msg, _, _ := parse(t, filepath.Join(dir, name))
		seen[msg.Header.Get("Subject")] = true
	}
	if len(seen) != n {
		t.Errorf("%d distinct subjects among %d files, want %d", len(seen), len(names), n)
	}
}

func TestOutboxNamesSortByTime(t *testing.T) {
	dir := t.TempDir()
	// Times whose plain decimal forms would sort wrongly (9 s before 10 s,
	// fractions of different length), across a year boundary.
	times := []time.Time{
		time.Date(2026, 12, 31, 23, 59, 9, 5, time.UTC),
		time.Date(2026, 12, 31, 23, 59, 10, 0, time.UTC),
		time.Date(2026, 12, 31, 23, 59, 10, 400000000, time.UTC),
		time.Date(2027, 1, 1, 0, 0, 0, 0, time.FixedZone("CET", 3600)).Add(2 * time.Hour),
	}
	for i, tm := range times {
		o := &Outbox{Dir: dir, Now: func() time.Time { return tm }}
		if err := o.Send(context.Background(), certportal.Mail{To: []string{"a@example.org"}, Subject: fmt.Sprint(i), Body: "b"}); err != nil {
			t.Fatal(err)
		}
	}
	names := readOutbox(t, dir) // os.ReadDir sorts by name
	var order []string
	for _, name := range names {
		msg, _, _ := parse(t, filepath.Join(dir, name))
		order = append(order, msg.Header.Get("Subject"))
	}
	if want := []string{"0", "1", "2", "3"}; !slices.Equal(order, want) {
		t.Errorf("files sorted by name hold mails %v, want %v", order, want)
	}
}

func TestOutboxGolden(t *testing.T) {
	dir := t.TempDir()
	o := &Outbox{
		Dir:  dir,
		From: "certportal <portal@example.com>",
		Now:  func() time.Time { return fixedTime },
		Rand: bytes.NewReader(bytes.Repeat([]byte{0xab}, 8)),
	}
	m := portal.TemporaryPasswordMail("alice@example.org", "alice", testPassword, "https://portal.example.com", fixedTime.Add(24*time.Hour))
	if err := o.Send(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	names := readOutbox(t, dir)
	want := "20261125T091500.123456789Z-abababababababab.eml"
	if len(names) != 1 || names[0] != want {
		t.Fatalf("outbox holds %v, want [%s]", names, want)
	}
	raw, err := os.ReadFile(filepath.Join(dir, names[0]))
	if err != nil {
		t.Fatal(err)
	}
	golden.Check(t, "outbox-temporary-password.eml", raw)
}

// BenchmarkOutboxSend measures one durable outbox write (compose, write,
// two fsyncs, rename); the fsyncs dominate on most disks.
func BenchmarkOutboxSend(b *testing.B) {
	o := &Outbox{Dir: b.TempDir()}
	m := portal.TemporaryPasswordMail("alice@example.org", "alice", testPassword, "https://portal.example.com", fixedTime)
	for b.Loop() {
		if err := o.Send(context.Background(), m); err != nil {
			b.Fatal(err)
		}
	}
}

// TestOutboxStableID checks that a mail sent twice under one ID (a retry
// after a crash between the send and its record) is one file with one
// Message-ID, and that an unsafe ID is refused before anything is written.
func TestOutboxStableID(t *testing.T) {
	dir := t.TempDir()
	o := &Outbox{Dir: dir}
	m := certportal.Mail{ID: "20260314T150926.535897000Z-q42", To: []string{"a@example.com"}, Subject: "s", Body: "b"}
	for range 2 {
		if err := o.Send(context.Background(), m); err != nil {
			t.Fatal(err)
		}
	}
	names, _ := filepath.Glob(filepath.Join(dir, "*.eml"))
	if len(names) != 1 || filepath.Base(names[0]) != m.ID+".eml" {
		t.Fatalf("files %v, want one named %s.eml", names, m.ID)
	}
	data, _ := os.ReadFile(names[0])
	if !strings.Contains(string(data), "Message-ID: <"+m.ID+"@localhost>") {
		t.Errorf("the file does not carry the stable Message-ID:\n%s", data)
	}
	for _, bad := range []string{"../x", "a/b", "-x", "a b", strings.Repeat("x", 101)} {
		m.ID = bad
		if err := o.Send(context.Background(), m); certportal.ErrorCodeOf(err) != certportal.Invalid {
			t.Errorf("ID %q: %v, want Invalid", bad, err)
		}
	}
	if names, _ = filepath.Glob(filepath.Join(dir, "*")); len(names) != 1 {
		t.Errorf("refused IDs left files: %v", names)
	}
}
