package clientstore

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/certportal/certportal"
	pkcs12 "software.sslmate.com/src/go-pkcs12"
)

// importedStore returns a store holding p's leaf, key and chain.
func importedStore(t testing.TB, p *testPKI) *Store {
	t.Helper()
	s := openStore(t)
	if _, err := s.Import(p.p12(t, pkcs12.Modern2023), testPassword); err != nil {
		t.Fatal(err)
	}
	return s
}

// TestExportInterop exports modern and legacy files and has OpenSSL 3
// (without -legacy), keytool and NSS's pk12util open them and find the key
// and the three certificates.
func TestExportInterop(t *testing.T) {
	needTool(t, "openssl", "openssl")
	needTool(t, "keytool", "openjdk-17-jre-headless")
	needTool(t, "pk12util", "libnss3-tools")
	needTool(t, "certutil", "libnss3-tools")
	for _, keyType := range []string{"p256", "rsa2048"} {
		p := newPKI(t, keyType, "alice")
		s := importedStore(t, p)
		for _, legacy := range []bool{false, true} {
			name := keyType + "/modern"
			if legacy {
				name = keyType + "/legacy"
			}
			t.Run(name, func(t *testing.T) {
				dir := t.TempDir()
				data, err := s.Export("", testPassword, legacy)
				if err != nil {
					t.Fatal(err)
				}
				f := filepath.Join(dir, "alice.p12")
				pw := filepath.Join(dir, "pw.txt")
				writeFile(t, f, data)
				writeFile(t, pw, []byte(testPassword))

				info := run(t, nil, "openssl", "pkcs12", "-info", "-noout", "-in", f, "-passin", "file:"+pw)
				if n := strings.Count(info, "Certificate bag"); n != 3 {
					t.Errorf("openssl sees %d certificate bags, want 3:\n%s", n, info)
				}
				if !strings.Contains(info, "Shrouded Keybag") {
					t.Errorf("openssl sees no key bag:\n%s", info)
				}
				if !legacy {
					// The product asks for AES-256 and ≥ 10,000 iterations.
					for _, want := range []string{"MAC: sha256, Iteration 100000", "AES-256-CBC, Iteration 100000"} {
						if !strings.Contains(info, want) {
							t.Errorf("openssl -info lacks %q:\n%s", want, info)
						}
					}
				} else if !strings.Contains(info, "pbeWithSHA1And3-KeyTripleDES-CBC, Iteration 10000") || !strings.Contains(info, "MAC: sha1, Iteration 10000") {
					// The same writer as the portal's: its KDF and MAC
					// iteration counts (not go-pkcs12's MAC count of 1).
					t.Errorf("legacy file is not 3DES with 10,000 iterations for the key and the MAC:\n%s", info)
				}
				pemOut := run(t, nil, "openssl", "pkcs12", "-in", f, "-passin", "file:"+pw, "-nodes")
				if n := strings.Count(pemOut, "BEGIN CERTIFICATE"); n != 3 || !strings.Contains(pemOut, "BEGIN PRIVATE KEY") {
					t.Errorf("openssl extracted %d certificates (want 3) and key=%v", n, strings.Contains(pemOut, "BEGIN PRIVATE KEY"))
				}

				list := run(t, nil, "keytool", "-list", "-v", "-storetype", "PKCS12", "-keystore", f, "-storepass:file", pw)
				if !strings.Contains(list, "PrivateKeyEntry") || !strings.Contains(list, "Certificate chain length: 3") {
					t.Errorf("keytool does not see a key entry with a chain of 3:\n%s", list)
				}

				db := filepath.Join(dir, "nssdb")
				if err := os.Mkdir(db, 0o700); err != nil {
					t.Fatal(err)
				}
				run(t, nil, "certutil", "-N", "-d", "sql:"+db, "--empty-password")
				run(t, nil, "pk12util", "-i", f, "-d", "sql:"+db, "-w", pw)
				certs := run(t, nil, "certutil", "-L", "-d", "sql:"+db)
				lines := regexp.MustCompile(`(?m)^\S.*\s+[a-zA-Z]*,[a-zA-Z]*,[a-zA-Z]*\s*$`).FindAllString(certs, -1)
				if len(lines) != 3 {
					t.Errorf("certutil -L lists %d certificates, want 3:\n%s", len(lines), certs)
				}
				keys := run(t, nil, "certutil", "-K", "-d", "sql:"+db)
				if !regexp.MustCompile(`(?m)^<\s*0>\s+(ec|rsa)\s+[0-9a-f]+\s+alice\b`).MatchString(keys) {
					t.Errorf("certutil -K shows no key for alice:\n%s", keys)
				}
			})
		}
	}
}

// TestExportRoundTrip exports and imports into a second store: the same
// three certificates arrive in the same stores.
func TestExportRoundTrip(t *testing.T) {
	p := newPKI(t, "p256", "alice")
	s := importedStore(t, p)
	for _, legacy := range []bool{false, true} {
		data, err := s.Export(certportal.Thumbprint(p.leaf.Raw), testPassword, legacy)
		if err != nil {
			t.Fatal(err)
		}
		s2 := openStore(t)
		if _, err := s2.Import(data, testPassword); err != nil {
			t.Fatalf("legacy=%v: importing the export: %v", legacy, err)
		}
		list, err := s2.List("")
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(thumbs(list), p.wantThumbs()) {
			t.Errorf("legacy=%v: second store holds %v, want %v", legacy, thumbs(list), p.wantThumbs())
		}
	}
}

func TestExportRefuses(t *testing.T) {
	p := newPKI(t, "p256", "alice")
	s := importedStore(t, p)
	second, secondKey := p.issueLeaf(t, "p256", "alice", time.Now().Add(-time.Minute))
	two := importedStore(t, p)
	p2 := *p
	p2.leaf, p2.leafKey = second, secondKey
	if _, err := two.Import(p2.p12(t, pkcs12.Modern2023), testPassword); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		s          *Store
		thumbprint string
		password   string
		code       certportal.ErrorCode
		want       string
	}{
		{"11 characters", s, "", "abcdefghijk", certportal.Invalid, "at least 12 characters"},
		{"empty password", s, "", "", certportal.Invalid, "at least 12 characters"},
		{"outside BMP", s, "", "password 🔑🔑🔑🔑", certportal.Invalid, "Basic Multilingual Plane"},
		{"unknown thumbprint", s, strings.Repeat("ab", 20), testPassword, certportal.NotFound, "no certificate with thumbprint"},
		{"not a thumbprint", s, "xyz", testPassword, certportal.Invalid, "not a thumbprint"},
		{"CA thumbprint", s, certportal.Thumbprint(p.root.Raw), testPassword, certportal.NotFound, "personal store"},
		{"ambiguous", two, "", testPassword, certportal.Invalid, "Thumbprint: " + certportal.Thumbprint(second.Raw) + "   (newest)"},
		{"ambiguous, the older listed", two, "", testPassword, certportal.Invalid, "Thumbprint: " + certportal.Thumbprint(p.leaf.Raw)},
		{"empty store", openStore(t), "", testPassword, certportal.NotFound, "no certificate in the personal store"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data, err := tt.s.Export(tt.thumbprint, tt.password, false)
			if err == nil {
				t.Fatalf("Export returned %d bytes, want an error", len(data))
			}
			e := wantCode(t, err, tt.code)
			if !strings.Contains(e.Message, tt.want) {
				t.Errorf("message %q does not contain %q", e.Message, tt.want)
			}
		})
	}
	// The ambiguity is resolved by naming one, in any case.
	if _, err := two.Export(strings.ToLower(certportal.Thumbprint(second.Raw)), testPassword, false); err != nil {
		t.Errorf("Export with a lower-case thumbprint: %v", err)
	}
}
