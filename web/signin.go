package web

import (
	"crypto/x509"
	"encoding/json"
	"net/http"
	"strings"

	"github.com/certportal/certportal"
)

// recoverLink is the seed guide's name for the recovery page.
var recoverLink = link{"/recover", "If your certificate has been revoked"}

// msgBadCredentials is the one sentence for a wrong, unknown, locked or
// cancelled ID before its password is checked: the pages must not differ.
const msgBadCredentials = "The user ID or password is wrong."

// peerChain returns the client certificate chain of the TLS connection.
func peerChain(r *http.Request) []*x509.Certificate {
	if r.TLS == nil {
		return nil
	}
	return r.TLS.PeerCertificates
}

// handleHome is GET /: a valid session comes first; otherwise a client
// certificate signs the user in; otherwise the sign-in page.
func (s *Server) handleHome(w http.ResponseWriter, r *http.Request) {
	si, err := s.session(w, r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if si == nil {
		chain := peerChain(r)
		switch {
		case isSignedOut(r):
			// The browser signed out; its certificate signs in again
			// only by the button.
			s.page(w, r, http.StatusOK, "signedout", pageData{Title: "Signed out", HasCert: len(chain) > 0})
			return
		case len(chain) == 0:
			http.Redirect(w, r, "/login", http.StatusSeeOther)
			return
		}
		if si = s.certSessionStart(w, r); si == nil {
			return
		}
	}
	notice := ""
	if r.URL.Query().Get("done") == "password" {
		notice = "Your password has been changed. Your other sessions have been signed out."
	}
	s.renderHome(w, r, si, http.StatusOK, pageData{Notice: notice})
}

// certSessionStart signs in with the presented client certificate and
// starts a session, or answers the request itself and returns nil.
func (s *Server) certSessionStart(w http.ResponseWriter, r *http.Request) *signedIn {
	acc, cert, err := s.certSignIn(r)
	if err != nil {
		s.certRefused(w, r, err)
		return nil
	}
	// A sign-in rotates the session: the token the browser had ends.
	token, err := s.Svc.NewSession(r.Context(), acc, cert, remoteAddr(r), cookieToken(r))
	if err != nil {
		s.fail(w, r, err)
		return nil
	}
	setSession(w, token)
	clearSignedOut(w, r)
	return &signedIn{token: token, account: acc, sess: &certportal.Session{AccountID: acc.ID, CertSerial: cert.Serial}}
}

// handleCertLogin is POST /login/certificate, the button of the signed-out
// page: the presented certificate signs in again.
func (s *Server) handleCertLogin(w http.ResponseWriter, r *http.Request) {
	if _, err := s.parseForm(w, r, nil); err != nil {
		s.fail(w, r, err)
		return
	}
	if len(peerChain(r)) == 0 {
		s.page(w, r, http.StatusUnauthorized, "message", pageData{
			Title:   "No certificate",
			Message: "Your browser did not present a certificate. Restart the browser, open the portal and choose your certificate when the browser asks, or sign in with your ID and password.",
			Links:   []link{{"/login", "Login with ID and password"}},
		})
		return
	}
	if s.certSessionStart(w, r) == nil {
		return
	}
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

// renderHome shows the home page with a status; d carries a notice, or a
// mistake in the certificate form (Error) to show beside its field.
func (s *Server) renderHome(w http.ResponseWriter, r *http.Request, si *signedIn, code int, d pageData) {
	ctx := r.Context()
	acc := si.account
	cur, recent, err := s.Svc.Home(ctx, acc.ID, 5)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	certSession := si.sess.CertSerial != ""
	canRenew, renewFrom := s.renewState(si, cur)
	d.Title, d.SignedIn, d.Account, d.CertSession = "Service Portal", true, acc, certSession
	d.Cert, d.SignIns = cur, recent
	d.CanIssue = acc.Method == certportal.MethodPassword && !certSession
	d.MinP12 = certportal.MinP12Password
	d.CanRenew, d.RenewFrom = canRenew, renewFrom
	s.page(w, r, code, "home", d)
}

// certRefused answers GET / for a certificate that cannot sign in: a 403
// page that says why and leads to recovery, never a TLS error.
func (s *Server) certRefused(w http.ResponseWriter, r *http.Request, err error) {
	reason := certReason(err)
	if reason == "" {
		s.fail(w, r, err)
		return
	}
	s.Log.Info("certificate sign-in refused", "reason", reason, "remote", remoteAddr(r))
	s.refuse(w, r, refusalOf(err))
}

// refuse shows the page of a refusal (403).
func (s *Server) refuse(w http.ResponseWriter, r *http.Request, rf *refusal) {
	s.page(w, r, http.StatusForbidden, "message", pageData{Title: rf.title, Message: rf.message, Links: rf.links})
}

func (s *Server) handleLoginForm(w http.ResponseWriter, r *http.Request) {
	s.page(w, r, http.StatusOK, "login", pageData{Title: "Login"})
}

// handleLogin is POST /login: ID and password.
func (s *Server) handleLogin(w http.ResponseWriter, r *http.Request) {
	f, err := s.parseForm(w, r, []string{"id", "password"})
	if err != nil {
		s.fail(w, r, err, link{"/login", "Back to Login"})
		return
	}
	remote := remoteAddr(r)
	acc, err := s.Svc.PasswordSignIn(r.Context(), f["id"], f["password"], remote)
	if err != nil {
		s.signInFailed(w, r, "login", f["id"], err)
		return
	}
	token, err := s.Svc.NewSession(r.Context(), acc, nil, remote, cookieToken(r))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	setSession(w, token)
	clearSignedOut(w, r)
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

// signInFailed answers a refused password check on /login or /recover
// (form is the page to show again for wrong credentials).
func (s *Server) signInFailed(w http.ResponseWriter, r *http.Request, form, id string, err error) {
	title := "Login"
	if form == "recover" {
		title = "Change Sign in Method"
	}
	switch rf := refusalOf(err); {
	case certportal.ErrorCodeOf(err) == certportal.Unauthorized:
		s.page(w, r, http.StatusUnauthorized, form, pageData{Title: title, Error: msgBadCredentials, ID: strings.TrimSpace(id)})
	case rf != nil:
		s.refuse(w, r, rf)
	default:
		s.fail(w, r, err, link{"/" + form, "Back to " + title})
	}
}

// handleLogout is POST /logout and POST /logout/all.
func (s *Server) handleLogout(all bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if _, err := s.parseForm(w, r, nil); err != nil {
			s.fail(w, r, err)
			return
		}
		if token := cookieToken(r); token != "" {
			if err := s.Svc.SignOut(r.Context(), token, all, remoteAddr(r)); err != nil {
				s.fail(w, r, err)
				return
			}
		}
		clearSession(w)
		setSignedOut(w)
		http.Redirect(w, r, "/", http.StatusSeeOther)
	}
}

// whoami is the JSON of /api/whoami.
type whoami struct {
	ID     string `json:"id"`
	Method string `json:"method"`
	Serial string `json:"serial"`
}

// handleWhoami is GET /api/whoami: the session, or else the client
// certificate (which starts no session and writes no audit record).
func (s *Server) handleWhoami(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	si, err := s.session(w, r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	var acc *certportal.Account
	serial := ""
	switch {
	case si != nil:
		acc = si.account
		cur, err := s.Svc.CurrentCertificate(ctx, acc.ID)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		if cur != nil {
			serial = cur.Serial
		}
	case len(peerChain(r)) > 0:
		a, cert, err := s.certSignIn(r)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		acc, serial = a, cert.Serial
	default:
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "unauthenticated"})
		return
	}
	writeJSON(w, http.StatusOK, whoami{ID: acc.ID, Method: string(acc.Method), Serial: serial})
}

var (
	headerJSON    = []string{"application/json"}
	headerNoStore = []string{"no-store"}
)

func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		code, b = http.StatusInternalServerError, []byte(`{"error":"internal"}`)
	}
	h := w.Header()
	h["Content-Type"] = headerJSON
	h["Cache-Control"] = headerNoStore
	w.WriteHeader(code)
	_, _ = w.Write(append(b, '\n'))
}
