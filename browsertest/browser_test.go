package browsertest

import (
	"bytes"
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/chromedp"
)

// chromiumPath is Debian's Chromium; the tests never download a browser.
const chromiumPath = "/usr/bin/chromium"

// The fixed viewport of every screenshot, so the guide's pictures keep
// one size from run to run.
const viewWidth, viewHeight = 1000, 700

// storyDeadline bounds each story: a Chromium that waits for a
// certificate dialog nobody can answer must fail the test, not hang it.
const storyDeadline = 90 * time.Second

// profile is one user's side of a computer: a HOME with the NSS database
// that Chromium reads client certificates and extra trust from.
type profile struct {
	home  string
	nssdb string // "sql:" + the directory, as the NSS tools take it
	// cn is the user whose certificate Chromium picks ("" = alice).
	cn string
}

// newProfile makes a HOME with an NSS database that trusts the portal's
// root and holds no personal certificate. The portal's TLS certificate
// comes from its own CA, so a browser that does not trust the root
// refuses the very first page (ERR_CERT_AUTHORITY_INVALID); users get the
// root from their administrator or from http://HOST/ca/root.crt first.
func newProfile(t *testing.T, rootPEM string) *profile {
	t.Helper()
	needTools(t)
	home := t.TempDir()
	dir := filepath.Join(home, ".pki", "nssdb")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	p := &profile{home: home, nssdb: "sql:" + dir}
	run(t, nil, "certutil", "-N", "-d", p.nssdb, "--empty-password")
	p.trustRoot(t, rootPEM)
	return p
}

// importP12 imports a PKCS#12 file into the NSS database (the user's
// certificate, its key and its chain), as opening the file would on a
// desktop.
func (p *profile) importP12(t *testing.T, file, password string) {
	t.Helper()
	run(t, nil, "pk12util", "-i", file, "-d", p.nssdb, "-w", writeSecret(t, password))
}

// trustRoot marks the portal's root as trusted for TLS servers: a CA that
// comes in a .p12 gets no trust, and without it the portal's own TLS
// certificate fails with ERR_CERT_AUTHORITY_INVALID.
func (p *profile) trustRoot(t *testing.T, rootPEM string) {
	t.Helper()
	run(t, nil, "certutil", "-A", "-d", p.nssdb, "-n", "SOP-RCA", "-t", "C,,", "-i", rootPEM)
}

// preferences tells Chromium to pick alice's certificate for
// https://localhost (any port) without the "Identification" window,
// which headless Chromium would wait for forever.
const preferences = `{"profile":{"content_settings":{"exceptions":{"auto_select_certificate":` +
	`{"https://localhost,*":{"setting":{"filters":[{"SUBJECT":{"CN":"alice"}}]}}}}}}}`

// tab is one running Chromium (a new, empty profile directory each launch)
// with one tab, on one HOME.
type tab struct {
	t         *testing.T
	ctx       context.Context
	close     func()
	downloads string
	logs      *syncBuffer
}

// launch starts Chromium for this HOME with a fresh user data dir, the
// auto-select preference, a fixed viewport and downloads into a directory
// of the test. It ends when the test ends or close is called.
func (p *profile) launch(t *testing.T, parent context.Context) *tab {
	t.Helper()
	userData := t.TempDir()
	if err := os.MkdirAll(filepath.Join(userData, "Default"), 0o700); err != nil {
		t.Fatal(err)
	}
	prefs := preferences
	if p.cn != "" {
		prefs = strings.Replace(prefs, `"CN":"alice"`, `"CN":"`+p.cn+`"`, 1)
	}
	if err := os.WriteFile(filepath.Join(userData, "Default", "Preferences"), []byte(prefs), 0o600); err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(parent,
		chromedp.ExecPath(chromiumPath),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		// No desktop keyring in a test: keep Chromium from asking D-Bus.
		chromedp.Flag("password-store", "basic"),
		chromedp.Flag("use-mock-keychain", true),
		chromedp.WindowSize(viewWidth, viewHeight),
		chromedp.UserDataDir(userData),
		chromedp.Env("HOME="+p.home),
		chromedp.CombinedOutput(logs),
	)
	ctx, cancelCtx := chromedp.NewContext(allocCtx)
	tb := &tab{t: t, ctx: ctx, downloads: t.TempDir(), logs: logs}
	var once sync.Once
	tb.close = func() {
		once.Do(func() {
			chromedp.Cancel(ctx)
			cancelCtx()
			cancelAlloc()
		})
	}
	t.Cleanup(func() {
		tb.close()
		if t.Failed() {
			t.Logf("chromium's output:\n%s", logs.String())
		}
	})
	err := chromedp.Do(ctx,
		chromedp.EmulateViewport(viewWidth, viewHeight),
		chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
			_, err := chromedp.Call(ctx, browser.SetDownloadBehavior, browser.SetDownloadBehaviorParams{
				Behavior:     browser.SetDownloadBehaviorBehaviorAllow,
				DownloadPath: tb.downloads,
			})
			return err
		}),
	)
	if err != nil {
		t.Fatalf("starting chromium: %v\n%s", err, logs.String())
	}
	return tb
}

// open navigates to a path of the portal and returns the HTTP status of
// the page that loaded.
func (tb *tab) open(u string) int64 {
	tb.t.Helper()
	resp, err := chromedp.Run(tb.ctx, chromedp.NavigateResponse(u))
	if err != nil {
		tb.t.Fatalf("opening %s: %v", u, err)
	}
	return resp.Status
}

// do runs actions that load nothing new (typing, focusing).
func (tb *tab) do(what string, actions ...chromedp.Action[chromedp.Void]) {
	tb.t.Helper()
	if err := chromedp.Do(tb.ctx, actions...); err != nil {
		tb.t.Fatalf("%s: %v", what, err)
	}
}

// fill types into the fields of a form, by id.
func (tb *tab) fill(fields ...string) {
	tb.t.Helper()
	for i := 0; i+1 < len(fields); i += 2 {
		tb.do("typing into #"+fields[i], chromedp.SendKeys(chromedp.ID(fields[i]), fields[i+1]))
	}
}

// press clicks the button or link whose visible text is exactly label
// (the names of SPEC.md: "Login", "Change Sign in Method", "OK", "Sign
// Now"...), waits for the page it leads to, and returns its HTTP status.
func (tb *tab) press(label string) int64 {
	tb.t.Helper()
	resp, err := chromedp.RunResponse(tb.ctx, chromedp.Click(byLabel(label), chromedp.NodeVisible))
	if err != nil {
		tb.t.Fatalf("pressing %q on %s: %v", label, tb.location(), err)
	}
	return resp.Status
}

// byLabel selects, in the page's main part, the button or link whose text
// is exactly label.
func byLabel(label string) chromedp.Search {
	return chromedp.Search(fmt.Sprintf(`//main//*[(self::button or self::a) and normalize-space()=%q]`, label))
}

// text returns the visible text of the first element that matches css.
func (tb *tab) text(css string) string {
	tb.t.Helper()
	s, err := chromedp.Run(tb.ctx, chromedp.Text(chromedp.CSS(css)))
	if err != nil {
		tb.t.Fatalf("reading %s on %s: %v", css, tb.location(), err)
	}
	return strings.TrimSpace(s)
}

// location is the URL the tab shows.
func (tb *tab) location() string {
	u, err := chromedp.Run(tb.ctx, chromedp.Location())
	if err != nil {
		return "(unknown: " + err.Error() + ")"
	}
	return u
}

// path is the path of the URL the tab shows.
func (tb *tab) path() string {
	u, err := url.Parse(tb.location())
	if err != nil {
		return ""
	}
	return u.Path
}

// expect fails unless the page's heading is title and its main text holds
// every one of want.
func (tb *tab) expect(title string, want ...string) {
	tb.t.Helper()
	if h := tb.text("main h1"); h != title {
		tb.t.Fatalf("%s shows the heading %q, want %q\n%s", tb.location(), h, title, tb.text("main"))
	}
	main := tb.text("main")
	for _, w := range want {
		if !strings.Contains(main, w) {
			tb.t.Errorf("%s (%q) does not say %q:\n%s", tb.location(), title, w, main)
		}
	}
}

// hasLink fails unless the main part of the page has a link or button
// with exactly this text, leading to href.
func (tb *tab) hasLink(label, href string) {
	tb.t.Helper()
	nodes, err := chromedp.Run(tb.ctx, chromedp.Nodes(byLabel(label), chromedp.AtLeast(0)))
	if err != nil {
		tb.t.Fatal(err)
	}
	for _, n := range nodes {
		if n.AttributeValue("href") == href {
			return
		}
	}
	tb.t.Fatalf("%s has no link %q to %s:\n%s", tb.location(), label, href, tb.text("main"))
}

// shot takes a PNG screenshot of the whole page; with -update-guide it
// becomes docs/guide/<name>.png.
func (tb *tab) shot(name string) {
	tb.t.Helper()
	png, err := chromedp.Run(tb.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		tb.t.Fatalf("screenshot %s: %v", name, err)
	}
	if !bytes.HasPrefix(png, []byte("\x89PNG\r\n\x1a\n")) {
		tb.t.Fatalf("screenshot %s is not a PNG", name)
	}
	if *updateGuide {
		if err := os.WriteFile(filepath.Join("..", "docs", "guide", name+".png"), png, 0o644); err != nil {
			tb.t.Fatal(err)
		}
	}
}

// download waits until the browser has saved a file called name and
// returns its path.
func (tb *tab) download(name string) string {
	tb.t.Helper()
	file := filepath.Join(tb.downloads, name)
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		// Chromium writes to a .crdownload file and renames it when done.
		if fi, err := os.Stat(file); err == nil && fi.Size() > 0 {
			return file
		}
		// A refused request answers with a page instead of the file.
		if tb.path() == "/certificate" {
			tb.t.Fatalf("the portal answered with a page instead of %s: %q\n%s", name, tb.text("main h1"), tb.text("main"))
		}
	}
	entries, _ := os.ReadDir(tb.downloads)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	tb.t.Fatalf("no %s was downloaded within 30s (the download directory holds %v); the tab shows %s:\n%s", name, names, tb.location(), tb.text("main"))
	return ""
}
