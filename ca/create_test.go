package ca_test

import (
	"bytes"
	"crypto/x509"
	"errors"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/certportal/certportal"
	"github.com/certportal/certportal/ca"
	"github.com/certportal/certportal/internal/testpki"
)

func TestParseKeyType(t *testing.T) {
	tests := []struct {
		in   string
		want ca.KeyType
		ok   bool
	}{
		{"", ca.P256, true},
		{"p256", ca.P256, true},
		{"P384", ca.P384, true},
		{"rsa2048", ca.RSA2048, true},
		{"rsa3072", ca.RSA3072, true},
		{"rsa4096", ca.RSA4096, true},
		{"rsa1024", "", false},
		{"ed25519", "", false},
	}
	for _, tt := range tests {
		got, err := ca.ParseKeyType(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("ParseKeyType(%q) = %q, %v; want %q, ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
		if err != nil && (certportal.ErrorCodeOf(err) != certportal.Invalid || !strings.Contains(err.Error(), "p256, p384, rsa2048, rsa3072, rsa4096")) {
			t.Errorf("ParseKeyType(%q) error %q: want Invalid listing the choices", tt.in, err)
		}
	}
}

// TestCreate checks the files Create writes and the profile of each
// certificate against SPEC.md, for the key types a CA may have.
func TestCreate(t *testing.T) {
	for _, kt := range []ca.KeyType{ca.P256, ca.P384, ca.RSA2048} {
		t.Run(string(kt), func(t *testing.T) {
			p := testpki.New(t, func(o *ca.InitOptions) {
				o.KeyType = kt
				o.Hostnames = []string{"portal.example.com", "LOCALHOST", "127.0.0.1", "::1"}
				o.URL = "http://portal.example.com:8080/"
			})
			checkFiles(t, p.Dir)
			checkHierarchy(t, p, kt)
		})
	}
}

func checkFiles(t *testing.T, dir string) {
	t.Helper()
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o700 {
		t.Errorf("CA dir mode %v, want 0700", fi.Mode().Perm())
	}
	entries, _ := os.ReadDir(dir)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	// root.crl and the lock taken to write it come from testpki, which
	// signs the root CRL as init does.
	want := []string{".lock", "issuing.crt", "issuing.key", "root.crl", "root.crt", "root.key", "server.crt", "server.key", "tls-ca.crt", "tls-ca.key"}
	if !slices.Equal(names, want) {
		t.Errorf("files %v, want exactly %v (no temporary files left)", names, want)
	}
	for _, n := range want {
		fi, err := os.Stat(filepath.Join(dir, n))
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasSuffix(n, ".key") && fi.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v, want 0600", n, fi.Mode().Perm())
		}
		data, _ := os.ReadFile(filepath.Join(dir, n))
		if strings.HasSuffix(n, ".key") && !bytes.HasPrefix(data, []byte("-----BEGIN PRIVATE KEY-----")) {
			t.Errorf("%s is not PKCS#8 PEM", n)
		}
	}
}

func checkHierarchy(t *testing.T, p *testpki.PKI, kt ca.KeyType) {
	t.Helper()
	now := p.Clock.Now()
	wantAlg := map[ca.KeyType]x509.SignatureAlgorithm{ca.P256: x509.ECDSAWithSHA256, ca.P384: x509.ECDSAWithSHA384, ca.RSA2048: x509.SHA256WithRSA}[kt]
	root, iss, tlsCA := p.Root, p.Issuing, p.TLSCA
	for _, c := range []*x509.Certificate{root, iss, tlsCA} {
		if c.SignatureAlgorithm != wantAlg {
			t.Errorf("%s signed with %v, want %v", c.Subject.CommonName, c.SignatureAlgorithm, wantAlg)
		}
		if !slices.Equal(c.Subject.Organization, []string{"certportal"}) || !slices.Equal(c.Subject.OrganizationalUnit, []string{p.InstallationID}) {
			t.Errorf("%s subject %v: want O=certportal, OU=%s", c.Subject.CommonName, c.Subject, p.InstallationID)
		}
		if !c.IsCA || !c.BasicConstraintsValid || len(c.SubjectKeyId) == 0 {
			t.Errorf("%s: not a CA with SKI", c.Subject.CommonName)
		}
		if !bytes.Equal(c.AuthorityKeyId, root.SubjectKeyId) {
			t.Errorf("%s: AKI %x, want root SKI %x", c.Subject.CommonName, c.AuthorityKeyId, root.SubjectKeyId)
		}
	}
	if len(p.InstallationID) != 32 {
		t.Errorf("installation ID %q: want 32 hex digits", p.InstallationID)
	}
	// Root.
	if root.Subject.CommonName != "SOP-RCA" || root.SerialNumber.Int64() != 1 || root.Subject.String() != root.Issuer.String() {
		t.Errorf("root: CN %q serial %v issuer %v", root.Subject.CommonName, root.SerialNumber, root.Issuer)
	}
	if root.KeyUsage != x509.KeyUsageCertSign|x509.KeyUsageCRLSign || root.MaxPathLen != -1 {
		t.Errorf("root: KU %v pathlen %d", root.KeyUsage, root.MaxPathLen)
	}
	if got := root.NotAfter.Sub(now); got < 3650*24*time.Hour || got > 3654*24*time.Hour {
		t.Errorf("root lifetime %v, want 10 years", got)
	}
	if ext := findExt(root, "2.5.29.15"); ext == nil || !ext.Critical {
		t.Error("root: keyUsage not critical")
	}
	if ext := findExt(root, "2.5.29.19"); ext == nil || !ext.Critical {
		t.Error("root: basicConstraints not critical")
	}
	// Issuing CA.
	if iss.Subject.CommonName != "SOP-ICA1" || iss.MaxPathLen != 0 || !iss.MaxPathLenZero {
		t.Errorf("issuing: CN %q pathlen %d zero=%v", iss.Subject.CommonName, iss.MaxPathLen, iss.MaxPathLenZero)
	}
	if iss.KeyUsage != x509.KeyUsageCertSign|x509.KeyUsageCRLSign|x509.KeyUsageDigitalSignature {
		t.Errorf("issuing KU %v", iss.KeyUsage)
	}
	if !slices.Equal(iss.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}) {
		t.Errorf("issuing EKU %v", iss.ExtKeyUsage)
	}
	if !slices.Equal(iss.CRLDistributionPoints, []string{"http://portal.example.com:8080/crl/root.crl"}) ||
		!slices.Equal(iss.IssuingCertificateURL, []string{"http://portal.example.com:8080/ca/root.crt"}) {
		t.Errorf("issuing CRL DP %v AIA %v", iss.CRLDistributionPoints, iss.IssuingCertificateURL)
	}
	if len(iss.PermittedDNSDomains)+len(iss.PermittedIPRanges)+len(iss.ExcludedDNSDomains) > 0 {
		t.Error("issuing CA has name constraints; SPEC.md forbids them")
	}
	if got := iss.NotAfter.Sub(now); got < 1825*24*time.Hour || got > 1827*24*time.Hour {
		t.Errorf("issuing lifetime %v, want 5 years", got)
	}
	if iss.SerialNumber.BitLen() < 100 {
		t.Errorf("issuing serial %v is not random", iss.SerialNumber)
	}
	// TLS intermediate.
	if tlsCA.Subject.CommonName != "SOP-TLS1" || !tlsCA.MaxPathLenZero || !slices.Equal(tlsCA.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}) {
		t.Errorf("TLS CA: CN %q pathlen0 %v EKU %v", tlsCA.Subject.CommonName, tlsCA.MaxPathLenZero, tlsCA.ExtKeyUsage)
	}
	if !slices.Equal(tlsCA.PermittedDNSDomains, []string{"portal.example.com", "localhost"}) || len(tlsCA.PermittedIPRanges) != 2 || !tlsCA.PermittedDNSDomainsCritical {
		t.Errorf("TLS CA name constraints: DNS %v IP %v critical %v", tlsCA.PermittedDNSDomains, tlsCA.PermittedIPRanges, tlsCA.PermittedDNSDomainsCritical)
	}
	// Server certificate.
	tc, err := p.ServerCertificate()
	if err != nil {
		t.Fatal(err)
	}
	if len(tc.Certificate) != 2 || !bytes.Equal(tc.Certificate[1], tlsCA.Raw) {
		t.Fatalf("server.crt holds %d certificates, want server + TLS CA", len(tc.Certificate))
	}
	srv := tc.Leaf
	if !slices.Equal(srv.DNSNames, []string{"portal.example.com", "localhost"}) ||
		len(srv.IPAddresses) != 2 || !srv.IPAddresses[0].Equal(net.ParseIP("127.0.0.1")) || !srv.IPAddresses[1].Equal(net.IPv6loopback) {
		t.Errorf("server SANs %v %v", srv.DNSNames, srv.IPAddresses)
	}
	wantKU := x509.KeyUsageDigitalSignature
	if kt == ca.RSA2048 {
		wantKU |= x509.KeyUsageKeyEncipherment
	}
	if srv.KeyUsage != wantKU || !slices.Equal(srv.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}) {
		t.Errorf("server KU %v EKU %v", srv.KeyUsage, srv.ExtKeyUsage)
	}
	if srv.NotAfter.Sub(srv.NotBefore) > 397*24*time.Hour+5*time.Minute {
		t.Errorf("server lifetime %v exceeds 397 days", srv.NotAfter.Sub(srv.NotBefore))
	}
	roots := x509.NewCertPool()
	roots.AddCert(root)
	inter := x509.NewCertPool()
	inter.AddCert(tlsCA)
	for _, host := range []string{"portal.example.com", "localhost", "127.0.0.1", "::1"} {
		if _, err := srv.Verify(x509.VerifyOptions{DNSName: host, Roots: roots, Intermediates: inter, CurrentTime: now}); err != nil {
			t.Errorf("server certificate for %s: %v", host, err)
		}
	}
}

func findExt(c *x509.Certificate, oid string) *struct{ Critical bool } {
	for _, e := range c.Extensions {
		if e.Id.String() == oid {
			return &struct{ Critical bool }{e.Critical}
		}
	}
	return nil
}

func TestCreateDefaults(t *testing.T) {
	p := testpki.New(t)
	if p.URL != "http://localhost:8080" {
		t.Errorf("URL %q, want the default taken back from the issuing CA", p.URL)
	}
	tc, err := p.ServerCertificate()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(tc.Leaf.DNSNames, []string{"localhost"}) || len(tc.Leaf.IPAddresses) != 1 || tc.Leaf.IPAddresses[0].String() != "127.0.0.1" {
		t.Errorf("default SANs %v %v", tc.Leaf.DNSNames, tc.Leaf.IPAddresses)
	}
	// Only DNS names: every IP address is excluded from the TLS CA.
	p2 := testpki.New(t, func(o *ca.InitOptions) { o.Hostnames = []string{"example.org"} })
	if len(p2.TLSCA.ExcludedIPRanges) != 2 || len(p2.TLSCA.PermittedIPRanges) != 0 {
		t.Errorf("DNS-only TLS CA: permitted IPs %v excluded %v", p2.TLSCA.PermittedIPRanges, p2.TLSCA.ExcludedIPRanges)
	}
}

func TestCreateRefuses(t *testing.T) {
	tests := []struct {
		name string
		opts func(dir string) ca.InitOptions
		code certportal.ErrorCode
	}{
		{"non-empty dir", func(dir string) ca.InitOptions {
			os.WriteFile(filepath.Join(dir, "something"), nil, 0o600)
			return ca.InitOptions{Dir: dir}
		}, certportal.Conflict},
		{"bad hostname", func(dir string) ca.InitOptions {
			return ca.InitOptions{Dir: dir, Hostnames: []string{"exa mple.com"}}
		}, certportal.Invalid},
		{"https URL", func(dir string) ca.InitOptions {
			return ca.InitOptions{Dir: dir, URL: "https://localhost:8443"}
		}, certportal.Invalid},
		{"same CNs", func(dir string) ca.InitOptions {
			return ca.InitOptions{Dir: dir, RootCN: "X", IssuingCN: "X"}
		}, certportal.Invalid},
		{"bad key type", func(dir string) ca.InitOptions {
			return ca.InitOptions{Dir: dir, KeyType: "dsa"}
		}, certportal.Invalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			opts := tt.opts(dir)
			before, _ := os.ReadDir(dir)
			_, err := ca.Create(opts)
			if certportal.ErrorCodeOf(err) != tt.code {
				t.Fatalf("Create: %v (code %q), want code %q", err, certportal.ErrorCodeOf(err), tt.code)
			}
			after, _ := os.ReadDir(dir)
			if len(after) != len(before) {
				t.Errorf("Create left %d entries behind, had %d", len(after), len(before))
			}
		})
	}
}

// failingReader returns n bytes of zeros and then an error, to make Create
// fail halfway through.
type failingReader struct{ n int }

func (r *failingReader) Read(p []byte) (int, error) {
	if r.n <= 0 {
		return 0, errors.New("entropy exhausted")
	}
	k := min(len(p), r.n)
	clear(p[:k])
	r.n -= k
	return k, nil
}

func TestCreateLeavesNothingOnFailure(t *testing.T) {
	base := t.TempDir()
	for _, n := range []int{0, 40, 200} {
		dir := filepath.Join(base, "data", "ca")
		_, err := ca.Create(ca.InitOptions{Dir: dir, Rand: &failingReader{n}})
		if err == nil {
			t.Fatalf("Create with failing randomness after %d bytes succeeded", n)
		}
		if _, err := os.Stat(filepath.Join(base, "data")); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("after failure at %d bytes, the directories Create made are still there: %v", n, err)
		}
	}
	// An existing empty dir is made private.
	existing := t.TempDir()
	os.Chmod(existing, 0o755)
	if _, err := ca.Create(ca.InitOptions{Dir: existing}); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(existing); fi.Mode().Perm() != 0o700 {
		t.Errorf("existing CA dir mode %v, want 0700", fi.Mode().Perm())
	}
	// An existing empty dir stays, and stays empty.
	dir := t.TempDir()
	if _, err := ca.Create(ca.InitOptions{Dir: dir, Rand: &failingReader{100}}); err == nil {
		t.Fatal("Create succeeded")
	}
	if entries, err := os.ReadDir(dir); err != nil || len(entries) != 0 {
		t.Errorf("existing dir after failure: %v, %v", entries, err)
	}
	// A write failure part-way: a read-only dir (skipped for root, which
	// ignores permissions, by checking the write first).
	ro := t.TempDir()
	os.Chmod(ro, 0o500)
	t.Cleanup(func() { os.Chmod(ro, 0o700) })
	if f, err := os.Create(filepath.Join(ro, "probe")); err == nil {
		f.Close()
		os.Remove(filepath.Join(ro, "probe"))
	} else if _, err := ca.Create(ca.InitOptions{Dir: ro}); err == nil {
		t.Error("Create into a read-only directory succeeded")
	}
}

func TestLoadErrors(t *testing.T) {
	p := shared(t)
	copyDir := func(t *testing.T) string {
		dir := t.TempDir()
		entries, _ := os.ReadDir(p.Dir)
		for _, e := range entries {
			data, _ := os.ReadFile(filepath.Join(p.Dir, e.Name()))
			os.WriteFile(filepath.Join(dir, e.Name()), data, 0o600)
		}
		return dir
	}
	other := testpki.New(t)
	tests := []struct {
		name   string
		change func(dir string)
		code   certportal.ErrorCode
		msg    string
	}{
		{"missing issuing.key", func(dir string) { os.Remove(filepath.Join(dir, "issuing.key")) }, certportal.NotFound, "issuing.key is missing"},
		{"key of another CA", func(dir string) {
			data, _ := os.ReadFile(filepath.Join(other.Dir, "issuing.key"))
			os.WriteFile(filepath.Join(dir, "issuing.key"), data, 0o600)
		}, certportal.Invalid, "does not belong to the certificate SOP-ICA1"},
		{"issuing CA of another root", func(dir string) {
			data, _ := os.ReadFile(filepath.Join(other.Dir, "issuing.crt"))
			os.WriteFile(filepath.Join(dir, "issuing.crt"), data, 0o600)
		}, certportal.Invalid, "not signed by the root"},
		{"garbage certificate", func(dir string) { os.WriteFile(filepath.Join(dir, "root.crt"), []byte("junk"), 0o600) }, certportal.Invalid, "root.crt"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := copyDir(t)
			if _, err := ca.Load(dir, ""); err != nil {
				t.Fatalf("Load of an intact copy: %v", err)
			}
			tt.change(dir)
			_, err := ca.Load(dir, "")
			if certportal.ErrorCodeOf(err) != tt.code || !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("Load: %v (code %q); want code %q and %q", err, certportal.ErrorCodeOf(err), tt.code, tt.msg)
			}
		})
	}
}

func TestNewSerial(t *testing.T) {
	p := shared(t)
	seen := map[string]bool{}
	for range 10000 {
		s, err := p.NewSerial()
		if err != nil {
			t.Fatal(err)
		}
		b := s.Bytes()
		if len(b) != 16 || b[0]&0x80 != 0 || s.Sign() <= 0 {
			t.Fatalf("serial %x: want 16 bytes with the top bit clear", b)
		}
		if seen[string(b)] {
			t.Fatalf("serial %x repeated", b)
		}
		seen[string(b)] = true
	}
	// A reader that yields a zero first byte is retried, never shortened.
	q := testpki.New(t)
	q.Rand = io.MultiReader(bytes.NewReader(make([]byte, 16)), bytes.NewReader(bytes.Repeat([]byte{0xff}, 16)))
	s, err := q.NewSerial()
	if err != nil || len(s.Bytes()) != 16 || s.Bytes()[0] != 0x7f {
		t.Errorf("NewSerial after a zero draw: %x, %v", s, err)
	}
}
