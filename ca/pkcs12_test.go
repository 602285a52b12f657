package ca_test

import (
	"crypto"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/certportal/certportal/ca"
)

// TestPKCS12Tools opens modern and legacy files with OpenSSL 3 (without
// -legacy), Java's keytool and NSS's pk12util, for each user key type.
func TestPKCS12Tools(t *testing.T) {
	p := shared(t)
	const password = "Tr0ub4dor&3 horse"
	for _, kt := range []ca.KeyType{ca.P256, ca.P384, ca.RSA2048} {
		leaf, key := issue(t, p, "p12-"+string(kt), kt)
		for _, legacy := range []bool{false, true} {
			name := fmt.Sprintf("%s/legacy=%v", kt, legacy)
			t.Run(name, func(t *testing.T) {
				dir := t.TempDir()
				der, err := p.PKCS12(key.(crypto.Signer), leaf, password, legacy)
				if err != nil {
					t.Fatal(err)
				}
				f := writeFile(t, dir, "user.p12", der)
				pw := writeFile(t, dir, "pw", []byte(password+"\n"))

				// OpenSSL 3, default provider only.
				out := mustRun(t, "", "openssl", "pkcs12", "-info", "-in", f, "-passin", "file:"+pw, "-noout")
				if n := strings.Count(out, "Certificate bag"); n != 3 {
					t.Errorf("openssl sees %d certificates, want 3:\n%s", n, out)
				}
				if n := strings.Count(out, "Shrouded Keybag"); n != 1 {
					t.Errorf("openssl sees %d keys, want 1:\n%s", n, out)
				}
				want := []string{"MAC: sha256, Iteration 100000", "PBES2, PBKDF2, AES-256-CBC, Iteration 100000, PRF hmacWithSHA256"}
				if legacy {
					want = []string{"MAC: sha1, Iteration 10000", "pbeWithSHA1And3-KeyTripleDES-CBC, Iteration 10000"}
				}
				for _, w := range want {
					if !strings.Contains(out, w) {
						t.Errorf("openssl output lacks %q:\n%s", w, out)
					}
				}
				// A wrong password is refused.
				bad := writeFile(t, dir, "bad", []byte(password+"x\n"))
				if out, err := run(t, "", "openssl", "pkcs12", "-info", "-in", f, "-passin", "file:"+bad, "-noout"); err == nil {
					t.Errorf("openssl opened the file with a wrong password:\n%s", out)
				}

				// keytool reads the store password from standard input.
				out = mustRun(t, password+"\n", "keytool", "-list", "-v", "-storetype", "PKCS12", "-keystore", f)
				if !strings.Contains(out, "Entry type: PrivateKeyEntry") || !strings.Contains(out, "Certificate chain length: 3") ||
					!strings.Contains(out, "Owner: CN="+leaf.Subject.CommonName) {
					t.Errorf("keytool does not list the key with a chain of 3:\n%s", out)
				}

				// pk12util imports into a fresh NSS database.
				db := filepath.Join(dir, "nssdb")
				mustRun(t, "", "mkdir", db)
				mustRun(t, "", "certutil", "-N", "-d", "sql:"+db, "--empty-password")
				pwNoNL := writeFile(t, dir, "pw-nss", []byte(password))
				out = mustRun(t, "", "pk12util", "-i", f, "-d", "sql:"+db, "-w", pwNoNL)
				if !strings.Contains(out, "PKCS12 IMPORT SUCCESSFUL") {
					t.Errorf("pk12util:\n%s", out)
				}
				out = mustRun(t, "", "certutil", "-L", "-d", "sql:"+db)
				for _, cn := range []string{leaf.Subject.CommonName, "SOP-ICA1", "SOP-RCA"} {
					if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(cn) + `|CN=` + regexp.QuoteMeta(cn)).MatchString(out) {
						t.Errorf("NSS database lacks %s:\n%s", cn, out)
					}
				}
				out = mustRun(t, "", "certutil", "-K", "-d", "sql:"+db)
				if strings.Count(out, "<") != 1 {
					t.Errorf("NSS database should hold one key:\n%s", out)
				}
			})
		}
	}
}
