package browsertest

import (
	"testing"
)

// Story 7: something is wrong, and the help desk asks alice to open
// /check. Before her certificate is installed the page says the browser
// presented none and tells how Chromium on Linux imports one (NSS); after
// her certificate was revoked it shows that certificate, with the
// thumbprint her browser's store has, says "revoked" and leads to
// recovery. Neither visit signs her in.
func TestCheckPageNamesPresentedCertificate(t *testing.T) {
	ctx, p, prof := story(t)
	tb := prof.launch(t, ctx)
	if code := tb.open(p.base + "/check"); code != 200 {
		t.Fatalf("/check without a certificate: HTTP %d:\n%s", code, tb.text("main"))
	}
	tb.expect("Check your certificate", "presented no certificate", "none", "Chrome on Linux", "NSS")
	tb.hasLink("Login with ID and password", "/login")
	tb.close()

	prof.importP12(t, p.adminIssue(t), p12Pass)
	cur := p.validCert(t)
	cli(t, "cert", "revoke", "--data", p.data, "--serial", cur.Serial)

	tb = prof.launch(t, ctx)
	if code := tb.open(p.base + "/check"); code != 200 {
		t.Fatalf("/check with a revoked certificate: HTTP %d:\n%s", code, tb.text("main"))
	}
	tb.expect("Check your certificate", "has been revoked", "revoked", "CN=alice", cur.Serial, cur.Thumbprint, "yes: it chains to this portal's root")
	tb.hasLink("If your certificate has been revoked", "/recover")
	tb.shot("check")
	if code := tb.open(p.base + "/"); code != 403 {
		t.Errorf("the portal after /check: HTTP %d, want the 403 for a revoked certificate (no session from /check)", code)
	}
	tb.hasLink("Check this certificate", "/check")
}
