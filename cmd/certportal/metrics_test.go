package main

import (
	"bytes"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ocsp"
	"software.sslmate.com/src/go-pkcs12"
)

// startMetricsServe runs `certportal serve` on data with extra flags until
// the test ends and returns its HTTPS and plain-HTTP addresses (host:port).
func startMetricsServe(t *testing.T, data string, extra ...string) (string, string) {
	t.Helper()
	base, plain, _, _ := serveProcess(t, data, extra...)
	return strings.TrimPrefix(base, "https://"), strings.TrimPrefix(plain, "http://")
}

// scrape returns the value of one sample of /metrics (0 when absent).
func scrape(t *testing.T, metricsAddr, sample string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + metricsAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET /metrics: %s", resp.Status)
	}
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(sample) + ` (\S+)$`).FindSubmatch(body)
	if m == nil {
		return 0
	}
	v, err := strconv.ParseFloat(string(m[1]), 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestMetricsCountWhatHappened signs in with a password, gets a
// certificate, signs in with it, and reads on --metrics-listen that each
// counter moved, over real HTTP against the real binary. The HTTPS
// listener must not serve /metrics.
func TestMetricsCountWhatHappened(t *testing.T) {
	data := newData(t)
	ok(t, "", "user", "add", "--data", data, "--id", "alice", "--email", "alice@example.com", "--password-file", writeSecret(t, "alice password 1"))
	metricsAddr := freeAddr(t)
	addr, plain := startMetricsServe(t, data, "--metrics-listen", metricsAddr)

	roots := x509.NewCertPool()
	pemRoot, err := os.ReadFile(filepath.Join(data, "ca", "root.crt"))
	if err != nil {
		t.Fatal(err)
	}
	roots.AppendCertsFromPEM(pemRoot)
	jar, _ := cookiejar.New(nil)
	client := &http.Client{Jar: jar, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}
	base := "https://" + addr

	checks := []struct{ sample, when string }{
		{`certportal_signins_total{method="password",outcome="ok"}`, "a password sign-in"},
		{`certportal_certificates_issued_total{result="ok"}`, "an issuance"},
		{`certportal_certificate_issue_seconds_count`, "an issuance"},
		{`certportal_mail_total{result="sent"}`, "the issuance notice"},
		{`certportal_signins_total{method="certificate",outcome="ok"}`, "a certificate sign-in"},
		{`certportal_revocation_checks_total{result="good",source="signin"}`, "a certificate sign-in"},
		{`certportal_ocsp_requests_total{kind="cache"}`, "an OCSP request"},
	}
	before := map[string]float64{}
	for _, c := range checks {
		before[c.sample] = scrape(t, metricsAddr, c.sample)
	}

	resp, err := client.PostForm(base+"/login", url.Values{"id": {"alice"}, "password": {"alice password 1"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	const p12pw = "a long p12 password"
	resp, err = client.PostForm(base+"/certificate", url.Values{"p12_password": {p12pw}, "p12_password_confirm": {p12pw}})
	if err != nil {
		t.Fatal(err)
	}
	p12, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("POST /certificate: %s", resp.Status)
	}
	key, leaf, _, err := pkcs12.DecodeChain(p12, p12pw)
	if err != nil {
		t.Fatal(err)
	}
	certClient := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{
		RootCAs: roots, Certificates: []tls.Certificate{{Certificate: [][]byte{leaf.Raw}, PrivateKey: key, Leaf: leaf}},
	}}}
	resp, err = certClient.Get(base + "/api/whoami")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("whoami with the new certificate: %s", resp.Status)
	}
	// An OCSP request without a nonce, on the plain-HTTP listener.
	blk, _ := pem.Decode(mustRead(t, filepath.Join(data, "ca", "issuing.crt")))
	issuer, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	ocspReq, err := ocsp.CreateRequest(leaf, issuer, &ocsp.RequestOptions{Hash: crypto.SHA1})
	if err != nil {
		t.Fatal(err)
	}
	resp, err = http.Post("http://"+plain+"/ocsp", "application/ocsp-request", bytes.NewReader(ocspReq))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	for _, c := range checks {
		after := scrape(t, metricsAddr, c.sample)
		// The notice goes out after the issuance's commit, by the outbox
		// sender, a moment later.
		for deadline := time.Now().Add(10 * time.Second); after < before[c.sample]+1 && time.Now().Before(deadline); {
			time.Sleep(50 * time.Millisecond)
			after = scrape(t, metricsAddr, c.sample)
		}
		if after != before[c.sample]+1 {
			t.Errorf("%s: %v before, %v after %s; want one more", c.sample, before[c.sample], after, c.when)
		}
	}
	resp, err = client.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET /metrics on the HTTPS listener: %s, want 404", resp.Status)
	}
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
