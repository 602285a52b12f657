package web

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/certportal/certportal"
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
	fp    string            // its SHA-256 fingerprint, as the store keys it
	ca    any               // the authority that verified it
	until time.Time         // the leaf's notAfter: the verdict ends with it
}

type connVerdictKey struct{}

// ConnContext gives each connection of the HTTPS listener a place for its
// verified client certificate. Set it as http.Server.ConnContext; without
// it every request verifies the chain again (correct, only slower).
func (s *Server) ConnContext(ctx context.Context, _ net.Conn) context.Context {
	return context.WithValue(ctx, connVerdictKey{}, &connVerdict{})
}

// verifiedCerts remembers, across connections, the client certificates
// whose chains verified, by the SHA-256 of their DER: a browser opens many
// connections with the same certificate, and the same bytes verify the same
// way against the same CA. The entry holds the leaf's validity, re-checked
// at every use, and the authority that verified it. It is bounded: when
// full, an entry chosen at random (map order) makes room.
type verifiedCerts struct {
	mu sync.Mutex
	m  map[[32]byte]verifiedCert
}

type verifiedCert struct {
	ca                  any
	notBefore, notAfter time.Time
}

// verifiedMax bounds the cache: 64 bytes an entry, 4 MiB in all.
const verifiedMax = 1 << 16

func (v *verifiedCerts) has(fp [32]byte, auth any, now time.Time) bool {
	v.mu.Lock()
	e, ok := v.m[fp]
	v.mu.Unlock()
	return ok && e.ca == auth && !now.Before(e.notBefore) && now.Before(e.notAfter)
}

func (v *verifiedCerts) add(fp [32]byte, auth any, leaf *x509.Certificate) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.m == nil {
		v.m = make(map[[32]byte]verifiedCert)
	}
	if len(v.m) >= verifiedMax {
		for k := range v.m {
			delete(v.m, k)
			break
		}
	}
	v.m[fp] = verifiedCert{ca: auth, notBefore: leaf.NotBefore, notAfter: leaf.NotAfter}
}

// certSignIn identifies the account of the request's client certificate:
// the chain is verified once per connection and once per certificate (the
// verdict is remembered per connection and by the certificate's SHA-256),
// the database lookup — and so the revocation check — runs for every
// request.
func (s *Server) certSignIn(r *http.Request) (*certportal.Account, *certportal.Certificate, error) {
	ctx := r.Context()
	chain := peerChain(r)
	leaf := chain[0]
	now := s.Svc.Time()
	auth := s.Svc.Trust()
	v, _ := ctx.Value(connVerdictKey{}).(*connVerdict)
	if v != nil {
		v.mu.Lock()
		known := v.leaf == leaf && v.ca == auth && now.Before(v.until) && !now.Before(leaf.NotBefore)
		fp := v.fp
		v.mu.Unlock()
		if known {
			return s.Svc.CertSignInFingerprint(ctx, fp)
		}
	}
	fp := sha256.Sum256(leaf.Raw)
	fpHex := certportal.FingerprintHex(fp)
	var acc *certportal.Account
	var cert *certportal.Certificate
	var err error
	if s.verified.has(fp, auth, now) {
		acc, cert, err = s.Svc.CertSignInFingerprint(ctx, fpHex)
	} else {
		acc, cert, err = s.Svc.CertSignIn(ctx, chain)
		if err == nil {
			s.verified.add(fp, auth, leaf)
		}
	}
	if err == nil && v != nil {
		v.mu.Lock()
		v.leaf, v.fp, v.ca, v.until = leaf, fpHex, auth, leaf.NotAfter
		v.mu.Unlock()
	}
	return acc, cert, err
}
