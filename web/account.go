package web

import (
	"net/http"

	"github.com/certportal/certportal"
	"github.com/certportal/certportal/portal"
)

func (s *Server) handleRecoverForm(w http.ResponseWriter, r *http.Request) {
	s.page(w, r, http.StatusOK, "recover", pageData{Title: "Change Sign in Method"})
}

// handleRecover is POST /recover: the ID and password are checked as on
// /login; when right, the confirmation page carries a single-use ticket in
// a hidden field (not in a URL, hence a page rather than a redirect).
func (s *Server) handleRecover(w http.ResponseWriter, r *http.Request) {
	f, err := s.parseForm(w, r, []string{"id", "password"})
	if err != nil {
		s.fail(w, r, err, link{"/recover", "Back to Change Sign in Method"})
		return
	}
	acc, ticket, err := s.Svc.RecoverBegin(r.Context(), f["id"], f["password"], remoteAddr(r))
	if err != nil {
		s.signInFailed(w, r, "recover", f["id"], err)
		return
	}
	setTicket(w, ticket, acc.ID, s.Svc.Config.TicketTTL)
	http.Redirect(w, r, "/recover/confirm", http.StatusSeeOther)
}

// handleRecoverConfirmForm is GET /recover/confirm: the "OK" page, whose
// form carries the ticket that POST /recover left in a short-lived cookie.
func (s *Server) handleRecoverConfirmForm(w http.ResponseWriter, r *http.Request) {
	ticket, id := cookieTicket(r)
	if ticket == "" {
		// Expired or never started: start again.
		http.Redirect(w, r, "/recover", http.StatusSeeOther)
		return
	}
	d := pageData{Title: "Change Sign in Method", Ticket: ticket}
	if id != "" {
		d.Account = &certportal.Account{ID: id}
	}
	s.page(w, r, http.StatusOK, "recover_confirm", d)
}

// handleRecoverConfirm is the "OK": revoke, method password, mail a
// temporary password. If the mail cannot go out nothing changes, and the
// page offers the same "OK" again.
func (s *Server) handleRecoverConfirm(w http.ResponseWriter, r *http.Request) {
	f, err := s.parseForm(w, r, []string{"ticket"})
	if err != nil {
		s.fail(w, r, err, link{"/recover", "Start again"})
		return
	}
	_, err = s.Svc.RecoverConfirm(r.Context(), f["ticket"], remoteAddr(r))
	switch {
	case err == nil:
	case certportal.ErrorCodeOf(err) == certportal.Unavailable:
		s.Log.Warn("recovery could not finish", "err", err)
		s.page(w, r, http.StatusServiceUnavailable, "recover_confirm", pageData{
			Title:  "Please try again later",
			Error:  "The e-mail with your temporary password could not be sent, so nothing was changed. Please try again later.",
			Ticket: f["ticket"],
		})
		return
	default:
		clearTicket(w)
		s.fail(w, r, err, link{"/recover", "Start again"})
		return
	}
	// Recovery ended every session of the account, this browser's too.
	clearSession(w)
	clearTicket(w)
	http.Redirect(w, r, "/recover/done", http.StatusSeeOther)
}

func (s *Server) handleRecoverDone(w http.ResponseWriter, r *http.Request) {
	s.page(w, r, http.StatusOK, "recover_done", pageData{Title: "Sign in method changed"})
}

// handleCertificate is POST /certificate: a signed-in account whose method
// is password gets its certificate as a PKCS#12 file. The answer is the
// file itself, the one successful form POST without a 303.
func (s *Server) handleCertificate(w http.ResponseWriter, r *http.Request, si *signedIn) {
	acc := si.account
	if si.sess.CertSerial != "" || acc.Method != certportal.MethodPassword {
		s.page(w, r, http.StatusForbidden, "message", pageData{
			Title:    "You already have a certificate",
			Message:  "This account signs in with its certificate. To get a new certificate (for example because yours was lost), change the sign-in method first; a temporary password will be e-mailed to you.",
			SignedIn: true, Links: []link{recoverLink, {"/", "Back to the portal"}},
		})
		return
	}
	back := link{"/", "Back to the portal"}
	pw, format, err := s.p12Fields(w, r)
	if err == nil {
		var issued *portal.Issued
		issued, err = s.Svc.Issue(r.Context(), portal.User(acc.ID, remoteAddr(r)), portal.IssueRequest{
			ID: acc.ID, P12Password: pw, Legacy: format.legacy(), KeepSession: si.keep(),
			// A user must not reuse the account password for the file, which
			// leaves the server and can be attacked offline.
			RejectAccountPassword: true,
		})
		if err == nil {
			s.writeCertificateFile(w, r, format, acc.ID, issued.P12)
			return
		}
	}
	if certportal.ErrorCodeOf(err) == certportal.Invalid {
		// A mistake in the form: the page again, the message beside
		// the password field.
		s.renderHome(w, r, si, http.StatusBadRequest, pageData{Error: sentence(certportal.ErrorMessage(err))})
		return
	}
	s.fail(w, r, err, back)
}

func (s *Server) handlePasswordForm(w http.ResponseWriter, r *http.Request, si *signedIn) {
	s.page(w, r, http.StatusOK, "password", pageData{Title: "Change password", SignedIn: true, Account: si.account})
}

// handlePassword is POST /password.
func (s *Server) handlePassword(w http.ResponseWriter, r *http.Request, si *signedIn) {
	f, err := s.parseForm(w, r, []string{"current_password", "new_password", "new_password_confirm"})
	if err != nil {
		s.fail(w, r, err, link{"/password", "Back to Change password"})
		return
	}
	again := func(code int, msg string) {
		s.page(w, r, code, "password", pageData{Title: "Change password", SignedIn: true, Account: si.account, Error: msg})
	}
	if f["new_password"] != f["new_password_confirm"] {
		again(http.StatusBadRequest, "The two new passwords differ. Type the same new password twice.")
		return
	}
	err = s.Svc.ChangePassword(r.Context(), si.account.ID, f["current_password"], f["new_password"], remoteAddr(r), si.keep())
	switch code := statusOf(err); code {
	case http.StatusOK:
		http.Redirect(w, r, "/?done=password", http.StatusSeeOther)
	case http.StatusUnauthorized:
		again(code, "The current password is wrong.")
	case http.StatusBadRequest:
		again(code, sentence(certportal.ErrorMessage(err)))
	default:
		s.fail(w, r, err, link{"/password", "Back to Change password"})
	}
}
