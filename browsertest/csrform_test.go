package browsertest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

// The home page's "Use a key from your own device": alice makes her key
// and CSR with OpenSSL, as the page's recipe says, pastes a mistake first
// and then the request, and downloads her certificate with its chain.
func TestCSRFormGivesCertificateChain(t *testing.T) {
	ctx, p, prof := story(t)
	dir := t.TempDir()
	key, csrFile := filepath.Join(dir, "alice.key"), filepath.Join(dir, "alice.csr")
	// A subject other than alice's: the certificate names her whatever
	// the request asks for.
	run(t, nil, "openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
		"-keyout", key, "-subj", "/CN=mallory", "-out", csrFile)
	csr, err := os.ReadFile(csrFile)
	if err != nil {
		t.Fatal(err)
	}

	tb := prof.launch(t, ctx)
	passwordSignIn(tb, p, accountPass, "")
	tb.expect("Welcome, alice", "Use a key from your own device", "openssl req -new")

	// A mistake: the page comes back (400) with the reason beside the
	// field, and nothing is issued.
	tb.paste("csr", "this is not a certificate request")
	if code := tb.press("Get a certificate for this request"); code != 400 {
		t.Fatalf("a garbage CSR: HTTP %d at %s, want 400:\n%s", code, tb.location(), tb.text("main"))
	}
	tb.expect("Welcome, alice", "Use a key from your own device")
	if msg := tb.text("#csr_error"); !strings.Contains(msg, "BEGIN CERTIFICATE REQUEST") {
		t.Errorf("the reason beside the field is %q; want it to say what to paste (-----BEGIN CERTIFICATE REQUEST-----)", msg)
	}
	if list := p.certs(t); len(list) != 0 {
		t.Fatalf("a garbage CSR issued %d certificates: %+v", len(list), list)
	}

	tb.paste("csr", string(csr))
	tb.do(`pressing "Get a certificate for this request"`,
		chromedp.Click(byLabel("Get a certificate for this request"), chromedp.NodeVisible))
	chain := tb.download(userID + ".pem")
	b, err := os.ReadFile(chain)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(b), "-----BEGIN CERTIFICATE-----"); n != 3 {
		t.Fatalf("the downloaded file holds %d certificates, want 3 (alice's, the issuing CA, the root):\n%s", n, b)
	}
	leaf := filepath.Join(dir, "leaf.pem")
	if err := os.WriteFile(leaf, b[:strings.Index(string(b), "-----END CERTIFICATE-----")+len("-----END CERTIFICATE-----\n")], 0o600); err != nil {
		t.Fatal(err)
	}
	// The chain in the file verifies to the portal's root; the
	// certificate carries the key that stayed in this directory, CN=alice.
	if out := run(t, nil, "openssl", "verify", "-CAfile", p.rootPEM(), "-untrusted", chain, leaf); !strings.Contains(out, "OK") {
		t.Errorf("openssl verify: %s", out)
	}
	if subj := run(t, nil, "openssl", "x509", "-in", leaf, "-noout", "-subject"); !strings.Contains(subj, "CN=alice") && !strings.Contains(subj, "CN = alice") {
		t.Errorf("the certificate's subject is %q, want CN=alice", subj)
	}
	certKey := run(t, nil, "openssl", "x509", "-in", leaf, "-noout", "-pubkey")
	ownKey := run(t, nil, "openssl", "pkey", "-in", key, "-pubout")
	if certKey != ownKey {
		t.Errorf("the certificate's key is not the one made here:\n%s\nwant\n%s", certKey, ownKey)
	}
	fp := run(t, nil, "openssl", "x509", "-in", leaf, "-noout", "-fingerprint", "-sha1")
	if got, want := hexOnly(fp[strings.Index(fp, "=")+1:]), p.validCert(t).Thumbprint; got != want {
		t.Errorf("the downloaded certificate is %s, the portal's valid one is %s", got, want)
	}
}

// paste puts text into a field as pasting does (at once, not key by key),
// scrolled into view first.
func (tb *tab) paste(id, text string) {
	tb.t.Helper()
	tb.do("pasting into #"+id, chromedp.ScrollIntoView(chromedp.ID(id)), chromedp.SetValue(chromedp.ID(id), text, chromedp.NodeVisible))
}
