package web

import (
	"context"
	"crypto/x509"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/certportal/certportal"
	"github.com/certportal/certportal/ca"
)

// connVerdict remembers, for one TLS connection, the client certificate
// whose chain was verified on it. Verifying the chain (an ECDSA or RSA
// signature check against the issuing CA) is most of the cost of a request
// by certificate, and its answer cannot change while the connection lasts:
// the client cannot present another certificate on it. What can change —
// revocation, expiry, cancellation, the certificate no longer being the
// account's current one — is looked up in the database on every request.
type connVerdict struct {
	mu    sync.Mutex
	leaf  *x509.Certificate // verified, as presented on this connection
	ca    *ca.Authority     // the authority that verified it
	until time.Time         // the leaf's notAfter: the verdict ends with it
}

type connVerdictKey struct{}

// ConnContext gives each connection of the HTTPS listener a place for its
// verified client certificate. Set it as http.Server.ConnContext; without
// it every request verifies the chain again (correct, only slower).
func (s *Server) ConnContext(ctx context.Context, _ net.Conn) context.Context {
	return context.WithValue(ctx, connVerdictKey{}, &connVerdict{})
}

// certSignIn identifies the account of the request's client certificate:
// the chain is verified once per connection, the database lookup (and so
// the revocation check) runs for every request.
func (s *Server) certSignIn(r *http.Request) (*certportal.Account, *certportal.Certificate, error) {
	ctx := r.Context()
	chain := peerChain(r)
	v, _ := ctx.Value(connVerdictKey{}).(*connVerdict)
	if v == nil {
		return s.Svc.CertSignIn(ctx, chain)
	}
	leaf := chain[0]
	now := s.Svc.Now()
	v.mu.Lock()
	known := v.leaf == leaf && v.ca == s.Svc.CA && now.Before(v.until) && !now.Before(leaf.NotBefore)
	v.mu.Unlock()
	if known {
		return s.Svc.CertSignInVerified(ctx, leaf)
	}
	acc, cert, err := s.Svc.CertSignIn(ctx, chain)
	if err == nil {
		v.mu.Lock()
		v.leaf, v.ca, v.until = leaf, s.Svc.CA, leaf.NotAfter
		v.mu.Unlock()
	}
	return acc, cert, err
}
