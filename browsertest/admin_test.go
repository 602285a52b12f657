package browsertest

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
	"golang.org/x/crypto/ocsp"
	"software.sslmate.com/src/go-pkcs12"
)

// adminShot is shot for the admin guide: with -update-guide the picture
// becomes docs/admin/<name>.png.
func (tb *tab) adminShot(name string) {
	tb.t.Helper()
	png, err := chromedp.Run(tb.ctx, chromedp.FullScreenshot(100))
	if err != nil || !bytes.HasPrefix(png, []byte("\x89PNG\r\n\x1a\n")) {
		tb.t.Fatalf("screenshot %s: %v", name, err)
	}
	if *updateGuide {
		if err := os.WriteFile(filepath.Join("..", "docs", "admin", name+".png"), png, 0o644); err != nil {
			tb.t.Fatal(err)
		}
	}
}

// consoleUser adds an account with a role and a certificate (issued on
// the command line) and returns a HOME whose browser picks it.
func consoleUser(t *testing.T, p *portal, id, role string) *profile {
	t.Helper()
	cli(t, "user", "add", "--data", p.data, "--id", id, "--email", id+"@example.com", "--password-file", writeSecret(t, id+"'s account pw"))
	if role != "user" {
		cli(t, "user", "set-role", "--data", p.data, "--id", id, "--role", role)
	}
	file := filepath.Join(t.TempDir(), id+".p12")
	cli(t, "cert", "issue", "--data", p.data, "--id", id, "--out", file, "--password-file", writeSecret(t, p12Pass))
	prof := newProfile(t, p.rootPEM())
	prof.cn = id
	prof.importP12(t, file, p12Pass)
	prof.trustRoot(t, p.rootPEM())
	return prof
}

// httpsClient is a program (not a browser) that trusts the portal's root.
func (p *portal) httpsClient(t *testing.T) *http.Client {
	t.Helper()
	pemData, err := os.ReadFile(p.rootPEM())
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pemData)
	return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// ocspStatus asks the portal's OCSP responder about the certificate in a
// .p12 file.
func (p *portal) ocspStatus(t *testing.T, p12File string) *ocsp.Response {
	t.Helper()
	data, err := os.ReadFile(p12File)
	if err != nil {
		t.Fatal(err)
	}
	_, leaf, cas, err := pkcs12.DecodeChain(data, p12Pass)
	if err != nil || len(cas) == 0 {
		t.Fatalf("reading %s: %v", p12File, err)
	}
	der, err := ocsp.CreateRequest(leaf, cas[0], nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := p.httpsClient(t).Post(p.base+"/ocsp", "application/ocsp-request", bytes.NewReader(der))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	r, err := ocsp.ParseResponse(body, nil)
	if err != nil {
		t.Fatalf("OCSP: %v", err)
	}
	return r
}

// Story: the admin console. An admin signs in with her certificate, finds
// alice, revokes alice's certificate after the confirmation page; alice's
// next request is refused as revoked and OCSP says so. A help desk
// account unlocks a locked account and resets its password (the mail
// arrives). The audit log shows both, with the console users as actors.
func TestAdminConsole(t *testing.T) {
	ctx, p, alicesHome := story(t)
	ada := consoleUser(t, p, "ada", "admin")
	hank := consoleUser(t, p, "hank", "helpdesk")
	aliceP12 := p.adminIssue(t)
	alicesHome.importP12(t, aliceP12, p12Pass)
	alicesHome.trustRoot(t, p.rootPEM())
	alice := alicesHome.launch(t, ctx)
	if code := alice.open(p.base + "/"); code != 200 {
		t.Fatalf("alice with her certificate: HTTP %d", code)
	}
	alice.expect("Welcome, alice")
	cur := p.validCert(t)

	// The portal signs ada in with her certificate; as an admin she has
	// the way to the console.
	tb := ada.launch(t, ctx)
	if code := tb.open(p.base + "/"); code != 200 {
		t.Fatalf("ada opens the portal: HTTP %d:\n%s", code, tb.text("main"))
	}
	tb.expect("Welcome, ada")
	if code := tb.press("Admin console"); code != 200 || tb.path() != "/admin/" {
		t.Fatalf("Admin console: HTTP %d at %s:\n%s", code, tb.location(), tb.text("main"))
	}
	tb.expect("Admin console", "Signed in as ada (admin)", "Add an account", "Add accounts from a CSV file")
	tb.adminShot("overview")
	tb.fill("q", "ali")
	if code := tb.press("Search"); code != 200 || tb.path() != "/admin/accounts" {
		t.Fatalf("Search: HTTP %d at %s", code, tb.location())
	}
	tb.expect("Accounts", "alice@example.com")
	tb.adminShot("search")
	if code := tb.press("alice"); code != 200 || tb.path() != "/admin/accounts/alice" {
		t.Fatalf("alice's link: HTTP %d at %s", code, tb.location())
	}
	tb.expect("Account alice", cur.Serial, cur.Thumbprint, "valid")
	tb.do("choosing the reason", chromedp.SetValue(chromedp.ID("reason-"+cur.Serial), "keyCompromise"))
	tb.adminShot("account")
	if code := tb.press("Revoke"); code != 200 {
		t.Fatalf("Revoke: HTTP %d", code)
	}
	tb.expect("Revoke the certificate of alice?", cur.Serial, "keyCompromise", "cannot be undone")
	tb.adminShot("revoke-confirm")
	if p.validCert(t).Serial != cur.Serial {
		t.Fatal("the confirmation page revoked the certificate")
	}
	if code := tb.press("Revoke the certificate"); code != 200 || tb.path() != "/admin/accounts/alice" {
		t.Fatalf("confirming: HTTP %d at %s", code, tb.location())
	}
	tb.expect("Account alice", "The certificate is revoked", "revoked (keyCompromise")
	tb.adminShot("revoked")

	if code := alice.open(p.base + "/"); code != 403 {
		t.Fatalf("alice's next request: HTTP %d, want 403", code)
	}
	alice.expect("Your certificate has been revoked")
	if r := p.ocspStatus(t, aliceP12); r.Status != ocsp.Revoked || r.RevocationReason != ocsp.KeyCompromise {
		t.Errorf("OCSP: status %d reason %d, want revoked, keyCompromise", r.Status, r.RevocationReason)
	}

	// lou forgets his password: five wrong ones lock him out.
	cli(t, "user", "add", "--data", p.data, "--id", "lou", "--email", "lou@example.com", "--password-file", writeSecret(t, "lou's account pw"))
	c := p.httpsClient(t)
	for range 5 {
		resp, err := c.PostForm(p.base+"/login", url.Values{"id": {"lou"}, "password": {"not lou's password"}})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	hd := hank.launch(t, ctx)
	if code := hd.open(p.base + "/"); code != 200 {
		t.Fatalf("hank opens the portal: HTTP %d", code)
	}
	if code := hd.open(p.base + "/admin/accounts/lou"); code != 200 {
		t.Fatalf("hank opens lou's page: HTTP %d", code)
	}
	hd.expect("Account lou", "Locked until", "127.0.0.1")
	hd.adminShot("helpdesk-locked")
	if code := hd.press("Unlock"); code != 200 {
		t.Fatalf("Unlock: HTTP %d", code)
	}
	hd.expect("Account lou", "The account is unlocked", "Password sign-in is not locked")
	if code := hd.press("Reset password"); code != 200 {
		t.Fatalf("Reset password: HTTP %d", code)
	}
	hd.expect("Reset the password of lou?", "lou@example.com")
	hd.adminShot("helpdesk-reset-confirm")
	if code := hd.press("Reset the password"); code != 200 {
		t.Fatalf("confirming the reset: HTTP %d", code)
	}
	hd.expect("Account lou", "a temporary password was mailed")
	files, _ := filepath.Glob(filepath.Join(p.data, "outbox", "*.eml"))
	mailed := false
	for _, f := range files {
		body, to := readMail(t, f)
		mailed = mailed || strings.Contains(to, "lou@example.com") && tempPasswordLine.MatchString(body)
	}
	if !mailed {
		t.Error("no mail with a temporary password went to lou@example.com")
	}

	if code := tb.open(p.base + "/admin/audit"); code != 200 {
		t.Fatalf("the audit page: HTTP %d", code)
	}
	tb.expect("Audit log", "The hash chain of all", "admin:ada", "cert.revoked", "helpdesk:hank", "signin.unlock", "recovery")
	tb.adminShot("audit")
	if code := tb.open(p.base + "/admin/cas"); code != 200 {
		t.Fatalf("the CAs page: HTTP %d", code)
	}
	tb.expect("Certificate authorities", "SOP-RCA (root)", "SOP-ICA1 (issuing)")
	tb.adminShot("cas")
	// hank is help desk, not admin: the audit log is not his.
	if code := hd.open(p.base + "/admin/audit"); code != 403 {
		t.Errorf("hank opens the audit log: HTTP %d, want 403", code)
	}
}
