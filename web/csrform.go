package web

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/certportal/certportal"
	"github.com/certportal/certportal/ca"
	"github.com/certportal/certportal/portal"
)

// The home page's "Use a key from your own device": a signed-in user whose
// method is password pastes or uploads a CSR (PEM, or DER as a file) and
// gets the certificate and its chain as PEM. The rules are POST
// /certificate's; only the key's origin differs, and the portal never
// sees it.

// handleCertificateCSR is POST /certificate/csr (multipart fields csr,
// the pasted PEM, and csr_file, an uploaded file; or a urlencoded csr).
func (s *Server) handleCertificateCSR(w http.ResponseWriter, r *http.Request, si *signedIn) {
	acc := si.account
	if si.sess.CertSerial != "" || acc.Method != certportal.MethodPassword {
		s.page(w, r, http.StatusForbidden, "message", pageData{
			Title:    "You already have a certificate",
			Message:  "This account signs in with its certificate. To get a new certificate (for example because yours was lost), change the sign-in method first; a temporary password will be e-mailed to you.",
			SignedIn: true, Links: []link{recoverLink, {"/", "Back to the portal"}},
		})
		return
	}
	data, file, err := s.csrField(w, r)
	var csr *ca.CSR
	switch {
	case err != nil:
	case file:
		csr, err = parseCSRFile(data)
	default:
		csr, err = ca.ParseCSRPEM(data)
	}
	var en *portal.Enrolled
	if err == nil {
		en, err = s.Svc.Enroll(r.Context(), portal.User(acc.ID, remoteAddr(r)), portal.EnrollRequest{ID: acc.ID, CSR: csr, KeepSession: si.keep()})
	}
	switch {
	case err == nil:
	case certportal.ErrorCodeOf(err) == certportal.Invalid:
		// The page again, the reason beside the field.
		s.renderHome(w, r, si, http.StatusBadRequest, pageData{CSRError: sentence(certportal.ErrorMessage(err))})
		return
	case refusalOf(err) != nil:
		s.refuse(w, r, refusalOf(err))
		return
	default:
		s.fail(w, r, err, link{"/", "Back to the portal"})
		return
	}
	var out bytes.Buffer
	for _, c := range append([]*x509.Certificate{en.Leaf}, en.Chain...) {
		_ = pem.Encode(&out, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
	}
	h := w.Header()
	// RFC 8555's type for a certificate followed by its chain.
	h.Set("Content-Type", "application/pem-certificate-chain")
	h.Set("Cache-Control", "no-store")
	// The ID is limited to A-Z a-z 0-9 . _ @ -, so it needs no escaping.
	h.Set("Content-Disposition", `attachment; filename="`+acc.ID+`.pem"`)
	h.Set("Content-Length", strconv.Itoa(out.Len()))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(out.Bytes())
}

// csrField reads the CSR of the form: the uploaded file when one was
// chosen (file is true), else the pasted text. The body is bounded by the
// route.
func (s *Server) csrField(w http.ResponseWriter, r *http.Request) (data []byte, file bool, err error) {
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if mt != "multipart/form-data" {
		f, err := s.parseForm(w, r, nil, "csr")
		if err != nil {
			return nil, false, err
		}
		return []byte(f["csr"]), false, nil
	}
	if err := r.ParseMultipartForm(s.MaxBody); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, false, err
		}
		return nil, false, errMalformed()
	}
	if files := r.MultipartForm.File["csr_file"]; len(files) == 1 && files[0].Size > 0 {
		data, err := readUpload(files[0])
		return data, true, err
	}
	v := r.MultipartForm.Value["csr"]
	if len(v) > 1 || (len(v) == 1 && !utf8.ValidString(v[0])) {
		return nil, false, errMalformed()
	}
	if len(v) == 0 || strings.TrimSpace(v[0]) == "" {
		return nil, false, certportal.Errorf(certportal.Invalid, "paste your certificate request (CSR) or choose its file")
	}
	return []byte(v[0]), false, nil
}

func readUpload(fh *multipart.FileHeader) ([]byte, error) {
	f, err := fh.Open()
	if err != nil {
		return nil, errMalformed()
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, ca.MaxCSRSize*2+1))
	if err != nil {
		return nil, errMalformed()
	}
	return data, nil
}

// parseCSRFile reads an uploaded CSR file: PEM (.csr, .pem) or DER (made
// with -outform DER).
func parseCSRFile(data []byte) (*ca.CSR, error) {
	if bytes.Contains(data, []byte("-----BEGIN")) {
		return ca.ParseCSRPEM(data)
	}
	return ca.ParseCSR(data)
}
