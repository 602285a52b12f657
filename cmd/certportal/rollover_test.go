package main

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/certportal/certportal/ca"
)

// serveProcess runs `certportal serve` with extra flags until the test
// ends and returns the HTTPS and plain-HTTP base URLs, the process and its
// log.
func serveProcess(t *testing.T, data string, extra ...string) (httpsURL, plainURL string, cmd *exec.Cmd, logs *syncBuffer) {
	t.Helper()
	addr, plain := freeAddr(t), freeAddr(t)
	cmd = exec.Command(binary, append([]string{"serve", "--data", data, "--listen", addr, "--http-listen", plain}, extra...)...)
	logs = &syncBuffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("serve did not stop cleanly on SIGINT: %v\n%s", err, logs.String())
			}
		case <-time.After(15 * time.Second):
			cmd.Process.Kill()
			t.Errorf("serve did not stop within 15s of SIGINT")
		}
	})
	for i := 0; i < 100; i++ {
		if resp, err := http.Get("http://" + plain + "/ca/root.crt"); err == nil {
			resp.Body.Close()
			return "https://" + addr, "http://" + plain, cmd, logs
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("serve did not start:\n%s", logs.String())
	return
}

// get fetches a URL and fails the test unless it answers 200.
func get(t *testing.T, c *http.Client, url string) []byte {
	t.Helper()
	resp, err := c.Get(url)
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

// openssl runs openssl and returns its combined output; it fails the test
// when openssl is missing.
func openssl(t *testing.T, args ...string) (string, error) {
	t.Helper()
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Fatal("openssl is not installed; this test needs it (Debian: apt-get install -y openssl)")
	}
	out, err := exec.Command("openssl", args...).CombinedOutput()
	return string(out), err
}

// TestCARollover: certificates of SOP-ICA1 and of SOP-ICA2 both sign in
// after `ca rollover`; a revocation of an old one shows in SOP-ICA1's CRL
// and OCSP answers, checked with openssl against the running portal.
func TestCARollover(t *testing.T) {
	data := newData(t)
	dir := t.TempDir()
	pw := writeSecret(t, "a long pkcs12 password")
	for _, id := range []string{"old", "new"} {
		ok(t, "", "user", "add", "--data", data, "--id", id, "--email", id+"@example.com")
	}
	ok(t, "", "cert", "issue", "--data", data, "--id", "old", "--out", filepath.Join(dir, "old.p12"), "--password-file", pw)

	out := ok(t, "", "ca", "rollover", "--data", data)
	if !strings.Contains(out, "SOP-ICA2") || !strings.Contains(out, "Restart") {
		t.Errorf("ca rollover said: %s", out)
	}
	fails(t, 1, "there is a CA named SOP-ICA2 already", "", "ca", "rollover", "--data", data, "--cn", "SOP-ICA2")
	var cas []caJSON
	if err := json.Unmarshal([]byte(ok(t, "", "ca", "show", "--data", data, "--json")), &cas); err != nil {
		t.Fatal(err)
	}
	var issuing []string
	for _, c := range cas {
		if c.Role == "issuing" {
			issuing = append(issuing, c.Subject)
			if c.Current != strings.Contains(c.Subject, "SOP-ICA2") {
				t.Errorf("ca show: %s current=%v", c.Subject, c.Current)
			}
		}
	}
	if len(issuing) != 2 || !strings.Contains(issuing[0], "CN=SOP-ICA1") || !strings.Contains(issuing[1], "CN=SOP-ICA2") {
		t.Fatalf("ca show --json lists the issuing CAs %v", issuing)
	}
	ok(t, "", "cert", "issue", "--data", data, "--id", "new", "--out", filepath.Join(dir, "new.p12"), "--password-file", pw)

	base, plain, _, _ := serveProcess(t, data)
	// Both sign in, each from its own store; a store that imports both
	// files holds both intermediates.
	both := filepath.Join(dir, "both")
	leafs := map[string]string{}
	for _, id := range []string{"old", "new"} {
		p12 := filepath.Join(dir, id+".p12")
		store := filepath.Join(dir, "store-"+id)
		ok(t, "", "store", "import", p12, "--store-dir", store, "--password-file", pw)
		ok(t, "", "store", "import", p12, "--store-dir", both, "--password-file", pw)
		if who := strings.TrimSpace(ok(t, "", "whoami", "--url", base, "--store-dir", store)); who != id {
			t.Errorf("whoami with the %s certificate printed %q", id, who)
		}
		leafs[id] = filepath.Join(dir, id+".pem")
		if out, err := openssl(t, "pkcs12", "-in", p12, "-passin", "file:"+pw, "-nokeys", "-clcerts", "-out", leafs[id]); err != nil {
			t.Fatalf("openssl pkcs12: %v\n%s", err, out)
		}
	}
	var entries []entryJSON
	json.Unmarshal([]byte(ok(t, "", "store", "list", "--store-dir", both, "--store", "intermediate", "--json")), &entries)
	if len(entries) != 2 || entries[0].IssuedTo == entries[1].IssuedTo {
		t.Errorf("the intermediate store after importing both: %+v", entries)
	}

	// The CA files as the portal serves them.
	c := &http.Client{Timeout: 10 * time.Second}
	save := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	root := save("root.der", get(t, c, plain+"/ca/root.crt"))
	ica1 := save("ica1.der", get(t, c, plain+"/ca/SOP-ICA1.crt"))
	ica2 := save("ica2.der", get(t, c, plain+"/ca/SOP-ICA2.crt"))
	if string(get(t, c, plain+"/ca/issuing.crt")) != string(get(t, c, plain+"/ca/SOP-ICA2.crt")) {
		t.Error("/ca/issuing.crt is not the current issuing CA")
	}
	chain := get(t, c, plain+"/ca/chain.pem")
	if n := strings.Count(string(chain), "BEGIN CERTIFICATE"); n != 3 {
		t.Errorf("/ca/chain.pem has %d certificates, want 3", n)
	}
	pemOf := func(der, name string) string {
		b, _ := os.ReadFile(der)
		return save(name, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: b}))
	}
	rootPEM, ica1PEM, ica2PEM := pemOf(root, "root.pem"), pemOf(ica1, "ica1.pem"), pemOf(ica2, "ica2.pem")
	about := string(get(t, browser(t, data), base+"/about/certificate"))
	for _, want := range []string{"SOP-ICA1", "SOP-ICA2", `href="/ca/SOP-ICA1.crt"`} {
		if !strings.Contains(about, want) {
			t.Errorf("the about page lacks %s", want)
		}
	}

	// Revoke the old CA's certificate.
	var certs []certJSON
	json.Unmarshal([]byte(ok(t, "", "cert", "list", "--data", data, "--id", "old", "--json")), &certs)
	if len(certs) != 1 {
		t.Fatalf("cert list --id old: %+v", certs)
	}
	ok(t, "", "cert", "revoke", "--data", data, "--serial", certs[0].Serial, "--reason", "keyCompromise")
	fails(t, 1, "revoked", "", "whoami", "--url", base, "--store-dir", filepath.Join(dir, "store-old"))
	if who := strings.TrimSpace(ok(t, "", "whoami", "--url", base, "--store-dir", filepath.Join(dir, "store-new"))); who != "new" {
		t.Errorf("whoami new after revoking old printed %q", who)
	}

	// CRLs: the old CA's lists the serial; verify with the right CRLs.
	crl1 := save("ica1.crl", get(t, c, plain+"/crl/SOP-ICA1.crl"))
	crl2 := save("ica2.crl", get(t, c, plain+"/crl/SOP-ICA2.crl"))
	crlR := save("root.crl", get(t, c, plain+"/crl/root.crl"))
	if string(get(t, c, plain+"/crl/issuing.crl")) != string(get(t, c, plain+"/crl/SOP-ICA2.crl")) {
		t.Error("/crl/issuing.crl is not the current issuing CA's CRL")
	}
	text, err := openssl(t, "crl", "-inform", "DER", "-in", crl1, "-noout", "-text", "-CAfile", ica1PEM)
	if err != nil || !strings.Contains(text, certs[0].Serial) || !strings.Contains(text, "Key Compromise") || !strings.Contains(text, "verify OK") {
		t.Errorf("openssl crl of SOP-ICA1: %v\n%s", err, text)
	}
	crlPEM := func(der, name string) string {
		out, err := openssl(t, "crl", "-inform", "DER", "-in", der, "-out", filepath.Join(dir, name))
		if err != nil {
			t.Fatalf("openssl crl: %v\n%s", err, out)
		}
		return filepath.Join(dir, name)
	}
	untrusted := save("inter.pem", append(must(os.ReadFile(ica1PEM)), must(os.ReadFile(ica2PEM))...))
	verify := []string{"verify", "-crl_check_all", "-CAfile", rootPEM, "-untrusted", untrusted,
		"-CRLfile", crlPEM(crl1, "1.pem"), "-CRLfile", crlPEM(crl2, "2.pem"), "-CRLfile", crlPEM(crlR, "r.pem")}
	if out, err := openssl(t, append(verify, leafs["old"])...); err == nil || !strings.Contains(out, "certificate revoked") {
		t.Errorf("openssl verify -crl_check_all of the revoked SOP-ICA1 certificate: %v\n%s", err, out)
	}
	if out, err := openssl(t, append(verify, leafs["new"])...); err != nil || !strings.Contains(out, "OK") {
		t.Errorf("openssl verify -crl_check_all of the SOP-ICA2 certificate: %v\n%s", err, out)
	}

	// OCSP against the served responder: each CA answers for its own.
	for _, tt := range []struct{ leaf, issuer, want string }{
		{leafs["old"], ica1PEM, "revoked"}, {leafs["new"], ica2PEM, "good"},
	} {
		out, err := openssl(t, "ocsp", "-issuer", tt.issuer, "-cert", tt.leaf, "-url", plain+"/ocsp", "-CAfile", rootPEM, "-verify_other", tt.issuer)
		if err != nil || !strings.Contains(out, ": "+tt.want) || !strings.Contains(out, "Response verify OK") {
			t.Errorf("openssl ocsp (%s): %v\n%s", tt.want, err, out)
		}
	}
	// Asking SOP-ICA2 about SOP-ICA1's certificate: not its serial.
	// (-serial: with -cert openssl would hash the leaf's issuer name, SOP-ICA1,
	// with SOP-ICA2's key, a CertID of no CA, which gets "unauthorized".)
	out, _ = openssl(t, "ocsp", "-issuer", ica2PEM, "-serial", "0x"+certs[0].Serial, "-url", plain+"/ocsp", "-CAfile", rootPEM, "-verify_other", ica2PEM)
	if !strings.Contains(out, ": unknown") {
		t.Errorf("openssl ocsp for an SOP-ICA1 serial asked of SOP-ICA2: %s", out)
	}
}

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}

// leafSerial connects to the portal and returns the serial of the server
// certificate, over a new connection or the client's kept-alive one.
func leafSerial(t *testing.T, c *http.Client, base string) string {
	t.Helper()
	resp, err := c.Get(base + "/healthz")
	if err != nil {
		t.Fatalf("GET /healthz: %v", err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /healthz: %s", resp.Status)
	}
	return resp.TLS.PeerCertificates[0].SerialNumber.Text(16)
}

func tlsClient(t *testing.T, data string) *http.Client {
	b, err := os.ReadFile(filepath.Join(data, "ca", "root.crt"))
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(b)
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}, MaxIdleConnsPerHost: 1}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

// waitSerial polls new connections until the portal serves want.
func waitSerial(t *testing.T, data, base, want string) {
	t.Helper()
	for i := 0; i < 100; i++ {
		if leafSerial(t, tlsClient(t, data), base) == want {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("the portal did not switch to the certificate %s within 10s", want)
}

// TestServeReloadsTLSCertificate runs serve with --tls-cert: new files are
// served to new connections without a restart (the kept-alive connection
// goes on), a bad file keeps the old certificate, and SIGHUP reloads.
func TestServeReloadsTLSCertificate(t *testing.T) {
	data := newData(t)
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	auth, err := ca.Load(filepath.Join(data, "ca"), "")
	if err != nil {
		t.Fatal(err)
	}
	install := func() string { // a new certificate, as an administrator would copy it in
		c, err := auth.RenewServerCertificate()
		if err != nil {
			t.Fatal(err)
		}
		for src, dst := range map[string]string{"server.crt": certFile, "server.key": keyFile} {
			os.WriteFile(dst+".tmp", must(os.ReadFile(filepath.Join(data, "ca", src))), 0o600)
			os.Rename(dst+".tmp", dst)
		}
		return c.Leaf.SerialNumber.Text(16)
	}
	first := install()
	base, _, cmd, logs := serveProcess(t, data, "--tls-cert", certFile, "--tls-key", keyFile)
	held := tlsClient(t, data)
	if s := leafSerial(t, held, base); s != first {
		t.Fatalf("serving %s, want %s", s, first)
	}

	second := install()
	waitSerial(t, data, base, second)
	if s := leafSerial(t, held, base); s != first {
		t.Errorf("the kept-alive connection changed certificate: %s", s)
	}

	// A bad file and a SIGHUP: the process lives, logs, keeps serving.
	os.WriteFile(certFile, []byte("not a certificate\n"), 0o600)
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(logs.String(), `why="reload requested"`) && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	if !strings.Contains(logs.String(), "TLS certificate not reloaded") || !strings.Contains(logs.String(), `why="reload requested"`) {
		t.Fatalf("SIGHUP with a bad file was not logged:\n%s", logs.String())
	}
	if s := leafSerial(t, tlsClient(t, data), base); s != second {
		t.Fatalf("after a bad file: serving %s, want the previous %s", s, second)
	}
	third := install()
	cmd.Process.Signal(syscall.SIGHUP)
	waitSerial(t, data, base, third)
}

// TestServePicksUpRenewalByAnotherReplica: serve without --tls-cert
// serves the server.crt another replica sharing DATA/ca renewed.
func TestServePicksUpRenewalByAnotherReplica(t *testing.T) {
	data := newData(t)
	base, _, _, _ := serveProcess(t, data)
	held := tlsClient(t, data)
	first := leafSerial(t, held, base)
	other, err := ca.Load(filepath.Join(data, "ca"), "")
	if err != nil {
		t.Fatal(err)
	}
	c, err := other.RenewServerCertificate()
	if err != nil {
		t.Fatal(err)
	}
	waitSerial(t, data, base, c.Leaf.SerialNumber.Text(16))
	if s := leafSerial(t, held, base); s != first {
		t.Errorf("the kept-alive connection changed certificate: %s", s)
	}
}

// syncBuffer is a log buffer the serve process writes while the test reads.
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
