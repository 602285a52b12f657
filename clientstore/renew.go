package clientstore

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode"

	"github.com/certportal/certportal"
)

// RenewResult is what Renew did: the certificate it renewed (now removed
// from the personal store), the new one, and every certificate of the new
// PKCS#12 file as Import reports it (the CAs are usually there already).
type RenewResult struct {
	Old      Entry
	New      Entry
	Imported []Imported
}

// renewTimeout bounds one Renew call when ctx has no earlier deadline: the
// portal generates a key and signs, which takes longer than a sign-in.
const renewTimeout = 60 * time.Second

// transportPasswordBytes is the entropy of the PKCS#12 password Renew
// generates: 32 random bytes, far beyond what an offline attack on the
// file's PBKDF2 could guess, so the file needs no password from the user.
const transportPasswordBytes = 32

// RenewOptions are the choices of a renewal; the zero value renews the
// store's certificate as ClientConfig picks it, with a random password.
type RenewOptions struct {
	// Thumbprint chooses the personal certificate to renew ("" = the one
	// ClientConfig picks).
	Thumbprint string
	// Password protects the PKCS#12 file in transit instead of a random
	// one ("" = random); it must have at least 12 characters.
	Password string
	// Legacy asks the portal for a 3DES/SHA-1 file, which changes nothing
	// in the store.
	Legacy bool
}

// Renew renews the personal certificate ClientConfig picks for
// opts.Thumbprint at the portal at baseURL. When the portal offers EST and
// no file password or format was asked for, it re-enrolls over mutual TLS
// with a new key of the old key's type made here (see Request). Otherwise
// it signs in with that certificate over mutual
// TLS and POSTs to /api/renew, imports the new PKCS#12 file into the store,
// and only then removes the old certificate and its key from personal, so
// an interruption at any point leaves a working certificate in the store.
//
// The PKCS#12 password only protects the file on its way from the portal
// to this process (inside TLS); the file is never written anywhere as it
// is. Renew therefore generates a random one instead of asking the user
// for a password they would never need again (opts.Password overrides it).
//
// A refusal by the portal is returned with its code and the portal's
// sentence, e.g. Conflict "your certificate can be renewed from 26 October
// 2027, ..."; network and TLS failures as Whoami reports them.
func Renew(ctx context.Context, baseURL string, s *Store, opts RenewOptions) (*RenewResult, error) {
	if opts.Password == "" && !opts.Legacy {
		// EST first: a new key made here, nothing but a CSR sent.
		res, err := renewEST(ctx, baseURL, s, opts.Thumbprint)
		if !errors.Is(err, errNoEST) {
			return res, err
		}
	}
	endpoint, host, err := portalEndpoint(baseURL, "/api/renew")
	if err != nil {
		return nil, err
	}
	pw := opts.Password
	if pw == "" {
		if pw, err = transportPassword(); err != nil {
			return nil, err
		}
	} else if err := certportal.ValidateP12Password(pw); err != nil {
		return nil, err
	}
	cfg, old, err := s.ClientConfig(opts.Thumbprint)
	if err != nil {
		return nil, err
	}
	format := "modern"
	if opts.Legacy {
		format = "legacy"
	}
	body, _ := json.Marshal(map[string]string{"p12_password": pw, "format": format})
	ctx, cancel := context.WithTimeout(ctx, renewTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, bytes.NewReader(body))
	if err != nil {
		return nil, wrapf(certportal.Invalid, err, "%q is not a portal URL", baseURL)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/x-pkcs12, application/json")
	tr := &http.Transport{
		Proxy:               http.ProxyFromEnvironment,
		TLSClientConfig:     cfg,
		TLSHandshakeTimeout: 15 * time.Second,
		ForceAttemptHTTP2:   true,
	}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return nil, transportError(err, host)
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, maxP12Size+1))
	if err != nil {
		return nil, wrapf(certportal.Unavailable, err, "the connection to %s broke while reading its answer; your certificate may have been renewed: run \"certportal whoami\" to check", host)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, renewRefusal(resp.StatusCode, answer, host)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/x-pkcs12" {
		return nil, errorf(certportal.Unavailable, "%s answered, but not with a certificate file (%s); check that the URL is the portal's", host, ct)
	}
	leaf, _, _, err := decodeP12(answer, pw)
	if err != nil {
		return nil, err
	}
	if leaf.Subject.CommonName != old.Cert.Subject.CommonName {
		return nil, errorf(certportal.Unavailable, "the portal sent a certificate for %q, not for %q; nothing was changed", leaf.Subject.CommonName, old.Cert.Subject.CommonName)
	}
	imported, err := s.Import(answer, pw)
	if err != nil {
		return nil, wrapf(certportal.ErrorCodeOf(err), err,
			"your certificate was renewed, but the new one could not be stored (%s); the old one is revoked now, so get a new certificate on the portal", certportal.ErrorMessage(err))
	}
	res := &RenewResult{Old: *old, New: imported[0].Entry, Imported: imported}
	if err := s.Delete(old.Thumbprint, Personal); err != nil {
		return res, wrapf(certportal.ErrorCodeOf(err), err,
			"the new certificate is in your store, but the old one (%s) could not be removed: %s", old.Thumbprint, certportal.ErrorMessage(err))
	}
	return res, nil
}

// portalEndpoint checks a portal URL (https://host[:port][/prefix]) and
// returns the URL of path under it, and its host for messages.
func portalEndpoint(baseURL, path string) (string, string, error) {
	u, err := url.Parse(strings.TrimSpace(baseURL))
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return "", "", errorf(certportal.Invalid, "%q is not a portal URL; give one like https://portal.example.com", baseURL)
	}
	if u.Scheme != "https" {
		return "", "", errorf(certportal.Invalid, "the portal URL must start with https:// (a certificate can be presented only over HTTPS)")
	}
	u.Path = strings.TrimSuffix(u.Path, "/") + path
	u.RawQuery, u.Fragment, u.RawPath = "", "", ""
	return u.String(), u.Host, nil
}

// transportPassword returns a random PKCS#12 password (43 characters).
func transportPassword() (string, error) {
	b := make([]byte, transportPasswordBytes)
	if _, err := rand.Read(b); err != nil {
		return "", wrapf(certportal.Internal, err, "cannot generate a random password")
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// renewRefusal turns a refusal of POST /api/renew into an error: the
// portal's JSON {"error", "message"} gives the kind and the sentence.
func renewRefusal(status int, body []byte, host string) error {
	var answer struct {
		Error   string `json:"error"`
		Message string `json:"message"`
	}
	_ = json.Unmarshal(body, &answer)
	msg := printable(answer.Message)
	switch {
	case status == http.StatusForbidden && answer.Error != "" && refusalReasons[answer.Error]:
		return refusal(answer.Error)
	case status == http.StatusUnauthorized:
		return errorf(certportal.Unauthorized, "the portal did not receive a certificate it could check; make sure the personal certificate was imported with its private key")
	case status == http.StatusNotFound || status == http.StatusMethodNotAllowed:
		return errorf(certportal.Unavailable, "%s has no renewal API (/api/renew); check that the URL is the portal's and that the portal is up to date", host)
	case msg == "":
		return errorf(certportal.Unavailable, "the portal at %s answered with HTTP status %d (%s); try again later", host, status, http.StatusText(status))
	case status == http.StatusConflict:
		return errorf(certportal.Conflict, "the portal refused to renew the certificate: %s", msg)
	case status == http.StatusBadRequest:
		return errorf(certportal.Invalid, "the portal refused the request: %s", msg)
	case status == http.StatusForbidden:
		return errorf(certportal.Forbidden, "the portal refused to renew the certificate: %s", msg)
	case status == http.StatusTooManyRequests:
		return errorf(certportal.RateLimited, "the portal refused the request: %s", msg)
	}
	return errorf(certportal.Unavailable, "the portal could not renew the certificate: %s", msg)
}

// refusalReasons are the reasons refusal words, as /api/whoami and
// /api/renew name them.
var refusalReasons = map[string]bool{"revoked": true, "expired": true, "unknown": true, "cancelled": true}

// printable keeps a message from the portal to one line of printable
// characters, so an answer cannot play tricks on the user's terminal.
func printable(s string) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsPrint(r) {
			return r
		}
		return -1
	}, s)
	if len(s) > 300 {
		s = s[:300] + "..."
	}
	return strings.TrimSpace(s)
}
