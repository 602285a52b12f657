package web

import (
	"crypto/x509"
	"encoding/json"
	"errors"
	"net/http"

	"github.com/certportal/certportal"
	"github.com/certportal/certportal/portal"
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
		if len(chain) == 0 {
			http.Redirect(w, r, "/login", http.StatusSeeOther)
			return
		}
		acc, cert, err := s.certSignIn(r)
		if err != nil {
			s.certRefused(w, r, err)
			return
		}
		// A sign-in rotates the session: the token the browser had ends.
		token, err := s.Svc.NewSession(r.Context(), acc, cert, remoteAddr(r), cookieToken(r))
		if err != nil {
			s.fail(w, r, err)
			return
		}
		setSession(w, token)
		si = &signedIn{token: token, account: acc, sess: &certportal.Session{AccountID: acc.ID, CertSerial: cert.Serial}}
	}
	notice := ""
	if r.URL.Query().Get("done") == "password" {
		notice = "Your password has been changed. Your other sessions have been signed out."
	}
	s.renderHome(w, r, si, notice)
}

func (s *Server) renderHome(w http.ResponseWriter, r *http.Request, si *signedIn, notice string) {
	ctx := r.Context()
	acc := si.account
	cur, err := s.Svc.CurrentCertificate(ctx, acc.ID)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	recent, err := s.Svc.RecentSignIns(ctx, acc.ID, 5)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	certSession := si.sess.CertSerial != ""
	canRenew, renewFrom := s.renewState(si, cur)
	s.page(w, r, http.StatusOK, "home", pageData{
		Title: "Service Portal", SignedIn: true, Account: acc, CertSession: certSession,
		Cert: cur, SignIns: recent, Notice: notice,
		CanIssue: acc.Method == certportal.MethodPassword && !certSession,
		MinP12:   portal.MinP12Password,
		CanRenew: canRenew, RenewFrom: renewFrom,
	})
}

// certReason names why a presented certificate was refused, in the words
// /api/whoami answers with.
func certReason(err error) string {
	switch {
	case errors.Is(err, portal.ErrCertRevoked):
		return "revoked"
	case errors.Is(err, portal.ErrCertExpired):
		return "expired"
	case errors.Is(err, portal.ErrCertCancelled):
		return "cancelled"
	case errors.Is(err, portal.ErrCertUnknown):
		return "unknown"
	}
	return ""
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
	d := pageData{Links: []link{recoverLink, {"/login", "Login with ID and password"}}}
	switch reason {
	case "revoked":
		d.Title = "Your certificate has been revoked"
		d.Message = "The certificate your browser presented has been revoked, so it can no longer be used to sign in. Change the sign-in method to get a new temporary password, then get a new certificate."
	case "expired":
		d.Title = "Your certificate has expired"
		d.Message = "The certificate your browser presented has expired. Change the sign-in method to get a new temporary password, then get a new certificate."
	case "cancelled":
		d.Title = "This account has been cancelled"
		d.Message = "The account of the certificate your browser presented has been cancelled, so it can no longer sign in. You can remove its certificates from this computer."
		// Recovery cannot help a cancelled account; removing the
		// certificates is what is left to do.
		d.Links = []link{{"/about/certificate", "How to remove the certificates"}}
	default:
		d.Title = "This certificate cannot sign in"
		d.Message = "The certificate your browser presented was not issued by this portal, or is no longer the current certificate of its account. Choose another certificate when the browser asks (restart the browser to be asked again), or change the sign-in method."
	}
	d.Links = append(d.Links, link{"/check", "Check this certificate"})
	s.page(w, r, http.StatusForbidden, "message", d)
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
		s.signInFailed(w, r, "login", err)
		return
	}
	token, err := s.Svc.NewSession(r.Context(), acc, nil, remote, cookieToken(r))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	setSession(w, token)
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

// signInFailed answers a refused password check on /login or /recover
// (form is the page to show again for wrong credentials).
func (s *Server) signInFailed(w http.ResponseWriter, r *http.Request, form string, err error) {
	title := "Login"
	if form == "recover" {
		title = "Change Sign in Method"
	}
	switch {
	case certportal.ErrorCodeOf(err) == certportal.Unauthorized:
		s.page(w, r, http.StatusUnauthorized, form, pageData{Title: title, Error: msgBadCredentials})
	case errors.Is(err, portal.ErrUseCertificate):
		s.page(w, r, http.StatusForbidden, "message", pageData{
			Title:   "Please sign in with your certificate",
			Message: "This account signs in with its certificate, not with a password. Open the portal in the browser where your certificate is installed. If you have lost your certificate or it has been revoked, change the sign-in method first.",
			Links:   []link{recoverLink},
		})
	case errors.Is(err, portal.ErrPasswordExpired):
		s.page(w, r, http.StatusForbidden, "message", pageData{
			Title:   "Your temporary password has expired",
			Message: "Temporary passwords are valid for a limited time. Ask for a new one: enter your ID and this password on the page below, and a new temporary password will be e-mailed to you.",
			Links:   []link{recoverLink},
		})
	case errors.Is(err, portal.ErrCancelled):
		s.page(w, r, http.StatusForbidden, "message", pageData{
			Title:   "This account has been cancelled",
			Message: "This account has been cancelled, so it can no longer sign in. If you think this is a mistake, contact your administrator. You can remove the portal's certificates from this computer.",
			Links:   []link{{"/about/certificate", "How to remove the certificates"}},
		})
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
		http.Redirect(w, r, "/login", http.StatusSeeOther)
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
		s.jsonError(w, r, err)
		return
	}
	var acc *certportal.Account
	serial := ""
	switch {
	case si != nil:
		acc = si.account
		cur, err := s.Svc.CurrentCertificate(ctx, acc.ID)
		if err != nil {
			s.jsonError(w, r, err)
			return
		}
		if cur != nil {
			serial = cur.Serial
		}
	case len(peerChain(r)) > 0:
		a, cert, err := s.certSignIn(r)
		if err != nil {
			s.jsonError(w, r, err)
			return
		}
		acc, serial = a, cert.Serial
	default:
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "unauthenticated"})
		return
	}
	writeJSON(w, http.StatusOK, whoami{ID: acc.ID, Method: string(acc.Method), Serial: serial})
}

// jsonError answers an /api request with {"error": ...}.
func (s *Server) jsonError(w http.ResponseWriter, r *http.Request, err error) {
	if reason := certReason(err); reason != "" {
		writeJSON(w, http.StatusForbidden, map[string]string{"error": reason})
		return
	}
	code := statusOf(err)
	if code >= 500 {
		s.Log.Error("api request failed", "path", r.URL.Path, "err", err)
		writeJSON(w, code, map[string]string{"error": "unavailable"})
		return
	}
	writeJSON(w, code, map[string]string{"error": string(certportal.ErrorCodeOf(err))})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		code, b = http.StatusInternalServerError, []byte(`{"error":"internal"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_, _ = w.Write(append(b, '\n'))
}
