package clientstore

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"time"

	"github.com/certportal/certportal"
)

// ClientConfig returns a TLS configuration for signing in to a portal with
// a personal certificate: the one with the given thumbprint, or for "" the
// one whose issuer chains to a root of the store (the newest by notBefore
// when several do). It trusts only the store's root store (not the
// system's roots), and sends the certificate with its intermediates. The
// returned Entry describes the certificate chosen.
func (s *Store) ClientConfig(thumbprint string) (*tls.Config, *Entry, error) {
	unlock, err := s.lock(false)
	if err != nil {
		return nil, nil, err
	}
	defer unlock()
	cas, err := s.list(Intermediate, Root)
	if err != nil {
		return nil, nil, err
	}
	var e *Entry
	var chain []*x509.Certificate
	if thumbprint != "" {
		if e, err = s.pickPersonal(thumbprint); err != nil {
			return nil, nil, err
		}
		chain, _ = buildChain(e.Cert, cas)
	} else {
		personal, err := s.list(Personal)
		if err != nil {
			return nil, nil, err
		}
		if len(personal) == 0 {
			return nil, nil, errorf(certportal.NotFound, "there is no certificate in the personal store; import one with \"certportal store import\"")
		}
		for i := range personal {
			p := &personal[i]
			c, anchored := buildChain(p.Cert, cas)
			if !anchored || !p.HasKey {
				continue
			}
			if e == nil || p.Cert.NotBefore.After(e.Cert.NotBefore) {
				e, chain = p, c
			}
		}
		if e == nil {
			return nil, nil, errorf(certportal.NotFound, "no personal certificate is issued under a root in your root store; import the portal's PKCS#12 file, which carries its root, or choose one with --thumbprint")
		}
	}
	key, err := s.readKey(e.Thumbprint)
	if err != nil {
		return nil, nil, err
	}
	roots := x509.NewCertPool()
	rootEntries, err := s.list(Root)
	if err != nil {
		return nil, nil, err
	}
	for _, r := range rootEntries {
		roots.AddCert(r.Cert)
	}
	cert := &tls.Certificate{Certificate: [][]byte{e.Cert.Raw}, PrivateKey: key, Leaf: e.Cert}
	for _, c := range chain {
		if isSelfSigned(c) {
			break // the server has the root; sending it only costs bytes
		}
		cert.Certificate = append(cert.Certificate, c.Raw)
	}
	cfg := &tls.Config{
		RootCAs:    roots,
		MinVersion: tls.VersionTLS12,
		// The user chose this certificate, so send it whatever CA names
		// the server lists; crypto/tls would otherwise send nothing when
		// the server names no matching CA.
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return cert, nil
		},
	}
	return cfg, e, nil
}

// WhoamiResult is what the portal's GET /api/whoami answers for a signed-in
// client.
type WhoamiResult struct {
	ID     string `json:"id"`
	Method string `json:"method"`
	Serial string `json:"serial"`
}

// whoamiTimeout bounds one Whoami call when ctx has no earlier deadline.
const whoamiTimeout = 30 * time.Second

// Whoami signs in to the portal at baseURL (https://host[:port][/prefix])
// with the personal certificate ClientConfig picks for thumbprint, and
// returns what GET /api/whoami answers. A refusal by the portal is Forbidden
// (or Unauthorized when it saw no certificate) with a plain sentence, e.g.
// "the portal refused the certificate: it has been revoked"; a network or
// TLS failure is Unavailable with a plain sentence, e.g. "the portal's
// certificate is not issued by a root in your store" — never a raw Go error.
func Whoami(ctx context.Context, baseURL string, s *Store, thumbprint string) (*WhoamiResult, error) {
	u, err := url.Parse(strings.TrimSpace(baseURL))
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return nil, errorf(certportal.Invalid, "%q is not a portal URL; give one like https://portal.example.com", baseURL)
	}
	if u.Scheme != "https" {
		return nil, errorf(certportal.Invalid, "the portal URL must start with https:// (a certificate can be presented only over HTTPS)")
	}
	cfg, _, err := s.ClientConfig(thumbprint)
	if err != nil {
		return nil, err
	}
	u.Path = strings.TrimSuffix(u.Path, "/") + "/api/whoami"
	u.RawQuery, u.Fragment, u.RawPath = "", "", ""
	ctx, cancel := context.WithTimeout(ctx, whoamiTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, wrapf(certportal.Invalid, err, "%q is not a portal URL", baseURL)
	}
	req.Header.Set("Accept", "application/json")
	tr := &http.Transport{
		Proxy:               http.ProxyFromEnvironment,
		TLSClientConfig:     cfg,
		TLSHandshakeTimeout: 15 * time.Second,
		ForceAttemptHTTP2:   true,
	}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return nil, transportError(err, u.Host)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return nil, wrapf(certportal.Unavailable, err, "the connection to %s broke while reading its answer", u.Host)
	}
	var answer struct {
		WhoamiResult
		Error string `json:"error"`
	}
	jsonErr := json.Unmarshal(body, &answer)
	switch resp.StatusCode {
	case http.StatusOK:
		if jsonErr != nil || answer.ID == "" {
			return nil, errorf(certportal.Unavailable, "%s answered, but not like a certportal portal (no user ID in its answer); check the URL", u.Host)
		}
		r := answer.WhoamiResult
		return &r, nil
	case http.StatusForbidden:
		return nil, refusal(answer.Error)
	case http.StatusUnauthorized:
		return nil, errorf(certportal.Unauthorized, "the portal did not receive a certificate it could check; make sure the personal certificate was imported with its private key")
	case http.StatusNotFound:
		return nil, errorf(certportal.Unavailable, "%s has no /api/whoami; check that the URL is the portal's", u.Host)
	}
	return nil, errorf(certportal.Unavailable, "the portal at %s answered with HTTP status %d (%s); try again later", u.Host, resp.StatusCode, http.StatusText(resp.StatusCode))
}

// refusal turns the portal's 403 reason into a sentence.
func refusal(reason string) error {
	const prefix = "the portal refused the certificate"
	why := map[string]string{
		"revoked":   "it has been revoked",
		"expired":   "it has expired",
		"unknown":   "it is not your account's current certificate, or it is from another CA",
		"cancelled": "the account has been cancelled",
	}[reason]
	if why == "" {
		return errorf(certportal.Forbidden, "%s", prefix)
	}
	return errorf(certportal.Forbidden, "%s: %s", prefix, why)
}

// transportError turns a failure to reach the portal into a sentence that
// says what happened and what to check, keeping the Go error as the cause.
func transportError(err error, host string) error {
	var (
		unknownCA x509.UnknownAuthorityError
		hostErr   x509.HostnameError
		invalid   x509.CertificateInvalidError
		dnsErr    *net.DNSError
		recordErr tls.RecordHeaderError
		opErr     *net.OpError
	)
	msg := fmt.Sprintf("could not talk to the portal at %s", host)
	switch {
	case errors.As(err, &unknownCA):
		msg = "the portal's certificate is not issued by a root in your store; import the portal's root (it comes with your PKCS#12 file) or check the URL"
	case errors.As(err, &hostErr):
		msg = fmt.Sprintf("the portal's certificate is not valid for the name %s; check the URL", hostErr.Host)
	case errors.As(err, &invalid) && invalid.Reason == x509.Expired:
		msg = "the portal's certificate has expired or is not yet valid (check this computer's clock)"
	case errors.As(err, &invalid):
		msg = "the portal's certificate is not valid for a TLS server"
	case errors.Is(err, syscall.ECONNREFUSED):
		msg = fmt.Sprintf("could not connect to %s: connection refused", host)
	case errors.As(err, &dnsErr):
		msg = fmt.Sprintf("could not find the host %s (DNS lookup failed)", dnsErr.Name)
	case errors.Is(err, context.DeadlineExceeded) || isTimeout(err):
		msg = fmt.Sprintf("%s did not answer in time", host)
	case errors.Is(err, context.Canceled):
		msg = "the sign-in was cancelled"
	case errors.Is(err, http.ErrSchemeMismatch) || errors.As(err, &recordErr):
		msg = fmt.Sprintf("%s does not speak HTTPS; check the URL and port", host)
	case errors.As(err, &opErr) && opErr.Op == "remote error":
		msg = fmt.Sprintf("the portal at %s refused the TLS connection; it may not accept this certificate", host)
	case errors.Is(err, syscall.ECONNRESET) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		msg = fmt.Sprintf("the portal at %s closed the connection", host)
	case errors.Is(err, syscall.EHOSTUNREACH) || errors.Is(err, syscall.ENETUNREACH):
		msg = fmt.Sprintf("could not connect to %s: no route to the host", host)
	}
	return wrapf(certportal.Unavailable, err, "%s", msg)
}

func isTimeout(err error) bool {
	var t interface{ Timeout() bool }
	return errors.As(err, &t) && t.Timeout()
}
