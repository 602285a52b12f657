// Package web is the HTTP face of the portal: routes, handlers, mutual TLS,
// session cookies and the HTML pages. It maps HTTP to calls of
// portal.Service and back; the rules themselves (who may sign in, lockout,
// recovery, issuance) live in portal/.
package web

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/certportal/certportal"
	"github.com/certportal/certportal/portal"
)

// DefaultMaxBody is the largest form or OCSP request body accepted: the
// biggest legitimate form (two 256-byte passwords) is far smaller, and a
// bound keeps a client from making the server buffer without limit.
const DefaultMaxBody = 64 << 10

// Server holds what the handlers need. New fills it in; cmd/certportal may
// change the fields before calling Handler.
type Server struct {
	Svc *portal.Service
	Log *slog.Logger
	// HSTS says whether responses may carry Strict-Transport-Security;
	// New sets it. It is sent only to requests whose host name is not
	// "localhost" or an IP address (decided per request): pinning HTTPS
	// on localhost would break every other local development server, and
	// browsers ignore HSTS for IP addresses.
	HSTS bool
	// MaxBody bounds request bodies (forms and OCSP requests); larger ones
	// are answered with 413.
	MaxBody int64

	pages pageSet
	// verified remembers client certificates whose chains verified
	// (web/conncert.go).
	verified verifiedCerts
}

// New returns a Server for the service.
func New(svc *portal.Service, log *slog.Logger) *Server {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Server{Svc: svc, Log: log, HSTS: true, MaxBody: DefaultMaxBody, pages: mustParsePages()}
}

// requestHost is the host name a request was sent to, without its port.
func requestHost(r *http.Request) string { return hostOnly(r.Host) }

// hostOnly is a Host header's host, without its port.
func hostOnly(h string) string {
	if host, _, err := net.SplitHostPort(h); err == nil {
		h = host
	}
	return h
}

// isLocal reports whether a host name is localhost or an IP address, for
// which HSTS must not be sent.
func isLocal(h string) bool {
	h = strings.TrimSuffix(strings.ToLower(strings.Trim(h, "[]")), ".")
	if h == "localhost" || strings.HasSuffix(h, ".localhost") {
		return true
	}
	return net.ParseIP(h) != nil
}

// TLSConfig returns the TLS configuration of the HTTPS listener. The server
// asks for a client certificate but does not require one and does not
// verify it in the handshake: GET / and /api/* check it per request with
// Svc.CertSignIn, so a revoked, expired or foreign certificate gets a page
// that says so instead of a TLS alert the user cannot read. ClientCAs names
// every issuing CA and the root, so browsers offer only our certificates.
// The certificate is fixed; serve uses TLSConfigFrom, whose certificate
// can change. Certificates is set, so httptest keeps it too.
func (s *Server) TLSConfig(cert *tls.Certificate) *tls.Config {
	c := s.TLSConfigFrom(StaticCert{Cert: cert})
	c.Certificates = []tls.Certificate{*cert}
	return c
}

// TLSConfigFrom is TLSConfig with a server certificate that comes from
// certs at each handshake, so it can be renewed or reloaded without a
// restart or a dropped connection (see CertReloader). Certificates stays
// empty: crypto/tls would prefer it to GetCertificate for clients that send
// no server name (those that connect to an IP address).
func (s *Server) TLSConfigFrom(certs CertSource) *tls.Config {
	pool := x509.NewCertPool()
	for _, c := range s.Svc.Issuers() {
		pool.AddCert(c)
	}
	pool.AddCert(s.Svc.Root())
	return &tls.Config{
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return certs.Certificate(), nil },
		ClientAuth:     tls.RequestClientCert,
		ClientCAs:      pool,
		MinVersion:     tls.VersionTLS12,
		// TLS 1.2 only with ECDHE and an AEAD (TLS 1.3's suites are fixed
		// and all AEAD): no CBC, no SHA-1 MACs, no static RSA.
		CipherSuites: tls12Suites,
		NextProtos:   []string{"h2", "http/1.1"},
	}
}

// tls12Suites are the TLS 1.2 cipher suites offered: ECDHE with AES-GCM or
// ChaCha20-Poly1305, for ECDSA and RSA server keys.
var tls12Suites = []uint16{
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
}

// Handler returns the handler of the HTTPS listener: every route of the
// table (routes.go).
func (s *Server) Handler() http.Handler { return s.wrap(s.mux(false), "/") }

// CAHandler returns the handler of the plain-HTTP listener: only the CA
// certificates, the CRLs and the OCSP responder, which clients fetch over
// http (RFC 5280 §8); its other paths lead to the portal over HTTPS.
func (s *Server) CAHandler() http.Handler {
	return s.wrap(s.mux(true), strings.TrimSuffix(s.Svc.Config.PortalURL, "/")+"/")
}

// wrap adds what every response needs: the security headers, the
// cross-origin check on every method but GET/HEAD/OPTIONS (browsers send
// client certificates and cookies on cross-site requests too), the OCSP GET
// form, and HTML pages for the mux's own 404 and 405 answers.
func (s *Server) wrap(mux *http.ServeMux, home string) http.Handler {
	cop := http.NewCrossOriginProtection()
	cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.Log.Info("cross-origin request refused", "path", r.URL.Path, "remote", remoteAddr(r))
		s.page(w, r, http.StatusForbidden, "message", pageData{
			Title:   "Request refused",
			Message: "This request came from another web site, so the portal refused it. Open the portal directly and try again.",
			Links:   []link{{"/", "Go to the portal"}},
		})
	}))
	inner := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if rest, ok := strings.CutPrefix(r.URL.EscapedPath(), "/ocsp/"); ok {
			s.handleOCSPGet(w, r, rest)
			return
		}
		if _, pattern := mux.Handler(r); pattern == "" {
			s.muxFallback(w, r, mux, home)
			return
		}
		mux.ServeHTTP(w, r)
	})
	protected := cop.Handler(inner)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Every answer carries these (SPEC "Security"). The keys are
		// canonical and the values shared: net/http only reads them, and
		// a handler's Set or Add replaces the one-element slice.
		h := w.Header()
		h["Content-Security-Policy"] = headerCSP
		h["X-Content-Type-Options"] = headerNosniff
		h["Referrer-Policy"] = headerNoReferrer
		h["X-Frame-Options"] = headerDeny
		if s.HSTS && !isLocal(requestHost(r)) {
			h["Strict-Transport-Security"] = headerHSTS
		}
		protected.ServeHTTP(w, r)
	})
}

var (
	headerCSP        = []string{"default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"}
	headerNosniff    = []string{"nosniff"}
	headerNoReferrer = []string{"no-referrer"}
	headerDeny       = []string{"DENY"}
	headerHSTS       = []string{"max-age=63072000"} // two years, the value hstspreload.org asks for
)

// muxFallback runs the mux's own answer for a request no pattern matched
// (404, 405 with Allow, or a redirect to a cleaned path) and turns 404 and
// 405 into HTML pages.
func (s *Server) muxFallback(w http.ResponseWriter, r *http.Request, mux *http.ServeMux, home string) {
	rec := &headerCatcher{header: http.Header{}}
	h, _ := mux.Handler(r)
	h.ServeHTTP(rec, r)
	switch rec.code {
	case http.StatusNotFound:
		s.page(w, r, http.StatusNotFound, "message", pageData{
			Title: "Page not found", Message: "There is no page at this address.",
			Links: []link{{home, "Go to the portal"}},
		})
	case http.StatusMethodNotAllowed:
		if allow := rec.header.Get("Allow"); allow != "" {
			w.Header().Set("Allow", allow)
		}
		s.page(w, r, http.StatusMethodNotAllowed, "message", pageData{
			Title: "Not allowed", Message: "This page cannot be used that way.",
			Links: []link{{home, "Go to the portal"}},
		})
	default:
		for k, v := range rec.header {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.code)
	}
}

// headerCatcher records the status and headers a handler writes and drops
// its body.
type headerCatcher struct {
	header http.Header
	code   int
}

func (c *headerCatcher) Header() http.Header { return c.header }
func (c *headerCatcher) WriteHeader(code int) {
	if c.code == 0 {
		c.code = code
	}
}
func (c *headerCatcher) Write(b []byte) (int, error) {
	c.WriteHeader(http.StatusOK)
	return len(b), nil
}

// statusOf maps an error to an HTTP status: the one place where error
// codes become statuses.
func statusOf(err error) int {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return http.StatusRequestEntityTooLarge
	}
	switch certportal.ErrorCodeOf(err) {
	case "":
		return http.StatusOK
	case certportal.Invalid:
		return http.StatusBadRequest
	case certportal.NotFound:
		return http.StatusNotFound
	case certportal.Conflict:
		return http.StatusConflict
	case certportal.Unauthorized, certportal.Locked:
		// A locked ID gets the same answer as a wrong password.
		return http.StatusUnauthorized
	case certportal.Forbidden:
		return http.StatusForbidden
	case certportal.RateLimited:
		return http.StatusTooManyRequests
	case certportal.Unavailable:
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// fail answers a request that failed with err: the one error renderer. A
// JSON route (under /api/) gets {"error", "message"}; a page gets the
// message page with err's status, its message for a person and a link
// that helps. Internal errors are logged, never shown; a request whose
// client went away is not the database's fault and is logged as such.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error, links ...link) {
	if r.Context().Err() != nil {
		// The client closed the connection (or its sending side, as
		// simple clients do) before the answer was ready: the request
		// was cancelled, nothing failed.
		s.Log.Debug("request cancelled by the client", "path", r.URL.Path, "err", err)
		if isAPI(r) {
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "cancelled",
				"message": "the request was cancelled by the client before the portal answered it"})
			return
		}
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	if isAPI(r) {
		s.jsonError(w, r, err)
		return
	}
	if isEST(r) {
		s.estError(w, r, err)
		return
	}
	code := statusOf(err)
	msg := certportal.ErrorMessage(err)
	title := http.StatusText(code)
	switch code {
	case http.StatusBadRequest:
		title = "Please check what you entered"
	case http.StatusUnauthorized:
		title = "Sign-in failed"
	case http.StatusForbidden:
		title = "Not allowed"
	case http.StatusTooManyRequests:
		title = "Too many attempts"
	case http.StatusRequestEntityTooLarge:
		title = "Please check what you entered"
		msg = "The form you sent is too large. Go back and try again."
	case http.StatusServiceUnavailable:
		title = "Please try again later"
		s.Log.Warn("service unavailable", "path", r.URL.Path, "err", err)
		if !errors.Is(err, portal.ErrBusy) && !errors.Is(err, portal.ErrMailNotSent) {
			// The database's own words are for the administrator.
			msg = "The portal cannot reach its database or mail server right now. Nothing was changed; please try again later."
		}
	case http.StatusInternalServerError:
		title = "Something went wrong"
		s.Log.Error("internal error", "path", r.URL.Path, "err", err)
		msg = "Something went wrong on the portal's side. Nothing you did caused it; please try again later."
	}
	if len(links) == 0 {
		links = []link{{"/", "Go to the portal"}}
	}
	s.page(w, r, code, "message", pageData{Title: title, Message: sentence(msg), Links: links})
}

// jsonError answers a JSON route with {"error": a name a program can
// test, "message": a sentence for a person}: a refused certificate as
// /api/whoami names it (403), other errors by code; internal details stay
// in the log.
func (s *Server) jsonError(w http.ResponseWriter, r *http.Request, err error) {
	code := statusOf(err)
	name := string(certportal.ErrorCodeOf(err))
	msg := certportal.ErrorMessage(err)
	switch {
	case certReason(err) != "":
		code, name = http.StatusForbidden, certReason(err)
	case errors.Is(err, portal.ErrRenewTooEarly):
		name = "too_early"
	case code == http.StatusRequestEntityTooLarge:
		name, msg = "too_large", "the request is too large"
	case code >= 500:
		s.Log.Error("api request failed", "path", r.URL.Path, "err", err)
		name = "unavailable"
		if !errors.Is(err, portal.ErrBusy) {
			msg = "the portal could not complete the request because of a problem on its side; try again later"
		}
	}
	writeJSON(w, code, map[string]string{"error": name, "message": msg})
}

// remoteAddr is the client address used for lockout and the audit log: the
// host part of the TCP peer (replicas terminate TLS themselves, so there is
// no proxy header to trust).
func remoteAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// healthTimeout bounds the database ping of /healthz, so a hung database
// makes the check fail rather than hang the load balancer's probe.
const healthTimeout = 3 * time.Second

func (s *Server) handleHealth(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), healthTimeout)
	defer cancel()
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if err := s.Svc.Ping(ctx); err != nil {
		s.Log.Warn("health check: database does not answer", "err", err)
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte("database unavailable\n"))
		return
	}
	_, _ = w.Write([]byte("ok"))
}
