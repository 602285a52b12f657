package web

import (
	"crypto/x509"
	"net/http"
	"strings"

	"github.com/certportal/certportal"
)

// Access says who may call a route.
type Access uint8

const (
	// Anyone may call the route; the handler decides what a caller sees
	// (GET / signs in by session or certificate, or leads to /login).
	Anyone Access = iota
	// Session routes need a signed-in session (by password or by
	// certificate); the route's wrapper checks it and hands it over, and
	// answers a caller without one itself (GET: to /login; else 401).
	Session
	// CertSession routes need a session started by certificate; a
	// password session is answered with a page that says so (403).
	CertSession
	// Certificate routes are authenticated by the client certificate of
	// the connection alone, never by a cookie, so a web page cannot drive
	// them; the handler checks the certificate.
	Certificate
	// Helpdesk and Admin are the admin console's routes (console.go): a
	// session started by certificate whose account has at least that
	// role. A password session gets 403 whatever its role, so a stolen
	// password never reaches the console; an account with a lesser role
	// gets 403; without a session, as Session.
	Helpdesk
	Admin
	// Basic routes are authenticated by HTTP Basic (ID and password, with
	// the lockout of /login) on the request alone, never by a cookie;
	// the handler checks the credentials and answers 401 with a
	// challenge without them (EST simpleenroll).
	Basic
)

// role returns the least role a console route needs, or "" for the
// other kinds.
func (a Access) role() certportal.Role {
	switch a {
	case Helpdesk:
		return certportal.RoleHelpdesk
	case Admin:
		return certportal.RoleAdmin
	}
	return ""
}

func (a Access) String() string {
	switch a {
	case Session:
		return "session"
	case CertSession:
		return "certificate session"
	case Certificate:
		return "certificate"
	case Helpdesk:
		return "helpdesk by certificate"
	case Admin:
		return "admin by certificate"
	case Basic:
		return "basic"
	}
	return "anyone"
}

// Route is one row of the route table: what a test or a reader needs to
// know about a route without reading its handler.
type Route struct {
	Method, Path string
	Access       Access
	// JSON routes answer, errors included, with JSON; the others with
	// HTML pages (or files).
	JSON bool
	// CA routes are also served on the plain-HTTP listener.
	CA bool
	// MaxBody, when set, bounds the body instead of Server.MaxBody (the
	// console's CSV upload).
	MaxBody int64
	// EST routes (RFC 7030, under /.well-known/est/) answer with base64
	// PKCS#7, and with plain text errors.
	EST bool
}

// route is a Route with its handler: h for Anyone and Certificate, hs for
// Session and CertSession.
type route struct {
	Route
	h  http.HandlerFunc
	hs func(http.ResponseWriter, *http.Request, *signedIn)
}

// table is every route of the portal. A new route is a row here; the
// muxes, the body limit, the session check and the cross-origin check all
// come from it.
func (s *Server) table() []route {
	page := func(method, path string, h http.HandlerFunc) route {
		return route{Route: Route{Method: method, Path: path}, h: h}
	}
	signed := func(method, path string, hs func(http.ResponseWriter, *http.Request, *signedIn)) route {
		return route{Route: Route{Method: method, Path: path, Access: Session}, hs: hs}
	}
	ca := func(method, path string, h http.HandlerFunc) route {
		return route{Route: Route{Method: method, Path: path, CA: true}, h: h}
	}
	est := func(method, path string, access Access, h http.HandlerFunc) route {
		return route{Route: Route{Method: method, Path: estPrefix + path, Access: access, EST: true}, h: h}
	}
	return append([]route{
		page("GET", "/{$}", s.handleHome),
		page("GET", "/login", s.handleLoginForm),
		page("POST", "/login", s.handleLogin),
		{Route: Route{Method: "POST", Path: "/login/certificate", Access: Certificate}, h: s.handleCertLogin},
		page("GET", "/recover", s.handleRecoverForm),
		page("POST", "/recover", s.handleRecover),
		page("GET", "/recover/confirm", s.handleRecoverConfirmForm),
		page("POST", "/recover/confirm", s.handleRecoverConfirm),
		page("GET", "/recover/done", s.handleRecoverDone),
		signed("POST", "/certificate", s.handleCertificate),
		signed("POST", "/certificate/csr", s.handleCertificateCSR),
		{Route: Route{Method: "POST", Path: "/certificate/renew", Access: CertSession}, hs: s.handleRenew},
		signed("GET", "/password", s.handlePasswordForm),
		signed("POST", "/password", s.handlePassword),
		page("POST", "/logout", s.handleLogout(false)),
		page("POST", "/logout/all", s.handleLogout(true)),
		page("GET", "/about/certificate", s.handleAbout),
		page("GET", "/portal/ctrl/aboutCertificate", s.handleAbout),
		page("GET", "/check", s.handleCheck),
		{Route: Route{Method: "GET", Path: "/api/check", JSON: true}, h: s.handleAPICheck},
		{Route: Route{Method: "GET", Path: "/api/whoami", JSON: true}, h: s.handleWhoami},
		{Route: Route{Method: "POST", Path: "/api/renew", Access: Certificate, JSON: true}, h: s.handleAPIRenew},
		page("GET", "/healthz", s.handleHealth),
		{Route: Route{Method: "GET", Path: "/static/"}, h: staticHandler().ServeHTTP},

		ca("GET", "/ca/root.crt", s.handleCACert(func() *x509.Certificate { return s.Svc.Root() })),
		ca("GET", "/ca/issuing.crt", s.handleCACert(func() *x509.Certificate { return s.Svc.Issuing() })),
		ca("GET", "/ca/chain.pem", s.handleChain),
		ca("GET", "/crl/issuing.crl", s.handleCRL(func() *x509.Certificate { return s.Svc.Issuing() })),
		ca("GET", "/crl/root.crl", s.handleCRL(func() *x509.Certificate { return s.Svc.Root() })),
		// Every CA by name, for certificates issued before a rollover.
		ca("GET", "/ca/{file}", s.handleCAFile(".crt")),
		ca("GET", "/crl/{file}", s.handleCAFile(".crl")),
		ca("POST", "/ocsp", s.handleOCSPPost),
		// GET /ocsp/{request...} is served by wrap before the mux sees
		// it: base64 may contain "//", which ServeMux would "clean" with
		// a redirect.

		est("GET", "cacerts", Anyone, s.handleESTCACerts),
		est("GET", "csrattrs", Anyone, s.handleESTCSRAttrs),
		est("POST", "simpleenroll", Basic, s.handleESTEnroll),
		est("POST", "simplereenroll", Certificate, s.handleESTReenroll),
	}, s.consoleRoutes()...)
}

// Routes lists the route table, for tests and documentation.
func (s *Server) Routes() []Route {
	var out []Route
	for _, rt := range s.table() {
		out = append(out, rt.Route)
	}
	return out
}

// mux builds the mux of a listener from the table: every route, or (ca)
// only the CA routes.
func (s *Server) mux(caOnly bool) *http.ServeMux {
	mux := http.NewServeMux()
	for _, rt := range s.table() {
		if caOnly && !rt.CA {
			continue
		}
		mux.Handle(rt.Method+" "+rt.Path, s.handlerOf(rt))
	}
	return mux
}

// handlerOf wraps a route's handler with what its row says: the body limit
// on every method that has a body, and the session check.
func (s *Server) handlerOf(rt route) http.Handler {
	limit := rt.Method != http.MethodGet && rt.Method != http.MethodHead
	max := rt.MaxBody
	if max == 0 {
		max = s.MaxBody
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if limit {
			r.Body = http.MaxBytesReader(w, r.Body, max)
		}
		if rt.hs == nil {
			rt.h(w, r)
			return
		}
		si := s.requireSession(w, r)
		switch {
		case si == nil:
		case rt.Access.role() != "" && !s.consoleAllowed(w, r, rt.Access.role(), si):
		case rt.Access == CertSession && si.sess.CertSerial == "":
			s.page(w, r, http.StatusForbidden, "message", pageData{
				Title:    "Sign in with your certificate to do this",
				Message:  "This is done by signing in with your certificate: open the portal in the browser where the certificate is installed and choose it when the browser asks. If you have no certificate, get one from the home page.",
				SignedIn: true, Links: []link{{"/", "Back to the portal"}},
			})
		default:
			rt.hs(w, r, si)
		}
	})
}

// isAPI reports whether a request is for a JSON route: those live under
// /api/, which the route table's test checks.
func isAPI(r *http.Request) bool { return strings.HasPrefix(r.URL.Path, "/api/") }
