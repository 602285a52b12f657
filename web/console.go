package web

import (
	"html/template"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/certportal/certportal"
	"github.com/certportal/certportal/portal"
)

// The admin console (SPEC.md "Roles and the admin console"): server-rendered
// pages under /admin/ for accounts with the role helpdesk or admin, signed
// in by certificate. Who may call what is the route table's Access
// (Helpdesk, Admin); every change is a POST through it, cross-origin
// protected, and those that cannot be undone answer a confirmation page
// first (console_actions.go).

// consolePages are the console's templates; each is parsed with the
// layout and console_common.html (its navigation and search form).
var consolePages = []string{"admin_home", "admin_accounts", "admin_account", "admin_confirm", "admin_audit", "admin_cas"}

func addConsolePages(set pageSet) {
	for _, name := range consolePages {
		set[name] = template.Must(template.New(name).Funcs(funcs).ParseFS(templateFS,
			"templates/layout.html", "templates/console_common.html", "templates/"+name+".html"))
	}
}

// importMaxBody bounds the CSV upload: 100,000 rows of the longest ID and
// e-mail address would be 32 MB; 16 MiB holds far more than the 10,000
// rows an import is made for.
const importMaxBody = 16 << 20

// consolePageSize is how many accounts a search page lists.
const consolePageSize = 50

func (s *Server) consoleRoutes() []route {
	help := func(method, path string, hs func(http.ResponseWriter, *http.Request, *signedIn)) route {
		return route{Route: Route{Method: method, Path: path, Access: Helpdesk}, hs: hs}
	}
	admin := func(method, path string, hs func(http.ResponseWriter, *http.Request, *signedIn)) route {
		return route{Route: Route{Method: method, Path: path, Access: Admin}, hs: hs}
	}
	upload := admin("POST", "/admin/import", s.handleConsoleImport)
	upload.MaxBody = importMaxBody
	return []route{
		help("GET", "/admin/{$}", s.handleConsoleHome),
		help("GET", "/admin/accounts", s.handleConsoleSearch),
		help("GET", "/admin/accounts/{id}", s.handleConsoleAccount),
		help("POST", "/admin/accounts/{id}/unlock", s.handleConsoleUnlock),
		help("POST", "/admin/accounts/{id}/reset-password", s.handleConsoleReset),
		admin("POST", "/admin/accounts", s.handleConsoleAdd),
		admin("POST", "/admin/accounts/{id}/cancel", s.handleConsoleCancel),
		admin("POST", "/admin/accounts/{id}/role", s.handleConsoleRole),
		admin("POST", "/admin/certificates/{serial}/revoke", s.handleConsoleRevoke),
		upload,
		admin("GET", "/admin/audit", s.handleConsoleAudit),
		admin("GET", "/admin/cas", s.handleConsoleCAs),
		admin("GET", "/admin/certificates.csv", s.handleConsoleExport),
	}
}

// consoleAllowed answers a console request that its session may not make
// (403) and reports whether it may: a session started by certificate,
// whose account has at least the role.
func (s *Server) consoleAllowed(w http.ResponseWriter, r *http.Request, role certportal.Role, si *signedIn) bool {
	switch {
	case si.sess.CertSerial == "":
		s.page(w, r, http.StatusForbidden, "message", pageData{
			Title:    "The admin console needs your certificate",
			Message:  "The admin console opens only to a session started with your certificate, never with a password. Open the portal in the browser where your certificate is installed and choose it when the browser asks.",
			SignedIn: true, Links: []link{{"/", "Back to the portal"}},
		})
		return false
	case !si.account.RoleOf().AtLeast(role):
		msg := "This part of the admin console is for administrators."
		if role == certportal.RoleHelpdesk {
			msg = "The admin console is for the help desk and administrators. Ask an administrator if you need it."
		}
		s.Log.Info("console access refused", "account", si.account.ID, "role", si.account.RoleOf(), "path", r.URL.Path)
		s.page(w, r, http.StatusForbidden, "message", pageData{
			Title: "Not allowed", Message: msg, SignedIn: true, Links: []link{{"/", "Back to the portal"}},
		})
		return false
	}
	return true
}

// consoleData is what the console's templates receive (pageData.Console).
type consoleData struct {
	Me      *certportal.Account
	IsAdmin bool
	Now     time.Time

	Overview              *portal.Overview
	AddError, ImportError string
	Form                  map[string]string // the add form's values after a mistake

	Query            string
	Page             int
	Results          []certportal.Account
	PrevURL, NextURL string

	View       *portal.AccountView
	Self       bool // the account shown is the console user's own
	NoPassword bool // no password yet: the welcome mail is on its way

	Confirm *confirmation

	Audit    []certportal.AuditEvent
	Filter   auditFilter
	Chain    chainState
	OlderURL string

	CAs []caRow

	Roles   []certportal.Role
	Reasons []reasonOption
	Actions []string
}

// reasonOption is a revocation reason in the console's form.
type reasonOption struct{ Value, Text string }

// consoleReasons are the RFC 5280 reasons an administrator may give (as
// cert revoke takes them); "" is no reason, which the CRL omits.
var consoleReasons = []reasonOption{
	{"keyCompromise", "keyCompromise"},
	{"affiliationChanged", "affiliationChanged"},
	{"superseded", "superseded"},
	{"cessationOfOperation", "cessationOfOperation"},
	{"privilegeWithdrawn", "privilegeWithdrawn"},
	{"", "no reason given"},
}

// console renders a console page for the signed-in console user.
func (s *Server) console(w http.ResponseWriter, r *http.Request, si *signedIn, code int, name, title string, cd *consoleData, errMsg, notice string) {
	cd.Me = si.account
	cd.IsAdmin = si.account.RoleOf().AtLeast(certportal.RoleAdmin)
	cd.Now = s.Svc.Time()
	cd.Roles = certportal.Roles
	cd.Reasons = consoleReasons
	s.page(w, r, code, name, pageData{Title: title, SignedIn: true, Account: si.account, Console: cd, Error: errMsg, Notice: notice})
}

// actor is the console user as the audit log names them.
func (si *signedIn) actor(r *http.Request) portal.Actor {
	return portal.Console(si.account, remoteAddr(r))
}

// consoleNotices are the confirmations shown after a console action's
// 303, by the done parameter (never the text of a URL).
var consoleNotices = map[string]string{
	"unlock":   "The account is unlocked: every lockout is lifted and the failed attempts are forgotten.",
	"reset":    "The password was reset: the certificates are revoked, the sign-in method is ID and password, and a temporary password was mailed to the registered address.",
	"cancel":   "The account is cancelled: its certificates are revoked and it can no longer sign in. Its records are kept.",
	"role":     "The role was changed.",
	"revoke":   "The certificate is revoked. Every session of the account has ended; the CRL and OCSP say revoked.",
	"added":    "The account was added. A mail with a temporary password and a link to the portal is on its way to the registered address.",
	"imported": "The accounts were added. Each gets a mail with a temporary password and a link to the portal; the mails go out over the next minutes.",
}

func (s *Server) handleConsoleHome(w http.ResponseWriter, r *http.Request, si *signedIn) {
	s.consoleHome(w, r, si, http.StatusOK, &consoleData{})
}

// consoleHome renders the overview, with cd's form errors if any.
func (s *Server) consoleHome(w http.ResponseWriter, r *http.Request, si *signedIn, code int, cd *consoleData) {
	ov, err := s.Svc.ConsoleOverview(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	cd.Overview = ov
	notice := consoleNotices[r.URL.Query().Get("done")]
	if n, err := strconv.Atoi(r.URL.Query().Get("n")); err == nil && r.URL.Query().Get("done") == "imported" {
		notice = strconv.Itoa(n) + " accounts were added. " + strings.TrimPrefix(notice, "The accounts were added. ")
	}
	s.console(w, r, si, code, "admin_home", "Admin console", cd, "", notice)
}

// handleConsoleSearch is GET /admin/accounts?q=PREFIX&page=N.
func (s *Server) handleConsoleSearch(w http.ResponseWriter, r *http.Request, si *signedIn) {
	q := strings.TrimSpace(r.URL.Query().Get("q"))
	cd := &consoleData{Query: q, Page: 1}
	if p := r.URL.Query().Get("page"); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 {
			s.console(w, r, si, http.StatusBadRequest, "admin_accounts", "Accounts", cd,
				"The page number must be a whole number from 1 on.", "")
			return
		}
		cd.Page = n
	}
	list, more, err := s.Svc.SearchAccounts(r.Context(), q, cd.Page, consolePageSize)
	if certportal.ErrorCodeOf(err) == certportal.Invalid {
		s.console(w, r, si, http.StatusBadRequest, "admin_accounts", "Accounts", cd, sentence(certportal.ErrorMessage(err)), "")
		return
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	cd.Results = list
	pageURL := func(n int) string {
		v := url.Values{"q": {q}, "page": {strconv.Itoa(n)}}
		return "/admin/accounts?" + v.Encode()
	}
	if cd.Page > 1 {
		cd.PrevURL = pageURL(cd.Page - 1)
	}
	if more {
		cd.NextURL = pageURL(cd.Page + 1)
	}
	s.console(w, r, si, http.StatusOK, "admin_accounts", "Accounts", cd, "", "")
}

// handleConsoleAccount is GET /admin/accounts/{id}.
func (s *Server) handleConsoleAccount(w http.ResponseWriter, r *http.Request, si *signedIn) {
	s.consoleAccount(w, r, si, http.StatusOK, r.PathValue("id"), "")
}

// consoleAccount renders an account's page, with an error beside its
// forms (errMsg) or the notice of the action just done.
func (s *Server) consoleAccount(w http.ResponseWriter, r *http.Request, si *signedIn, code int, id, errMsg string) {
	v, err := s.Svc.AccountPage(r.Context(), id)
	if err != nil {
		s.fail(w, r, err, link{"/admin/accounts", "Search the accounts"})
		return
	}
	cd := &consoleData{View: v, Self: certportal.IDKey(v.Account.ID) == certportal.IDKey(si.account.ID),
		NoPassword: v.Account.PasswordHash == ""}
	notice := ""
	if errMsg == "" {
		notice = consoleNotices[r.URL.Query().Get("done")]
	}
	s.console(w, r, si, code, "admin_account", "Account "+v.Account.ID, cd, errMsg, notice)
}

// accountURL is the console page of an account.
func accountURL(id string) string { return "/admin/accounts/" + url.PathEscape(id) }
