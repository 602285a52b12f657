package web

import (
	"bytes"
	"embed"
	"html/template"
	"io/fs"
	"net/http"
	"strings"
	"time"

	"github.com/certportal/certportal"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// pageNames are the templates in templates/, each rendered inside
// layout.html.
var pageNames = []string{"home", "login", "recover", "recover_confirm", "recover_done", "password", "about", "message", "signedout", "check"}

// pageSet holds one parsed template per page.
type pageSet map[string]*template.Template

var funcs = template.FuncMap{
	// when shows a time the way the pages do: UTC, to the minute.
	"when": func(t time.Time) string {
		if t.IsZero() {
			return "never"
		}
		return t.UTC().Format("2006-01-02 15:04 UTC")
	},
	// day shows a date as a desktop certificate manager does (MM/DD/YYYY)
	// and in ISO form, so a user can match the root in any store.
	"day": func(t time.Time) string {
		return t.UTC().Format("01/02/2006") + " (" + t.UTC().Format("2006-01-02") + ")"
	},
}

// sentence makes a message start with a capital letter and end with a
// full stop, as the pages print them.
func sentence(msg string) string {
	if msg == "" {
		return msg
	}
	if c := msg[0]; c >= 'a' && c <= 'z' {
		msg = string(c-'a'+'A') + msg[1:]
	}
	if !strings.HasSuffix(msg, ".") && !strings.HasSuffix(msg, "?") && !strings.HasSuffix(msg, "!") {
		msg += "."
	}
	return msg
}

func mustParsePages() pageSet {
	set := pageSet{}
	for _, name := range pageNames {
		t := template.Must(template.New(name).Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/"+name+".html"))
		set[name] = t
	}
	addConsolePages(set)
	return set
}

// link is a link offered on a page.
type link struct {
	Href, Text string
}

// caInfo describes one CA certificate on the about page.
type caInfo struct {
	Subject    string
	CN         string
	IssuedBy   string
	NotAfter   time.Time
	Serial     string
	Thumbprint string
	SHA256     string
}

// pageData is what every template receives; each page uses the fields it
// needs.
type pageData struct {
	Title   string
	Message string // the main sentence of a message page
	Error   string // a problem with the form just sent
	// RenewError is a problem with the renewal form (the home page has two
	// certificate forms).
	RenewError string
	Notice     string // a confirmation after a change
	Links      []link

	// SignedIn shows the sign-out buttons in the header.
	SignedIn bool
	Account  *certportal.Account
	// CertSession is set when the session was started by certificate.
	CertSession bool
	Cert        *certportal.Certificate
	SignIns     []certportal.AuditEvent
	CanIssue    bool
	MinP12      int
	// CanRenew shows the renewal form; RenewFrom, when set, is when the
	// session's certificate can be renewed.
	CanRenew  bool
	RenewFrom time.Time

	Ticket string // the recovery confirmation's hidden field
	// ID is the user ID typed into a form, shown again after a mistake.
	ID string
	// HasCert is set when the browser presented a client certificate.
	HasCert bool

	Check *checkResult // the /check page

	Root, Issuing caInfo
	// Issuers are every issuing CA, newest first (more than one after a
	// rollover); Issuing is the newest.
	Issuers []caInfo

	Console *consoleData // the admin console's pages (console.go)

	// CSRError is a problem with the home page's CSR form ("Use a key
	// from your own device").
	CSRError string
}

// page renders a page with a status. It renders into a buffer first, so a
// template error becomes a clean 500 instead of half a page.
func (s *Server) page(w http.ResponseWriter, r *http.Request, code int, name string, d pageData) {
	t := s.pages[name]
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "layout", d); err != nil {
		s.Log.Error("rendering a page failed", "page", name, "err", err)
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusInternalServerError)
		_, _ = w.Write([]byte("Something went wrong on the portal's side; please try again later.\n"))
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	// Pages show account details: no cache may keep them.
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	if r.Method != http.MethodHead {
		_, _ = w.Write(buf.Bytes())
	}
}

// staticHandler serves the stylesheet.
func staticHandler() http.Handler {
	sub, err := fs.Sub(staticFS, "static")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	fsrv := http.StripPrefix("/static/", http.FileServerFS(sub))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=3600")
		fsrv.ServeHTTP(w, r)
	})
}
