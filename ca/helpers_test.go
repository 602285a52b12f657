package ca_test

import (
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/certportal/certportal/ca"
	"github.com/certportal/certportal/internal/testpki"
)

// tool returns the path of an outside tool, failing the test when it is
// missing: the interop tests are the point, so they never skip.
func tool(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s is not installed; the interop tests need it (Debian: apt-get install -y openssl openjdk-17-jre-headless)", name)
	}
	return p
}

// run runs an outside tool with stdin and returns its combined output.
func run(t testing.TB, stdin string, name string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(tool(t, name), args...)
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// mustRun is run that fails the test when the tool fails.
func mustRun(t testing.TB, stdin string, name string, args ...string) string {
	t.Helper()
	out, err := run(t, stdin, name, args...)
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return out
}

// writeFile writes data to dir/name and returns the path.
func writeFile(t testing.TB, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// writePEM writes DER blocks as PEM of the given type.
func writePEM(t testing.TB, dir, name, typ string, ders ...[]byte) string {
	t.Helper()
	var out []byte
	for _, d := range ders {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: d})...)
	}
	return writeFile(t, dir, name, out)
}

// writeCert writes certificates as PEM.
func writeCert(t testing.TB, dir, name string, certs ...*x509.Certificate) string {
	t.Helper()
	var ders [][]byte
	for _, c := range certs {
		ders = append(ders, c.Raw)
	}
	return writePEM(t, dir, name, "CERTIFICATE", ders...)
}

var (
	sharedOnce sync.Once
	sharedPKI  *testpki.PKI
	sharedDir  string
)

// shared returns one P-256 CA for the whole test binary, for tests that
// only read it (TestMain removes its directory).
func shared(t testing.TB) *testpki.PKI {
	t.Helper()
	sharedOnce.Do(func() {
		dir, err := os.MkdirTemp("", "ca-test-")
		if err != nil {
			t.Fatal(err)
		}
		sharedDir = dir
		sharedPKI = testpki.New(dirTB{t, dir})
	})
	if sharedPKI == nil {
		t.Fatal("the shared test CA could not be created")
	}
	return sharedPKI
}

// dirTB hands testpki.New a TempDir that outlives the first test using it.
type dirTB struct {
	testing.TB
	dir string
}

func (d dirTB) TempDir() string { return d.dir }

func TestMain(m *testing.M) {
	code := m.Run()
	if sharedDir != "" {
		os.RemoveAll(sharedDir)
	}
	os.Exit(code)
}

// issue issues a leaf or fails the test.
func issue(t testing.TB, p *testpki.PKI, id string, kt ca.KeyType) (*x509.Certificate, any) {
	t.Helper()
	leaf, key, err := p.Issue(ca.LeafRequest{ID: id, Email: id + "@example.com", KeyType: kt})
	if err != nil {
		t.Fatalf("Issue(%s, %s): %v", id, kt, err)
	}
	return leaf, key
}

// errorsAs is errors.As, kept short for table tests.
func errorsAs(err error, target any) bool { return errors.As(err, target) }

// loadKey reads a PKCS#8 PEM key file of the CA directory.
func loadKey(t testing.TB, path string) crypto.Signer {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(data)
	if block == nil {
		t.Fatalf("%s: no PEM", path)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return k.(crypto.Signer)
}

// newOther returns a second, unrelated CA.
func newOther(t testing.TB) *testpki.PKI { return testpki.New(t) }

// fakeLeaf is just enough of a certificate for ocsp.CreateRequest, which
// reads only the serial number.
func fakeLeaf(p *testpki.PKI, serial *big.Int) *struct{ Certificate x509.Certificate } {
	_ = p
	return &struct{ Certificate x509.Certificate }{x509.Certificate{SerialNumber: serial}}
}
