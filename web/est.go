package web

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"io"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/certportal/certportal"
	"github.com/certportal/certportal/ca"
	"github.com/certportal/certportal/portal"
)

// EST (RFC 7030, with the corrections of RFC 8951): enrollment by programs
// and devices that make their key themselves and send a PKCS#10 request.
// Requests and answers are base64 DER; answers are certs-only PKCS#7.
// A first certificate is authenticated by HTTP Basic with the account's
// ID and password (the rules of /login), a re-enrollment by the client
// certificate of the connection. Errors are plain text (RFC 7030 §4.2.3).

// estPrefix is where the EST routes live (RFC 7030 §3.2.2).
const estPrefix = "/.well-known/est/"

// isEST reports whether a request is for an EST route.
func isEST(r *http.Request) bool { return strings.HasPrefix(r.URL.Path, estPrefix) }

// estRealm names the portal in the Basic challenge.
const estRealm = `Basic realm="certportal EST", charset="UTF-8"`

// handleESTCACerts is GET /.well-known/est/cacerts: the issuing CAs
// (the current one first) and the root, so a client can build and trust
// the chain of what it enrolls.
func (s *Server) handleESTCACerts(w http.ResponseWriter, r *http.Request) {
	list := s.Svc.Issuers()
	slices.Reverse(list)
	der, err := ca.CertsOnly(append(list, s.Svc.Root())...)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	// CA certificates change only with a rollover; as /ca/chain.pem.
	w.Header().Set("Cache-Control", "public, max-age=86400")
	writeCertsOnly(w, r, der)
}

// handleESTCSRAttrs is GET /.well-known/est/csrattrs (RFC 7030 §4.5):
// the portal asks for nothing in particular, as the CSR's subject and
// extensions are ignored, so it answers 204 No Content.
func (s *Server) handleESTCSRAttrs(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "public, max-age=86400")
	w.WriteHeader(http.StatusNoContent)
}

// handleESTEnroll is POST /.well-known/est/simpleenroll: the first
// certificate of an account that signs in by password.
func (s *Server) handleESTEnroll(w http.ResponseWriter, r *http.Request) {
	// The body first: an oversized one is 413 whoever sends it.
	body, err := readESTBody(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	id, password, ok := r.BasicAuth()
	if !ok {
		s.fail(w, r, certportal.Errorf(certportal.Unauthorized, "send your user ID and password with HTTP Basic authentication"))
		return
	}
	// The request is checked before the password, so a malformed one
	// changes nothing, not even the lockout counter.
	csr, err := parseESTCSR(r, body)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	en, err := s.Svc.EnrollWithPassword(r.Context(), id, password, remoteAddr(r), csr)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.writeEnrolled(w, r, en)
}

// handleESTReenroll is POST /.well-known/est/simplereenroll: a new
// certificate in place of the one the connection presents, in its renewal
// window. Only the certificate counts, never a session cookie.
func (s *Server) handleESTReenroll(w http.ResponseWriter, r *http.Request) {
	if len(peerChain(r)) == 0 {
		s.fail(w, r, certportal.Errorf(certportal.Unauthorized, "re-enrollment needs your current certificate presented over TLS; none was received"))
		return
	}
	acc, cert, err := s.certSignIn(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	body, err := readESTBody(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	csr, err := parseESTCSR(r, body)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	en, err := s.Svc.Reenroll(r.Context(), portal.User(acc.ID, remoteAddr(r)), acc, cert, csr)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.writeEnrolled(w, r, en)
}

// writeEnrolled answers an enrollment with the new certificate alone
// (RFC 7030 §4.2.3; /cacerts has the chain). The certificate was signed
// by this process a moment ago with the issuing CA, so its chain is known
// to verify: it is remembered as verified, and the client's next request
// with it, typically the next re-enrollment, skips the chain check.
func (s *Server) writeEnrolled(w http.ResponseWriter, r *http.Request, en *portal.Enrolled) {
	der, err := ca.CertsOnly(en.Leaf)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.verified.add(sha256.Sum256(en.Leaf.Raw), s.Svc.Trust(), en.Leaf)
	w.Header().Set("Cache-Control", "no-store")
	writeCertsOnly(w, r, der)
}

// writeCertsOnly writes a certs-only PKCS#7 as EST does: base64 in lines
// of 64 characters, which openssl base64 -d and MIME readers both take.
func writeCertsOnly(w http.ResponseWriter, r *http.Request, der []byte) {
	body := wrapBase64(der)
	h := w.Header()
	h.Set("Content-Type", "application/pkcs7-mime; smime-type=certs-only")
	h.Set("Content-Transfer-Encoding", "base64")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(body)
	}
}

func wrapBase64(der []byte) []byte {
	enc := base64.StdEncoding.EncodeToString(der)
	var b bytes.Buffer
	for len(enc) > 64 {
		b.WriteString(enc[:64])
		b.WriteByte('\n')
		enc = enc[64:]
	}
	b.WriteString(enc)
	b.WriteByte('\n')
	return b.Bytes()
}

// readESTBody reads the body of an enrollment, bounded by the route.
func readESTBody(r *http.Request) ([]byte, error) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, err
		}
		return nil, certportal.Errorf(certportal.Invalid, "the request body could not be read")
	}
	return body, nil
}

// parseESTCSR checks the type of an EST body (application/pkcs10, as RFC
// 7030 §4.2.1 asks), then decodes and checks its CSR: base64 of the DER
// (line breaks and other white space are ignored; RFC 8951 says the
// Content-Transfer-Encoding header is to be ignored), or, leniently, a PEM
// request.
func parseESTCSR(r *http.Request, body []byte) (*ca.CSR, error) {
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if mt != "application/pkcs10" {
		return nil, certportal.Errorf(certportal.Invalid, "send the certificate request as Content-Type: application/pkcs10 (base64 DER)")
	}
	der, err := decodeESTBody(body)
	if err != nil {
		return nil, err
	}
	if der == nil {
		return ca.ParseCSRPEM(body)
	}
	return ca.ParseCSR(der)
}

// decodeESTBody returns the DER in a base64 body, or nil (and no error)
// for a PEM body, which the caller reads as PEM.
func decodeESTBody(body []byte) ([]byte, error) {
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 {
		return nil, certportal.Errorf(certportal.Invalid, "the request body is empty; send the certificate request as base64 DER")
	}
	if bytes.HasPrefix(trimmed, []byte("-----BEGIN")) {
		return nil, nil
	}
	clean := make([]byte, 0, len(trimmed))
	for _, c := range trimmed {
		switch c {
		case ' ', '\t', '\r', '\n':
		default:
			clean = append(clean, c)
		}
	}
	enc := base64.StdEncoding
	if len(clean)%4 != 0 {
		enc = base64.RawStdEncoding // padding left off
	}
	der := make([]byte, enc.DecodedLen(len(clean)))
	n, err := enc.Strict().Decode(der, clean)
	if err != nil || n == 0 {
		return nil, certportal.Errorf(certportal.Invalid, "the request body is not base64; send the DER certificate request encoded in base64")
	}
	return der[:n], nil
}

// estError answers an EST request that failed: the status of err and its
// message as plain text (RFC 7030 §4.2.3), a Basic challenge with 401,
// and a refused certificate as 403 naming why (revoked, expired, unknown,
// cancelled).
func (s *Server) estError(w http.ResponseWriter, r *http.Request, err error) {
	code := statusOf(err)
	msg := certportal.ErrorMessage(err)
	switch {
	case certReason(err) != "":
		code = http.StatusForbidden
		msg = "the certificate was refused (" + certReason(err) + "): " + msg
	case code == http.StatusRequestEntityTooLarge:
		msg = "the request is too large; a certificate request is a few kilobytes"
	case code >= 500:
		s.Log.Error("EST request failed", "path", r.URL.Path, "err", err)
		if !errors.Is(err, portal.ErrBusy) {
			msg = "the portal could not complete the request because of a problem on its side; try again later"
		}
	}
	if code == http.StatusUnauthorized && !strings.HasSuffix(r.URL.Path, "/simplereenroll") {
		w.Header().Set("WWW-Authenticate", estRealm)
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_, _ = io.WriteString(w, sentence(msg)+"\n")
}
