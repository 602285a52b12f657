package browsertest

import (
	"context"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

// story starts a story: its deadline, a running portal with alice, and a
// HOME whose NSS database trusts the portal's root but has no certificate
// of alice's yet.
func story(t *testing.T) (context.Context, *portal, *profile) {
	t.Helper()
	needTools(t)
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), storyDeadline)
	t.Cleanup(cancel)
	p := startPortal(t)
	return ctx, p, newProfile(t, p.rootPEM())
}

// shoot takes a screenshot only when the step is one the guide shows
// (name is not empty).
func (tb *tab) shoot(name string) {
	tb.t.Helper()
	if name != "" {
		tb.shot(name)
	}
}

// passwordSignIn opens the portal, which sends a browser without a session
// or certificate to the Login page, and signs in with ID and password.
func passwordSignIn(tb *tab, p *portal, password, shotLogin string) {
	tb.t.Helper()
	if code := tb.open(p.base + "/"); code != 200 || tb.path() != "/login" {
		tb.t.Fatalf("opening the portal without a session: HTTP %d at %s, want the Login page", code, tb.location())
	}
	tb.expect("Login")
	tb.hasLink("If your certificate has been revoked", "/recover")
	tb.fill("id", userID, "password", password)
	tb.shoot(shotLogin)
	if code := tb.press("Login"); code != 200 || tb.path() != "/" {
		tb.t.Fatalf("Login: HTTP %d at %s, want the home page:\n%s", code, tb.location(), tb.text("main"))
	}
	tb.expect("Welcome, alice", "ID and password", "Get a certificate")
}

// getCertificate fills in the home page's certificate form (the file's
// password twice) and waits for the .p12 the page downloads.
func getCertificate(tb *tab, shotForm string) string {
	tb.t.Helper()
	tb.fill("p12_password", p12Pass, "p12_password_confirm", p12Pass)
	tb.shoot(shotForm)
	tb.do(`pressing "Get a certificate"`, chromedp.Click(byLabel("Get a certificate"), chromedp.NodeVisible))
	return tb.download(userID + ".p12")
}

// certificateThroughPage is story 1 without its pictures: a browser on
// this HOME signs in with the password and downloads the certificate.
func certificateThroughPage(t *testing.T, ctx context.Context, p *portal, prof *profile) string {
	t.Helper()
	tb := prof.launch(t, ctx)
	defer tb.close()
	passwordSignIn(tb, p, accountPass, "")
	return getCertificate(tb, "")
}

// p12Thumbprint opens a .p12 with OpenSSL and returns the SHA-1 thumbprint
// of the user's certificate in it.
func p12Thumbprint(t *testing.T, file string) string {
	t.Helper()
	pem := filepath.Join(t.TempDir(), "leaf.pem")
	run(t, nil, "openssl", "pkcs12", "-in", file, "-passin", "file:"+writeSecret(t, p12Pass), "-clcerts", "-nokeys", "-out", pem)
	out := run(t, nil, "openssl", "x509", "-in", pem, "-noout", "-fingerprint", "-sha1", "-subject")
	if !strings.Contains(out, "CN=alice") && !strings.Contains(out, "CN = alice") {
		t.Errorf("the downloaded certificate is not alice's: %s", out)
	}
	m := regexp.MustCompile(`(?i)SHA1 Fingerprint=([0-9A-F:]+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no SHA-1 fingerprint in %q", out)
	}
	return hexOnly(m[1])
}

// hexOnly is a serial or thumbprint as the portal writes it: upper-case
// hex without separators.
func hexOnly(s string) string {
	return strings.ToUpper(regexp.MustCompile(`[^0-9A-Fa-f]`).ReplaceAllString(s, ""))
}

// Story 1: the first sign-in with ID and password, and the certificate
// requested on the home page and downloaded through it.
func TestFirstSignInGetsCertificate(t *testing.T) {
	ctx, p, prof := story(t)
	tb := prof.launch(t, ctx)
	passwordSignIn(tb, p, accountPass, "login")
	file := getCertificate(tb, "get-certificate")

	cert := p.validCert(t)
	if got := p12Thumbprint(t, file); got != cert.Thumbprint {
		t.Fatalf("the downloaded file holds the certificate %s, the portal issued %s", got, cert.Thumbprint)
	}
	// Back on the home page, the account now signs in by certificate and
	// shows the one just issued.
	if code := tb.open(p.base + "/"); code != 200 {
		t.Fatalf("home page after the download: HTTP %d", code)
	}
	tb.expect("Welcome, alice", "Certificate", cert.Serial, cert.Thumbprint)
	tb.shot("home-after-download")
}

// Story 2: the downloaded file imported into the browser's store, the
// root trusted; a restarted browser opens the portal signed in by the
// certificate, without anything typed.
func TestCertificateSignsIn(t *testing.T) {
	ctx, p, prof := story(t)
	file := certificateThroughPage(t, ctx, p, prof)
	prof.importP12(t, file, p12Pass)
	prof.trustRoot(t, p.rootPEM())

	tb := prof.launch(t, ctx)
	if code := tb.open(p.base + "/"); code != 200 || tb.path() != "/" {
		t.Fatalf("opening the portal with the certificate: HTTP %d at %s:\n%s", code, tb.location(), tb.text("main"))
	}
	cert := p.validCert(t)
	tb.expect("Welcome, alice", "signed in with your certificate", cert.Serial, cert.Thumbprint)
	tb.shot("home-certificate")

	// The browser's own certificate manager lists the certificate under
	// "Your certificates" (by its SHA-256, in lower case): where a user
	// looks for it to check, delete or (on Windows and macOS) export it.
	texts := strings.Join(tb.certificateManager(userID), "\n")
	if !strings.Contains(texts, "\nalice\n") || !strings.Contains(texts, strings.ToLower(cert.SHA256)[:16]) {
		t.Errorf("Chromium's certificate manager does not list alice's certificate %s:\n%s", cert.SHA256, texts)
	}
	tb.shot("browser-certificates")
}

// Story 3: once alice has a certificate, ID and password are refused with
// a 403 page that leads to "If your certificate has been revoked".
func TestPasswordRefusedOnceCertificateIssued(t *testing.T) {
	ctx, p, prof := story(t)
	certificateThroughPage(t, ctx, p, prof)

	tb := prof.launch(t, ctx)
	tb.open(p.base + "/login")
	tb.fill("id", userID, "password", accountPass)
	if code := tb.press("Login"); code != 403 {
		t.Fatalf("Login with the password after the certificate was issued: HTTP %d at %s, want 403:\n%s", code, tb.location(), tb.text("main"))
	}
	tb.expect("Please sign in with your certificate", "certificate")
	tb.hasLink("If your certificate has been revoked", "/recover")
	tb.shot("password-refused")
}
