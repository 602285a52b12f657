package web

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/crypto/ocsp"

	"github.com/certportal/certportal"
	"github.com/certportal/certportal/ca"
)

// handleCACert serves one CA certificate as DER (application/pkix-cert,
// RFC 2585), which is what the caIssuers URLs in certificates point at.
func (s *Server) handleCACert(get func() *x509.Certificate) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		c := get()
		w.Header().Set("Content-Type", "application/pkix-cert")
		// CA certificates change only with a new installation.
		w.Header().Set("Cache-Control", "public, max-age=86400")
		if r.Method != http.MethodHead {
			_, _ = w.Write(c.Raw)
		}
	}
}

// handleChain serves the issuing CAs (newest first) and the root as PEM
// (RFC 8555's application/pem-certificate-chain), for tools that take a
// bundle.
func (s *Server) handleChain(w http.ResponseWriter, r *http.Request) {
	var buf bytes.Buffer
	list := s.Svc.Issuers()
	slices.Reverse(list)
	for _, c := range append(list, s.Svc.Root()) {
		_ = pem.Encode(&buf, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
	}
	w.Header().Set("Content-Type", "application/pem-certificate-chain")
	w.Header().Set("Cache-Control", "public, max-age=86400")
	if r.Method != http.MethodHead {
		_, _ = w.Write(buf.Bytes())
	}
}

// caByFile finds the CA that /ca/<CN>.crt or /crl/<CN>.crl names: an
// issuing CA or the root. The path value is already unescaped.
func (s *Server) caByFile(file, ext string) *x509.Certificate {
	cn, ok := strings.CutSuffix(file, ext)
	if !ok {
		return nil
	}
	return s.Svc.CAByName(cn)
}

// handleCAFile is GET /ca/{file} and GET /crl/{file}: a CA certificate or
// CRL by the CA's name, where user certificates' caIssuers and CRL
// distribution points point (/ca/SOP-ICA1.crt, /crl/SOP-ICA2.crl). The
// fixed names /ca/issuing.crt and /crl/issuing.crl stay the current CA's.
func (s *Server) handleCAFile(ext string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		c := s.caByFile(r.PathValue("file"), ext)
		if c == nil {
			s.page(w, r, http.StatusNotFound, "message", pageData{
				Title: "Page not found", Message: "There is no CA by that name.",
				Links: []link{{"/about/certificate", "About the certificate"}},
			})
			return
		}
		get := func() *x509.Certificate { return c }
		if ext == ".crl" {
			s.handleCRL(get)(w, r)
			return
		}
		s.handleCACert(get)(w, r)
	}
}

// handleCRL serves the current CRL of a CA (DER, application/pkix-crl).
func (s *Server) handleCRL(get func() *x509.Certificate) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		der, err := s.Svc.CRL(r.Context(), get().Subject.CommonName)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		w.Header().Set("Content-Type", "application/pkix-crl")
		// A minute: a revocation shows in the next download, yet a crowd
		// of clients does not reach the database each time.
		w.Header().Set("Cache-Control", "public, max-age=60")
		if r.Method != http.MethodHead {
			_, _ = w.Write(der)
		}
	}
}

// handleOCSPPost is POST /ocsp (RFC 6960 appendix A.1).
func (s *Server) handleOCSPPost(w http.ResponseWriter, r *http.Request) {
	body, err := readBody(r) // bounded by the route (routes.go)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.WriteHeader(http.StatusRequestEntityTooLarge)
			_, _ = w.Write([]byte(ocspTooLarge))
			return
		}
		s.writeOCSP(w, r, ocspReplyOf(http.StatusOK, ocsp.MalformedRequestErrorResponse))
		return
	}
	s.writeOCSP(w, r, s.ocspReply(r.Context(), r.Method, body, ""))
}

// ocspTooLarge is the answer to an OCSP POST over the body limit (413).
const ocspTooLarge = "the OCSP request is too large\n"

// readBody reads a request's body: at once into a buffer of its declared
// length when there is one (an OCSP request is about 100 bytes), else as
// io.ReadAll does. The route's MaxBytesReader bounds both.
func readBody(r *http.Request) ([]byte, error) {
	n := r.ContentLength
	if n <= 0 || n > DefaultMaxBody {
		return io.ReadAll(r.Body)
	}
	b := make([]byte, n+1) // one more, to see a body longer than declared
	got, err := io.ReadFull(r.Body, b)
	switch {
	case err == io.ErrUnexpectedEOF && int64(got) == n:
		return b[:n], nil
	case err == nil:
		return nil, errors.New("the body is longer than its Content-Length")
	case err == io.ErrUnexpectedEOF || err == io.EOF:
		return nil, io.ErrUnexpectedEOF
	}
	return nil, err
}

// handleOCSPGet is GET /ocsp/{request...}: escaped is the rest of the
// escaped path, the base64 of the DER request, which may contain "/" and
// may be URL-escaped (%2F, %2B, %3D) in whole or in part.
func (s *Server) handleOCSPGet(w http.ResponseWriter, r *http.Request, escaped string) {
	switch {
	case r.Method == http.MethodPost && escaped == "":
		// A client that appended a slash to the responder URL.
		r.Body = http.MaxBytesReader(w, r.Body, s.MaxBody)
		s.handleOCSPPost(w, r)
		return
	case r.Method != http.MethodGet && r.Method != http.MethodHead:
		w.Header().Set("Allow", "GET, HEAD")
		s.page(w, r, http.StatusMethodNotAllowed, "message", pageData{
			Title: "Not allowed", Message: "The OCSP responder takes GET /ocsp/<base64 request> or POST /ocsp.",
		})
		return
	}
	s.writeOCSP(w, r, s.ocspGetReply(r.Context(), r.Method, escaped, r.Header.Get("If-None-Match")))
}

// ocspGetReply is the answer to GET or HEAD /ocsp/{escaped}.
func (s *Server) ocspGetReply(ctx context.Context, method, escaped, ifNoneMatch string) ocspReply {
	der, ok := decodeOCSPPath(escaped)
	if !ok {
		return ocspReplyOf(http.StatusOK, ocsp.MalformedRequestErrorResponse)
	}
	return s.ocspReply(ctx, method, der, ifNoneMatch)
}

// decodeOCSPPath decodes the base64 of an OCSP GET request.
func decodeOCSPPath(escaped string) ([]byte, bool) {
	if escaped == "" || len(escaped) > 4*DefaultMaxBody {
		return nil, false
	}
	p, err := url.PathUnescape(escaped)
	if err != nil {
		return nil, false
	}
	// RFC 6960 asks for standard base64; some clients drop the padding
	// or use the URL alphabet.
	p = strings.TrimRight(p, "=")
	for _, enc := range []*base64.Encoding{base64.RawStdEncoding, base64.RawURLEncoding} {
		if der, err := enc.DecodeString(p); err == nil && len(der) > 0 {
			return der, true
		}
	}
	return nil, false
}

// ocspReply is the HTTP answer to an OCSP request, made once for both
// servers that send it: net/http on the HTTPS listener (writeOCSP) and
// the plain-HTTP listener's (plainserver.go). Header values are shared
// and only read.
type ocspReply struct {
	code   int
	header []headerValue // besides the security headers
	body   []byte        // nil for 304
}

type headerValue struct {
	key string   // canonical
	val []string // one element
}

// ocspReplyOf is a reply that caches must not keep: every answer reflects
// the database now.
func ocspReplyOf(code int, body []byte) ocspReply {
	return ocspReply{code: code, header: ocspNoCache, body: body}
}

var ocspNoCache = []headerValue{
	{"Content-Type", []string{"application/ocsp-response"}},
	{"Cache-Control", []string{"no-cache"}},
}

// ocspReply answers an OCSP request. A request that cannot be parsed gets
// the malformedRequest response with HTTP 200, as RFC 6960 (section 2.3)
// has the status travel inside the OCSP response; a database failure gets
// tryLater with 503. ifNoneMatch is the GET's If-None-Match.
func (s *Server) ocspReply(ctx context.Context, method string, der []byte, ifNoneMatch string) ocspReply {
	ans, err := s.Svc.OCSP(ctx, der)
	switch code := certportal.ErrorCodeOf(err); code {
	case "":
		if method != http.MethodPost && ans.Cacheable {
			return s.cacheableOCSP(ans, ifNoneMatch)
		}
		return ocspReplyOf(http.StatusOK, ans.DER)
	case certportal.Invalid:
		return ocspReplyOf(http.StatusOK, ocsp.MalformedRequestErrorResponse)
	case certportal.Unavailable:
		s.Log.Warn("OCSP: database unavailable", "err", err)
		return ocspReplyOf(http.StatusServiceUnavailable, ocsp.TryLaterErrorResponse)
	default:
		s.Log.Error("OCSP request failed", "err", err)
		return ocspReplyOf(http.StatusInternalServerError, ocsp.InternalErrorErrorResponse)
	}
}

// ocspMaxAge bounds how long a cache may keep an OCSP GET answer: a
// revocation reaches a client behind a cache within this time, and no
// answer is kept past its nextUpdate.
const ocspMaxAge = time.Hour

// cacheableOCSP answers an OCSP GET whose response is the same for
// everyone (no nonce) so that HTTP caches and CDNs can serve it (RFC 5019
// section 6): max-age up to nextUpdate, an ETag of the response,
// Last-Modified its thisUpdate, and 304 for a client that has it already.
func (s *Server) cacheableOCSP(ans ca.OCSPAnswer, ifNoneMatch string) ocspReply {
	sum := sha256.Sum256(ans.DER)
	etag := `"` + hex.EncodeToString(sum[:16]) + `"`
	age := min(ans.NextUpdate.Sub(s.Svc.Time()), ocspMaxAge)
	h := []headerValue{
		{"Etag", []string{etag}},
		{"Last-Modified", []string{ans.ThisUpdate.UTC().Format(http.TimeFormat)}},
	}
	if age <= 0 {
		h = append(h, headerValue{"Cache-Control", []string{"no-cache"}})
	} else {
		h = append(h,
			headerValue{"Cache-Control", []string{fmt.Sprintf("max-age=%d, public, no-transform, must-revalidate", int(age/time.Second))}},
			headerValue{"Expires", []string{s.Svc.Time().Add(age).UTC().Format(http.TimeFormat)}})
	}
	if ifNoneMatch != "" && (ifNoneMatch == etag || ifNoneMatch == "*") {
		return ocspReply{code: http.StatusNotModified, header: h}
	}
	h = append(h,
		headerValue{"Content-Type", []string{"application/ocsp-response"}},
		headerValue{"Content-Length", []string{strconv.Itoa(len(ans.DER))}})
	return ocspReply{code: http.StatusOK, header: h, body: ans.DER}
}

// writeOCSP sends rep through net/http; HEAD gets the headers alone.
func (s *Server) writeOCSP(w http.ResponseWriter, r *http.Request, rep ocspReply) {
	h := w.Header()
	for _, hv := range rep.header {
		h[hv.key] = hv.val
	}
	w.WriteHeader(rep.code)
	if r.Method != http.MethodHead && rep.body != nil {
		_, _ = w.Write(rep.body)
	}
}
