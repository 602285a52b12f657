package browsertest

import (
	"encoding/json"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/mail"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// The account every story uses, as the seed's user would have it.
const (
	userID      = "alice"
	userEmail   = "alice@example.com"
	accountPass = "alice's account pw"
	// p12Pass protects the certificate file; the portal refuses the
	// account password there.
	p12Pass = "carry it over safely"
)

// portal is one running `certportal serve` with its own data directory.
type portal struct {
	data string
	// base is the HTTPS URL the browser opens. It says localhost (not
	// 127.0.0.1) because the auto-select rule matches https://localhost.
	base string
}

// syncBuffer collects the server's log for failure messages.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startPortal initialises a portal, adds alice with a password and serves
// it on free ports until the test ends.
func startPortal(t *testing.T) *portal {
	t.Helper()
	data := filepath.Join(t.TempDir(), "data")
	cli(t, "init", "--data", data)
	cli(t, "user", "add", "--data", data, "--id", userID, "--email", userEmail, "--password-file", writeSecret(t, accountPass))

	port, plain := freePort(t), freePort(t)
	cmd := exec.Command(binary, "serve", "--data", data, "--listen", "127.0.0.1:"+port, "--http-listen", "127.0.0.1:"+plain)
	logs := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			cmd.Process.Kill()
			t.Errorf("serve did not stop within 15s of SIGINT")
		}
		if t.Failed() {
			t.Logf("serve's log:\n%s", logs.String())
		}
	})
	waitHTTP(t, "http://127.0.0.1:"+plain+"/ca/root.crt", logs.String)
	return &portal{data: data, base: "https://localhost:" + port}
}

// rootPEM is the portal's root certificate, as the user gets it from the
// about-certificate page.
func (p *portal) rootPEM() string { return filepath.Join(p.data, "ca", "root.crt") }

// certRecord is one line of `certportal cert list --json`.
type certRecord struct {
	Serial     string `json:"serial"`
	User       string `json:"user"`
	Status     string `json:"status"`
	Thumbprint string `json:"thumbprint"`
	SHA256     string `json:"sha256"`
}

// certs lists the portal's certificates of alice.
func (p *portal) certs(t *testing.T) []certRecord {
	t.Helper()
	var list []certRecord
	out := cli(t, "cert", "list", "--data", p.data, "--id", userID, "--json")
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		t.Fatalf("cert list --json: %v\n%s", err, out)
	}
	return list
}

// validCert returns alice's one valid certificate.
func (p *portal) validCert(t *testing.T) certRecord {
	t.Helper()
	var valid []certRecord
	for _, c := range p.certs(t) {
		if c.Status == "valid" {
			valid = append(valid, c)
		}
	}
	if len(valid) != 1 {
		t.Fatalf("alice has %d valid certificates, want 1: %+v", len(valid), p.certs(t))
	}
	return valid[0]
}

// adminIssue issues alice's certificate as an administrator would
// (`certportal cert issue`), for stories that start with a certificate.
func (p *portal) adminIssue(t *testing.T) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), userID+".p12")
	cli(t, "cert", "issue", "--data", p.data, "--id", userID, "--out", out, "--password-file", writeSecret(t, p12Pass))
	return out
}

// tempPasswordLine is the exact line of the recovery mail.
var tempPasswordLine = regexp.MustCompile(`(?m)^Temporary password: (\S+)\r?$`)

// temporaryPassword reads the temporary password from the mail in the
// outbox, as the user reads it in their mail program.
func (p *portal) temporaryPassword(t *testing.T) string {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(p.data, "outbox", "*.eml"))
	var found []string
	for _, f := range files {
		body, to := readMail(t, f)
		if m := tempPasswordLine.FindStringSubmatch(body); m != nil {
			if !strings.Contains(to, userEmail) {
				t.Errorf("the temporary password went to %q, not to %s", to, userEmail)
			}
			found = append(found, m[1])
		}
	}
	if len(found) != 1 {
		t.Fatalf("found %d mails with a line `Temporary password: ...` among %d in the outbox, want 1", len(found), len(files))
	}
	return found[0]
}

// readMail returns the decoded text and the To header of an .eml file.
func readMail(t *testing.T, file string) (body, to string) {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	msg, err := mail.ReadMessage(f)
	if err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	text := decodePart(t, msg.Header.Get("Content-Type"), msg.Header.Get("Content-Transfer-Encoding"), msg.Body)
	return text, msg.Header.Get("To")
}

// decodePart returns the text/plain content of a MIME part.
func decodePart(t *testing.T, ctype, cte string, r io.Reader) string {
	t.Helper()
	media, params, _ := mime.ParseMediaType(ctype)
	if strings.HasPrefix(media, "multipart/") {
		mr := multipart.NewReader(r, params["boundary"])
		var texts []string
		for {
			part, err := mr.NextRawPart()
			if err != nil {
				break
			}
			texts = append(texts, decodePart(t, part.Header.Get("Content-Type"), part.Header.Get("Content-Transfer-Encoding"), part))
		}
		return strings.Join(texts, "\n")
	}
	if media != "" && media != "text/plain" {
		return ""
	}
	if strings.EqualFold(cte, "quoted-printable") {
		r = quotedprintable.NewReader(r)
	}
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
