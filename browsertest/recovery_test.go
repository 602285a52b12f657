package browsertest

import (
	"regexp"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

// Story 4: alice's certificate is revoked. Opening the portal shows the
// 403 page with the way out; she proves ID and password on "If your
// certificate has been revoked", presses "Change Sign in Method" and "OK",
// reads the temporary password in her mail, presses "Sign Now", logs in
// with it and gets a new certificate.
func TestRevokedCertificateRecovery(t *testing.T) {
	ctx, p, prof := story(t)
	prof.importP12(t, certificateThroughPage(t, ctx, p, prof), p12Pass)
	prof.trustRoot(t, p.rootPEM())
	old := p.validCert(t)
	cli(t, "cert", "revoke", "--data", p.data, "--serial", old.Serial)

	tb := prof.launch(t, ctx)
	if code := tb.open(p.base + "/"); code != 403 {
		t.Fatalf("opening the portal with a revoked certificate: HTTP %d at %s, want 403:\n%s", code, tb.location(), tb.text("main"))
	}
	tb.expect("Your certificate has been revoked", "revoked")
	tb.hasLink("If your certificate has been revoked", "/recover")
	tb.shot("revoked")

	if code := tb.press("If your certificate has been revoked"); code != 200 || tb.path() != "/recover" {
		t.Fatalf("the recovery link: HTTP %d at %s", code, tb.location())
	}
	tb.expect("Change Sign in Method")
	tb.fill("id", userID, "password", accountPass)
	tb.shot("recover")

	if code := tb.press("Change Sign in Method"); code != 200 {
		t.Fatalf("Change Sign in Method: HTTP %d at %s:\n%s", code, tb.location(), tb.text("main"))
	}
	tb.expect("Change Sign in Method", "alice", "revoked", "temporary password")
	tb.shot("recover-confirm")

	if code := tb.press("OK"); code != 200 {
		t.Fatalf("OK: HTTP %d at %s:\n%s", code, tb.location(), tb.text("main"))
	}
	tb.expect("Sign in method changed", "temporary password", "Identification", "Cancel")
	tb.hasLink("Sign Now", "/login")
	tb.shot("recover-done")

	temp := p.temporaryPassword(t)
	if page := tb.text("body"); strings.Contains(page, temp) || strings.Contains(tb.location(), temp) {
		t.Fatal("the temporary password shows in the page or its URL; it must only be in the mail")
	}

	if code := tb.press("Sign Now"); code != 200 || tb.path() != "/login" {
		t.Fatalf("Sign Now: HTTP %d at %s, want the Login page", code, tb.location())
	}
	tb.expect("Login")
	tb.fill("id", userID, "password", temp)
	tb.shot("login-temporary")
	if code := tb.press("Login"); code != 200 || tb.path() != "/" {
		t.Fatalf("Login with the temporary password: HTTP %d at %s:\n%s", code, tb.location(), tb.text("main"))
	}
	tb.expect("Welcome, alice", "ID and password", "You have no valid certificate", "Get a certificate")

	file := getCertificate(tb, "get-new-certificate")
	cur := p.validCert(t)
	if cur.Serial == old.Serial {
		t.Fatalf("the certificate after recovery is the revoked one (%s)", old.Serial)
	}
	if got := p12Thumbprint(t, file); got != cur.Thumbprint {
		t.Fatalf("the downloaded file holds %s, the portal's current certificate is %s", got, cur.Thumbprint)
	}
}

// Story 5: the about-certificate page names the same root (serial number
// and SHA-1 thumbprint) as the one in the browser's certificate store.
func TestAboutCertificateMatchesBrowserStore(t *testing.T) {
	ctx, p, prof := story(t)
	prof.importP12(t, p.adminIssue(t), p12Pass)

	tb := prof.launch(t, ctx)
	if code := tb.open(p.base + "/about/certificate"); code != 200 {
		t.Fatalf("about certificate: HTTP %d", code)
	}
	tb.expect("About the certificate")
	facts, err := chromedp.Run(tb.ctx, chromedp.Evaluate[map[string]string](
		`Object.fromEntries([...document.querySelector('main dl.facts').querySelectorAll('dt')]
			.map(dt => [dt.textContent.trim(), dt.nextElementSibling.textContent.trim()]))`))
	if err != nil {
		t.Fatal(err)
	}
	tb.shot("about-certificate")

	// What the browser's store shows for the root, as a user sees it in
	// the certificate manager's details.
	out := run(t, nil, "certutil", "-L", "-d", prof.nssdb, "-n", "SOP-RCA")
	serial := regexp.MustCompile(`Serial Number:\s*(?:\d+ \(0x([0-9a-fA-F]+)\)|([0-9a-fA-F:]+))`).FindStringSubmatch(out)
	sha1 := regexp.MustCompile(`Fingerprint \(SHA1\):\s*([0-9A-Fa-f:]+)`).FindStringSubmatch(out)
	if serial == nil || sha1 == nil {
		t.Fatalf("certutil -L shows no serial or SHA-1 fingerprint:\n%s", out)
	}
	storeSerial := hexOnly(serial[1] + serial[2])
	if len(storeSerial)%2 == 1 {
		storeSerial = "0" + storeSerial
	}
	if got := facts["Serial number"]; got != storeSerial || got != "01" {
		t.Errorf("the about page shows the root's serial %q, the browser's store %q (want 01)", got, storeSerial)
	}
	if got, want := facts["Thumbprint (SHA-1)"], hexOnly(sha1[1]); got != want {
		t.Errorf("the about page shows the root's thumbprint %q, the browser's store %q", got, want)
	}
	if facts["Issued to"] != "SOP-RCA" {
		t.Errorf("the about page's root is issued to %q, want SOP-RCA", facts["Issued to"])
	}
}

// Story 6: after the account is cancelled, the certificate that signed in
// a moment ago gets the 403 page, which points at removing the
// certificates.
func TestCancelledAccountCertificateRefused(t *testing.T) {
	ctx, p, prof := story(t)
	prof.importP12(t, p.adminIssue(t), p12Pass)

	tb := prof.launch(t, ctx)
	if code := tb.open(p.base + "/"); code != 200 {
		t.Fatalf("the certificate does not sign in before the cancellation: HTTP %d:\n%s", code, tb.text("main"))
	}
	tb.expect("Welcome, alice", "signed in with your certificate")

	cli(t, "user", "cancel", "--data", p.data, "--id", userID)
	if code := tb.open(p.base + "/"); code != 403 {
		t.Fatalf("opening the portal after the cancellation: HTTP %d at %s, want 403:\n%s", code, tb.location(), tb.text("main"))
	}
	tb.expect("This account has been cancelled", "cancelled")
	tb.hasLink("How to remove the certificates", "/about/certificate#remove")
	tb.shot("cancelled")
}
