package ca

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/certportal/certportal"
)

// The issuing CAs live in DATA/ca as issuing.crt/issuing.key (the first,
// SOP-ICA1, as init wrote it) and issuing-2.crt/issuing-2.key,
// issuing-3.crt/... for each rollover. The first keeps its old name so data
// directories made before rollovers existed load unchanged.

// issuerCA is one loaded issuing CA: its certificate, key, and the OCSP
// CertID hashes that name it.
type issuerCA struct {
	cert *x509.Certificate
	key  crypto.Signer
	ids  issuerHashes
}

// IssuingFiles returns the certificate and key file names of the n-th
// issuing CA (1 is the first, issuing.crt).
func IssuingFiles(n int) (certFile, keyFile string) {
	if n <= 1 {
		return IssuingCertFile, IssuingKeyFile
	}
	s := strconv.Itoa(n)
	return "issuing-" + s + ".crt", "issuing-" + s + ".key"
}

// loadIssuers reads issuing.crt, issuing-2.crt, ... up to the first number
// that is missing, checks that each is signed by the root and has its key,
// and sets Issuers, Issuing and the private list.
func (a *Authority) loadIssuers(readCert func(string) (*x509.Certificate, error), readKey func(string, *x509.Certificate) (crypto.Signer, error)) error {
	seen := map[string]bool{a.Root.Subject.CommonName: true, a.TLSCA.Subject.CommonName: true}
	for n := 1; ; n++ {
		certFile, keyFile := IssuingFiles(n)
		if n > 1 {
			if _, err := os.Stat(filepath.Join(a.dir, certFile)); errors.Is(err, fs.ErrNotExist) {
				break
			}
		}
		c, err := readCert(certFile)
		if err != nil {
			return err
		}
		if err := c.CheckSignatureFrom(a.Root); err != nil {
			return wrapError(certportal.Invalid, err, c.Subject.CommonName+" is not signed by the root "+a.Root.Subject.CommonName)
		}
		if seen[c.Subject.CommonName] {
			return errorf(certportal.Invalid, "%s: the CA name %s is used twice in %s", certFile, c.Subject.CommonName, a.dir)
		}
		seen[c.Subject.CommonName] = true
		key, err := readKey(keyFile, c)
		if err != nil {
			return err
		}
		ids, err := newIssuerHashes(c)
		if err != nil {
			return err
		}
		a.issuers = append(a.issuers, &issuerCA{cert: c, key: key, ids: ids})
		a.Issuers = append(a.Issuers, c)
	}
	a.Issuing = a.Issuers[len(a.Issuers)-1]
	return nil
}

// current returns the newest issuing CA, the one that issues.
func (a *Authority) current() *issuerCA { return a.issuers[len(a.issuers)-1] }

// issuerByCN returns the issuing CA with common name cn, or nil.
func (a *Authority) issuerByCN(cn string) *issuerCA {
	for _, ic := range a.issuers {
		if ic.cert.Subject.CommonName == cn {
			return ic
		}
	}
	return nil
}

// issuerOf returns the issuing CA whose name and key match the issuer of
// leaf, or nil.
func (a *Authority) issuerOf(leaf *x509.Certificate) *issuerCA {
	for i := len(a.issuers) - 1; i >= 0; i-- {
		ic := a.issuers[i]
		if string(ic.cert.RawSubject) == string(leaf.RawIssuer) && leaf.CheckSignatureFrom(ic.cert) == nil {
			return ic
		}
	}
	return nil
}

// isIssuer reports whether c is one of the issuing CAs.
func (a *Authority) isIssuer(c *x509.Certificate) bool {
	for _, ic := range a.issuers {
		if ic.cert.Equal(c) {
			return true
		}
	}
	return false
}

// IssuerByName returns the issuing CA with common name cn, or nil; the
// web package serves /ca/<CN>.crt and /crl/<CN>.crl with it.
func (a *Authority) IssuerByName(cn string) *x509.Certificate {
	if ic := a.issuerByCN(cn); ic != nil {
		return ic.cert
	}
	return nil
}

// caNames lists the CAs that sign CRLs, for error messages.
func (a *Authority) caNames() []string {
	names := []string{a.Root.Subject.CommonName}
	for _, c := range a.Issuers {
		names = append(names, c.Subject.CommonName)
	}
	return names
}

// CRLURL is where the CRL of CA c is published: URL/crl/<CN>.crl. User
// certificates carry it as their CRL distribution point.
func (a *Authority) CRLURL(c *x509.Certificate) string {
	return a.URL + "/crl/" + url.PathEscape(c.Subject.CommonName) + ".crl"
}

// CertURL is where the certificate of CA c is published: URL/ca/<CN>.crt.
// User certificates carry it as their AIA caIssuers.
func (a *Authority) CertURL(c *x509.Certificate) string {
	return a.URL + "/ca/" + url.PathEscape(c.Subject.CommonName) + ".crt"
}

// issuingTemplate is the profile of every issuing CA (SPEC.md "The CA
// hierarchy"), for init and for each rollover alike.
func issuingTemplate(name pkix.Name, now time.Time, root *x509.Certificate, baseURL string) *x509.Certificate {
	return &x509.Certificate{
		Subject:   name,
		NotBefore: now.Add(-backdate),
		NotAfter:  capTime(now.AddDate(issuingLifetimeYears, 0, 0), root.NotAfter),
		// digitalSignature: the issuing CA signs OCSP responses itself.
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLen:            0,
		MaxPathLenZero:        true,
		CRLDistributionPoints: []string{baseURL + "/crl/root.crl"},
		IssuingCertificateURL: []string{baseURL + "/ca/root.crt"},
	}
}

// RolloverOptions describe the next issuing CA.
type RolloverOptions struct {
	// CN is its common name; empty means the current one's with the
	// trailing number raised by one (SOP-ICA1 -> SOP-ICA2).
	CN string
	// KeyType is its key type; empty means that of the current issuing CA.
	KeyType KeyType
}

// Rollover creates the next issuing CA, signed by the root with the same
// profile as the first, and writes it to the CA directory as
// issuing-<n>.crt and issuing-<n>.key (key first, both atomically, under
// the directory's lock, so two administrators cannot make the same number
// twice). It does not change a: load the directory again to issue from the
// new CA. The older CAs stay, to sign their CRLs and OCSP answers until
// their last certificate expires. The root signs the new CA: its key must
// be loaded (LoadRootKey or UseRootKey).
func (a *Authority) Rollover(opts RolloverOptions) (*x509.Certificate, error) {
	if err := a.needRootKey("a rollover"); err != nil {
		return nil, err
	}
	unlock, err := lockDir(a.dir)
	if err != nil {
		return nil, err
	}
	defer unlock()
	// Another process may have rolled over since a was loaded.
	cur, err := Load(a.dir, a.URL)
	if err != nil {
		return nil, err
	}
	now := a.now().UTC().Truncate(time.Second)
	if !now.Before(cur.Root.NotAfter) {
		return nil, errorf(certportal.Unavailable, "the root %s expired on %s; a new installation is needed", cur.Root.Subject.CommonName, cur.Root.NotAfter.Format(time.DateOnly))
	}
	cn := strings.TrimSpace(opts.CN)
	if cn == "" {
		cn = nextCN(cur.Issuing.Subject.CommonName)
	}
	if err := cur.checkNewCN(cn); err != nil {
		return nil, err
	}
	kt := opts.KeyType
	if kt == "" {
		kt = keyTypeOf(cur.Issuing.PublicKey)
	}
	key, err := GenerateKey(a.Rand, kt)
	if err != nil {
		return nil, err
	}
	name := cur.Issuing.Subject
	name.CommonName = cn
	name.Names, name.ExtraNames = nil, nil
	tmpl := issuingTemplate(name, now, cur.Root, cur.URL)
	if !cur.Root.Equal(a.Root) {
		return nil, errorf(certportal.Conflict, "the root in %s changed since it was loaded; run the command again", a.dir)
	}
	cert, err := signCert(randOr(a.Rand), tmpl, cur.Root, key.Public(), a.rootKey)
	if err != nil {
		return nil, err
	}
	keyData, err := keyPEM(key)
	if err != nil {
		return nil, wrapError(certportal.Internal, err, "could not encode a private key")
	}
	certFile, keyFile := IssuingFiles(len(cur.Issuers) + 1)
	if err := writeFileAtomic(filepath.Join(a.dir, keyFile), keyData, 0o600); err != nil {
		return nil, err
	}
	if err := writeFileAtomic(filepath.Join(a.dir, certFile), certPEM(cert), 0o644); err != nil {
		os.Remove(filepath.Join(a.dir, keyFile))
		return nil, err
	}
	return cert, nil
}

// checkNewCN refuses a name that is not usable for a new issuing CA: one
// already taken in the hierarchy, or one that would clash with the fixed
// routes /ca/root.crt, /ca/issuing.crt, /ca/chain.pem.
func (a *Authority) checkNewCN(cn string) error {
	if len(cn) > 64 || !isPrintable(cn) {
		return errorf(certportal.Invalid, "the CA name %q is not usable: use at most 64 letters, digits, spaces and - . _", cn)
	}
	for _, reserved := range []string{"root", "issuing", "chain"} {
		if strings.EqualFold(cn, reserved) {
			return errorf(certportal.Invalid, "the CA name %q is reserved; choose another", cn)
		}
	}
	for _, taken := range append(a.caNames(), a.TLSCA.Subject.CommonName) {
		if strings.EqualFold(cn, taken) {
			return errorf(certportal.Conflict, "there is a CA named %s already; choose another name", taken)
		}
	}
	return nil
}

// nextCN raises the trailing number of a CA name by one (SOP-ICA1 ->
// SOP-ICA2, ICA9 -> ICA10); a name without one gets "2" appended.
func nextCN(cn string) string {
	i := len(cn)
	for i > 0 && cn[i-1] >= '0' && cn[i-1] <= '9' {
		i--
	}
	n, err := strconv.Atoi(cn[i:])
	if i == len(cn) || err != nil {
		return cn + "2"
	}
	return cn[:i] + strconv.Itoa(n+1)
}

// keyTypeOf returns the KeyType of a public key, P256 when unknown.
func keyTypeOf(pub crypto.PublicKey) KeyType {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		if k.Curve == elliptic.P384() {
			return P384
		}
	case *rsa.PublicKey:
		switch {
		case k.N.BitLen() > 3072:
			return RSA4096
		case k.N.BitLen() > 2048:
			return RSA3072
		default:
			return RSA2048
		}
	}
	return P256
}

// lockFile is the lock that serialises writers of the CA directory
// (rollovers and server certificate renewals, across processes).
const lockFile = ".lock"
