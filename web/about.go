package web

import (
	"crypto/x509"
	"net/http"

	"github.com/certportal/certportal"
)

// describe gives what a user needs to find a CA certificate in a desktop
// certificate manager: the names, expiration date, serial and thumbprint.
func describe(c *x509.Certificate) caInfo {
	return caInfo{
		Subject:    c.Subject.String(),
		CN:         c.Subject.CommonName,
		IssuedBy:   c.Issuer.CommonName,
		NotAfter:   c.NotAfter,
		Serial:     certportal.FormatSerial(c.SerialNumber),
		Thumbprint: certportal.Thumbprint(c.Raw),
		SHA256:     certportal.Fingerprint256(c.Raw),
	}
}

// handleAbout is GET /about/certificate (and the seed portal's address
// /portal/ctrl/aboutCertificate): the root's details, every issuing CA
// (several after a rollover), downloads, and how to remove the
// certificates after the account is cancelled.
func (s *Server) handleAbout(w http.ResponseWriter, r *http.Request) {
	var issuers []caInfo
	list := s.Svc.Issuers()
	for i := len(list) - 1; i >= 0; i-- {
		issuers = append(issuers, describe(list[i]))
	}
	s.page(w, r, http.StatusOK, "about", pageData{
		Title:   "About the certificate",
		Root:    describe(s.Svc.Root()),
		Issuing: describe(s.Svc.Issuing()),
		Issuers: issuers,
	})
}
