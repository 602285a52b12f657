package portal

import (
	"context"
	"crypto/x509"
	"slices"
	"time"
)

// What the HTTP side shows of the CA and the database, so that web/ talks
// to the service only through its methods.

// Root returns the root CA certificate (SOP-RCA).
func (s *Service) Root() *x509.Certificate { return s.CA.Root }

// Issuing returns the issuing CA that signs new certificates.
func (s *Service) Issuing() *x509.Certificate { return s.CA.Issuing }

// Issuers returns every issuing CA, oldest first (more than one after a
// rollover); the last is Issuing.
func (s *Service) Issuers() []*x509.Certificate { return slices.Clone(s.CA.Issuers) }

// CAByName returns the issuing CA or the root whose CN is cn, or nil.
func (s *Service) CAByName(cn string) *x509.Certificate {
	if c := s.CA.IssuerByName(cn); c != nil {
		return c
	}
	if cn == s.CA.Root.Subject.CommonName {
		return s.CA.Root
	}
	return nil
}

// Trust returns an opaque value that changes when the CA certificates a
// chain is verified against change (a rollover loaded by the process):
// a verdict remembered under one Trust holds only while Trust is the same.
func (s *Service) Trust() any { return s.CA }

// Time returns the service's clock, in UTC.
func (s *Service) Time() time.Time { return s.now() }

// Ping reports whether the database answers.
func (s *Service) Ping(ctx context.Context) error { return s.Store.Ping(ctx) }
