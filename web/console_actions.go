package web

import (
	"errors"
	"io"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/certportal/certportal"
	"github.com/certportal/certportal/portal"
)

// The console's actions. Each is a POST through the route table. Those
// that cannot be undone (reset password, cancel, role, revoke) answer a
// confirmation page and change nothing; the same POST with confirm=1
// acts and answers 303 to a page that says what was done. Every action
// runs the service's own operation with the console user as actor.

// confirmation is the page before an action that cannot be undone.
type confirmation struct {
	Action string // the form's URL
	Button string // the label of the button that acts
	Facts  []fact
	Fields []field // sent again, with confirm=1
	Back   string
}

type fact struct{ Label, Value string }
type field struct{ Name, Value string }

// consoleForm reads a console form: the named fields and an optional
// confirm, which is "1" or absent.
func (s *Server) consoleForm(w http.ResponseWriter, r *http.Request, fields ...string) (map[string]string, bool, error) {
	f, err := s.parseForm(w, r, fields, "confirm")
	if err != nil {
		return nil, false, err
	}
	c, ok := f["confirm"]
	if ok && c != "1" {
		return nil, false, errMalformed()
	}
	return f, ok, nil
}

// confirm renders the confirmation page of an action (200: nothing was
// done, the page only asks).
func (s *Server) confirm(w http.ResponseWriter, r *http.Request, si *signedIn, title string, c *confirmation) {
	s.console(w, r, si, http.StatusOK, "admin_confirm", title, &consoleData{Confirm: c}, "", "")
}

// actionFailed answers a console action that was refused: a mistake in
// the form (or a refusal about the account shown) is shown on the
// account's page beside its forms, with the status of the error; an
// unknown account or certificate, or a failure of the portal, gets the
// message page.
func (s *Server) actionFailed(w http.ResponseWriter, r *http.Request, si *signedIn, id string, err error) {
	switch certportal.ErrorCodeOf(err) {
	case certportal.Invalid, certportal.Conflict, certportal.Forbidden:
		if id != "" {
			s.consoleAccount(w, r, si, statusOf(err), id, sentence(certportal.ErrorMessage(err)))
			return
		}
	}
	s.fail(w, r, err, link{"/admin/accounts", "Search the accounts"})
}

// activeAccount reads the account an action concerns: NotFound for an
// unknown ID, Conflict for a cancelled account.
func (s *Server) activeAccount(r *http.Request, id string) (*certportal.Account, error) {
	acc, err := s.Svc.Account(r.Context(), id)
	if err != nil {
		return nil, err
	}
	if acc.Status != certportal.StatusActive {
		return acc, certportal.Errorf(certportal.Conflict, "the account %s is cancelled", acc.ID)
	}
	return acc, nil
}

// handleConsoleUnlock is POST /admin/accounts/{id}/unlock: it can be
// undone (the next wrong passwords lock again), so it acts at once.
func (s *Server) handleConsoleUnlock(w http.ResponseWriter, r *http.Request, si *signedIn) {
	if _, _, err := s.consoleForm(w, r); err != nil {
		s.fail(w, r, err)
		return
	}
	acc, err := s.Svc.Unlock(r.Context(), si.actor(r), r.PathValue("id"))
	if err != nil {
		s.actionFailed(w, r, si, "", err)
		return
	}
	http.Redirect(w, r, accountURL(acc.ID)+"?done=unlock", http.StatusSeeOther)
}

// handleConsoleReset is POST /admin/accounts/{id}/reset-password: as `user
// reset-password`.
func (s *Server) handleConsoleReset(w http.ResponseWriter, r *http.Request, si *signedIn) {
	_, confirmed, err := s.consoleForm(w, r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	acc, err := s.activeAccount(r, r.PathValue("id"))
	if err != nil {
		s.actionFailed(w, r, si, idOf(acc), err)
		return
	}
	if !confirmed {
		s.confirm(w, r, si, "Reset the password of "+acc.ID+"?", &confirmation{
			Action: r.URL.Path, Button: "Reset the password", Back: accountURL(acc.ID),
			Facts: []fact{
				{"Account", acc.ID},
				{"What happens", "Every certificate of the account is revoked, its sessions end, the sign-in method becomes ID and password, and a temporary password is mailed to " + acc.Email + ". This cannot be undone."},
			},
		})
		return
	}
	if _, err := s.Svc.ResetPassword(r.Context(), si.actor(r), acc.ID); err != nil {
		s.actionFailed(w, r, si, acc.ID, err)
		return
	}
	http.Redirect(w, r, accountURL(acc.ID)+"?done=reset", http.StatusSeeOther)
}

// idOf is the ID of an account that may be nil.
func idOf(acc *certportal.Account) string {
	if acc == nil {
		return ""
	}
	return acc.ID
}

// handleConsoleCancel is POST /admin/accounts/{id}/cancel.
func (s *Server) handleConsoleCancel(w http.ResponseWriter, r *http.Request, si *signedIn) {
	_, confirmed, err := s.consoleForm(w, r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	acc, err := s.activeAccount(r, r.PathValue("id"))
	if err == nil && certportal.IDKey(acc.ID) == certportal.IDKey(si.account.ID) {
		err = certportal.Errorf(certportal.Forbidden, "you cannot cancel your own account here; ask another administrator")
	}
	if err != nil {
		s.actionFailed(w, r, si, idOf(acc), err)
		return
	}
	if !confirmed {
		s.confirm(w, r, si, "Cancel the account "+acc.ID+"?", &confirmation{
			Action: r.URL.Path, Button: "Cancel the account", Back: accountURL(acc.ID),
			Facts: []fact{
				{"Account", acc.ID + " <" + acc.Email + ">"},
				{"What happens", "Every certificate of the account is revoked (cessationOfOperation), every sign-in is refused from now on and its sessions end. Its records are kept. This cannot be undone."},
			},
		})
		return
	}
	if err := s.Svc.CancelUser(r.Context(), si.actor(r), acc.ID); err != nil {
		s.actionFailed(w, r, si, acc.ID, err)
		return
	}
	http.Redirect(w, r, accountURL(acc.ID)+"?done=cancel", http.StatusSeeOther)
}

// handleConsoleRole is POST /admin/accounts/{id}/role (role).
func (s *Server) handleConsoleRole(w http.ResponseWriter, r *http.Request, si *signedIn) {
	f, confirmed, err := s.consoleForm(w, r, "role")
	if err != nil {
		s.fail(w, r, err)
		return
	}
	acc, err := s.activeAccount(r, r.PathValue("id"))
	var role certportal.Role
	if err == nil {
		role, err = certportal.ParseRole(f["role"])
	}
	if err == nil && certportal.IDKey(acc.ID) == certportal.IDKey(si.account.ID) {
		err = certportal.WrapError(certportal.Forbidden, portal.ErrOwnRole, "you cannot change your own role; ask another administrator")
	}
	if err == nil && acc.RoleOf() == role {
		err = certportal.Errorf(certportal.Conflict, "%s has the role %s already", acc.ID, role)
	}
	if err != nil {
		s.actionFailed(w, r, si, idOf(acc), err)
		return
	}
	if !confirmed {
		s.confirm(w, r, si, "Change the role of "+acc.ID+"?", &confirmation{
			Action: r.URL.Path, Button: "Change the role to " + string(role), Back: accountURL(acc.ID),
			Fields: []field{{"role", string(role)}},
			Facts: []fact{
				{"Account", acc.ID},
				{"Role", string(acc.RoleOf()) + " → " + string(role)},
				{"What it allows", roleMeaning[role]},
			},
		})
		return
	}
	if _, err := s.Svc.SetRole(r.Context(), si.actor(r), acc.ID, role); err != nil {
		s.actionFailed(w, r, si, acc.ID, err)
		return
	}
	http.Redirect(w, r, accountURL(acc.ID)+"?done=role", http.StatusSeeOther)
}

// roleMeaning says what a role allows, on the confirmation page.
var roleMeaning = map[certportal.Role]string{
	certportal.RoleUser:     "The portal for the account itself; no admin console.",
	certportal.RoleHelpdesk: "The admin console, signed in by certificate: search accounts, see them, unlock them and reset their passwords.",
	certportal.RoleAdmin:    "All of the help desk's console, and revoking certificates, cancelling and adding accounts, changing roles, the audit log, the CAs and the certificate inventory.",
}

// handleConsoleRevoke is POST /admin/certificates/{serial}/revoke
// (reason: an RFC 5280 name, "" for none).
func (s *Server) handleConsoleRevoke(w http.ResponseWriter, r *http.Request, si *signedIn) {
	f, confirmed, err := s.consoleForm(w, r, "reason")
	if err != nil {
		s.fail(w, r, err)
		return
	}
	c, err := s.Svc.Certificate(r.Context(), r.PathValue("serial"))
	if err != nil {
		s.fail(w, r, err, link{"/admin/accounts", "Search the accounts"})
		return
	}
	reason, err := certportal.ParseReason(f["reason"])
	if err == nil && c.IsRevoked() {
		err = certportal.Errorf(certportal.Conflict, "the certificate %s is revoked already", c.Serial)
	}
	if err != nil {
		s.actionFailed(w, r, si, c.AccountID, err)
		return
	}
	if !confirmed {
		why := reason.String()
		if reason == certportal.ReasonNone {
			why = "none given"
		}
		s.confirm(w, r, si, "Revoke the certificate of "+c.AccountID+"?", &confirmation{
			Action: r.URL.Path, Button: "Revoke the certificate", Back: accountURL(c.AccountID),
			Fields: []field{{"reason", f["reason"]}},
			Facts: []fact{
				{"Issued to", c.AccountID},
				{"Serial number", c.Serial},
				{"Thumbprint", c.Thumbprint},
				{"Valid until", c.NotAfter.UTC().Format("2006-01-02 15:04 UTC")},
				{"Reason", why},
				{"What happens", "The certificate stops working at once: the CRL and OCSP say revoked, and every session of the account ends. This cannot be undone."},
			},
		})
		return
	}
	if _, err := s.Svc.Revoke(r.Context(), si.actor(r), c.Serial, reason); err != nil {
		s.actionFailed(w, r, si, c.AccountID, err)
		return
	}
	http.Redirect(w, r, accountURL(c.AccountID)+"?done=revoke", http.StatusSeeOther)
}

// handleConsoleAdd is POST /admin/accounts (id, email, role): one new
// account, added as an import of one row (portal.Import), so it gets the
// same mail with a temporary password and a link to the portal.
func (s *Server) handleConsoleAdd(w http.ResponseWriter, r *http.Request, si *signedIn) {
	f, _, err := s.consoleForm(w, r, "id", "email", "role")
	if err != nil {
		s.fail(w, r, err, link{"/admin/", "Back to the console"})
		return
	}
	a := portal.NewAccount{ID: strings.TrimSpace(f["id"]), Email: strings.TrimSpace(f["email"])}
	err = certportal.ValidateID(a.ID)
	if err == nil {
		err = certportal.ValidateEmail(a.Email)
	}
	if err == nil {
		a.Role, err = certportal.ParseRole(f["role"])
	}
	if err == nil {
		err = s.Svc.Import(r.Context(), si.actor(r), "console", []portal.NewAccount{a})
	}
	switch certportal.ErrorCodeOf(err) {
	case "":
		http.Redirect(w, r, accountURL(a.ID)+"?done=added", http.StatusSeeOther)
	case certportal.Invalid, certportal.Conflict:
		s.consoleHome(w, r, si, statusOf(err), &consoleData{AddError: sentence(certportal.ErrorMessage(err)),
			Form: map[string]string{"id": f["id"], "email": f["email"], "role": f["role"]}})
	default:
		s.fail(w, r, err, link{"/admin/", "Back to the console"})
	}
}

// handleConsoleImport is POST /admin/import, a multipart form whose field
// csv is the file: `user import` in the browser.
func (s *Server) handleConsoleImport(w http.ResponseWriter, r *http.Request, si *signedIn) {
	rows, name, err := s.uploadedCSV(r)
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		s.fail(w, r, err, link{"/admin/", "Back to the console"})
		return
	}
	if err == nil {
		err = s.Svc.Import(r.Context(), si.actor(r), "console upload "+strconv.Quote(name), rows)
	}
	switch certportal.ErrorCodeOf(err) {
	case "":
		http.Redirect(w, r, "/admin/?done=imported&n="+strconv.Itoa(len(rows)), http.StatusSeeOther)
	case certportal.Invalid, certportal.Conflict:
		s.consoleHome(w, r, si, statusOf(err), &consoleData{ImportError: sentence(certportal.ErrorMessage(err)) + " Nothing was imported."})
	default:
		s.fail(w, r, err, link{"/admin/", "Back to the console"})
	}
}

// uploadedCSV reads the csv field of a multipart upload and parses it.
// A body that is no multipart form is read to its end first, so one over
// the route's limit is 413 like any other.
func (s *Server) uploadedCSV(r *http.Request) ([]portal.NewAccount, string, error) {
	mr, err := r.MultipartReader()
	if err != nil {
		if _, err := io.Copy(io.Discard, r.Body); err != nil {
			return nil, "", err
		}
		return nil, "", certportal.Errorf(certportal.Invalid, "choose a CSV file to upload")
	}
	for {
		part, err := mr.NextPart()
		if err == io.EOF {
			return nil, "", certportal.Errorf(certportal.Invalid, "choose a CSV file to upload")
		}
		if err != nil {
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				return nil, "", mbe
			}
			return nil, "", errMalformed()
		}
		if part.FormName() != "csv" {
			continue
		}
		name := cleanFileName(part.FileName())
		rows, err := portal.ParseAccountsCSV(part)
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, "", mbe
		}
		return rows, name, err
	}
}

// cleanFileName keeps what the audit log may quote of a file name the
// browser sent: its base, printable, at most 100 bytes.
func cleanFileName(n string) string {
	n = filepath.Base(strings.ReplaceAll(n, "\\", "/"))
	n = strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return -1
		}
		return r
	}, n)
	if len(n) > 100 {
		n = n[:100]
	}
	if n == "" || n == "." || n == "/" {
		return "upload"
	}
	return n
}
