package ca

import (
	"crypto"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/certportal/certportal"
	"github.com/certportal/certportal/internal/atomicfile"
)

// Lifetimes of the hierarchy (SPEC.md "The CA hierarchy").
const (
	rootLifetimeYears    = 10
	issuingLifetimeYears = 5
	// The TLS intermediate lives as long as the issuing CA; the server
	// certificate under it is renewed with a new init far more often.
	tlsCALifetimeYears = 5
	// 397 days: the CA/Browser Forum limit for TLS server certificates,
	// which browsers enforce even for private roots on some platforms.
	serverLifetime = 397 * 24 * time.Hour
	// backdate keeps freshly issued certificates valid on machines whose
	// clocks run a few minutes slow.
	backdate = 5 * time.Minute
)

// Defaults of InitOptions.
const (
	DefaultURL       = "http://localhost:8080"
	DefaultRootCN    = "SOP-RCA"
	DefaultIssuingCN = "SOP-ICA1"
	DefaultTLSCN     = "SOP-TLS1"
	// Organization is the O of every CA subject.
	Organization = "certportal"
)

// DefaultHostnames are the names the portal's TLS certificate carries when
// none are given.
var DefaultHostnames = []string{"localhost", "127.0.0.1"}

// File names inside the CA directory.
const (
	RootCertFile    = "root.crt"
	IssuingCertFile = "issuing.crt"
	TLSCACertFile   = "tls-ca.crt"
	ServerCertFile  = "server.crt"
	RootKeyFile     = "root.key"
	IssuingKeyFile  = "issuing.key"
	TLSCAKeyFile    = "tls-ca.key"
	ServerKeyFile   = "server.key"
)

// InitOptions describe a new CA hierarchy (SPEC.md "The CA hierarchy").
type InitOptions struct {
	// Dir is the CA directory (DATA/ca). It is created 0700 and must not
	// exist or be empty.
	Dir string
	// Hostnames are the DNS names and IP addresses of the portal's TLS
	// certificate; DefaultHostnames when empty.
	Hostnames []string
	// URL is the plain-HTTP base URL that CRL distribution points and AIA
	// point at, e.g. "http://localhost:8080"; DefaultURL when empty.
	URL string
	// RootCN, IssuingCN and TLSCN are the common names of the three CAs;
	// DefaultRootCN, DefaultIssuingCN and DefaultTLSCN when empty.
	RootCN, IssuingCN, TLSCN string
	// KeyType is the key type of the CAs and the server certificate.
	KeyType KeyType
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Rand is the source of randomness; nil means crypto/rand.Reader.
	Rand io.Reader
}

// Create generates the root, the issuing CA, the TLS intermediate and the
// portal's server certificate and writes them to opts.Dir: root.crt,
// issuing.crt, tls-ca.crt and server.crt (PEM; server.crt holds the server
// certificate followed by the TLS intermediate) and root.key, issuing.key,
// tls-ca.key and server.key (PKCS#8 PEM, 0600). Each file is written
// atomically. If anything fails, nothing is left behind. It returns the
// installation ID that it put in the OU of the CA subjects.
func Create(opts InitOptions) (installationID string, err error) {
	o, err := opts.withDefaults()
	if err != nil {
		return "", err
	}
	created, err := prepareDir(o.Dir)
	if err != nil {
		return "", err
	}
	var written []string
	defer func() {
		if err == nil {
			return
		}
		if created != "" {
			os.RemoveAll(created)
			return
		}
		for _, p := range written {
			os.Remove(p)
		}
	}()

	files, id, err := o.build()
	if err != nil {
		return "", err
	}
	for _, f := range files {
		p := filepath.Join(o.Dir, f.name)
		written = append(written, p)
		if err := writeFileAtomic(p, f.data, f.perm); err != nil {
			return "", err
		}
	}
	if err := syncDir(o.Dir); err != nil {
		return "", err
	}
	return id, nil
}

type caFile struct {
	name string
	data []byte
	perm fs.FileMode
}

// withDefaults validates opts and fills in the defaults.
func (opts InitOptions) withDefaults() (InitOptions, error) {
	o := opts
	if o.Dir == "" {
		return o, errorf(certportal.Invalid, "no CA directory given")
	}
	if len(o.Hostnames) == 0 {
		o.Hostnames = DefaultHostnames
	}
	var hosts []string
	seen := map[string]bool{}
	for _, h := range o.Hostnames {
		h, err := normalizeHostname(h)
		if err != nil {
			return o, err
		}
		if !seen[h] {
			seen[h] = true
			hosts = append(hosts, h)
		}
	}
	o.Hostnames = hosts
	if o.URL == "" {
		o.URL = DefaultURL
	}
	u, err := checkURL(o.URL)
	if err != nil {
		return o, err
	}
	o.URL = u
	for _, cn := range []*string{&o.RootCN, &o.IssuingCN, &o.TLSCN} {
		*cn = strings.TrimSpace(*cn)
	}
	if o.RootCN == "" {
		o.RootCN = DefaultRootCN
	}
	if o.IssuingCN == "" {
		o.IssuingCN = DefaultIssuingCN
	}
	if o.TLSCN == "" {
		o.TLSCN = DefaultTLSCN
	}
	if o.RootCN == o.IssuingCN || o.RootCN == o.TLSCN || o.IssuingCN == o.TLSCN {
		return o, errorf(certportal.Invalid, "the root, issuing and TLS CAs need three different common names")
	}
	for _, cn := range []string{o.RootCN, o.IssuingCN, o.TLSCN} {
		// 64: ub-common-name of RFC 5280.
		if len(cn) > 64 || !isPrintable(cn) {
			return o, errorf(certportal.Invalid, "the CA name %q is not usable: use at most 64 letters, digits, spaces and - . _", cn)
		}
	}
	if o.KeyType, err = ParseKeyType(string(o.KeyType)); err != nil {
		return o, err
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	o.Rand = randOr(o.Rand)
	return o, nil
}

// isPrintable reports whether s is a non-empty string of letters, digits,
// spaces and - . _ (a subset of ASN.1 PrintableString that is safe in names).
func isPrintable(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune(" -._", r)) {
			return false
		}
	}
	return true
}

// normalizeHostname checks that h is an IP address or a DNS name and returns
// its canonical form (lower case; IP addresses as net.IP prints them).
func normalizeHostname(h string) (string, error) {
	h = strings.TrimSpace(h)
	if ip := net.ParseIP(h); ip != nil {
		return ip.String(), nil
	}
	h = strings.ToLower(strings.TrimSuffix(h, "."))
	bad := errorf(certportal.Invalid, "%q is not a host name or IP address", h)
	if h == "" || len(h) > 253 {
		return "", bad
	}
	for _, label := range strings.Split(h, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return "", bad
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') {
				return "", bad
			}
		}
	}
	return h, nil
}

// checkURL checks that u is a plain-HTTP base URL and returns it without a
// trailing slash. RFC 5280 section 8 asks for http, not https, in CRL
// distribution points and AIA: fetching them must not need a TLS chain.
func checkURL(s string) (string, error) {
	u, err := url.Parse(s)
	if err != nil || u.Scheme != "http" || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return "", errorf(certportal.Invalid, "the URL %q is not a plain-HTTP base URL such as %s", s, DefaultURL)
	}
	return strings.TrimRight(s, "/"), nil
}

// prepareDir makes sure dir exists, is a directory and is empty. It returns
// the highest directory it created ("" when dir existed), so a failed
// Create can remove exactly what it made.
func prepareDir(dir string) (created string, err error) {
	entries, err := os.ReadDir(dir)
	switch {
	case err == nil:
		if len(entries) > 0 {
			return "", errorf(certportal.Conflict, "the CA directory %s is not empty; refusing to overwrite an existing CA", dir)
		}
		// It will hold private keys: only the owner may list it.
		if err := os.Chmod(dir, 0o700); err != nil {
			return "", wrapError(certportal.Internal, err, "the CA directory "+dir+" cannot be made private")
		}
		return "", nil
	case !errors.Is(err, fs.ErrNotExist):
		return "", wrapError(certportal.Invalid, err, "the CA directory "+dir+" cannot be read")
	}
	// Find the highest missing ancestor, to remove it on failure.
	created = filepath.Clean(dir)
	for {
		parent := filepath.Dir(created)
		if parent == created {
			break
		}
		if _, err := os.Stat(parent); err == nil {
			break
		}
		created = parent
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", wrapError(certportal.Internal, err, "the CA directory "+dir+" cannot be created")
	}
	return created, nil
}

// writeFileAtomic writes data to path with permissions perm, atomically
// (see internal/atomicfile): a crash leaves either the old file or the new.
func writeFileAtomic(path string, data []byte, perm fs.FileMode) error {
	if err := atomicfile.WriteFile(path, data, perm); err != nil {
		return wrapError(certportal.Internal, err, "could not write "+path)
	}
	return nil
}

// syncDir fsyncs a directory so the renames in it are durable.
func syncDir(dir string) error {
	if err := atomicfile.SyncDir(dir); err != nil {
		return wrapError(certportal.Internal, err, "could not sync "+dir)
	}
	return nil
}

// build generates the keys and certificates and returns the files to write.
func (o InitOptions) build() ([]caFile, string, error) {
	idBytes := make([]byte, 16)
	if _, err := io.ReadFull(o.Rand, idBytes); err != nil {
		return nil, "", wrapError(certportal.Internal, err, "could not read random bytes")
	}
	id := hex.EncodeToString(idBytes)
	now := o.Now().UTC().Truncate(time.Second)
	notBefore := now.Add(-backdate)
	caName := func(cn string) pkix.Name {
		return pkix.Name{CommonName: cn, Organization: []string{Organization}, OrganizationalUnit: []string{id}}
	}

	keys := make([]crypto.Signer, 4)
	for i := range keys {
		k, err := GenerateKey(o.Rand, o.KeyType)
		if err != nil {
			return nil, "", err
		}
		keys[i] = k
	}
	rootKey, issuingKey, tlsKey, serverKey := keys[0], keys[1], keys[2], keys[3]

	// The root: serial exactly 01, as the about page shows it. The
	// installation ID in OU keeps issuer name + serial unique across
	// installations, which NSS requires.
	root := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               caName(o.RootCN),
		NotBefore:             notBefore,
		NotAfter:              now.AddDate(rootLifetimeYears, 0, 0),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLen:            -1,
	}
	rootCert, err := o.sign(root, root, rootKey.Public(), rootKey)
	if err != nil {
		return nil, "", err
	}

	issuing := issuingTemplate(caName(o.IssuingCN), now, rootCert, o.URL)
	issuingCert, err := o.sign(issuing, rootCert, issuingKey.Public(), rootKey)
	if err != nil {
		return nil, "", err
	}

	tlsCA := &x509.Certificate{
		Subject:               caName(o.TLSCN),
		NotBefore:             notBefore,
		NotAfter:              capTime(now.AddDate(tlsCALifetimeYears, 0, 0), rootCert.NotAfter),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLen:            0,
		MaxPathLenZero:        true,
		CRLDistributionPoints: []string{o.URL + "/crl/root.crl"},
		IssuingCertificateURL: []string{o.URL + "/ca/root.crt"},
	}
	o.addNameConstraints(tlsCA)
	tlsCACert, err := o.sign(tlsCA, rootCert, tlsKey.Public(), rootKey)
	if err != nil {
		return nil, "", err
	}

	server := &x509.Certificate{
		// A subject CN keeps the subject non-empty, so the SAN extension
		// may stay non-critical (RFC 5280 section 4.2.1.6).
		Subject:     pkix.Name{CommonName: o.Hostnames[0], Organization: []string{Organization}},
		NotBefore:   notBefore,
		NotAfter:    capTime(now.Add(serverLifetime), tlsCACert.NotAfter),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	if isRSA(serverKey.Public()) {
		// RSA key exchange (TLS 1.2 without ECDHE) encrypts with the key.
		server.KeyUsage |= x509.KeyUsageKeyEncipherment
	}
	for _, h := range o.Hostnames {
		if ip := net.ParseIP(h); ip != nil {
			server.IPAddresses = append(server.IPAddresses, ip)
		} else {
			server.DNSNames = append(server.DNSNames, h)
		}
	}
	serverCert, err := o.sign(server, tlsCACert, serverKey.Public(), tlsKey)
	if err != nil {
		return nil, "", err
	}

	files := []caFile{
		{RootCertFile, certPEM(rootCert), 0o644},
		{IssuingCertFile, certPEM(issuingCert), 0o644},
		{TLSCACertFile, certPEM(tlsCACert), 0o644},
		{ServerCertFile, certPEM(serverCert, tlsCACert), 0o644},
	}
	for i, name := range []string{RootKeyFile, IssuingKeyFile, TLSCAKeyFile, ServerKeyFile} {
		data, err := keyPEM(keys[i])
		if err != nil {
			return nil, "", wrapError(certportal.Internal, err, "could not encode a private key")
		}
		files = append(files, caFile{name, data, 0o600})
	}
	return files, id, nil
}

// addNameConstraints limits the TLS intermediate to the portal's host
// names. The extension is critical, as RFC 5280 section 4.2.1.10 requires.
// Without an IP host name all IP addresses are excluded, so the
// intermediate cannot vouch for an address nobody asked for.
func (o InitOptions) addNameConstraints(tmpl *x509.Certificate) {
	tmpl.PermittedDNSDomainsCritical = true
	for _, h := range o.Hostnames {
		ip := net.ParseIP(h)
		switch {
		case ip == nil:
			tmpl.PermittedDNSDomains = append(tmpl.PermittedDNSDomains, h)
		case ip.To4() != nil:
			tmpl.PermittedIPRanges = append(tmpl.PermittedIPRanges,
				&net.IPNet{IP: ip.To4(), Mask: net.CIDRMask(32, 32)})
		default:
			tmpl.PermittedIPRanges = append(tmpl.PermittedIPRanges,
				&net.IPNet{IP: ip.To16(), Mask: net.CIDRMask(128, 128)})
		}
	}
	if len(tmpl.PermittedIPRanges) == 0 {
		tmpl.ExcludedIPRanges = []*net.IPNet{
			{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)},
			{IP: net.IPv6zero, Mask: net.CIDRMask(0, 128)},
		}
	}
}

// sign fills in the serial (random unless set), key identifiers and
// signature algorithm, signs tmpl with parent's key and parses the result.
func (o InitOptions) sign(tmpl, parent *x509.Certificate, pub crypto.PublicKey, signer crypto.Signer) (*x509.Certificate, error) {
	return signCert(o.Rand, tmpl, parent, pub, signer)
}

// signCert is the one place certificates are signed.
func signCert(rand io.Reader, tmpl, parent *x509.Certificate, pub crypto.PublicKey, signer crypto.Signer) (*x509.Certificate, error) {
	if tmpl.SerialNumber == nil {
		s, err := newSerial(rand)
		if err != nil {
			return nil, err
		}
		tmpl.SerialNumber = s
	}
	ski, err := subjectKeyID(pub)
	if err != nil {
		return nil, wrapError(certportal.Internal, err, "could not compute a key identifier")
	}
	tmpl.SubjectKeyId = ski
	if tmpl == parent {
		// Self-signed: the AKI names the root's own key, which lets
		// Windows and NSS match it when building chains.
		tmpl.AuthorityKeyId = ski
	}
	tmpl.SignatureAlgorithm = signatureAlgorithm(signer.Public())
	der, err := x509.CreateCertificate(rand, tmpl, parent, pub, signer)
	if err != nil {
		return nil, wrapError(certportal.Internal, err, "could not sign the certificate for "+tmpl.Subject.CommonName)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, wrapError(certportal.Internal, err, "could not parse the certificate just signed")
	}
	return cert, nil
}

// capTime returns t, or limit when t is after it.
func capTime(t, limit time.Time) time.Time {
	if t.After(limit) {
		return limit
	}
	return t
}
