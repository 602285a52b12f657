package ca

import (
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/certportal/certportal"
	"github.com/certportal/certportal/internal/p12"
)

// Authority is a loaded CA: the certificates of the hierarchy and the keys
// of the issuing CAs (for user certificates, their CRLs and OCSP) and, when
// present, the TLS intermediate (to renew the portal's server certificate).
// The root key is not loaded (see rootkey.go): only the commands that sign
// with the root load it. It is safe for concurrent use once loaded; set
// URL, Now and Rand before sharing it.
type Authority struct {
	// Root and TLSCA are the root and the TLS intermediate (root.crt,
	// tls-ca.crt). Issuing is the current issuing CA, the newest one:
	// user certificates come from it.
	Root, Issuing, TLSCA *x509.Certificate
	// Issuers are all the issuing CAs, oldest first (issuing.crt, then
	// issuing-2.crt, issuing-3.crt, ... that Rollover wrote); the last is
	// Issuing. The older ones keep signing their CRLs and OCSP answers.
	Issuers []*x509.Certificate
	// URL is the plain-HTTP base URL written into user certificates.
	URL string
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Rand is the source of randomness; nil means crypto/rand.Reader.
	Rand io.Reader

	dir string
	// rootKey is nil unless LoadRootKey or UseRootKey set it.
	rootKey crypto.Signer
	// issuers holds the key and OCSP CertID hashes of each issuing CA,
	// in the order of Issuers; tlsKey is nil when tls-ca.key is absent.
	issuers []*issuerCA
	tlsKey  crypto.Signer

	ocspMu    sync.Mutex
	ocspCache map[ocspKey]*ocspEntry

	rootCRLMu sync.Mutex
	rootCRL   *rootCRLFile // the last root.crl read, see RootCRL
}

// Load loads the CA that Create wrote to dir. url is the base URL for user
// certificates; when empty it is taken from the issuing CA's CRL
// distribution point, i.e. the URL given to Create. It does not read
// root.key, present or not: a portal that is broken into then finds no
// root key in its memory, and one whose key was exported still loads.
func Load(dir, url string) (*Authority, error) {
	a := &Authority{dir: dir}
	readCert := func(name string) (*x509.Certificate, error) {
		data, err := readCAFile(dir, name)
		if err != nil {
			return nil, err
		}
		certs, err := parseCertsPEM(data)
		if err != nil {
			return nil, wrapError(certportal.Invalid, err, filepath.Join(dir, name)+": "+certportal.ErrorMessage(err))
		}
		return certs[0], nil
	}
	readKey := func(name string, cert *x509.Certificate) (crypto.Signer, error) {
		data, err := readCAFile(dir, name)
		if err != nil {
			return nil, err
		}
		key, err := parseKeyPEM(data)
		if err != nil {
			return nil, wrapError(certportal.Invalid, err, filepath.Join(dir, name)+": "+certportal.ErrorMessage(err))
		}
		if !keyMatches(key, cert) {
			return nil, errorf(certportal.Invalid, "%s does not belong to the certificate %s; the CA directory is inconsistent", filepath.Join(dir, name), cert.Subject.CommonName)
		}
		return key, nil
	}
	var err error
	if a.Root, err = readCert(RootCertFile); err != nil {
		return nil, err
	}
	if a.TLSCA, err = readCert(TLSCACertFile); err != nil {
		return nil, err
	}
	if err := a.Root.CheckSignatureFrom(a.Root); err != nil {
		return nil, wrapError(certportal.Invalid, err, RootCertFile+" is not a self-signed CA certificate")
	}
	if err := a.TLSCA.CheckSignatureFrom(a.Root); err != nil {
		return nil, wrapError(certportal.Invalid, err, a.TLSCA.Subject.CommonName+" is not signed by the root "+a.Root.Subject.CommonName)
	}
	if err := a.loadIssuers(readCert, readKey); err != nil {
		return nil, err
	}
	// The TLS intermediate's key only renews the server certificate; a
	// replica given DATA/ca without it still serves, and says so when
	// the certificate is due (see RenewServerCertificate).
	if _, err := os.Stat(filepath.Join(dir, TLSCAKeyFile)); err == nil {
		if a.tlsKey, err = readKey(TLSCAKeyFile, a.TLSCA); err != nil {
			return nil, err
		}
	}
	if url == "" {
		for _, dp := range a.Issuers[0].CRLDistributionPoints {
			if base, ok := strings.CutSuffix(dp, "/crl/root.crl"); ok {
				url = base
			}
		}
	}
	if a.URL, err = checkURL(url); err != nil {
		return nil, err
	}
	return a, nil
}

// readCAFile reads one file of the CA directory with an error that says
// which file is missing.
func readCAFile(dir, name string) ([]byte, error) {
	p := filepath.Join(dir, name)
	data, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, wrapError(certportal.NotFound, err, p+" is missing; run certportal init to create the CA")
	}
	if err != nil {
		return nil, wrapError(certportal.Internal, err, p+" cannot be read")
	}
	return data, nil
}

// ServerCertificate loads the portal's TLS certificate (server.crt, which
// holds the chain up to the TLS intermediate) and its key (server.key).
// It takes the CA directory's shared lock, so it never reads the key of
// one renewal with the certificate of another.
func (a *Authority) ServerCertificate() (*tls.Certificate, error) {
	if unlock, err := rlockDir(a.dir); err == nil {
		defer unlock()
	}
	certPEMData, err := readCAFile(a.dir, ServerCertFile)
	if err != nil {
		return nil, err
	}
	keyPEMData, err := readCAFile(a.dir, ServerKeyFile)
	if err != nil {
		return nil, err
	}
	cert, err := tls.X509KeyPair(certPEMData, keyPEMData)
	if err != nil {
		return nil, wrapError(certportal.Invalid, err, "the portal's TLS certificate and key in "+a.dir+" do not form a pair")
	}
	return &cert, nil
}

func (a *Authority) now() time.Time {
	if a.Now != nil {
		return a.Now()
	}
	return time.Now()
}

// NewSerial returns a serial number for a user certificate: 16 random bytes
// with the top bit clear (so the DER INTEGER is positive and exactly 16
// bytes, RFC 5280 allows 20) and the first byte not zero.
func (a *Authority) NewSerial() (*big.Int, error) { return newSerial(randOr(a.Rand)) }

func newSerial(rand io.Reader) (*big.Int, error) {
	b := make([]byte, 16)
	for {
		if _, err := io.ReadFull(randOr(rand), b); err != nil {
			return nil, wrapError(certportal.Internal, err, "could not read random bytes")
		}
		b[0] &= 0x7f
		if b[0] != 0 {
			return new(big.Int).SetBytes(b), nil
		}
	}
}

// LeafRequest asks for a user certificate.
type LeafRequest struct {
	// ID is the user ID, the only attribute of the subject (CN).
	ID string
	// Email is the registered address, written as an rfc822Name SAN.
	Email string
	// KeyType is the type of the key generated for the user.
	KeyType KeyType
	// Serial is the serial number; nil means a.NewSerial().
	Serial *big.Int
}

// userLifetimeYears: a user certificate lasts one year, never past its issuer.
const userLifetimeYears = 1

// Issue generates a key and signs a user certificate with the issuing CA:
// keyUsage digitalSignature only (for RSA too: the key signs the TLS
// handshake, nothing else), EKU clientAuth, SKI and AKI, backdated five
// minutes, one year but never past the issuing CA, a CRL distribution point
// and AIA (OCSP and caIssuers) under a.URL. The CRL distribution point and
// caIssuers name the issuing CA (/crl/<CN>.crl, /ca/<CN>.crt), so a
// certificate keeps pointing at its own issuer after a rollover, when
// /crl/issuing.crl and /ca/issuing.crt have moved on to the next CA.
func (a *Authority) Issue(req LeafRequest) (*x509.Certificate, crypto.Signer, error) {
	if err := a.checkLeaf(req); err != nil {
		return nil, nil, err
	}
	key, err := GenerateKey(a.Rand, req.KeyType)
	if err != nil {
		return nil, nil, err
	}
	cert, err := a.signLeaf(req, key.Public())
	if err != nil {
		return nil, nil, err
	}
	return cert, key, nil
}

// checkLeaf checks what a user certificate needs before a key is made for
// it: a valid ID and e-mail, and an issuing CA that has not expired.
func (a *Authority) checkLeaf(req LeafRequest) error {
	if err := certportal.ValidateID(req.ID); err != nil {
		return err
	}
	if req.Email != "" {
		if err := certportal.ValidateEmail(req.Email); err != nil {
			return err
		}
	}
	if now := a.now(); !now.Before(a.Issuing.NotAfter) {
		return errorf(certportal.Unavailable, "the issuing CA %s expired on %s; a new CA is needed", a.Issuing.Subject.CommonName, a.Issuing.NotAfter.Format(time.DateOnly))
	}
	return nil
}

// signLeaf signs the user certificate of req for pub with the issuing CA:
// the one profile of every user certificate, whether its key was made here
// (Issue) or on the user's machine (IssueCSR). The caller ran checkLeaf.
func (a *Authority) signLeaf(req LeafRequest, pub crypto.PublicKey) (*x509.Certificate, error) {
	now := a.now().UTC().Truncate(time.Second)
	tmpl := &x509.Certificate{
		SerialNumber:          req.Serial,
		Subject:               pkix.Name{CommonName: req.ID},
		NotBefore:             now.Add(-backdate),
		NotAfter:              capTime(now.AddDate(userLifetimeYears, 0, 0), a.Issuing.NotAfter),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		CRLDistributionPoints: []string{a.CRLURL(a.Issuing)},
		OCSPServer:            []string{a.URL + "/ocsp"},
		IssuingCertificateURL: []string{a.CertURL(a.Issuing)},
	}
	if req.Email != "" {
		tmpl.EmailAddresses = []string{req.Email}
	}
	return signCert(randOr(a.Rand), tmpl, a.Issuing, pub, a.current().key)
}

// PKCS12 encodes key, leaf, its issuing CA and the root as a PKCS#12 file
// protected by password, with internal/p12 (the one writer). The modern
// form uses AES-256-CBC with PBKDF2-HMAC-SHA-256 (100,000 iterations) and
// an HMAC-SHA-256 MAC; legacy uses 3DES with SHA-1
// (for macOS Keychain and older Windows). Both open with OpenSSL 3 without
// -legacy, Java's keytool and NSS's pk12util.
func (a *Authority) PKCS12(key crypto.Signer, leaf *x509.Certificate, password string, legacy bool) ([]byte, error) {
	if err := certportal.ValidateP12Password(password); err != nil {
		return nil, err
	}
	if key == nil || leaf == nil || !keyMatches(key, leaf) {
		return nil, errorf(certportal.Invalid, "the private key does not belong to the certificate")
	}
	issuer := a.Issuing
	if ic := a.issuerOf(leaf); ic != nil {
		issuer = ic.cert
	}
	der, err := p12.Encode(randOr(a.Rand), key, leaf, []*x509.Certificate{issuer, a.Root}, password, legacy)
	if err != nil {
		return nil, wrapError(certportal.Internal, err, "could not write the PKCS#12 file")
	}
	return der, nil
}

// VerifyClient checks a certificate chain that a TLS client presented (leaf
// first). The leaf must chain to the issuing CA and the root (any other
// certificates the client sent are ignored; any of the issuing CAs will
// do, so certificates from before a rollover still sign in), be valid at a.Now() and carry
// EKU clientAuth, literally: a leaf without an EKU extension, or with only
// anyExtendedKeyUsage, is refused (crypto/x509 would accept both). Failures
// are Forbidden errors whose cause is ErrExpired for a leaf of this CA
// outside its validity, and ErrNotOurs otherwise.
func (a *Authority) VerifyClient(chain []*x509.Certificate) (*x509.Certificate, error) {
	unknown := &certportal.Error{Code: certportal.Forbidden, Op: "ca", Message: "unknown", Err: ErrNotOurs}
	if len(chain) == 0 || chain[0] == nil || !slices.Contains(chain[0].ExtKeyUsage, x509.ExtKeyUsageClientAuth) {
		return nil, unknown
	}
	leaf := chain[0]
	now := a.now()
	if err := a.verifyLeaf(leaf, now); err == nil {
		return leaf, nil
	}
	if now.Before(leaf.NotBefore) || now.After(leaf.NotAfter) {
		// Say "expired" only for a certificate that is ours apart from
		// its dates; a stranger's stale certificate stays "unknown".
		if ic := a.issuerOf(leaf); ic != nil {
			t := leaf.NotBefore
			for _, c := range []*x509.Certificate{ic.cert, a.Root} {
				if c.NotBefore.After(t) {
					t = c.NotBefore
				}
			}
			if a.verifyLeaf(leaf, t) == nil {
				return nil, &certportal.Error{Code: certportal.Forbidden, Op: "ca", Message: "expired", Err: ErrExpired}
			}
		}
	}
	return nil, unknown
}

// Why VerifyClient refused a chain, for errors.Is.
var (
	// ErrExpired: a certificate of this CA, outside its validity.
	ErrExpired = errors.New("certificate expired or not yet valid")
	// ErrNotOurs: not a client certificate of this CA (another CA's, a
	// broken chain, or no EKU clientAuth).
	ErrNotOurs = errors.New("not a client certificate of this CA")
)

// verifyLeaf verifies leaf against exactly one of the issuing CAs -> root
// at time t.
func (a *Authority) verifyLeaf(leaf *x509.Certificate, t time.Time) error {
	roots := x509.NewCertPool()
	roots.AddCert(a.Root)
	inter := x509.NewCertPool()
	for _, c := range a.Issuers {
		inter.AddCert(c)
	}
	chains, err := leaf.Verify(x509.VerifyOptions{
		Roots:         roots,
		Intermediates: inter,
		CurrentTime:   t,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
	if err != nil {
		return err
	}
	for _, c := range chains {
		if len(c) == 3 && a.isIssuer(c[1]) && c[2].Equal(a.Root) && !leaf.IsCA {
			return nil
		}
	}
	return errors.New("not issued by the issuing CA")
}
