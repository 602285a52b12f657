package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The command line is tested end to end: the real binary, built once, run
// as an administrator would run it.

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "certportal-bin-")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "certportal")
	if out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput(); err != nil {
		panic("go build: " + err.Error() + "\n" + string(out))
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

type result struct {
	stdout, stderr string
	code           int
}

// cli runs the binary with args and optional standard input.
func cli(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("running %v: %v", args, err)
	}
	return result{o.String(), e.String(), code}
}

// ok runs a command that must succeed and returns its standard output.
func ok(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	r := cli(t, stdin, args...)
	if r.code != 0 {
		t.Fatalf("certportal %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return r.stdout
}

// fails runs a command that must fail with the given exit status and a
// message on standard error that contains want; it returns that message.
func fails(t *testing.T, code int, want string, stdin string, args ...string) string {
	t.Helper()
	r := cli(t, stdin, args...)
	if r.code != code {
		t.Fatalf("certportal %s: exit %d, want %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.code, code, r.stdout, r.stderr)
	}
	if !strings.Contains(r.stderr, want) {
		t.Fatalf("certportal %s: stderr %q does not contain %q", strings.Join(args, " "), r.stderr, want)
	}
	if code == 1 && strings.Count(strings.TrimSpace(r.stderr), "\n") > 0 {
		t.Errorf("certportal %s: a refusal must be one sentence, got %q", strings.Join(args, " "), r.stderr)
	}
	return r.stderr
}

// newData runs init in a fresh directory and returns it.
func newData(t *testing.T) string {
	t.Helper()
	data := filepath.Join(t.TempDir(), "data")
	ok(t, "", "init", "--data", data)
	return data
}

// snapshot returns every file under dir with its size and mode, to show
// that a refused command changed nothing.
func snapshot(t *testing.T, dir string) string {
	t.Helper()
	var b strings.Builder
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if strings.HasSuffix(rel, "-shm") || strings.HasSuffix(rel, "-wal") {
			return nil // SQLite's WAL files change size on every open
		}
		b.WriteString(rel + " " + fi.Mode().String())
		if !fi.IsDir() {
			data, _ := os.ReadFile(p)
			b.WriteString(fmt.Sprintf(" %x", sha256.Sum256(data)))
		}
		b.WriteString("\n")
		return nil
	})
	return b.String()
}

func writeSecret(t *testing.T, s string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(p, []byte(s+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestInitLayoutAndRefusal(t *testing.T) {
	data := newData(t)
	for _, f := range []struct {
		path string
		mode os.FileMode
	}{
		{"ca", 0o700}, {"ca/root.key", 0o600}, {"ca/issuing.key", 0o600}, {"ca/tls-ca.key", 0o600},
		{"ca/server.key", 0o600}, {"config.json", 0o600}, {"certportal.db", 0},
	} {
		fi, err := os.Stat(filepath.Join(data, f.path))
		if err != nil {
			t.Fatalf("init did not create %s: %v", f.path, err)
		}
		if f.mode != 0 && fi.Mode().Perm() != f.mode {
			t.Errorf("%s has mode %v, want %v", f.path, fi.Mode().Perm(), f.mode)
		}
	}
	before := snapshot(t, data)
	fails(t, 1, "not empty", "", "init", "--data", data)
	if after := snapshot(t, data); after != before {
		t.Errorf("a refused second init changed the data directory:\n%s\nvs\n%s", before, after)
	}

	var cas []caJSON
	if err := json.Unmarshal([]byte(ok(t, "", "ca", "show", "--data", data, "--json")), &cas); err != nil {
		t.Fatal(err)
	}
	if len(cas) < 2 || cas[0].Serial != "01" || !strings.Contains(cas[0].Subject, "CN=SOP-RCA") || !strings.Contains(cas[1].Subject, "CN=SOP-ICA1") {
		t.Errorf("ca show: %+v", cas)
	}
	if len(cas[0].Thumbprint) != 40 || strings.ToUpper(cas[0].Thumbprint) != cas[0].Thumbprint {
		t.Errorf("root thumbprint %q is not 40 upper-case hex digits", cas[0].Thumbprint)
	}
}

func TestInitRejectsBadInput(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"https url", []string{"--url", "https://portal.example.com"}, "plain http"},
		{"key type", []string{"--key-type", "dsa"}, "dsa"},
		{"same cn", []string{"--root-cn", "X", "--issuing-cn", "X"}, "differ"},
		{"db password", []string{"--db", "postgres://u:secret@h/db"}, "PGPASSWORD"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			data := filepath.Join(dir, c.name)
			msg := fails(t, 1, c.want, "", append([]string{"init", "--data", data}, c.args...)...)
			if strings.Contains(msg, "secret") {
				t.Errorf("the refusal repeats the password: %q", msg)
			}
			if _, err := os.Stat(data); !os.IsNotExist(err) {
				t.Errorf("a refused init left %s behind", data)
			}
		})
	}
}

func TestUsageErrors(t *testing.T) {
	data := newData(t)
	fails(t, 2, "unknown", "", "frobnicate")
	fails(t, 2, "unknown flag", "", "user", "list", "--data", data, "--nope")
	fails(t, 2, "id", "", "user", "add", "--data", data, "--email", "a@example.com")
	fails(t, 2, "accepts 1 arg", "", "store", "import")
	// Flags may come after positional arguments.
	fails(t, 1, "no such file", "", "store", "import", filepath.Join(data, "missing.p12"), "--store-dir", t.TempDir(), "--password-file", "-")
}

func TestUsersAndBadInput(t *testing.T) {
	data := newData(t)
	out := ok(t, "", "user", "add", "--data", data, "--id", "Alice", "--email", "alice@example.com")
	if !strings.Contains(out, "Password: ") {
		t.Fatalf("user add without a password must print the generated one:\n%s", out)
	}
	ok(t, "correct horse battery\n", "user", "add", "--data", data, "--id", "bob", "--email", "bob@example.com", "--password-file", "-")

	before := snapshot(t, data)
	list := ok(t, "", "user", "list", "--data", data, "--json")
	for _, c := range []struct {
		code  int
		want  string
		stdin string
		args  []string
	}{
		{1, "taken", "", []string{"user", "add", "--id", "ALICE", "--email", "x@example.com"}},
		{1, "may contain only", "", []string{"user", "add", "--id", "al ice", "--email", "x@example.com"}},
		{1, "not an e-mail address", "", []string{"user", "add", "--id", "carol", "--email", "carol@"}},
		{1, "no user", "", []string{"user", "show", "--id", "nobody"}},
		{1, "no user", "", []string{"user", "cancel", "--id", "nobody"}},
		{1, "cannot read the password file", "", []string{"user", "add", "--id", "dave", "--email", "d@example.com", "--password-file", "/nonexistent/pw"}},
		{1, "empty", "\n", []string{"user", "add", "--id", "erin", "--email", "e@example.com", "--password-file", "-"}},
		{1, "at least 10", "short\n", []string{"user", "add", "--id", "erin", "--email", "e@example.com", "--password-file", "-"}},
		{1, "no certificate", "", []string{"cert", "revoke", "--serial", "0A1B2C"}},
		{1, "unknown revocation reason", "", []string{"cert", "revoke", "--serial", "0A1B2C", "--reason", "bored"}},
		{1, "no user", "a long p12 password\n", []string{"cert", "issue", "--id", "nobody", "--out", filepath.Join(t.TempDir(), "x.p12"), "--password-file", "-"}},
		{1, "at least 12", "short p12\n", []string{"cert", "issue", "--id", "bob", "--out", filepath.Join(t.TempDir(), "x.p12"), "--password-file", "-"}},
	} {
		t.Run(strings.Join(c.args[:2], " ")+" "+c.want, func(t *testing.T) {
			fails(t, c.code, c.want, c.stdin, append(c.args, "--data", data)...)
		})
	}
	if after := snapshot(t, data); after != before {
		t.Errorf("refused commands changed the data directory")
	}
	if again := ok(t, "", "user", "list", "--data", data, "--json"); again != list {
		t.Errorf("refused commands changed the accounts:\n%s\nvs\n%s", list, again)
	}
	var accs []accountJSON
	if err := json.Unmarshal([]byte(list), &accs); err != nil || len(accs) != 2 {
		t.Fatalf("user list --json: %v %s", err, list)
	}
	if accs[0].ID != "Alice" || accs[0].Method != "password" || accs[0].Status != "active" {
		t.Errorf("user list: %+v", accs[0])
	}
}

func TestIssueListRevokeAudit(t *testing.T) {
	data := newData(t)
	ok(t, "", "user", "add", "--data", data, "--id", "alice", "--email", "alice@example.com")
	dir := t.TempDir()
	p12 := filepath.Join(dir, "alice.p12")
	pw := writeSecret(t, "a long p12 password")
	var issued certJSON
	out := ok(t, "", "cert", "issue", "--data", data, "--id", "alice", "--out", p12, "--password-file", pw, "--json")
	if err := json.Unmarshal([]byte(out), &issued); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(p12); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("the .p12 file: %v %v", fi, err)
	}
	// OpenSSL 3 opens it without -legacy and sees the key and three certificates.
	info, err := exec.Command("openssl", "pkcs12", "-info", "-in", p12, "-passin", "file:"+pw, "-nodes").CombinedOutput()
	if err != nil {
		t.Fatalf("openssl pkcs12 -info: %v\n%s", err, info)
	}
	if n := strings.Count(string(info), "BEGIN CERTIFICATE"); n != 3 {
		t.Errorf("openssl sees %d certificates in the file, want 3", n)
	}
	if !strings.Contains(string(info), "PRIVATE KEY") {
		t.Error("openssl sees no private key in the file")
	}
	fails(t, 1, "exists", "", "cert", "issue", "--data", data, "--id", "alice", "--out", p12, "--password-file", pw)

	var shown accountJSON
	json.Unmarshal([]byte(ok(t, "", "user", "show", "--data", data, "--id", "ALICE", "--json")), &shown)
	if shown.Method != "certificate" {
		t.Errorf("after issuance the method is %q, want certificate", shown.Method)
	}
	var certs []certJSON
	json.Unmarshal([]byte(ok(t, "", "cert", "list", "--data", data, "--json")), &certs)
	if len(certs) != 1 || certs[0].Serial != issued.Serial || certs[0].Status != "valid" || certs[0].User != "alice" {
		t.Fatalf("cert list: %+v", certs)
	}
	// Serials are accepted in any case, with colons.
	var typed strings.Builder
	for i := 0; i < len(issued.Serial); i += 2 {
		if i > 0 {
			typed.WriteString(":")
		}
		typed.WriteString(strings.ToLower(issued.Serial[i : i+2]))
	}
	ok(t, "", "cert", "revoke", "--data", data, "--serial", typed.String(), "--reason", "keycompromise")
	fails(t, 1, "revoked already", "", "cert", "revoke", "--data", data, "--serial", issued.Serial)
	json.Unmarshal([]byte(ok(t, "", "cert", "list", "--data", data, "--id", "alice", "--json")), &certs)
	if certs[0].Status != "revoked" || certs[0].Reason != "keyCompromise" {
		t.Errorf("after revoke: %+v", certs[0])
	}
	ok(t, "", "user", "cancel", "--data", data, "--id", "alice")
	fails(t, 1, "cancelled already", "", "user", "cancel", "--data", data, "--id", "alice")

	if out := ok(t, "", "audit", "--data", data, "--verify"); !strings.Contains(out, "intact") {
		t.Errorf("audit --verify: %s", out)
	}
	var events []struct{ Action, Detail string }
	json.Unmarshal([]byte(ok(t, "", "audit", "--data", data, "--id", "alice", "--json")), &events)
	want := []string{"account.created", "cert.issued", "method.changed", "cert.revoked", "account.cancelled"}
	var got []string
	for _, e := range events {
		got = append(got, e.Action)
	}
	for _, w := range want {
		if !strings.Contains(strings.Join(got, " "), w) {
			t.Errorf("audit for alice lacks %s: %v", w, got)
		}
	}
	for _, e := range events {
		if strings.Contains(e.Detail, "a long p12 password") {
			t.Fatal("the PKCS#12 password reached the audit log")
		}
	}
}
