// Package replicatest runs several `certportal serve` processes on one
// PostgreSQL database and one data directory, as replicas behind a layer-4
// load balancer, and checks that they act as one portal (SPEC.md "Scale",
// issue 6): what one replica writes, the others see at the next request.
package replicatest

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"golang.org/x/crypto/ocsp"
	"software.sslmate.com/src/go-pkcs12"

	"github.com/certportal/certportal/internal/freeport"
	"github.com/certportal/certportal/internal/pgtest"
)

// binary is certportal, built once from cmd/certportal.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "certportal-replicatest-")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "certportal")
	if out, err := exec.Command("go", "build", "-o", binary, "github.com/certportal/certportal/cmd/certportal").CombinedOutput(); err != nil {
		panic("go build: " + err.Error() + "\n" + string(out))
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// run runs the binary with args (stdin as given) and fails the test unless
// it succeeds; it returns standard output.
func run(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	if err := cmd.Run(); err != nil {
		t.Fatalf("certportal %s: %v\nstdout: %s\nstderr: %s", strings.Join(args, " "), err, o.String(), e.String())
	}
	return o.String()
}

// replica is one running `certportal serve`.
type replica struct {
	name   string
	base   string // https://127.0.0.1:port
	plain  string // http://127.0.0.1:port, for /ca, /crl and /ocsp
	cmd    *exec.Cmd
	killed bool // by kill: the cleanup then expects no clean stop
}

// kill ends r with SIGKILL, as a crash or the OOM killer would: no
// shutdown code runs, open transactions are cut off where they are.
func (r *replica) kill(t *testing.T) {
	t.Helper()
	r.killed = true
	if err := r.cmd.Process.Kill(); err != nil {
		t.Fatalf("SIGKILL to %s: %v", r.name, err)
	}
	r.cmd.Wait()
}

func freeAddr(t *testing.T) string {
	t.Helper()
	addr, err := freeport.Addr()
	if err != nil {
		t.Fatal(err)
	}
	return addr
}

// startReplica runs `certportal serve` on data (whose config names the
// PostgreSQL database) on free ports until the test ends.
func startReplica(t *testing.T, name, data string) *replica {
	t.Helper()
	addr, plain := freeAddr(t), freeAddr(t)
	cmd := exec.Command(binary, "serve", "--data", data, "--listen", addr, "--http-listen", plain)
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	r := &replica{name: name, base: "https://" + addr, plain: "http://" + plain, cmd: cmd}
	t.Cleanup(func() {
		if r.killed {
			if t.Failed() {
				t.Logf("log of replica %s (killed):\n%s", name, logs.String())
			}
			return
		}
		cmd.Process.Signal(os.Interrupt)
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("replica %s did not stop cleanly on SIGINT: %v\n%s", name, err, logs.String())
			}
		case <-time.After(15 * time.Second):
			cmd.Process.Kill()
			t.Errorf("replica %s did not stop within 15s of SIGINT", name)
		}
		if t.Failed() {
			t.Logf("log of replica %s:\n%s", name, logs.String())
		}
	})
	for range 150 {
		if resp, err := http.Get("http://" + plain + "/ca/root.crt"); err == nil {
			resp.Body.Close()
			return r
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("replica %s did not start:\n%s", name, logs.String())
	return nil
}

// readCert reads a PEM certificate of the data dir's CA.
func readCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		t.Fatalf("%s holds no PEM certificate", path)
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// client is an HTTPS client that trusts the portal's root, presents cert
// (if any), keeps no cookies and does not follow redirects, so each
// request says exactly what it carries.
func client(t *testing.T, data string, cert *tls.Certificate) *http.Client {
	t.Helper()
	roots := x509.NewCertPool()
	roots.AddCert(readCert(t, filepath.Join(data, "ca", "root.crt")))
	cfg := &tls.Config{RootCAs: roots}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	return &http.Client{
		Timeout:       30 * time.Second,
		Transport:     &http.Transport{TLSClientConfig: cfg, DisableKeepAlives: true},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// login posts the sign-in form and returns the response status and the
// session cookie it set (nil if none).
func login(t *testing.T, c *http.Client, r *replica, id, password string) (int, *http.Cookie) {
	t.Helper()
	resp, err := c.PostForm(r.base+"/login", url.Values{"id": {id}, "password": {password}})
	if err != nil {
		t.Fatalf("POST /login on %s: %v", r.name, err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	for _, ck := range resp.Cookies() {
		if strings.HasPrefix(ck.Name, "__Host-") && ck.Value != "" {
			return resp.StatusCode, ck
		}
	}
	return resp.StatusCode, nil
}

// whoami asks r's /api/whoami with an optional session cookie and returns
// the status and the JSON fields.
func whoami(t *testing.T, c *http.Client, r *replica, session *http.Cookie) (int, map[string]string) {
	t.Helper()
	req, _ := http.NewRequest("GET", r.base+"/api/whoami", nil)
	if session != nil {
		req.AddCookie(session)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET /api/whoami on %s: %v", r.name, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var m map[string]string
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatalf("GET /api/whoami on %s: %s, not JSON: %q", r.name, resp.Status, body)
	}
	return resp.StatusCode, m
}

// ocspStatus asks r's OCSP responder (no nonce: the cacheable form) for
// the status of cert.
func ocspStatus(t *testing.T, r *replica, cert, issuer *x509.Certificate) int {
	t.Helper()
	der, err := ocsp.CreateRequest(cert, issuer, &ocsp.RequestOptions{Hash: 0})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Post(r.plain+"/ocsp", "application/ocsp-request", bytes.NewReader(der))
	if err != nil {
		t.Fatalf("OCSP on %s: %v", r.name, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("OCSP on %s: %s", r.name, resp.Status)
	}
	// Parsed without the issuer: x/crypto/ocsp would check the embedded
	// responder certificate (the issuing CA itself) against the issuer's
	// key, which only a self-signed responder passes. The response's own
	// signature is checked against the issuing CA here instead.
	or, err := ocsp.ParseResponseForCert(body, cert, nil)
	if err != nil {
		t.Fatalf("OCSP response of %s: %v", r.name, err)
	}
	if err := or.CheckSignatureFrom(issuer); err != nil {
		t.Fatalf("OCSP response of %s is not signed by the issuing CA: %v", r.name, err)
	}
	return or.Status
}

var ocspNames = map[int]string{ocsp.Good: "good", ocsp.Revoked: "revoked", ocsp.Unknown: "unknown"}

// TestReplicasActAsOnePortal starts two replicas, A and B, on one
// PostgreSQL database and one data directory, and checks what a user
// behind a load balancer relies on: a session made on A works on B, a
// certificate issued on A signs in on B, a revocation by the CLI is seen by
// B at its next request (whoami refuses, OCSP says revoked, even after B
// answered good for it), and a lockout counted on A holds on B.
func TestReplicasActAsOnePortal(t *testing.T) {
	dsn := pgtest.FreshDatabase(t)
	data := filepath.Join(t.TempDir(), "data")
	run(t, "", "init", "--data", data, "--db", dsn)
	const alicePW, bobPW = "alice's account pw", "bob's account pw!"
	run(t, alicePW+"\n", "user", "add", "--data", data, "--id", "alice", "--email", "alice@example.com", "--password-file", "-")
	run(t, bobPW+"\n", "user", "add", "--data", data, "--id", "bob", "--email", "bob@example.com", "--password-file", "-")
	a := startReplica(t, "A", data)
	b := startReplica(t, "B", data)
	plain := client(t, data, nil)

	// A session made on A works on B, and ends on B when it ends on A.
	status, session := login(t, plain, a, "alice", alicePW)
	if status != http.StatusSeeOther || session == nil {
		t.Fatalf("login on A: status %d, session cookie %v; want 303 and a session", status, session)
	}
	if code, m := whoami(t, plain, b, session); code != http.StatusOK || m["id"] != "alice" || m["method"] != "password" {
		t.Fatalf("whoami on B with A's session: %d %v, want 200 alice/password", code, m)
	}

	// A certificate issued on A signs in on B.
	const p12pw = "carry it over safely"
	req, _ := http.NewRequest("POST", a.base+"/certificate",
		strings.NewReader(url.Values{"p12_password": {p12pw}, "p12_password_confirm": {p12pw}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.AddCookie(session)
	resp, err := plain.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	p12, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/x-pkcs12" {
		t.Fatalf("POST /certificate on A: %s %s", resp.Status, resp.Header.Get("Content-Type"))
	}
	key, leaf, _, err := pkcs12.DecodeChain(p12, p12pw)
	if err != nil {
		t.Fatalf("the .p12 from A: %v", err)
	}
	withCert := client(t, data, &tls.Certificate{Certificate: [][]byte{leaf.Raw}, PrivateKey: key, Leaf: leaf})
	serial := strings.ToUpper(leaf.SerialNumber.Text(16))
	if len(serial)%2 == 1 {
		serial = "0" + serial
	}
	code, m := whoami(t, withCert, b, nil)
	if code != http.StatusOK || m["id"] != "alice" || m["method"] != "certificate" || m["serial"] != serial {
		t.Fatalf("whoami on B with the certificate from A: %d %v, want 200 alice/certificate/%s", code, m, serial)
	}
	issuing := readCert(t, filepath.Join(data, "ca", "issuing.crt"))
	for _, r := range []*replica{a, b} {
		if st := ocspStatus(t, r, leaf, issuing); st != ocsp.Good {
			t.Errorf("OCSP on %s before the revocation: %s, want good", r.name, ocspNames[st])
		}
	}

	// Revoked by the CLI (a third process): B refuses at its next request,
	// and B's OCSP, which just said good, says revoked.
	run(t, "", "cert", "revoke", "--data", data, "--serial", serial, "--reason", "keyCompromise")
	if code, m := whoami(t, withCert, b, nil); code != http.StatusForbidden || m["error"] != "revoked" {
		t.Errorf("whoami on B after the revocation: %d %v, want 403 revoked", code, m)
	}
	for _, r := range []*replica{b, a} {
		if st := ocspStatus(t, r, leaf, issuing); st != ocsp.Revoked {
			t.Errorf("OCSP on %s after the revocation: %s, want revoked", r.name, ocspNames[st])
		}
	}

	// A lockout counted on A holds on B: bob's right password works on B
	// before, and not after five wrong ones on A.
	if status, _ := login(t, plain, b, "bob", bobPW); status != http.StatusSeeOther {
		t.Fatalf("bob's first login on B: %d, want 303", status)
	}
	for i := range 5 {
		if status, _ := login(t, plain, a, "bob", fmt.Sprintf("wrong password %d", i)); status != http.StatusUnauthorized {
			t.Fatalf("wrong password %d on A: %d, want 401", i, status)
		}
	}
	if status, ck := login(t, plain, b, "bob", bobPW); status != http.StatusUnauthorized || ck != nil {
		t.Errorf("bob's right password on B after the lockout on A: %d (session %v), want 401 and no session", status, ck)
	}
	// The administrator lifts it once, for every replica.
	run(t, "", "user", "unlock", "--data", data, "--id", "bob")
	if status, _ := login(t, plain, a, "bob", bobPW); status != http.StatusSeeOther {
		t.Errorf("bob's login on A after unlock: %d, want 303", status)
	}

	// The audit log the replicas and the CLI wrote together is one chain.
	if out := run(t, "", "audit", "--data", data, "--verify"); !strings.Contains(out, "intact") {
		t.Errorf("audit --verify: %s", out)
	}
}

// get fetches url with c and returns the status.
func get(t *testing.T, c *http.Client, u string) int {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// TestReplicaRidesOutDatabaseOutage takes the database away from a running
// replica and gives it back: /healthz says so (503), a sign-in gets a clear
// 503, and the replica recovers by itself when the database is back.
//
// The outage is made on the test database alone, so other tests on the
// same server go on: new connections to it are switched off (ALTER
// DATABASE ... ALLOW_CONNECTIONS false) and its sessions ended, which is
// what a replica sees while PostgreSQL restarts.
func TestReplicaRidesOutDatabaseOutage(t *testing.T) {
	dsn := pgtest.FreshDatabase(t)
	name := strings.TrimPrefix(mustURL(t, dsn).Path, "/")
	data := filepath.Join(t.TempDir(), "data")
	run(t, "", "init", "--data", data, "--db", dsn)
	const pw = "carol's account pw"
	run(t, pw+"\n", "user", "add", "--data", data, "--id", "carol", "--email", "carol@example.com", "--password-file", "-")
	a := startReplica(t, "A", data)
	c := client(t, data, nil)
	if code := get(t, c, a.base+"/healthz"); code != http.StatusOK {
		t.Fatalf("/healthz before the outage: %d, want 200", code)
	}

	ctx := context.Background()
	admin, err := pgx.Connect(ctx, os.Getenv(pgtest.Env))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	setAllow := func(allow bool) {
		t.Helper()
		if _, err := admin.Exec(ctx, fmt.Sprintf("ALTER DATABASE %s ALLOW_CONNECTIONS %t", name, allow)); err != nil {
			t.Fatal(err)
		}
	}
	setAllow(false)
	t.Cleanup(func() { admin.Exec(ctx, fmt.Sprintf("ALTER DATABASE %s ALLOW_CONNECTIONS true", name)) })
	if _, err := admin.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1`, name); err != nil {
		t.Fatal(err)
	}

	if code := get(t, c, a.base+"/healthz"); code != http.StatusServiceUnavailable {
		t.Errorf("/healthz during the outage: %d, want 503", code)
	}
	resp, err := c.PostForm(a.base+"/login", url.Values{"id": {"carol"}, "password": {pw}})
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("POST /login during the outage: %s, want 503", resp.Status)
	}
	if strings.Contains(string(body), "SQLSTATE") || strings.Contains(string(body), name) {
		t.Errorf("the 503 page shows database internals:\n%s", body)
	}

	setAllow(true)
	deadline := time.Now().Add(20 * time.Second)
	for get(t, c, a.base+"/healthz") != http.StatusOK {
		if time.Now().After(deadline) {
			t.Fatal("/healthz does not recover within 20s of the database coming back")
		}
		time.Sleep(200 * time.Millisecond)
	}
	if status, ck := login(t, c, a, "carol", pw); status != http.StatusSeeOther || ck == nil {
		t.Errorf("login after the outage: %d (session %v), want 303 and a session", status, ck)
	}
}

func mustURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// TestConcurrentIssuanceAcrossProcesses issues 200 certificates for 50
// accounts from 200 `certportal cert issue` processes, 10 at a time (PostgreSQL
// allows 100 connections by default, shared with the other tests), each
// with its own connection pool (as many replicas as processes), while two
// serve replicas run on the same database: 200 distinct serials, exactly
// one valid certificate per account, every issued certificate recorded,
// and one unbroken audit chain.
func TestConcurrentIssuanceAcrossProcesses(t *testing.T) {
	const accounts, issues, parallel = 50, 200, 10
	dsn := pgtest.FreshDatabase(t)
	data := filepath.Join(t.TempDir(), "data")
	run(t, "", "init", "--data", data, "--db", dsn)
	for i := range accounts {
		run(t, "", "user", "add", "--data", data, "--id", fmt.Sprintf("u%02d", i), "--email", fmt.Sprintf("u%02d@example.com", i))
	}
	startReplica(t, "A", data)
	startReplica(t, "B", data)
	pw := filepath.Join(t.TempDir(), "p12pw")
	if err := os.WriteFile(pw, []byte("a long p12 password\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	type result struct {
		serial string
		err    error
	}
	results := make(chan result, issues)
	sem := make(chan struct{}, parallel)
	for i := range issues {
		sem <- struct{}{}
		go func() {
			defer func() { <-sem }()
			cmd := exec.Command(binary, "cert", "issue", "--data", data, "--id", fmt.Sprintf("u%02d", i%accounts),
				"--out", filepath.Join(out, fmt.Sprintf("%d.p12", i)), "--password-file", pw, "--json")
			var o, e bytes.Buffer
			cmd.Stdout, cmd.Stderr = &o, &e
			if err := cmd.Run(); err != nil {
				results <- result{err: fmt.Errorf("issue %d: %v: %s", i, err, e.String())}
				return
			}
			var c struct{ Serial string }
			if err := json.Unmarshal(o.Bytes(), &c); err != nil || c.Serial == "" {
				results <- result{err: fmt.Errorf("issue %d printed %q", i, o.String())}
				return
			}
			results <- result{serial: c.Serial}
		}()
	}
	issued := map[string]bool{}
	for range issues {
		r := <-results
		if r.err != nil {
			t.Error(r.err)
			continue
		}
		if issued[r.serial] {
			t.Errorf("serial %s issued twice", r.serial)
		}
		issued[r.serial] = true
	}
	if len(issued) != issues {
		t.Fatalf("%d distinct serials from %d issuances", len(issued), issues)
	}
	var certs []struct{ Serial, User, Status string }
	if err := json.Unmarshal([]byte(run(t, "", "cert", "list", "--data", data, "--json")), &certs); err != nil {
		t.Fatal(err)
	}
	if len(certs) != issues {
		t.Errorf("cert list shows %d certificates, want %d", len(certs), issues)
	}
	valid := map[string]int{}
	for _, c := range certs {
		if !issued[c.Serial] {
			t.Errorf("certificate %s is recorded but no process reported it", c.Serial)
		}
		delete(issued, c.Serial)
		if c.Status == "valid" {
			valid[c.User]++
		}
	}
	for s := range issued {
		t.Errorf("certificate %s was handed out but is not recorded", s)
	}
	for i := range accounts {
		if id := fmt.Sprintf("u%02d", i); valid[id] != 1 {
			t.Errorf("%s has %d valid certificates, want 1", id, valid[id])
		}
	}
	if out := run(t, "", "audit", "--data", data, "--verify"); !strings.Contains(out, "intact") {
		t.Errorf("audit --verify: %s", out)
	}
}
