package clientstore

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"errors"
	"io"
	"mime"
	"net/http"
	"strings"
	"time"

	"github.com/smallstep/pkcs7"
	"software.sslmate.com/src/go-pkcs12"

	"github.com/certportal/certportal"
	"github.com/certportal/certportal/ca"
)

// Enrollment by EST (RFC 7030): the key is made here, only a certificate
// signing request goes to the portal, and the certificate that comes back
// goes into the store with the key, as Import puts a PKCS#12 file's. The
// key never leaves this machine.

// RequestOptions are the choices of Request.
type RequestOptions struct {
	// ID is the user ID the certificate is for.
	ID string
	// Password returns the account password; it is called only when a
	// first certificate is needed (none in the store can re-enroll).
	Password func() (string, error)
	// KeyType of the new key ("" = p256).
	KeyType ca.KeyType
	// Roots are trusted for the portal's TLS certificate besides the
	// store's roots, for a first certificate into an empty store (the
	// portal's root as the user downloaded and checked it). nil = only
	// the store's roots and the system's.
	Roots []*x509.Certificate
}

// RequestResult is what Request did.
type RequestResult struct {
	// Reenrolled is true when the store's certificate authenticated the
	// request over mutual TLS (then Old is the certificate replaced).
	Reenrolled bool
	Old        *Entry
	New        Entry
	Imported   []Imported
}

// estTimeout bounds one enrollment when ctx has no earlier deadline.
const estTimeout = 60 * time.Second

// maxESTAnswer bounds an EST answer: a few certificates in base64.
const maxESTAnswer = 256 << 10

// errNoEST says the portal has no EST routes (404 or 405), so Renew can
// fall back to /api/renew.
var errNoEST = errors.New("the portal does not offer EST")

// Request gets a certificate for a key made here. When the store holds a
// valid personal certificate of opts.ID under one of its roots, it
// re-enrolls with it over mutual TLS (POST simplereenroll; the portal
// allows this in the certificate's renewal window) and removes it from the
// store once the new one is in; otherwise it asks for opts.Password and
// enrolls a first certificate (POST simpleenroll, HTTP Basic). The new
// certificate, its key and the CAs of GET cacerts go into the store as
// Import puts them.
func Request(ctx context.Context, baseURL string, s *Store, opts RequestOptions) (*RequestResult, error) {
	if err := certportal.ValidateID(strings.TrimSpace(opts.ID)); err != nil {
		return nil, err
	}
	id := strings.TrimSpace(opts.ID)
	if _, _, err := portalEndpoint(baseURL, ""); err != nil {
		return nil, err
	}
	current, err := s.currentOf(id)
	if err != nil {
		return nil, err
	}
	if current != nil {
		cfg, old, err := s.ClientConfig(current.Thumbprint)
		if err != nil {
			return nil, err
		}
		return reenroll(ctx, baseURL, s, cfg, old, opts.KeyType)
	}
	if opts.Password == nil {
		return nil, errorf(certportal.Invalid, "the store holds no valid certificate of %s, and no password was given for a first one", id)
	}
	password, err := opts.Password()
	if err != nil {
		return nil, err
	}
	cfg, err := s.trustConfig(opts.Roots)
	if err != nil {
		return nil, err
	}
	key, csr, err := newRequest(id, opts.KeyType)
	if err != nil {
		return nil, err
	}
	leaf, err := estPost(ctx, baseURL, cfg, "simpleenroll", csr, func(r *http.Request) { r.SetBasicAuth(id, password) })
	var unknownCA x509.UnknownAuthorityError
	switch {
	case errors.Is(err, errNoEST):
		return nil, errorf(certportal.Unavailable, "the portal at %s does not offer EST enrollment; get your certificate on its home page instead", baseURL)
	case errors.As(err, &unknownCA):
		return nil, wrapf(certportal.Unavailable, err, "the portal's TLS certificate is not issued by a root this machine trusts; download the portal's root from its \"about certificate\" page, check its thumbprint there, and give the file with --root-cert")
	}
	if err != nil {
		return nil, err
	}
	imported, err := storeEnrolled(ctx, baseURL, s, cfg, leaf, key)
	if err != nil {
		return nil, err
	}
	return &RequestResult{New: imported[0].Entry, Imported: imported}, nil
}

// currentOf returns the personal certificate that can re-enroll for id,
// or nil: the newest one of the ID that has its key, is valid now and
// chains to a root of the store (the portal decides whether it is current
// and in its renewal window).
func (s *Store) currentOf(id string) (*Entry, error) {
	personal, err := s.List(Personal)
	if err != nil {
		return nil, err
	}
	cas, err := s.List(Intermediate)
	if err != nil {
		return nil, err
	}
	roots, err := s.List(Root)
	if err != nil {
		return nil, err
	}
	cas = append(cas, roots...)
	now := time.Now()
	var best *Entry
	for i := range personal {
		e := &personal[i]
		if !e.HasKey || certportal.IDKey(e.Cert.Subject.CommonName) != certportal.IDKey(id) ||
			now.Before(e.Cert.NotBefore) || !now.Before(e.Cert.NotAfter) {
			continue
		}
		if _, anchored := buildChain(e.Cert, cas); anchored && (best == nil || e.Cert.NotBefore.After(best.Cert.NotBefore)) {
			best = e
		}
	}
	return best, nil
}

// reenroll renews old by EST over mutual TLS (cfg presents it) with a new
// key of kt ("" = the old key's type), stores the result and then removes
// old, so an interruption leaves a working certificate in the store.
func reenroll(ctx context.Context, baseURL string, s *Store, cfg *tls.Config, old *Entry, kt ca.KeyType) (*RequestResult, error) {
	if kt == "" {
		kt = ca.KeyTypeOf(old.Cert.PublicKey)
	}
	key, csr, err := newRequest(old.Cert.Subject.CommonName, kt)
	if err != nil {
		return nil, err
	}
	leaf, err := estPost(ctx, baseURL, cfg, "simplereenroll", csr, nil)
	if err != nil {
		return nil, err
	}
	imported, err := storeEnrolled(ctx, baseURL, s, cfg, leaf, key)
	if err != nil {
		return nil, err
	}
	res := &RequestResult{Reenrolled: true, Old: old, New: imported[0].Entry, Imported: imported}
	if err := s.Delete(old.Thumbprint, Personal); err != nil {
		return res, wrapf(certportal.ErrorCodeOf(err), err,
			"the new certificate is in your store, but the old one (%s) could not be removed: %s", old.Thumbprint, certportal.ErrorMessage(err))
	}
	return res, nil
}

// newRequest makes a key and a CSR for it. The subject names the ID for
// the reader's sake; the portal ignores it and writes its own.
func newRequest(id string, kt ca.KeyType) (crypto.Signer, []byte, error) {
	key, err := ca.GenerateKey(rand.Reader, kt)
	if err != nil {
		return nil, nil, err
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: id}}, key)
	if err != nil {
		return nil, nil, wrapf(certportal.Internal, err, "cannot make the certificate request")
	}
	return key, der, nil
}

// trustConfig is the TLS configuration of a first enrollment: the store's
// roots, the system's and extra, no client certificate.
func (s *Store) trustConfig(extra []*x509.Certificate) (*tls.Config, error) {
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	roots, err := s.List(Root)
	if err != nil {
		return nil, err
	}
	for _, r := range roots {
		pool.AddCert(r.Cert)
	}
	for _, c := range extra {
		pool.AddCert(c)
	}
	return &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}, nil
}

// estPost sends a CSR to an EST route and returns the certificate of the
// answer.
func estPost(ctx context.Context, baseURL string, cfg *tls.Config, op string, csr []byte, auth func(*http.Request)) (*x509.Certificate, error) {
	body := []byte(base64.StdEncoding.EncodeToString(csr))
	answer, host, err := estDo(ctx, baseURL, cfg, http.MethodPost, op, body, auth)
	if err != nil {
		return nil, err
	}
	certs, err := parseCertsOnly(answer, host)
	if err != nil {
		return nil, err
	}
	return certs[0], nil
}

// estDo makes one EST request and returns the answer's body, checked to
// be PKCS#7; a refusal becomes an error with the portal's sentence.
func estDo(ctx context.Context, baseURL string, cfg *tls.Config, method, op string, body []byte, auth func(*http.Request)) ([]byte, string, error) {
	endpoint, host, err := portalEndpoint(baseURL, "/.well-known/est/"+op)
	if err != nil {
		return nil, "", err
	}
	ctx, cancel := context.WithTimeout(ctx, estTimeout)
	defer cancel()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, endpoint, rd)
	if err != nil {
		return nil, "", wrapf(certportal.Invalid, err, "%q is not a portal URL", baseURL)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/pkcs10")
		req.Header.Set("Content-Transfer-Encoding", "base64")
	}
	if auth != nil {
		auth(req)
	}
	tr := &http.Transport{
		Proxy:               http.ProxyFromEnvironment,
		TLSClientConfig:     cfg,
		TLSHandshakeTimeout: 15 * time.Second,
		ForceAttemptHTTP2:   true,
	}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return nil, host, transportError(err, host)
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, maxESTAnswer+1))
	if err != nil {
		return nil, host, wrapf(certportal.Unavailable, err, "the connection to %s broke while reading its answer; run \"certportal whoami\" to see whether a certificate was issued", host)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, host, estRefusal(resp.StatusCode, answer, host)
	}
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt != "application/pkcs7-mime" || len(answer) > maxESTAnswer {
		return nil, host, errorf(certportal.Unavailable, "%s answered, but not with certificates (%s); check that the URL is the portal's", host, resp.Header.Get("Content-Type"))
	}
	return answer, host, nil
}

// estRefusal turns a refused EST request into an error: the portal's
// plain-text sentence, with the code its status stands for.
func estRefusal(status int, body []byte, host string) error {
	// The portal writes a sentence; here it goes after a colon.
	msg := strings.TrimSuffix(printable(string(body)), ".")
	if len(msg) > 1 && msg[0] >= 'A' && msg[0] <= 'Z' && msg[1] >= 'a' && msg[1] <= 'z' {
		msg = strings.ToLower(msg[:1]) + msg[1:]
	}
	switch status {
	case http.StatusNotFound, http.StatusMethodNotAllowed:
		return wrapf(certportal.Unavailable, errNoEST, "%s does not offer EST enrollment (/.well-known/est/); check that the URL is the portal's and that the portal is up to date", host)
	case http.StatusUnauthorized:
		return errorf(certportal.Unauthorized, "the portal refused the sign-in: %s", orDefault(msg, "the user ID or password is wrong"))
	case http.StatusForbidden:
		return errorf(certportal.Forbidden, "the portal refused the request: %s", orDefault(msg, "not allowed"))
	case http.StatusConflict:
		return errorf(certportal.Conflict, "the portal refused to renew the certificate: %s", orDefault(msg, "not now"))
	case http.StatusBadRequest, http.StatusRequestEntityTooLarge:
		return errorf(certportal.Invalid, "the portal refused the request: %s", orDefault(msg, "malformed"))
	case http.StatusTooManyRequests:
		return errorf(certportal.RateLimited, "the portal refused the request: %s", orDefault(msg, "too many requests"))
	}
	return errorf(certportal.Unavailable, "the portal at %s answered with HTTP status %d (%s); try again later", host, status, http.StatusText(status))
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// parseCertsOnly reads a base64 certs-only PKCS#7 answer.
func parseCertsOnly(answer []byte, host string) ([]*x509.Certificate, error) {
	clean := bytes.Map(func(r rune) rune {
		if r == '\r' || r == '\n' || r == ' ' || r == '\t' {
			return -1
		}
		return r
	}, answer)
	der, err := base64.StdEncoding.DecodeString(string(clean))
	if err != nil {
		return nil, wrapf(certportal.Unavailable, err, "%s answered with something that is not base64; check that the URL is the portal's", host)
	}
	p7, err := pkcs7.Parse(der)
	if err != nil || len(p7.Certificates) == 0 {
		return nil, errorf(certportal.Unavailable, "%s answered with something that holds no certificate; check that the URL is the portal's", host)
	}
	return p7.Certificates, nil
}

// storeEnrolled fetches the portal's CA certificates (GET cacerts, over
// the connection's trust), checks that leaf belongs to key and chains to
// them, and imports leaf, key and the chain: through Import itself, from
// a PKCS#12 made in memory, so the store's files are written by its one
// writer, exactly as for a file from the portal. The PKCS#12 password is
// random and forgotten; nothing but the store is written.
func storeEnrolled(ctx context.Context, baseURL string, s *Store, cfg *tls.Config, leaf *x509.Certificate, key crypto.Signer) ([]Imported, error) {
	if !samePublicKey(leaf.PublicKey, key.Public()) {
		return nil, errorf(certportal.Unavailable, "the portal sent a certificate for another key; nothing was stored")
	}
	answer, host, err := estDo(ctx, baseURL, caConfig(cfg), http.MethodGet, "cacerts", nil, nil)
	if err != nil {
		return nil, wrapf(certportal.ErrorCodeOf(err), err, "your certificate was issued, but the portal's CA certificates could not be fetched (%s); nothing was stored", certportal.ErrorMessage(err))
	}
	cas, err := parseCertsOnly(answer, host)
	if err != nil {
		return nil, err
	}
	chain, err := chainOf(leaf, cas)
	if err != nil {
		return nil, err
	}
	pw, err := transportPassword()
	if err != nil {
		return nil, err
	}
	p12, err := pkcs12.Modern2023.WithRand(rand.Reader).Encode(key, leaf, chain, pw)
	if err != nil {
		return nil, wrapf(certportal.Internal, err, "cannot store the new certificate")
	}
	imported, err := s.Import(p12, pw)
	if err != nil {
		return nil, wrapf(certportal.ErrorCodeOf(err), err,
			"your certificate was issued, but it could not be stored (%s); the key exists only in this process, so request a certificate again", certportal.ErrorMessage(err))
	}
	return imported, nil
}

// caConfig is cfg without the client certificate: the CA certificates are
// public, and a re-enrollment's certificate is superseded by now.
func caConfig(cfg *tls.Config) *tls.Config {
	c := cfg.Clone()
	c.GetClientCertificate, c.Certificates = nil, nil
	return c
}

// chainOf returns the issuing CA of leaf and the root above it, from the
// certificates of cacerts, checking the signatures.
func chainOf(leaf *x509.Certificate, cas []*x509.Certificate) ([]*x509.Certificate, error) {
	roots, inter := x509.NewCertPool(), x509.NewCertPool()
	for _, c := range cas {
		if isSelfSigned(c) {
			roots.AddCert(c)
		} else {
			inter.AddCert(c)
		}
	}
	// At the leaf's notBefore: this checks who signed it, not this
	// machine's clock, which may be a little behind the portal's.
	chains, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: leaf.NotBefore,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	if err != nil || len(chains) == 0 {
		return nil, wrapf(certportal.Unavailable, err, "the certificate the portal sent does not chain to the CA certificates it publishes; nothing was stored")
	}
	return chains[0][1:], nil
}

// renewEST is Renew by EST re-enrollment; it returns an error wrapping
// errNoEST, having changed nothing, when the portal does not offer EST.
func renewEST(ctx context.Context, baseURL string, s *Store, thumbprint string) (*RenewResult, error) {
	cfg, old, err := s.ClientConfig(thumbprint)
	if err != nil {
		return nil, err
	}
	res, err := reenroll(ctx, baseURL, s, cfg, old, "")
	if res == nil {
		return nil, err
	}
	return &RenewResult{Old: *res.Old, New: res.New, Imported: res.Imported}, err
}
