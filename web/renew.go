package web

import (
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/certportal/certportal"
	"github.com/certportal/certportal/portal"
)

// Renewal: a user signed in with a certificate renews it in its last days
// (portal.Config.RenewWindow) without a password, from the home page
// (POST /certificate/renew, for a session bound to a certificate) or from
// the command line (POST /api/renew, for the certificate presented on the
// request). Both answer with the new PKCS#12 file, as POST /certificate does.

// renewState says what the home page offers for renewal: the form when the
// session's certificate is the account's current one and inside its
// window, else the date the window opens (zero when there is nothing to
// say, e.g. in a password session).
func (s *Server) renewState(si *signedIn, cur *certportal.Certificate) (can bool, from time.Time) {
	if si.sess.CertSerial == "" || cur == nil || cur.Serial != si.sess.CertSerial {
		return false, time.Time{}
	}
	return s.Svc.CanRenew(cur), s.Svc.RenewableFrom(cur)
}

// p12Fields reads the PKCS#12 password (twice) and the format of a
// certificate form: POST /certificate and POST /certificate/renew.
func (s *Server) p12Fields(w http.ResponseWriter, r *http.Request) (password string, format p12Format, err error) {
	f, err := s.parseForm(w, r, []string{"p12_password", "p12_password_confirm"}, "format")
	if err != nil {
		return "", 0, err
	}
	if format, err = parseFormat(f["format"]); err != nil {
		return "", 0, err
	}
	pw := f["p12_password"]
	switch {
	case pw != f["p12_password_confirm"]:
		return "", 0, certportal.Errorf(certportal.Invalid, "The two passwords for the certificate file differ. Type the same password twice.")
	}
	if err := certportal.ValidateP12Password(pw); err != nil {
		return "", 0, err
	}
	return pw, format, nil
}

// parseFormat reads the optional format field: "" or "modern", "legacy",
// "apple".
func parseFormat(v string) (p12Format, error) {
	switch v {
	case "", "modern":
		return formatModern, nil
	case "legacy":
		return formatLegacy, nil
	case "apple":
		return formatApple, nil
	}
	return 0, errMalformed()
}

// writeP12 answers with a PKCS#12 file named after the account.
func writeP12(w http.ResponseWriter, id string, p12 []byte) {
	h := w.Header()
	h.Set("Content-Type", "application/x-pkcs12")
	h.Set("Cache-Control", "no-store")
	// The ID is limited to A-Z a-z 0-9 . _ @ -, so it needs no escaping.
	h.Set("Content-Disposition", `attachment; filename="`+id+`.p12"`)
	h.Set("Content-Length", strconv.Itoa(len(p12)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(p12)
}

// handleRenew is POST /certificate/renew: the session's certificate is
// renewed and the new one downloads. The session stays signed in, bound to
// the new certificate.
func (s *Server) handleRenew(w http.ResponseWriter, r *http.Request, si *signedIn) {
	acc := si.account
	back := link{"/", "Back to the portal"}
	pw, format, err := s.p12Fields(w, r)
	if certportal.ErrorCodeOf(err) == certportal.Invalid {
		s.renderHome(w, r, si, http.StatusBadRequest, pageData{RenewError: sentence(certportal.ErrorMessage(err))})
		return
	}
	if err != nil {
		s.fail(w, r, err, back)
		return
	}
	issued, err := s.Svc.Renew(r.Context(), portal.User(acc.ID, remoteAddr(r)), portal.RenewRequest{
		Serial: si.sess.CertSerial, P12Password: pw, Legacy: format.legacy(), KeepSession: si.keep(),
	})
	if errors.Is(err, portal.ErrRenewTooEarly) {
		s.page(w, r, statusOf(err), "message", pageData{
			Title: "Your certificate cannot be renewed yet", Message: sentence(certportal.ErrorMessage(err)),
			SignedIn: true, Links: []link{back},
		})
		return
	}
	if err != nil {
		if reason := certReason(err); reason != "" {
			s.certRefused(w, r, err)
			return
		}
		s.fail(w, r, err, back)
		return
	}
	s.writeCertificateFile(w, r, format, acc.ID, issued.P12)
}

// renewAPIRequest is the JSON body of POST /api/renew. The PKCS#12
// password only protects the file on its way to the client, which
// generates it; it is never stored or logged.
type renewAPIRequest struct {
	P12Password string `json:"p12_password"`
	Format      string `json:"format,omitempty"` // "", "modern", "legacy" or "apple"
}

// handleAPIRenew is POST /api/renew for a client presenting its
// certificate (certportal store renew): JSON {"p12_password": ...,
// "format": ...} or the form fields of /certificate/renew in; the PKCS#12
// file out. Only the certificate on the request counts, never a session
// cookie, so a browser page cannot drive it. Errors are JSON:
// {"error": code or refusal reason, "message": a sentence for the user}.
func (s *Server) handleAPIRenew(w http.ResponseWriter, r *http.Request) {
	if len(peerChain(r)) == 0 {
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "unauthenticated",
			"message": "renewal needs the certificate to be presented over TLS; none was received"})
		return
	}
	acc, cert, err := s.certSignIn(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	req, err := s.readRenewAPI(w, r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	format, err := parseFormat(req.Format)
	if err == nil {
		err = certportal.ValidateP12Password(req.P12Password)
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	issued, err := s.Svc.Renew(r.Context(), portal.User(acc.ID, remoteAddr(r)), portal.RenewRequest{
		Serial: cert.Serial, P12Password: req.P12Password, Legacy: format.legacy(),
	})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.writeCertificateFile(w, r, format, acc.ID, issued.P12)
}

// readRenewAPI reads the body of POST /api/renew: JSON (one object, known
// fields only) or a urlencoded form, at most MaxBody bytes.
func (s *Server) readRenewAPI(w http.ResponseWriter, r *http.Request) (*renewAPIRequest, error) {
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if mt == "application/x-www-form-urlencoded" {
		f, err := s.parseForm(w, r, []string{"p12_password"}, "p12_password_confirm", "format")
		if err != nil {
			return nil, err
		}
		if c, ok := f["p12_password_confirm"]; ok && c != f["p12_password"] {
			return nil, certportal.Errorf(certportal.Invalid, "the two passwords for the certificate file differ")
		}
		return &renewAPIRequest{P12Password: f["p12_password"], Format: f["format"]}, nil
	}
	if mt != "application/json" {
		return nil, certportal.Errorf(certportal.Invalid, "send the request as JSON (Content-Type: application/json)")
	}
	dec := json.NewDecoder(r.Body) // bounded by the route (routes.go)
	dec.DisallowUnknownFields()
	var req renewAPIRequest
	if err := dec.Decode(&req); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, err
		}
		return nil, certportal.Errorf(certportal.Invalid, "the request is not the JSON object the portal expects")
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, certportal.Errorf(certportal.Invalid, "the request is not the JSON object the portal expects")
	}
	if !utf8.ValidString(req.P12Password) {
		return nil, errMalformed()
	}
	return &req, nil
}
