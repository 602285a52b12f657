package ca_test

import (
	"crypto/x509"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/certportal/certportal"
	"github.com/certportal/certportal/ca"
	"github.com/certportal/certportal/internal/testpki"
)

func TestRenewalDue(t *testing.T) {
	nb := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	leaf := &x509.Certificate{NotBefore: nb, NotAfter: nb.Add(90 * 24 * time.Hour)}
	for _, tt := range []struct {
		at   time.Time
		want bool
	}{
		{nb.Add(-time.Minute), true}, // not yet valid: a clock went wrong
		{nb, false},
		{nb.Add(59*24*time.Hour + 23*time.Hour), false},
		{nb.Add(60 * 24 * time.Hour), true}, // a third (30 days) left
		{nb.Add(91 * 24 * time.Hour), true},
	} {
		if got := ca.RenewalDue(leaf, tt.at); got != tt.want {
			t.Errorf("RenewalDue at %v = %v, want %v", tt.at, got, tt.want)
		}
	}
	if !ca.RenewalDue(nil, nb) {
		t.Error("RenewalDue(nil) = false")
	}
}

func TestRenewServerCertificate(t *testing.T) {
	p := testpki.New(t, func(o *ca.InitOptions) { o.Hostnames = []string{"portal.example.com", "127.0.0.1"} })
	before, err := p.ServerCertificate()
	if err != nil {
		t.Fatal(err)
	}
	if !p.CanRenewServerCertificate() {
		t.Fatal("the authority has no TLS intermediate key")
	}
	p.Clock.Advance(300 * 24 * time.Hour)
	if !ca.RenewalDue(before.Leaf, p.Clock.Now()) {
		t.Fatal("a certificate with 97 of 397 days left is not due")
	}
	got, err := p.RenewServerCertificate()
	if err != nil {
		t.Fatal(err)
	}
	leaf := got.Leaf
	if leaf.SerialNumber.Cmp(before.Leaf.SerialNumber) == 0 || !leaf.NotBefore.Equal(p.Clock.Now().Add(-5*time.Minute)) {
		t.Errorf("renewed certificate: serial %x notBefore %v", leaf.SerialNumber, leaf.NotBefore)
	}
	if ca.RenewalDue(leaf, p.Clock.Now()) {
		t.Error("the renewed certificate is due at once")
	}
	if leaf.Subject.String() != before.Leaf.Subject.String() || !slices.Equal(leaf.DNSNames, before.Leaf.DNSNames) ||
		len(leaf.IPAddresses) != 1 || !leaf.IPAddresses[0].Equal(before.Leaf.IPAddresses[0]) ||
		!slices.Equal(leaf.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}) {
		t.Errorf("the renewed certificate names %v %v %v", leaf.Subject, leaf.DNSNames, leaf.IPAddresses)
	}
	roots, inter := x509.NewCertPool(), x509.NewCertPool()
	roots.AddCert(p.Root)
	inter.AddCert(p.TLSCA)
	for _, name := range []string{"portal.example.com", "127.0.0.1"} {
		if _, err := leaf.Verify(x509.VerifyOptions{DNSName: name, Roots: roots, Intermediates: inter, CurrentTime: p.Clock.Now()}); err != nil {
			t.Errorf("the renewed certificate does not verify for %s: %v", name, err)
		}
	}
	lintCert(t, registry(t, lintSources), leaf)
	// On disk too: the next ServerCertificate (a restart, another replica)
	// reads the new pair; the key stays private.
	disk, err := p.ServerCertificate()
	if err != nil || !disk.Leaf.Equal(leaf) || len(disk.Certificate) != 2 {
		t.Fatalf("server.crt after renewal: %v", err)
	}
	if fi, err := os.Stat(filepath.Join(p.Dir, ca.ServerKeyFile)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("server.key: %v %v", fi, err)
	}
	dir := t.TempDir()
	out := mustRun(t, "", "openssl", "verify", "-CAfile", writeCert(t, dir, "root.pem", p.Root),
		"-untrusted", writeCert(t, dir, "tls.pem", p.TLSCA), "-purpose", "sslserver", "-attime", strconv.FormatInt(p.Clock.Now().Unix(), 10), filepath.Join(p.Dir, ca.ServerCertFile))
	if !strings.Contains(out, "server.crt: OK") {
		t.Errorf("openssl verify: %s", out)
	}
}

// TestRenewConcurrently has two replicas (two authorities on one DATA/ca)
// renew at the same moment, again and again: every certificate they get
// is valid, and the files on disk always form a pair.
func TestRenewConcurrently(t *testing.T) {
	p := testpki.New(t)
	b, err := ca.Load(p.Dir, "")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for _, a := range []*ca.Authority{p.Authority, b} {
		wg.Add(2)
		go func() {
			defer wg.Done()
			for range 10 {
				c, err := a.RenewServerCertificate()
				if err == nil {
					_, err = c.Leaf.Verify(x509.VerifyOptions{DNSName: "localhost", Roots: pool(p.Root), Intermediates: pool(p.TLSCA)})
				}
				if err != nil {
					errs <- err
				}
			}
		}()
		go func() { // a reader polling the files meanwhile
			defer wg.Done()
			for range 20 {
				if _, err := a.ServerCertificate(); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func pool(cs ...*x509.Certificate) *x509.CertPool {
	p := x509.NewCertPool()
	for _, c := range cs {
		p.AddCert(c)
	}
	return p
}

// TestRenewWithoutTLSKey: a replica given DATA/ca without tls-ca.key loads
// and serves, and a renewal is refused in words.
func TestRenewWithoutTLSKey(t *testing.T) {
	p := testpki.New(t)
	if err := os.Remove(filepath.Join(p.Dir, ca.TLSCAKeyFile)); err != nil {
		t.Fatal(err)
	}
	a, err := ca.Load(p.Dir, "")
	if err != nil {
		t.Fatalf("Load without tls-ca.key: %v", err)
	}
	if a.CanRenewServerCertificate() {
		t.Error("CanRenewServerCertificate without the key")
	}
	if _, err := a.RenewServerCertificate(); certportal.ErrorCodeOf(err) != certportal.Unavailable {
		t.Errorf("RenewServerCertificate without the key: %v", err)
	}
	// A tls-ca.key of another CA is refused at Load.
	other := testpki.New(t)
	data, _ := os.ReadFile(filepath.Join(other.Dir, ca.TLSCAKeyFile))
	writeFile(t, p.Dir, ca.TLSCAKeyFile, data)
	if _, err := ca.Load(p.Dir, ""); certportal.ErrorCodeOf(err) != certportal.Invalid {
		t.Errorf("Load with a foreign tls-ca.key: %v", err)
	}
}
