package web

import (
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/certportal/certportal"
	"github.com/certportal/certportal/portal"
)

// GET /check and GET /api/check: the page a user, or a help desk on the
// telephone, opens when something is wrong. It says which certificate this
// browser presented, whether it chains to this portal, its status, and the
// one next step for the browser and system the User-Agent names. It needs
// no sign-in and changes nothing: no session, no audit record, no cookie.
// It tells nothing about any other certificate or account: only the
// presented certificate is looked up (by the SHA-256 of its DER, as at
// sign-in), and only a good one shows the account it signs in to, which is
// the user's own.

// checkResult is what /check shows and /api/check answers.
type checkResult struct {
	// Status is good, revoked, expired, unknown, cancelled or none.
	Status string `json:"status"`
	// Summary says the status in one sentence.
	Summary   string `json:"summary"`
	Presented bool   `json:"presented"`
	// Chains says whether the certificate verifies up to this portal's
	// root through one of its issuing CAs (dates aside).
	Chains     bool      `json:"chains_to_portal"`
	Subject    string    `json:"subject,omitempty"`
	Issuer     string    `json:"issuer,omitempty"`
	Serial     string    `json:"serial,omitempty"`
	NotAfter   time.Time `json:"not_after,omitzero"`
	Thumbprint string    `json:"thumbprint,omitempty"`
	SHA256     string    `json:"sha256,omitempty"`
	// ID is the account the certificate signs in to, only when good.
	ID string `json:"id,omitempty"`

	// Client names the browser and system the advice is for.
	Client   string `json:"client"`
	Platform string `json:"platform"`
	Browser  string `json:"browser"`
	// Next is the one next step; NextHref and NextText a link that helps
	// take it (relative to the portal), when there is one.
	Next     string `json:"next_step"`
	NextHref string `json:"next_url,omitempty"`
	NextText string `json:"-"`
}

// check works out the result for a request, or returns the error that
// kept it from knowing (the database being down).
func (s *Server) check(r *http.Request) (*checkResult, error) {
	res := &checkResult{Status: "none"}
	res.Platform, res.Browser = clientOf(r.UserAgent())
	res.Client = clientName(res.Platform, res.Browser)
	chain := peerChain(r)
	if len(chain) > 0 {
		leaf := chain[0]
		res.Presented = true
		res.Subject = leaf.Subject.String()
		res.Issuer = leaf.Issuer.String()
		res.Serial = certportal.FormatSerial(leaf.SerialNumber)
		res.NotAfter = leaf.NotAfter
		res.Thumbprint = certportal.Thumbprint(leaf.Raw)
		res.SHA256 = certportal.Fingerprint256(leaf.Raw)
		// The same verification and lookup as a sign-in, without being one.
		acc, _, err := s.Svc.CheckCertificate(r.Context(), chain)
		switch reason := certReason(err); {
		case err == nil:
			res.Status, res.Chains, res.ID = "good", true, acc.ID
		case reason == "unknown":
			// Either another CA's certificate, or one of ours that the
			// portal has no record of.
			res.Status, res.Chains = reason, !errors.Is(err, portal.ErrCertForeign)
		case reason != "":
			// Revoked, expired and cancelled certificates are ours: the
			// chain verified (dates aside) before the lookup said so.
			res.Status, res.Chains = reason, true
		default:
			return nil, err
		}
	}
	res.Summary = checkSummary(res)
	step := s.nextStep(res)
	res.Next, res.NextHref, res.NextText = step.text, step.link.Href, step.link.Text
	return res, nil
}

func (s *Server) handleCheck(w http.ResponseWriter, r *http.Request) {
	res, err := s.check(r)
	if err != nil {
		s.fail(w, r, err, link{"/check", "Check again"})
		return
	}
	s.page(w, r, http.StatusOK, "check", pageData{Title: "Check your certificate", Check: res})
}

func (s *Server) handleAPICheck(w http.ResponseWriter, r *http.Request) {
	res, err := s.check(r)
	if err != nil {
		s.jsonError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, res)
}

func checkSummary(res *checkResult) string {
	switch res.Status {
	case "good":
		return "This certificate signs you in."
	case "revoked":
		return "This certificate has been revoked, so it can no longer sign in."
	case "expired":
		return "This certificate has expired, so it can no longer sign in."
	case "cancelled":
		return "The account of this certificate has been cancelled, so it can no longer sign in."
	case "unknown":
		if res.Chains {
			return "This certificate comes from this portal's CA, but the portal has no record of it, so it cannot sign in."
		}
		return "This certificate was not issued by this portal, so it cannot sign in here."
	}
	return "This browser presented no certificate to the portal."
}

// clientOf reads the system and the browser from a User-Agent: the system
// decides where certificates live, the browser which store it reads and
// how it asks. iPadOS Safari calls itself a Mac; the Mac advice (legacy or
// apple format) fits it too.
func clientOf(ua string) (platform, browser string) {
	has := func(s ...string) bool {
		for _, x := range s {
			if strings.Contains(ua, x) {
				return true
			}
		}
		return false
	}
	switch {
	case has("iPhone", "iPad", "iPod"):
		platform = "ios"
	case has("Android"):
		platform = "android"
	case has("Windows"):
		platform = "windows"
	case has("Macintosh", "Mac OS X"):
		platform = "macos"
	case has("CrOS"):
		platform = "other" // ChromeOS: neither NSS on disk nor a desktop store
	case has("Linux", "X11"):
		platform = "linux"
	default:
		platform = "other"
	}
	switch {
	case has("Edg/", "EdgA/", "EdgiOS/"):
		browser = "edge"
	case has("Firefox/", "FxiOS/"):
		browser = "firefox"
	case has("Chrome/", "Chromium/", "CriOS/"):
		browser = "chrome"
	case has("Safari/"):
		browser = "safari"
	default:
		browser = "other"
	}
	return platform, browser
}

func clientName(platform, browser string) string {
	b := map[string]string{"edge": "Edge", "firefox": "Firefox", "chrome": "Chrome", "safari": "Safari"}[browser]
	switch platform {
	case "ios":
		return "iPhone or iPad"
	case "android":
		return "Android"
	case "other":
		if b == "" {
			return "this browser"
		}
		return b
	}
	p := map[string]string{"windows": "Windows", "macos": "macOS", "linux": "Linux"}[platform]
	if b == "" {
		return p
	}
	return b + " on " + p
}

// step is one next step and the link that helps take it.
type step struct {
	text string
	link link
}

// desktopFirefox says whether the browser keeps its own certificates
// (Firefox's NSS database) instead of the system's store.
func desktopFirefox(res *checkResult) bool {
	return res.Browser == "firefox" && res.Platform != "ios" && res.Platform != "android"
}

// certManager names where this browser keeps the user's certificates.
func certManager(res *checkResult) string {
	switch {
	case desktopFirefox(res):
		return "Firefox's certificate manager (Settings → Privacy & Security → Certificates → View Certificates… → Your Certificates)"
	case res.Platform == "windows":
		return "the Windows certificate store (Internet Options → Content → Certificates → Personal)"
	case res.Platform == "macos":
		return "Keychain Access (the login keychain, My Certificates)"
	case res.Platform == "linux":
		return "the browser's certificate manager (chrome://certificate-manager → Your certificates → View imported certificates from Linux; Chromium keeps them in the NSS database, ~/.pki/nssdb)"
	case res.Platform == "ios":
		return "the portal's profile (Settings → General → VPN & Device Management)"
	case res.Platform == "android":
		return "Android's user credentials (Settings → Security → Encryption & credentials → User credentials)"
	}
	return "the browser's or the system's certificate manager"
}

// names returns the issuing CAs' names ("SOP-ICA1", or "SOP-ICA1 or
// SOP-ICA2" after a rollover) and the root's.
func (s *Server) names() (issuers, root string) {
	var cns []string
	for _, c := range s.Svc.Issuers() {
		cns = append(cns, c.Subject.CommonName)
	}
	return strings.Join(cns, " or "), s.Svc.Root().Subject.CommonName
}

// nextStep is the one thing to do now, for the status and the client.
func (s *Server) nextStep(res *checkResult) step {
	issuers, root := s.names()
	mine := "the certificate whose Issued To is your user ID and whose Issued By is " + issuers
	switch res.Status {
	case "good":
		return step{"Nothing to repair: this certificate signs you in as " + res.ID + ". Open the portal's start page.", link{"/", "Go to the portal"}}
	case "revoked", "expired":
		return step{"Change the sign-in method (If your certificate has been revoked): you get a temporary password by e-mail, sign in with it and get a new certificate. " +
			"Then delete this certificate from " + certManager(res) + ", so the browser stops offering it.", recoverLink}
	case "cancelled":
		return step{"There is nothing to repair: remove the certificates from " + certManager(res) + ": your certificate, the intermediate " + issuers + " and the root " + root + ".",
			link{"/about/certificate", "How to remove the certificates"}}
	case "unknown":
		if res.Chains {
			return step{"Change the sign-in method (If your certificate has been revoked) to get a temporary password and then a new certificate.", recoverLink}
		}
		return step{pickStep(res, mine), link{"/about/certificate", "About the certificate"}}
	}
	return step{importStep(res, root) + " If you have no certificate yet, sign in with your user ID and password to get one.", link{"/login", "Login with ID and password"}}
}

// pickStep tells how to make this browser offer the portal's certificate
// instead of the one it presented.
func pickStep(res *checkResult, mine string) string {
	switch {
	case desktopFirefox(res):
		return "Firefox may have remembered this choice: in Settings → Privacy & Security → Certificates choose \"Ask you every time\", restart Firefox, open the portal again and choose " + mine + " in the Identification window."
	case res.Platform == "windows":
		return "Close every browser window (the browser remembers the certificate you chose until it restarts), open the portal again, and in the certificate picker (Select a certificate) choose " + mine + "."
	case res.Platform == "macos" && res.Browser == "safari":
		return "Safari remembers the choice in Keychain Access as an identity preference named after the portal's address: delete it, quit Safari (Command-Q), open the portal again and choose " + mine + "."
	case res.Platform == "macos":
		return "Quit the browser (Command-Q; it remembers the chosen certificate until then), open the portal again and choose " + mine + ". If Keychain Access has an identity preference for the portal's address, delete it first."
	case res.Platform == "linux":
		return "Close every browser window (the browser remembers the chosen certificate until it restarts), open the portal again and choose " + mine + "."
	case res.Platform == "ios":
		return "Open the portal again in Safari and choose " + mine + ". If it is not offered, install the portal's profile (the apple format) in Settings → Profile Downloaded."
	case res.Platform == "android":
		return "Chrome remembers the certificate chosen for a site: clear the portal's site settings (Settings → Site settings → All sites → the portal → Clear & reset), open the portal again and choose " + mine + "."
	}
	return "Restart the browser, open the portal again and choose " + mine + "."
}

// importStep tells how to install the certificate file where this browser
// looks for it.
func importStep(res *checkResult, root string) string {
	switch {
	case desktopFirefox(res):
		return "Import your certificate file (.p12) into Firefox: Settings → Privacy & Security → Certificates → View Certificates… → Your Certificates → Import…, and enter the certificate file's password. Then restart Firefox, open the portal again and choose your certificate in the Identification window."
	case res.Platform == "windows":
		return "Install your certificate file (.p12) in the Windows certificate store: double-click it, keep Current User, enter the certificate file's password and let Windows choose the store. Then close every browser window, open the portal again and choose your certificate in the certificate picker (Select a certificate)."
	case res.Platform == "macos":
		return "Open your certificate file on this Mac to add it to Keychain Access (login keychain), and enter the certificate file's password; older macOS versions cannot open the modern format, so use a file in the legacy format, or the apple format, which installs the certificate and the root " + root + " together. Then quit the browser (Command-Q), open the portal again and choose your certificate."
	case res.Platform == "linux":
		return "Import your certificate file (.p12) into the browser's NSS database: open chrome://certificate-manager → Your certificates → View imported certificates from Linux → Import, and enter the certificate file's password. Then close every browser window, open the portal again and choose your certificate."
	case res.Platform == "ios":
		return "Open your certificate in the apple format (a .mobileconfig file) on this iPhone or iPad, then go to Settings → Profile Downloaded → Install and enter the certificate file's password. Then open the portal again in Safari."
	case res.Platform == "android":
		return "Install your certificate file (.p12, modern format): Settings → Security → Encryption & credentials → Install a certificate → VPN & app user certificate, and enter the certificate file's password. Then open the portal again in Chrome and choose your certificate when it asks."
	}
	return "Import your certificate file (.p12) into the browser's or the system's certificate manager with the certificate file's password, then restart the browser and open the portal again."
}
