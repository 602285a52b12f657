package web_test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/certportal/certportal"
	"github.com/certportal/certportal/ca"
	"github.com/certportal/certportal/internal/testpki"
	"github.com/certportal/certportal/portal"
)

// checkJSON is the answer of /api/check.
type checkJSON struct {
	Status     string    `json:"status"`
	Summary    string    `json:"summary"`
	Presented  bool      `json:"presented"`
	Chains     bool      `json:"chains_to_portal"`
	Subject    string    `json:"subject"`
	Issuer     string    `json:"issuer"`
	Serial     string    `json:"serial"`
	NotAfter   time.Time `json:"not_after"`
	Thumbprint string    `json:"thumbprint"`
	SHA256     string    `json:"sha256"`
	ID         string    `json:"id"`
	Client     string    `json:"client"`
	Platform   string    `json:"platform"`
	Browser    string    `json:"browser"`
	Next       string    `json:"next_step"`
	NextURL    string    `json:"next_url"`
}

// getCheck fetches /check and /api/check with one client and User-Agent,
// and checks what every answer must be: 200, no-store, no cookie.
func (e *env) getCheck(c *http.Client, ua string) (page *response, api checkJSON) {
	e.t.Helper()
	for _, path := range []string{"/check", "/api/check"} {
		req, err := http.NewRequest(http.MethodGet, e.srv.URL+path, nil)
		if err != nil {
			e.t.Fatal(err)
		}
		req.Header.Set("User-Agent", ua)
		r := e.do(c, req)
		if r.StatusCode != http.StatusOK {
			e.t.Fatalf("GET %s: status %d:\n%.400s", path, r.StatusCode, r.body)
		}
		if cc := r.Header.Get("Cache-Control"); cc != "no-store" {
			e.t.Errorf("GET %s: Cache-Control %q, want no-store", path, cc)
		}
		if sc := r.Header.Values("Set-Cookie"); len(sc) != 0 {
			e.t.Errorf("GET %s set cookies: %v", path, sc)
		}
		if path == "/check" {
			page = r
			continue
		}
		if ct := r.Header.Get("Content-Type"); ct != "application/json" {
			e.t.Errorf("GET /api/check: Content-Type %q", ct)
		}
		if err := json.Unmarshal([]byte(r.body), &api); err != nil {
			e.t.Fatalf("GET /api/check: not JSON: %v\n%s", err, r.body)
		}
	}
	return page, api
}

const uaChromeWindows = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"

// TestCheckStatuses: /check and /api/check over mutual TLS for every
// status: none, good (with the ID), revoked (pointing to /recover),
// expired, another CA's certificate, one of ours the portal has no record
// of, and a cancelled account. No answer sets a cookie or writes an audit
// record, and none tells about another account.
func TestCheckStatuses(t *testing.T) {
	e := newEnv(t)
	issue := func(id, email string) *tls.Certificate {
		e.addUser(id, email, id+" password 1")
		c := e.client(nil)
		e.login(c, id, id+" password 1")
		cert, _ := e.getCertificate(c, id)
		return cert
	}
	alice := issue("alice", aliceMail)
	bob := issue("bob", "bob@example.com")
	carol := issue("carol", "carol@example.com")
	if _, err := e.svc.Revoke(context.Background(), portal.Admin, certportal.FormatSerial(bob.Leaf.SerialNumber), certportal.ReasonKeyCompromise); err != nil {
		t.Fatal(err)
	}
	if err := e.svc.CancelUser(context.Background(), portal.Admin, "carol"); err != nil {
		t.Fatal(err)
	}
	other := testpki.New(t)
	leaf, key, err := other.Issue(ca.LeafRequest{ID: "mallory", Email: "mallory@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	foreign := &tls.Certificate{Certificate: [][]byte{leaf.Raw, other.Issuing.Raw}, PrivateKey: key, Leaf: leaf}
	// Issued by this portal's CA but never recorded (as after a database
	// restored from before its issuance).
	leaf, key, err = e.pki.Issue(ca.LeafRequest{ID: "ghost", Email: "ghost@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	unrecorded := &tls.Certificate{Certificate: [][]byte{leaf.Raw, e.pki.Issuing.Raw}, PrivateKey: key, Leaf: leaf}

	// A browser signed in by password as dave, presenting nothing: /check
	// looks at the certificate only, never at the session.
	e.addUser("dave", "dave@example.com", "dave password 1")
	daveBrowser := e.client(nil)
	e.login(daveBrowser, "dave", "dave password 1")

	before := len(e.audit())
	now := e.pki.Clock.Now()
	cases := []struct {
		name   string
		client *http.Client
		expire bool // move the clock past the certificate's notAfter
		cert   *tls.Certificate
		status string
		chains bool
		words  []string // on the page
		next   string   // the next step's link
		id     string
	}{
		{"none", e.client(nil), false, nil, "none", false, []string{"presented no certificate", `href="/login"`}, "/login", ""},
		{"none, signed in by password", daveBrowser, false, nil, "none", false, []string{"presented no certificate"}, "/login", ""},
		{"good", e.client(alice), false, alice, "good", true, []string{"This certificate signs you in", "Signs in as", ">alice<", `href="/"`}, "/", "alice"},
		{"revoked", e.client(bob), false, bob, "revoked", true, []string{"has been revoked", `href="/recover"`}, "/recover", ""},
		{"expired", e.client(alice), true, alice, "expired", true, []string{"has expired", `href="/recover"`}, "/recover", ""},
		{"cancelled", e.client(carol), false, carol, "cancelled", true, []string{"has been cancelled", `href="/about/certificate"`}, "/about/certificate", ""},
		{"another CA", e.client(foreign), false, foreign, "unknown", false, []string{"not issued by this portal", "no: not issued by this portal"}, "/about/certificate", ""},
		{"ours, not on record", e.client(unrecorded), false, unrecorded, "unknown", true, []string{"has no record of it", `href="/recover"`}, "/recover", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.expire {
				e.pki.Clock.Set(tc.cert.Leaf.NotAfter.Add(time.Hour))
				defer e.pki.Clock.Set(now)
			}
			page, api := e.getCheck(tc.client, uaChromeWindows)
			if api.Status != tc.status || api.Chains != tc.chains || api.ID != tc.id || api.NextURL != tc.next || api.Presented != (tc.cert != nil) {
				t.Errorf("/api/check = %+v; want status %s, chains %v, id %q, next %s", api, tc.status, tc.chains, tc.id, tc.next)
			}
			if !strings.Contains(page.body, `<strong class="mono">`+tc.status+`</strong>`) {
				t.Errorf("/check does not show the status %q:\n%s", tc.status, page.body)
			}
			for _, w := range tc.words {
				if !strings.Contains(page.body, w) {
					t.Errorf("/check lacks %q:\n%s", w, page.body)
				}
			}
			if c := tc.cert; c != nil {
				serial, thumb := certportal.FormatSerial(c.Leaf.SerialNumber), certportal.Thumbprint(c.Leaf.Raw)
				if api.Serial != serial || api.Thumbprint != thumb || api.Subject != c.Leaf.Subject.String() ||
					api.Issuer != c.Leaf.Issuer.String() || !api.NotAfter.Equal(c.Leaf.NotAfter) || api.SHA256 != certportal.Fingerprint256(c.Leaf.Raw) {
					t.Errorf("/api/check facts %+v do not describe the presented certificate (serial %s)", api, serial)
				}
				for _, w := range []string{serial, thumb, "CN=" + c.Leaf.Subject.CommonName, c.Leaf.NotAfter.UTC().Format("2006-01-02 15:04 UTC")} {
					if !strings.Contains(page.body, w) {
						t.Errorf("/check lacks the certificate's %q", w)
					}
				}
			} else if api.Serial != "" || api.Subject != "" || !api.NotAfter.IsZero() || strings.Contains(page.body, "Serial number") {
				t.Errorf("no certificate presented, yet the answer describes one: %+v", api)
			}
			// Nothing about any other account: no other user's ID or
			// e-mail, and no e-mail at all (not even the certificate's own).
			for _, who := range []string{"alice", "bob", "carol", "dave", "mallory", "ghost"} {
				if tc.cert != nil && tc.cert.Leaf.Subject.CommonName == who {
					continue
				}
				if strings.Contains(page.body, who) || strings.Contains(page.body, who+"@") {
					t.Errorf("/check for %s mentions %q", tc.name, who)
				}
			}
			if strings.Contains(page.body, "@example.com") {
				t.Errorf("/check shows an e-mail address")
			}
		})
	}
	if after := len(e.audit()); after != before {
		t.Errorf("/check wrote %d audit records", after-before)
	}
	for _, c := range []*http.Client{e.client(alice), e.client(nil)} {
		e.getCheck(c, uaChromeWindows)
		u, _ := url.Parse(e.srv.URL)
		if n := len(c.Jar.Cookies(u)); n != 0 {
			t.Errorf("the browser holds %d cookies after /check", n)
		}
	}
	if n := countAudit(e.audit(), certportal.ActionSignInOK, "certificate"); n != 0 {
		t.Errorf("%d certificate sign-ins recorded; /check must not start a session", n)
	}
}

// TestCheckLinked: the 403 certificate-refused page and the Login page
// link to /check.
func TestCheckLinked(t *testing.T) {
	e := newEnv(t)
	other := testpki.New(t)
	leaf, key, err := other.Issue(ca.LeafRequest{ID: "mallory", Email: "mallory@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	foreign := &tls.Certificate{Certificate: [][]byte{leaf.Raw, other.Issuing.Raw}, PrivateKey: key, Leaf: leaf}
	if r := e.get(e.client(foreign), "/"); r.StatusCode != http.StatusForbidden || !strings.Contains(r.body, `href="/check"`) {
		t.Errorf("the refused-certificate page: %d, want 403 with a link to /check:\n%.600s", r.StatusCode, r.body)
	}
	if r := e.get(e.client(nil), "/login"); !strings.Contains(r.body, `href="/check"`) {
		t.Errorf("the Login page does not link to /check")
	}
}

// TestCheckNextStep: the one next step follows the system and browser the
// User-Agent names, for a browser that presents no certificate and for one
// that presents another CA's certificate.
func TestCheckNextStep(t *testing.T) {
	e := newEnv(t)
	other := testpki.New(t)
	leaf, key, err := other.Issue(ca.LeafRequest{ID: "mallory", Email: "mallory@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	foreign := &tls.Certificate{Certificate: [][]byte{leaf.Raw, other.Issuing.Raw}, PrivateKey: key, Leaf: leaf}

	cases := []struct {
		name, ua, platform, browser string
		none, picker                []string // words in the next step
		not                         []string // words of other systems' advice
	}{
		{"Edge on Windows",
			"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0",
			"windows", "edge", []string{"Windows certificate store", "Select a certificate", "close every browser window"},
			[]string{"certificate picker", "Close every browser window"}, []string{"Keychain", "NSS", "Firefox", "Profile Downloaded"}},
		{"Chrome on Windows", uaChromeWindows, "windows", "chrome",
			[]string{"Windows certificate store", "certificate picker"}, []string{"certificate picker", "SOP-ICA1"},
			[]string{"Keychain", "NSS", "Firefox", "Android"}},
		{"Firefox on Windows", "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0", "windows", "firefox",
			[]string{"Firefox", "Your Certificates", "Import"}, []string{"Ask you every time", "Identification"},
			[]string{"Windows certificate store", "Keychain", "chrome://"}},
		{"Safari on macOS", "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15", "macos", "safari",
			[]string{"Keychain Access", "legacy", "apple format", "Command-Q"}, []string{"identity preference", "Keychain Access"},
			[]string{"Windows", "NSS", "Firefox", "Android"}},
		{"Chrome on macOS", "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36", "macos", "chrome",
			[]string{"Keychain Access", "legacy"}, []string{"Quit the browser"},
			[]string{"Windows", "NSS", "Firefox"}},
		{"Chromium on Linux", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36", "linux", "chrome",
			[]string{"NSS", "chrome://certificate-manager"}, []string{"Close every browser window"},
			[]string{"Windows", "Keychain", "Firefox", "Profile Downloaded"}},
		{"Firefox on Linux", "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0", "linux", "firefox",
			[]string{"Firefox", "View Certificates", "Your Certificates"}, []string{"Ask you every time"},
			[]string{"Windows", "Keychain", "chrome://"}},
		{"Safari on iPhone", "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1", "ios", "safari",
			[]string{"apple format", "Profile Downloaded", "Install"}, []string{"Safari", "SOP-ICA1"},
			[]string{"Windows", "Keychain Access", "NSS", "Android"}},
		{"Chrome on iPad", "Mozilla/5.0 (iPad; CPU OS 17_7 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/131.0.6778.73 Mobile/15E148 Safari/604.1", "ios", "chrome",
			[]string{"Profile Downloaded"}, []string{"Profile Downloaded"},
			[]string{"Windows", "NSS", "Android"}},
		{"Chrome on Android", "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36", "android", "chrome",
			[]string{"Encryption & credentials", "Install a certificate"}, []string{"Site settings"},
			[]string{"Windows", "Keychain", "NSS", "Profile Downloaded"}},
		{"command line", "curl/8.11.0", "other", "other",
			[]string{"certificate manager"}, []string{"Restart the browser"},
			[]string{"Windows", "Keychain", "NSS", "Android"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for _, presented := range []bool{false, true} {
				c, want, status := e.client(nil), tc.none, "none"
				if presented {
					c, want, status = e.client(foreign), tc.picker, "unknown"
				}
				page, api := e.getCheck(c, tc.ua)
				if api.Status != status || api.Platform != tc.platform || api.Browser != tc.browser {
					t.Errorf("%s: status %s, platform %s, browser %s; want %s, %s, %s", status, api.Status, api.Platform, api.Browser, status, tc.platform, tc.browser)
				}
				for _, w := range want {
					if !strings.Contains(api.Next, w) {
						t.Errorf("%s: the next step lacks %q: %s", status, w, api.Next)
					}
				}
				for _, w := range tc.not {
					if strings.Contains(api.Next, w) {
						t.Errorf("%s: the next step speaks of %q, another system's: %s", status, w, api.Next)
					}
				}
				if !strings.Contains(page.body, "What to do next ("+api.Client+")") {
					t.Errorf("%s: the page does not name the client %q", status, api.Client)
				}
			}
		})
	}
}
