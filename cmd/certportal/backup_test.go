package main

import (
	"archive/tar"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/certportal/certportal/internal/pgtest"
)

// portalProc is one `certportal serve` process started by a test.
type portalProc struct {
	base   string // https://127.0.0.1:port
	plain  string // http://127.0.0.1:port (CA, CRL, OCSP)
	client *http.Client
	cmd    *exec.Cmd
	logs   *bytes.Buffer
	done   bool
}

// startPortal runs `certportal serve --data data` on free ports until stop
// or the end of the test. Its client trusts the data dir's root, sends no
// client certificate and does not follow redirects.
func startPortal(t *testing.T, data string) *portalProc {
	t.Helper()
	addr, plain := freeAddr(t), freeAddr(t)
	s := &portalProc{base: "https://" + addr, plain: "http://" + plain, logs: &bytes.Buffer{}}
	s.cmd = exec.Command(binary, "serve", "--data", data, "--listen", addr, "--http-listen", plain)
	s.cmd.Stdout, s.cmd.Stderr = s.logs, s.logs
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.stop(t) })
	root, err := os.ReadFile(filepath.Join(data, "ca", "root.crt"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(root)
	s.client = &http.Client{
		Transport:     &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "localhost"}},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Timeout:       30 * time.Second,
	}
	for range 200 {
		if resp, err := http.Get(s.plain + "/ca/root.crt"); err == nil {
			resp.Body.Close()
			return s
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("serve did not start:\n%s", s.logs)
	return nil
}

// stop ends serve with SIGINT and expects a clean exit.
func (s *portalProc) stop(t *testing.T) {
	t.Helper()
	if s.done {
		return
	}
	s.done = true
	s.cmd.Process.Signal(os.Interrupt)
	errc := make(chan error, 1)
	go func() { errc <- s.cmd.Wait() }()
	select {
	case err := <-errc:
		if err != nil {
			t.Errorf("serve did not stop cleanly: %v\n%s", err, s.logs)
		}
	case <-time.After(20 * time.Second):
		s.cmd.Process.Kill()
		t.Errorf("serve did not stop within 20s of SIGINT\n%s", s.logs)
	}
}

// get fetches url and returns the body of a 200 answer.
func (s *portalProc) get(t *testing.T, url string) []byte {
	t.Helper()
	resp, err := s.client.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	return b
}

// listings returns what `user list --json` and `cert list --json` print.
func listings(t *testing.T, data string) (users, certs string) {
	t.Helper()
	return ok(t, "", "user", "list", "--data", data, "--json"), ok(t, "", "cert", "list", "--data", data, "--json")
}

func issueCert(t *testing.T, data, id, pwFile string) certJSON {
	t.Helper()
	var c certJSON
	out := ok(t, "", "cert", "issue", "--data", data, "--id", id, "--out", filepath.Join(t.TempDir(), id+".p12"), "--password-file", pwFile, "--json")
	if err := json.Unmarshal([]byte(out), &c); err != nil {
		t.Fatal(err)
	}
	return c
}

// TestBackupRestore is the life of a backup: an installation with users,
// issued and revoked certificates and a running portal; a backup taken
// while certificates keep being issued, which restores to a consistent
// state; a second one taken at rest; the data dir deleted and restored;
// and the portal on the restored dir serving the same root, users and
// certificates with an intact audit chain.
func TestBackupRestore(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	ok(t, "", "init", "--data", data)
	p12pw := writeSecret(t, "a long p12 password")
	pass := writeSecret(t, "correct horse battery staple")
	for _, id := range []string{"alice", "bob", "carol"} {
		ok(t, "", "user", "add", "--data", data, "--id", id, "--email", id+"@example.com")
	}
	issueCert(t, data, "alice", p12pw)
	issueCert(t, data, "alice", p12pw) // supersedes the first
	bob := issueCert(t, data, "bob", p12pw)
	ok(t, "", "cert", "revoke", "--data", data, "--serial", bob.Serial, "--reason", "keyCompromise")
	ok(t, "", "user", "cancel", "--data", data, "--id", "carol")

	srv := startPortal(t, data)
	root := srv.get(t, srv.plain+"/ca/root.crt")

	// Backup 1, online: certificates are issued (by other processes,
	// through the same database as serve) before, during and after it.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var issuing sync.Mutex
	issued := 0
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			r := cli(t, "", "cert", "issue", "--data", data, "--id", "alice", "--out", filepath.Join(dir, fmt.Sprintf("busy%d.p12", i)), "--password-file", p12pw)
			if r.code != 0 {
				t.Errorf("cert issue during the backup: %s", r.stderr)
				return
			}
			issuing.Lock()
			issued++
			issuing.Unlock()
		}
	}()
	count := func() int { issuing.Lock(); defer issuing.Unlock(); return issued }
	for count() < 1 {
		time.Sleep(20 * time.Millisecond)
	}
	online := filepath.Join(dir, "online.certportal-backup")
	ok(t, "", "backup", "--data", data, "--out", online, "--passphrase-file", pass)
	during := count()
	for count() < during+1 {
		time.Sleep(20 * time.Millisecond)
	}
	close(stop)
	wg.Wait()

	restored1 := filepath.Join(dir, "restored1")
	out := ok(t, "", "restore", "--in", online, "--data", restored1, "--passphrase-file", pass)
	if !strings.Contains(out, "intact") {
		t.Errorf("restore does not report the audit check:\n%s", out)
	}
	// The snapshot is one committed state: every certificate in it is one
	// the live database has, with at most one valid per account, and its
	// audit chain verifies on its own.
	var liveCerts, snapCerts []certJSON
	json.Unmarshal([]byte(ok(t, "", "cert", "list", "--data", data, "--json")), &liveCerts)
	json.Unmarshal([]byte(ok(t, "", "cert", "list", "--data", restored1, "--json")), &snapCerts)
	live := map[string]bool{}
	for _, c := range liveCerts {
		live[c.Serial] = true
	}
	valid := map[string]int{}
	for _, c := range snapCerts {
		if !live[c.Serial] {
			t.Errorf("the online backup holds a certificate %s the database never had", c.Serial)
		}
		if c.Status == "valid" {
			valid[c.User]++
		}
	}
	if len(snapCerts) < 4 || len(snapCerts) >= len(liveCerts) {
		t.Errorf("the online backup holds %d certificates; the live database had 4 before it and %d after the issuing stopped", len(snapCerts), len(liveCerts))
	}
	if valid["alice"] != 1 {
		t.Errorf("the online backup has %d valid certificates for alice, want 1", valid["alice"])
	}
	ok(t, "", "audit", "--data", restored1, "--verify")

	// Backup 2, at rest (serve still running), over an existing file:
	// refused without --force.
	final := filepath.Join(dir, "final.certportal-backup")
	if err := os.WriteFile(final, []byte("an older file"), 0o600); err != nil {
		t.Fatal(err)
	}
	fails(t, 1, "--force", "", "backup", "--data", data, "--out", final, "--passphrase-file", pass)
	if b, _ := os.ReadFile(final); string(b) != "an older file" {
		t.Fatal("a refused backup replaced the existing file")
	}
	ok(t, "", "backup", "--data", data, "--out", final, "--passphrase-file", pass, "--force")
	if fi, err := os.Stat(final); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("the backup file: %v, %v; want mode 0600", fi, err)
	}
	users, certs := listings(t, data)
	// Taking a backup (it carries the CA keys) is audited, by admin.
	if log := ok(t, "", "audit", "--data", data, "--json"); strings.Count(log, `"backup.created"`) != 2 {
		t.Errorf("the two backups are not both in the audit log:\n%s", log)
	}
	if _, err := os.Stat(filepath.Join(data, "outbox")); err != nil {
		t.Fatalf("the notices should have filled the outbox: %v", err)
	}
	srv.stop(t)
	for _, e := range mustReadDir(t, dir) {
		if strings.HasPrefix(e, ".") {
			t.Errorf("backup left %s behind", e)
		}
	}

	if err := os.RemoveAll(data); err != nil {
		t.Fatal(err)
	}
	out = ok(t, "", "restore", "--in", final, "--data", data, "--passphrase-file", pass)
	if !strings.Contains(out, "3 accounts") {
		t.Errorf("restore report: %s", out)
	}
	for _, f := range []struct {
		path string
		mode os.FileMode
	}{{".", 0o700}, {"config.json", 0o600}, {"ca", 0o700}, {"ca/root.key", 0o600}, {"ca/issuing.key", 0o600}, {"certportal.db", 0o600}} {
		fi, err := os.Stat(filepath.Join(data, f.path))
		if err != nil || fi.Mode().Perm() != f.mode {
			t.Errorf("restored %s: %v %v, want mode %v", f.path, fi, err, f.mode)
		}
	}
	if _, err := os.Stat(filepath.Join(data, "outbox")); !os.IsNotExist(err) {
		t.Errorf("the outbox was restored (%v); a backup leaves sent mail out", err)
	}
	srv = startPortal(t, data)
	if got := srv.get(t, srv.plain+"/ca/root.crt"); !bytes.Equal(got, root) {
		t.Error("the restored portal serves another root certificate")
	}
	if got := srv.get(t, srv.base+"/ca/root.crt"); !bytes.Equal(got, root) {
		t.Error("the restored portal serves another root certificate over HTTPS")
	}
	gotUsers, gotCerts := listings(t, data)
	if gotUsers != users {
		t.Errorf("users after restore:\n%s\nbefore:\n%s", gotUsers, users)
	}
	if gotCerts != certs {
		t.Errorf("certificates after restore:\n%s\nbefore:\n%s", gotCerts, certs)
	}
	if out := ok(t, "", "audit", "--data", data, "--verify"); !strings.Contains(out, "intact") {
		t.Errorf("audit --verify after restore: %s", out)
	}
	// The restored portal works: it issues, and the chain still verifies.
	issueCert(t, data, "alice", p12pw)
	ok(t, "", "audit", "--data", data, "--verify")
}

func mustReadDir(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

// craftBackup encrypts a tar archive made of entries to pass, as an
// attacker or a broken tool might, with a small scrypt work factor.
func craftBackup(t *testing.T, pass string, entries []tar.Header, body func(name string) []byte) string {
	t.Helper()
	r, err := age.NewScryptRecipient(pass)
	if err != nil {
		t.Fatal(err)
	}
	r.SetWorkFactor(10)
	var buf bytes.Buffer
	w, err := age.Encrypt(&buf, r)
	if err != nil {
		t.Fatal(err)
	}
	tw := tar.NewWriter(w)
	for _, h := range entries {
		b := body(h.Name)
		if h.Typeflag == tar.TypeReg && h.Size == 0 {
			h.Size = int64(len(b))
		}
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg && int64(len(b)) == h.Size {
			tw.Write(b)
		}
	}
	tw.Flush()
	w.Close()
	p := filepath.Join(t.TempDir(), "crafted.certportal-backup")
	if err := os.WriteFile(p, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestRestoreRestoresNothingFromABadFile feeds restore a wrong passphrase,
// damaged, truncated and hostile files: each is refused with one sentence
// that says nothing was restored, and nothing is left behind, neither the
// data dir nor a temporary directory nor a file outside it.
func TestRestoreRestoresNothingFromABadFile(t *testing.T) {
	data := newData(t)
	ok(t, "", "user", "add", "--data", data, "--id", "alice", "--email", "alice@example.com")
	pass := writeSecret(t, "correct horse battery staple")
	good := filepath.Join(t.TempDir(), "good.certportal-backup")
	ok(t, "", "backup", "--data", data, "--out", good, "--passphrase-file", pass)
	orig, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	variant := func(name string, b []byte) string {
		p := filepath.Join(t.TempDir(), name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	flip := func(at int) []byte {
		b := bytes.Clone(orig)
		b[at] ^= 0x01
		return b
	}
	reg := func(name string) tar.Header { return tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o600} }
	anyBody := func(string) []byte { return []byte("{}") }
	cases := []struct {
		name, in, pass, want string
	}{
		{"wrong passphrase", good, "Tr0ub4dor&3 is not it", "passphrase is wrong"},
		{"truncated in the middle", variant("half", orig[:len(orig)/2]), "", "damaged or truncated"},
		{"truncated by one byte", variant("short", orig[:len(orig)-1]), "", "damaged or truncated"},
		{"bit flipped in the data", variant("flip-mid", flip(len(orig)/2)), "", "damaged or truncated"},
		{"bit flipped in the last byte", variant("flip-end", flip(len(orig)-1)), "", "damaged or truncated"},
		{"bit flipped in the header", variant("flip-hdr", flip(40)), "", "nothing was restored"},
		{"not a backup", variant("text", []byte("hello, I am not a backup\n")), "", "not a certportal backup"},
		{"empty file", variant("empty", nil), "", "not a certportal backup"},
		{"parent directory", craftBackup(t, "correct horse battery staple", []tar.Header{reg("../evil")}, anyBody), "", "unexpected entry"},
		{"deep parent directory", craftBackup(t, "correct horse battery staple", []tar.Header{reg("ca/../../evil")}, anyBody), "", "unexpected entry"},
		{"absolute path", craftBackup(t, "correct horse battery staple", []tar.Header{reg("/tmp/evil")}, anyBody), "", "unexpected entry"},
		{"symbolic link", craftBackup(t, "correct horse battery staple", []tar.Header{{Typeflag: tar.TypeSymlink, Name: "ca/root.key", Linkname: "/etc/passwd"}}, anyBody), "", "not a file or a directory"},
		{"unknown file", craftBackup(t, "correct horse battery staple", []tar.Header{reg("outbox/x.eml")}, anyBody), "", "unexpected entry"},
		{"oversized entry", craftBackup(t, "correct horse battery staple", []tar.Header{{Typeflag: tar.TypeReg, Name: "config.json", Size: 1 << 30}}, anyBody), "", "larger than"},
		{"no manifest", craftBackup(t, "correct horse battery staple", []tar.Header{reg("config.json")}, anyBody), "", "nothing was restored"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			parent := t.TempDir()
			target := filepath.Join(parent, "restored")
			pw := pass
			if c.pass != "" {
				pw = writeSecret(t, c.pass)
			}
			msg := fails(t, 1, c.want, "", "restore", "--in", c.in, "--data", target, "--passphrase-file", pw)
			if !strings.Contains(msg, "nothing was restored") {
				t.Errorf("the refusal does not say that nothing was restored: %q", msg)
			}
			if left := mustReadDir(t, parent); len(left) != 0 {
				t.Errorf("a refused restore left %v in %s", left, parent)
			}
			if _, err := os.Stat(filepath.Join(filepath.Dir(parent), "evil")); err == nil {
				t.Error("a hostile entry was written outside the data directory")
			}
		})
	}

	// A data dir that is not empty is never touched.
	full := t.TempDir()
	if err := os.WriteFile(filepath.Join(full, "keep"), []byte("mine"), 0o600); err != nil {
		t.Fatal(err)
	}
	fails(t, 1, "not empty", "", "restore", "--in", good, "--data", full, "--passphrase-file", pass)
	if names := mustReadDir(t, full); len(names) != 1 {
		t.Errorf("a refused restore changed a full directory: %v", names)
	}
	// An empty one is filled.
	empty := t.TempDir()
	ok(t, "", "restore", "--in", good, "--data", empty, "--passphrase-file", pass)
	ok(t, "", "user", "show", "--data", empty, "--id", "alice")
}

// TestBackupRefusals checks what backup refuses before it writes anything.
func TestBackupRefusals(t *testing.T) {
	data := newData(t)
	out := filepath.Join(t.TempDir(), "b.certportal-backup")
	fails(t, 1, "at least 12", "", "backup", "--data", data, "--out", out, "--passphrase-file", writeSecret(t, "short"))
	fails(t, 1, "--passphrase-file", "", "backup", "--data", data, "--out", out)
	fails(t, 1, "not a certportal data directory", "", "backup", "--data", t.TempDir(), "--out", out, "--passphrase-file", writeSecret(t, "correct horse battery staple"))
	fails(t, 2, "out", "", "backup", "--data", data)
	fails(t, 2, "data", "", "restore", "--in", out)
	if names := mustReadDir(t, filepath.Dir(out)); len(names) != 0 {
		t.Errorf("refused backups left %v", names)
	}
}

// TestBackupPostgres: with PostgreSQL the backup holds the CA and the
// config, says how to take the matching pg_dump, and restores them.
func TestBackupPostgres(t *testing.T) {
	dsn := pgtest.FreshDatabase(t)
	data := filepath.Join(t.TempDir(), "data")
	ok(t, "", "init", "--data", data, "--db", dsn)
	pass := writeSecret(t, "correct horse battery staple")
	file := filepath.Join(t.TempDir(), "pg.certportal-backup")
	out := ok(t, "", "backup", "--data", data, "--out", file, "--passphrase-file", pass)
	if !strings.Contains(out, "pg_dump --format=custom") || !strings.Contains(out, dsn) {
		t.Errorf("backup on PostgreSQL does not give the pg_dump command:\n%s", out)
	}
	restored := filepath.Join(t.TempDir(), "restored")
	out = ok(t, "", "restore", "--in", file, "--data", restored, "--passphrase-file", pass)
	if !strings.Contains(out, "pg_restore") {
		t.Errorf("restore of a PostgreSQL backup does not say how to restore the dump:\n%s", out)
	}
	for _, f := range []string{"config.json", "ca/root.key", "ca/issuing.key"} {
		a, _ := os.ReadFile(filepath.Join(data, f))
		b, err := os.ReadFile(filepath.Join(restored, f))
		if err != nil || !bytes.Equal(a, b) {
			t.Errorf("restored %s differs from the original (%v)", f, err)
		}
	}
	if _, err := os.Stat(filepath.Join(restored, dbFile)); !os.IsNotExist(err) {
		t.Errorf("a PostgreSQL restore made a SQLite file (%v)", err)
	}
	// The restored dir points at the same database and works.
	ok(t, "", "audit", "--data", restored, "--verify")
}
