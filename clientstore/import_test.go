package clientstore

import (
	"crypto/x509"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/certportal/certportal"
	"github.com/certportal/certportal/internal/atomicfile"
	pkcs12 "software.sslmate.com/src/go-pkcs12"
)

// p12Maker builds a PKCS#12 of p's leaf, key and chain, protected by
// testPassword, in one of the forms users bring.
type p12Maker struct {
	name string
	make func(t testing.TB, p *testPKI, dir string) []byte
}

var p12Makers = []p12Maker{
	{"go-pkcs12 Modern2023", func(t testing.TB, p *testPKI, dir string) []byte { return p.p12(t, pkcs12.Modern2023) }},
	{"go-pkcs12 LegacyDES", func(t testing.TB, p *testPKI, dir string) []byte { return p.p12(t, pkcs12.LegacyDES) }},
	{"openssl default", func(t testing.TB, p *testPKI, dir string) []byte { return opensslP12(t, p, dir) }},
	{"openssl -legacy", func(t testing.TB, p *testPKI, dir string) []byte { return opensslP12(t, p, dir, "-legacy") }},
	{"go-pkcs12 LegacyRC2", func(t testing.TB, p *testPKI, dir string) []byte { return p.p12(t, pkcs12.LegacyRC2) }},
	{"go-pkcs12 Modern2026", func(t testing.TB, p *testPKI, dir string) []byte { return p.p12(t, pkcs12.Modern2026) }},
	{"keytool", keytoolP12},
	{"pk12util -o", func(t testing.TB, p *testPKI, dir string) []byte { return nssP12(t, p, dir) }},
	{"pk12util -o 3DES", func(t testing.TB, p *testPKI, dir string) []byte {
		return nssP12(t, p, dir, "-C", nss3DES, "-c", nss3DES)
	}},
	{"pk12util -o RC2 SHA-1", func(t testing.TB, p *testPKI, dir string) []byte {
		return nssP12(t, p, dir, "-C", "PKCS #12 V2 PBE With SHA-1 And 40 Bit RC2 CBC", "-M", "SHA-1")
	}},
}

// nss3DES is pk12util's name for the legacy cipher of old Firefox exports.
const nss3DES = "PKCS #12 V2 PBE With SHA-1 And 3KEY Triple DES-CBC"

// nssP12 imports the openssl file into a fresh NSS database with pk12util
// -i and exports it again with pk12util -o, as a user moving a
// certificate out of Firefox or Chromium on Linux does. NSS writes BER
// with indefinite lengths; the test checks that it did.
func nssP12(t testing.TB, p *testPKI, dir string, extra ...string) []byte {
	t.Helper()
	needTool(t, "pk12util", "libnss3-tools")
	needTool(t, "certutil", "libnss3-tools")
	src := opensslP12(t, p, dir)
	writeFile(t, filepath.Join(dir, "src.p12"), src)
	db := "sql:" + filepath.Join(dir, "nssdb")
	if err := os.Mkdir(filepath.Join(dir, "nssdb"), 0o700); err != nil {
		t.Fatal(err)
	}
	pw := filepath.Join(dir, "pw.txt")
	run(t, nil, "certutil", "-N", "-d", db, "--empty-password")
	run(t, nil, "pk12util", "-i", filepath.Join(dir, "src.p12"), "-d", db, "-w", pw)
	out := filepath.Join(dir, "nss.p12")
	run(t, nil, "pk12util", append([]string{"-o", out, "-n", "test", "-d", db, "-w", pw}, extra...)...)
	data := readFile(t, out)
	if len(data) < 2 || data[1] != 0x80 {
		t.Fatalf("pk12util wrote a definite-length file (% x...); the test no longer covers BER", data[:min(len(data), 4)])
	}
	return data
}

// opensslP12 runs openssl pkcs12 -export, password from a file.
func opensslP12(t testing.TB, p *testPKI, dir string, extra ...string) []byte {
	t.Helper()
	needTool(t, "openssl", "openssl")
	p.writePEMs(t, dir)
	out := filepath.Join(dir, "openssl.p12")
	args := append([]string{"pkcs12", "-export", "-in", filepath.Join(dir, "leaf.pem"), "-inkey", filepath.Join(dir, "key.pem"),
		"-certfile", filepath.Join(dir, "chain.pem"), "-name", "test", "-out", out, "-passout", "file:" + filepath.Join(dir, "pw.txt")}, extra...)
	run(t, nil, "openssl", args...)
	return readFile(t, out)
}

// keytoolP12 converts the openssl file into a keystore written by Java's
// keytool (-importkeystore), passwords from files.
func keytoolP12(t testing.TB, p *testPKI, dir string) []byte {
	t.Helper()
	needTool(t, "keytool", "openjdk-17-jre-headless")
	src := opensslP12(t, p, dir)
	writeFile(t, filepath.Join(dir, "src.p12"), src)
	out := filepath.Join(dir, "keytool.p12")
	pw := filepath.Join(dir, "pw.txt")
	run(t, nil, "keytool", "-importkeystore", "-noprompt",
		"-srckeystore", filepath.Join(dir, "src.p12"), "-srcstoretype", "PKCS12", "-srcstorepass:file", pw,
		"-destkeystore", out, "-deststoretype", "PKCS12", "-deststorepass:file", pw)
	return readFile(t, out)
}

func TestImportFormats(t *testing.T) {
	for _, keyType := range []string{"p256", "rsa2048"} {
		p := newPKI(t, keyType, "alice")
		for _, m := range p12Makers {
			t.Run(keyType+"/"+m.name, func(t *testing.T) {
				data := m.make(t, p, t.TempDir())
				s := openStore(t)
				got, err := s.Import(data, testPassword)
				if err != nil {
					t.Fatalf("Import: %v", err)
				}
				if len(got) != 3 {
					t.Fatalf("Import returned %d certificates, want 3: %+v", len(got), got)
				}
				if got[0].Store != Personal || got[0].Thumbprint != certportal.Thumbprint(p.leaf.Raw) || !got[0].HasKey {
					t.Errorf("first result = %+v, want the leaf in personal with its key", got[0].Entry)
				}
				for _, g := range got {
					if !g.Added {
						t.Errorf("%s/%s: Added = false on first import", g.Store, g.IssuedTo)
					}
				}
				list, err := s.List("")
				if err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(thumbs(list), p.wantThumbs()) {
					t.Fatalf("stores hold %v, want %v", thumbs(list), p.wantThumbs())
				}
				wantOrder := []string{"personal alice SOP-ICA1", "intermediate SOP-ICA1 SOP-RCA", "root SOP-RCA SOP-RCA"}
				for i, e := range list {
					if got := e.Store + " " + e.IssuedTo + " " + e.IssuedBy; got != wantOrder[i] {
						t.Errorf("List[%d] = %q, want %q", i, got, wantOrder[i])
					}
				}
				if list[0].Serial != certportal.FormatSerial(p.leaf.SerialNumber) || list[0].SHA256 != certportal.Fingerprint256(p.leaf.Raw) {
					t.Errorf("leaf entry %+v has the wrong serial or SHA-256", list[0])
				}
				before := snapshot(t, s.Dir())
				again, err := s.Import(data, testPassword)
				if err != nil {
					t.Fatalf("second Import: %v", err)
				}
				for _, g := range again {
					if g.Added {
						t.Errorf("second import added %s/%s again", g.Store, g.IssuedTo)
					}
				}
				if after := snapshot(t, s.Dir()); !slices.Equal(before, after) {
					t.Errorf("second import changed the store:\n%v\n%v", before, after)
				}
			})
		}
	}
}

// TestImportFilePermissions checks the modes: keys and certificates 0600,
// directories 0700.
func TestImportFilePermissions(t *testing.T) {
	p := newPKI(t, "p256", "alice")
	s := openStore(t)
	if _, err := s.Import(p.p12(t, pkcs12.Modern2023), testPassword); err != nil {
		t.Fatal(err)
	}
	n := 0
	filepath.Walk(s.Dir(), func(path string, info os.FileInfo, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		want := os.FileMode(0o600)
		if info.IsDir() {
			want = 0o700 | os.ModeDir
		}
		if info.Mode() != want {
			t.Errorf("%s has mode %v, want %v", path, info.Mode(), want)
		}
		if strings.HasPrefix(info.Name(), atomicfile.TempPrefix) {
			t.Errorf("temporary file %s left behind", path)
		}
		n++
		return nil
	})
	// store dir, 3 store dirs, .lock, 3 certificates, 1 key
	if n != 9 {
		t.Errorf("store has %d entries, want 9", n)
	}
}

func TestImportRejects(t *testing.T) {
	p := newPKI(t, "p256", "alice")
	other := newPKI(t, "p256", "bob")
	tmp := t.TempDir()
	modern := p.p12(t, pkcs12.Modern2023)
	corrupt := slices.Clone(modern)
	corrupt[len(corrupt)/2] ^= 0x55
	p.writePEMs(t, tmp)
	needTool(t, "openssl", "openssl")
	noKeyPath := filepath.Join(tmp, "nokey.p12")
	run(t, nil, "openssl", "pkcs12", "-export", "-nokeys", "-in", filepath.Join(tmp, "leaf.pem"), "-certfile", filepath.Join(tmp, "chain.pem"),
		"-out", noKeyPath, "-passout", "file:"+filepath.Join(tmp, "pw.txt"))
	trustStore, err := pkcs12.Modern2023.EncodeTrustStore([]*x509.Certificate{p.root}, testPassword)
	if err != nil {
		t.Fatal(err)
	}
	mismatched, err := pkcs12.Modern2023.Encode(other.leafKey, p.leaf, nil, testPassword)
	if err != nil {
		t.Fatal(err)
	}
	// A file stating more iterations than Import will run: refused
	// before any key derivation, not after minutes of it.
	slow, err := pkcs12.Modern2023.WithIterations(maxKDFIterations+1).Encode(p.leafKey, p.leaf, nil, testPassword)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		data     []byte
		password string
		want     string
	}{
		{"wrong password modern", modern, "wrong password!", "the PKCS#12 password is wrong"},
		{"wrong password legacy", p.p12(t, pkcs12.LegacyDES), "wrong password!", "the PKCS#12 password is wrong"},
		{"wrong password openssl", opensslP12(t, p, t.TempDir()), "wrong password!", "the PKCS#12 password is wrong"},
		{"empty password", modern, "", "the PKCS#12 password is wrong"},
		{"truncated", modern[:len(modern)/2], testPassword, "not a valid PKCS#12 file"},
		{"corrupt byte", corrupt, testPassword, "PKCS#12"},
		{"empty file", nil, testPassword, "empty"},
		{"PEM instead", pemCert(p.leaf), testPassword, "PEM"},
		{"openssl -nokeys", readFile(t, noKeyPath), testPassword, "no private key"},
		{"trust store", trustStore, testPassword, "no private key"},
		{"key of another certificate", mismatched, testPassword, "does not belong"},
		{"too many iterations", slow, testPassword, "key-derivation iterations"},
	}
	s := openStore(t)
	// The store starts with someone else's certificates, so "unchanged"
	// compares real content.
	if _, err := s.Import(other.p12(t, pkcs12.Modern2023), testPassword); err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := snapshot(t, s.Dir())
			start := time.Now()
			got, err := s.Import(tt.data, tt.password)
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("Import took %v to refuse the file", d)
			}
			if err == nil {
				t.Fatalf("Import succeeded with %d certificates, want an error", len(got))
			}
			e := wantCode(t, err, certportal.Invalid)
			t.Logf("message: %s", err)
			if !strings.Contains(e.Message, tt.want) {
				t.Errorf("message %q does not contain %q", e.Message, tt.want)
			}
			if strings.Contains(e.Message, "pkcs12:") || strings.Contains(e.Message, "asn1:") {
				t.Errorf("message %q shows a library error to the user", e.Message)
			}
			if after := snapshot(t, s.Dir()); !slices.Equal(before, after) {
				t.Errorf("a failed import changed the store:\nbefore %v\nafter  %v", before, after)
			}
		})
	}
}
