package browsertest

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

// signIns counts alice's recorded sign-ins (audit action signin.ok).
func (p *portal) signIns(t *testing.T) int {
	t.Helper()
	out := cli(t, "audit", "--data", p.data, "--id", userID, "--json")
	var list []struct{ Action string }
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		t.Fatalf("audit --json: %v\n%s", err, out)
	}
	n := 0
	for _, e := range list {
		if e.Action == "signin.ok" {
			n++
		}
	}
	return n
}

// back goes one page back in the tab's history.
func (tb *tab) back() {
	tb.t.Helper()
	if err := chromedp.Do(tb.ctx, chromedp.NavigateBack()); err != nil {
		tb.t.Fatalf("Back: %v", err)
	}
}

// A browser with the certificate installed signs out: the signed-out page,
// not the home page, and no new sign-in, also after Back and a new visit;
// the page's button signs in again.
func TestSignOutHoldsWithCertificate(t *testing.T) {
	ctx, p, prof := story(t)
	file := certificateThroughPage(t, ctx, p, prof)
	prof.importP12(t, file, p12Pass)
	prof.trustRoot(t, p.rootPEM())

	tb := prof.launch(t, ctx)
	if code := tb.open(p.base + "/"); code != 200 {
		t.Fatalf("opening the portal with the certificate: HTTP %d", code)
	}
	tb.expect("Welcome, alice")
	before := p.signIns(t)
	if code := tb.press("Sign out"); code != 200 {
		t.Fatalf("Sign out: HTTP %d at %s", code, tb.location())
	}
	tb.expect("You are signed out", "On a shared computer")
	tb.shot("signed-out")
	tb.back()
	if h := tb.text("main h1"); strings.Contains(h, "Welcome") {
		t.Fatalf("Back after sign-out shows the home page: %q", h)
	}
	if code := tb.open(p.base + "/"); code != 200 {
		t.Fatalf("opening the portal after sign-out: HTTP %d", code)
	}
	tb.expect("You are signed out")
	if n := p.signIns(t); n != before {
		t.Errorf("%d sign-ins recorded after sign-out, want %d", n, before)
	}
	if code := tb.press("Sign in with your certificate"); code != 200 || tb.path() != "/" {
		t.Fatalf("Sign in with your certificate: HTTP %d at %s", code, tb.location())
	}
	tb.expect("Welcome, alice")
	if n := p.signIns(t); n != before+1 {
		t.Errorf("%d sign-ins recorded after the button, want %d", n, before+1)
	}
}

// A password user signs out; Back shows nothing private (the pages are
// no-store, so the browser asks the portal again).
func TestSignOutBackShowsNothingPrivate(t *testing.T) {
	ctx, p, prof := story(t)
	tb := prof.launch(t, ctx)
	passwordSignIn(tb, p, accountPass, "")
	if code := tb.press("Sign out"); code != 200 {
		t.Fatalf("Sign out: HTTP %d", code)
	}
	tb.expect("You are signed out")
	tb.back()
	main := tb.text("main")
	if strings.Contains(main, "Welcome") || strings.Contains(main, userEmail) {
		t.Fatalf("Back after sign-out shows private details:\n%s", main)
	}
}
