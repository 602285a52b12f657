package clientstore

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/certportal/certportal"
	pkcs12 "software.sslmate.com/src/go-pkcs12"
)

// testPassword is the PKCS#12 password of the test files (≥ 12 characters).
const testPassword = "correct horse battery"

// testPKI is a throw-away hierarchy as the portal builds it: a self-signed
// root, an issuing CA under it, and a client-auth leaf under that.
type testPKI struct {
	root, ica, leaf          *x509.Certificate
	rootKey, icaKey, leafKey crypto.Signer
}

func newKey(t testing.TB, keyType string) crypto.Signer {
	t.Helper()
	var k crypto.Signer
	var err error
	switch keyType {
	case "p256":
		k, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "rsa2048":
		k, err = rsa.GenerateKey(rand.Reader, 2048)
	default:
		t.Fatalf("unknown key type %q", keyType)
	}
	if err != nil {
		t.Fatal(err)
	}
	return k
}

var serialCounter int64 = time.Now().UnixNano()

func issue(t testing.TB, tmpl, parent *x509.Certificate, parentKey crypto.Signer, pub crypto.PublicKey) *x509.Certificate {
	t.Helper()
	serialCounter++
	tmpl.SerialNumber = big.NewInt(serialCounter)
	if parent == nil {
		parent = tmpl
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, parentKey)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// newPKI makes a root, issuing CA and leaf (subject CN=user) with keys of
// keyType.
func newPKI(t testing.TB, keyType, user string) *testPKI {
	t.Helper()
	now := time.Now()
	p := &testPKI{rootKey: newKey(t, keyType), icaKey: newKey(t, keyType)}
	p.root = issue(t, &x509.Certificate{
		Subject:               pkix.Name{CommonName: "SOP-RCA", Organization: []string{"certportal"}, OrganizationalUnit: []string{fmt.Sprint(serialCounter)}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(10 * 365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}, nil, p.rootKey, p.rootKey.Public())
	p.ica = issue(t, &x509.Certificate{
		Subject:               pkix.Name{CommonName: "SOP-ICA1", Organization: []string{"certportal"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(5 * 365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}, p.root, p.rootKey, p.icaKey.Public())
	p.leaf, p.leafKey = p.issueLeaf(t, keyType, user, now.Add(-5*time.Minute))
	return p
}

// issueLeaf issues another client certificate under the issuing CA.
func (p *testPKI) issueLeaf(t testing.TB, keyType, user string, notBefore time.Time) (*x509.Certificate, crypto.Signer) {
	t.Helper()
	k := newKey(t, keyType)
	c := issue(t, &x509.Certificate{
		Subject:        pkix.Name{CommonName: user},
		EmailAddresses: []string{user + "@example.com"},
		NotBefore:      notBefore,
		NotAfter:       notBefore.Add(365 * 24 * time.Hour),
		KeyUsage:       x509.KeyUsageDigitalSignature,
		ExtKeyUsage:    []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}, p.ica, p.icaKey, k.Public())
	return c, k
}

// serverCert issues a TLS server certificate for 127.0.0.1 under the root.
func (p *testPKI) serverCert(t testing.TB) tls.Certificate {
	t.Helper()
	k := newKey(t, "p256")
	c := issue(t, &x509.Certificate{
		Subject:     pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:   time.Now().Add(-time.Hour),
		NotAfter:    time.Now().Add(24 * time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}, p.root, p.rootKey, k.Public())
	return tls.Certificate{Certificate: [][]byte{c.Raw}, PrivateKey: k, Leaf: c}
}

// p12 encodes the leaf, its key and the chain with a go-pkcs12 encoder.
func (p *testPKI) p12(t testing.TB, enc *pkcs12.Encoder) []byte {
	t.Helper()
	b, err := enc.Encode(p.leafKey, p.leaf, []*x509.Certificate{p.ica, p.root}, testPassword)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// writePEMs writes leaf.pem, key.pem (PKCS#8), chain.pem (ICA + root) and
// pw.txt into dir, for the command-line tools.
func (p *testPKI) writePEMs(t testing.TB, dir string) {
	t.Helper()
	keyDER, err := x509.MarshalPKCS8PrivateKey(p.leafKey)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "leaf.pem"), pemCert(p.leaf))
	writeFile(t, filepath.Join(dir, "key.pem"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}))
	writeFile(t, filepath.Join(dir, "chain.pem"), append(pemCert(p.ica), pemCert(p.root)...))
	writeFile(t, filepath.Join(dir, "pw.txt"), []byte(testPassword+"\n"))
}

func pemCert(c *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
}

func writeFile(t testing.TB, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

func readFile(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// needTool fails the test when an external tool is missing: these interop
// checks must run in CI, so a missing tool is an error, not a skip.
func needTool(t testing.TB, name, pkg string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		t.Fatalf("this test needs %s on PATH (Debian package %s): %v", name, pkg, err)
	}
}

// run runs a tool and returns its combined output, failing the test when
// it exits non-zero.
func run(t testing.TB, stdin []byte, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// snapshot lists every file under dir with its mode and content hash, so
// a test can tell that an operation wrote nothing.
func snapshot(t testing.TB, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		line := fmt.Sprintf("%s %v", rel, info.Mode())
		if info.Mode().IsRegular() {
			data, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			sum := sha256.Sum256(data)
			line += " " + hex.EncodeToString(sum[:8])
		}
		out = append(out, line)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

// wantCode fails unless err is a *certportal.Error with code.
func wantCode(t testing.TB, err error, code certportal.ErrorCode) *certportal.Error {
	t.Helper()
	var e *certportal.Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v (%T) is not a *certportal.Error with code %s", err, err, code)
	}
	if e.Code != code {
		t.Fatalf("error %q has code %s, want %s", err, e.Code, code)
	}
	return e
}

func openStore(t testing.TB) *Store {
	t.Helper()
	s, err := Open(filepath.Join(t.TempDir(), "store"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// thumbs returns "store/THUMBPRINT" for each entry, sorted.
func thumbs(es []Entry) []string {
	var out []string
	for _, e := range es {
		out = append(out, e.Store+"/"+e.Thumbprint)
	}
	slices.Sort(out)
	return out
}

// wantThumbs is what a store should hold after importing p's file.
func (p *testPKI) wantThumbs() []string {
	out := []string{
		Personal + "/" + certportal.Thumbprint(p.leaf.Raw),
		Intermediate + "/" + certportal.Thumbprint(p.ica.Raw),
		Root + "/" + certportal.Thumbprint(p.root.Raw),
	}
	slices.Sort(out)
	return out
}
