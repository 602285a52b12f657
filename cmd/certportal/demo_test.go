package main

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"software.sslmate.com/src/go-pkcs12"
)

// startDemo runs demo with args and TMPDIR=tmp until it prints that it
// runs; it returns the process and its output.
func startDemo(t *testing.T, tmp string, args ...string) (*exec.Cmd, *syncBuffer) {
	t.Helper()
	cmd := exec.Command(binary, append([]string{"demo"}, args...)...)
	cmd.Env = append(os.Environ(), "TMPDIR="+tmp)
	logs := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	for i := 0; !strings.Contains(logs.String(), "certportal demo is running"); i++ {
		if i == 300 {
			cmd.Process.Kill()
			t.Fatalf("demo did not start:\n%s", logs)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return cmd, logs
}

// TestDemoOnOtherPorts: demo on ports other than the defaults puts those
// ports into its mails and its certificates' CRL and OCSP URLs, and a
// temporary data dir is removed when it stops.
func TestDemoOnOtherPorts(t *testing.T) {
	tmp := t.TempDir()
	addr, plain := freeAddr(t), freeAddr(t)
	_, httpsPort, _ := net.SplitHostPort(addr)
	_, httpPort, _ := net.SplitHostPort(plain)
	cmd, logs := startDemo(t, tmp, "--listen", addr, "--http-listen", plain)
	m := regexp.MustCompile(`Data:\s+(\S+)`).FindStringSubmatch(logs.String())
	if m == nil || !strings.HasPrefix(m[1], tmp) {
		t.Fatalf("demo names no data dir under TMPDIR:\n%s", logs)
	}
	data := m[1]
	if !strings.Contains(logs.String(), "https://localhost:"+httpsPort+"/") {
		t.Errorf("demo prints no URL with port %s:\n%s", httpsPort, logs)
	}
	// A mail with the portal's address, and a certificate with its URLs.
	ok(t, "", "user", "reset-password", "--data", data, "--id", "demo")
	mails, _ := filepath.Glob(filepath.Join(data, "outbox", "*.eml"))
	found := false
	for _, f := range mails {
		b, _ := os.ReadFile(f)
		found = found || strings.Contains(string(b), "https://localhost:"+httpsPort+"/login")
	}
	if !found {
		t.Errorf("no mail in %v names https://localhost:%s/login", mails, httpsPort)
	}
	p12 := filepath.Join(t.TempDir(), "demo.p12")
	ok(t, "", "cert", "issue", "--data", data, "--id", "demo", "--out", p12, "--password-file", writeSecret(t, "a long p12 password"))
	b, _ := os.ReadFile(p12)
	_, leaf, _, err := pkcs12.DecodeChain(b, "a long p12 password")
	if err != nil {
		t.Fatal(err)
	}
	urls := append(append(leaf.CRLDistributionPoints, leaf.OCSPServer...), leaf.IssuingCertificateURL...)
	if len(urls) < 3 {
		t.Fatalf("the certificate carries %v", urls)
	}
	for _, u := range urls {
		if !strings.HasPrefix(u, "http://localhost:"+httpPort+"/") {
			t.Errorf("the certificate points at %s, not at port %s", u, httpPort)
		}
	}
	cmd.Process.Signal(os.Interrupt)
	if err := cmd.Wait(); err != nil {
		t.Errorf("demo did not stop cleanly: %v\n%s", err, logs)
	}
	if left, _ := os.ReadDir(tmp); len(left) != 0 {
		t.Errorf("the temporary data dir stayed after demo stopped: %v", left)
	}
}

// TestDemoFailedStartLeavesNothing: a demo whose port is taken fails and
// removes the temporary data dir with the CA keys it made.
func TestDemoFailedStartLeavesNothing(t *testing.T) {
	tmp := t.TempDir()
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	cmd := exec.Command(binary, "demo", "--listen", busy.Addr().String(), "--http-listen", freeAddr(t))
	cmd.Env = append(os.Environ(), "TMPDIR="+tmp)
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "cannot listen") {
		t.Fatalf("demo on a taken port: %v\n%s", err, out)
	}
	if left, _ := os.ReadDir(tmp); len(left) != 0 {
		t.Errorf("a failed demo left %v in TMPDIR", left)
	}
}
