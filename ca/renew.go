package ca

import (
	"crypto/tls"
	"crypto/x509"
	"path/filepath"
	"time"

	"github.com/certportal/certportal"
)

// RenewalDue reports whether a server certificate should be renewed at
// now: when less than a third of its life is left (the share ACME clients
// such as certbot renew at), or when it is not valid at all.
func RenewalDue(leaf *x509.Certificate, now time.Time) bool {
	if leaf == nil {
		return true
	}
	life := leaf.NotAfter.Sub(leaf.NotBefore)
	return now.Before(leaf.NotBefore) || !now.Before(leaf.NotAfter.Add(-life/3))
}

// CanRenewServerCertificate reports whether this Authority holds the TLS
// intermediate's key (tls-ca.key), which RenewServerCertificate needs.
func (a *Authority) CanRenewServerCertificate() bool { return a.tlsKey != nil }

// RenewServerCertificate issues a new TLS certificate for the portal from
// the TLS intermediate, for the same names and key type as the one in
// server.crt, and replaces server.key and server.crt with it (each file
// atomically, under the CA directory's lock, so replicas sharing DATA/ca
// never leave a key and a certificate that do not match; the one that
// renews last wins, and every certificate issued stays valid). It returns
// the new certificate, ready for tls.Config.
func (a *Authority) RenewServerCertificate() (*tls.Certificate, error) {
	if a.tlsKey == nil {
		return nil, errorf(certportal.Unavailable, "the TLS intermediate's key %s is missing, so the portal's TLS certificate cannot be renewed here", filepath.Join(a.dir, TLSCAKeyFile))
	}
	unlock, err := lockDir(a.dir)
	if err != nil {
		return nil, err
	}
	defer unlock()
	data, err := readCAFile(a.dir, ServerCertFile)
	if err != nil {
		return nil, err
	}
	certs, err := parseCertsPEM(data)
	if err != nil {
		return nil, wrapError(certportal.Invalid, err, filepath.Join(a.dir, ServerCertFile)+": "+certportal.ErrorMessage(err))
	}
	old := certs[0]
	now := a.now().UTC().Truncate(time.Second)
	if !now.Before(a.TLSCA.NotAfter) {
		return nil, errorf(certportal.Unavailable, "the TLS intermediate %s expired on %s; a new installation is needed", a.TLSCA.Subject.CommonName, a.TLSCA.NotAfter.Format(time.DateOnly))
	}
	key, err := GenerateKey(a.Rand, keyTypeOf(old.PublicKey))
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		Subject:     old.Subject,
		NotBefore:   now.Add(-backdate),
		NotAfter:    capTime(now.Add(serverLifetime), a.TLSCA.NotAfter),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:    old.DNSNames,
		IPAddresses: old.IPAddresses,
	}
	tmpl.Subject.Names, tmpl.Subject.ExtraNames = nil, nil
	if isRSA(key.Public()) {
		// RSA key exchange (TLS 1.2 without ECDHE) encrypts with the key.
		tmpl.KeyUsage |= x509.KeyUsageKeyEncipherment
	}
	leaf, err := signCert(randOr(a.Rand), tmpl, a.TLSCA, key.Public(), a.tlsKey)
	if err != nil {
		return nil, err
	}
	keyData, err := keyPEM(key)
	if err != nil {
		return nil, wrapError(certportal.Internal, err, "could not encode a private key")
	}
	// The key first: a reader that sees the new key with the old
	// certificate finds no pair and keeps what it has (readers also take
	// the shared lock, so they normally see neither half-state).
	if err := writeFileAtomic(filepath.Join(a.dir, ServerKeyFile), keyData, 0o600); err != nil {
		return nil, err
	}
	if err := writeFileAtomic(filepath.Join(a.dir, ServerCertFile), certPEM(leaf, a.TLSCA), 0o644); err != nil {
		return nil, err
	}
	return &tls.Certificate{Certificate: [][]byte{leaf.Raw, a.TLSCA.Raw}, PrivateKey: key, Leaf: leaf}, nil
}

// ServerCertificatePaths returns the paths of server.crt and server.key,
// which a running portal watches for a renewal made by another replica.
func (a *Authority) ServerCertificatePaths() (certFile, keyFile string) {
	return filepath.Join(a.dir, ServerCertFile), filepath.Join(a.dir, ServerKeyFile)
}
