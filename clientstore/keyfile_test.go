package clientstore

import (
	"bufio"
	"bytes"
	"crypto"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"filippo.io/age"
	"filippo.io/age/armor"
	pkcs12 "software.sslmate.com/src/go-pkcs12"

	"github.com/certportal/certportal"
)

// TestEncryptedKeys: with a passphrase asked for, the private key lands in
// the store encrypted (age, scrypt at the work factor of age's default),
// holds nothing of the plain key, and export gives back the same key with
// the passphrase; a wrong or missing passphrase exports nothing, and a
// second import into a store with an encrypted key is encrypted too.
func TestEncryptedKeys(t *testing.T) {
	const pass = "correct horse battery staple"
	p := newPKI(t, "p256", "alice")
	s := openStore(t)
	asked := 0
	s.SetPassphrase(func() (string, error) { asked++; return pass, nil }, true)
	if _, err := s.Import(p.p12(t, pkcs12.Modern2023), testPassword); err != nil {
		t.Fatal(err)
	}
	if asked != 1 {
		t.Errorf("the passphrase was asked for %d times, want 1", asked)
	}
	keyPath := filepath.Join(s.Dir(), Personal, certportal.Thumbprint(p.leaf.Raw)+".key")
	file := readFile(t, keyPath)
	if !bytes.HasPrefix(file, []byte(armor.Header)) || bytes.Contains(file, []byte("PRIVATE KEY")) {
		t.Fatalf("the key file is not an armored age file:\n%s", file)
	}
	if fi, _ := os.Stat(keyPath); fi.Mode().Perm() != 0o600 {
		t.Errorf("the key file has mode %v, want 0600", fi.Mode().Perm())
	}
	if got := scryptWorkFactor(t, file); got != "18" {
		t.Errorf("the key file's scrypt work factor is %s, want 18", got)
	}
	// age itself opens it with the passphrase, and finds the PKCS#8 key.
	id, _ := age.NewScryptIdentity(pass)
	r, err := age.Decrypt(armor.NewReader(bytes.NewReader(file)), id)
	if err != nil {
		t.Fatal(err)
	}
	plain, _ := io.ReadAll(r)
	if !bytes.HasPrefix(plain, []byte("-----BEGIN PRIVATE KEY-----")) {
		t.Fatalf("the decrypted key file is not PKCS#8 PEM:\n%s", plain)
	}

	// The same store opened again, as by a later command.
	exportWith := func(get func() (string, error)) ([]byte, error) {
		again, err := Open(s.Dir())
		if err != nil {
			t.Fatal(err)
		}
		if get != nil {
			again.SetPassphrase(get, false)
		}
		return again.Export("", testPassword, false)
	}
	before := snapshot(t, s.Dir())
	out, err := exportWith(func() (string, error) { return pass, nil })
	if err != nil {
		t.Fatal(err)
	}
	key, leaf, _, err := pkcs12.DecodeChain(out, testPassword)
	if err != nil {
		t.Fatal(err)
	}
	if !leaf.Equal(p.leaf) || !p.leafKey.(interface{ Equal(crypto.PrivateKey) bool }).Equal(key) {
		t.Error("the export does not hold the imported certificate and key")
	}
	_, err = exportWith(func() (string, error) { return "not the passphrase", nil })
	if e := wantCode(t, err, certportal.Unauthorized); !strings.Contains(e.Message, "passphrase") || !strings.Contains(e.Message, "wrong") {
		t.Errorf("a wrong passphrase says %q", e.Message)
	}
	_, err = exportWith(nil)
	if e := wantCode(t, err, certportal.Invalid); !strings.Contains(e.Message, "--key-passphrase-file") {
		t.Errorf("no passphrase says %q", e.Message)
	}
	if after := snapshot(t, s.Dir()); strings.Join(after, "\n") != strings.Join(before, "\n") {
		t.Errorf("exports changed the store:\n%v\n%v", before, after)
	}

	// A second certificate, imported without asking for encryption, is
	// encrypted too: the store does not mix protected and open keys.
	leaf2, key2 := p.issueLeaf(t, "p256", "alice", p.leaf.NotBefore)
	p2 := *p
	p2.leaf, p2.leafKey = leaf2, key2
	again, _ := Open(s.Dir())
	again.SetPassphrase(func() (string, error) { return pass, nil }, false)
	if _, err := again.Import(p2.p12(t, pkcs12.Modern2023), testPassword); err != nil {
		t.Fatal(err)
	}
	if file := readFile(t, filepath.Join(s.Dir(), Personal, certportal.Thumbprint(leaf2.Raw)+".key")); !bytes.HasPrefix(file, []byte(armor.Header)) {
		t.Errorf("the second key was written unencrypted:\n%.40s", file)
	}
}

// TestPlainKeysStayPlain: a store whose keys were never encrypted writes
// PKCS#8 PEM, never asks for a passphrase, and a damaged encrypted key
// file is called damaged, not a wrong passphrase.
func TestPlainKeysStayPlain(t *testing.T) {
	p := newPKI(t, "p256", "alice")
	s := openStore(t)
	s.SetPassphrase(func() (string, error) { t.Error("a passphrase was asked for"); return "x", nil }, false)
	if _, err := s.Import(p.p12(t, pkcs12.Modern2023), testPassword); err != nil {
		t.Fatal(err)
	}
	keyPath := filepath.Join(s.Dir(), Personal, certportal.Thumbprint(p.leaf.Raw)+".key")
	if file := readFile(t, keyPath); !bytes.HasPrefix(file, []byte("-----BEGIN PRIVATE KEY-----")) {
		t.Fatalf("the key file is not PKCS#8 PEM:\n%.40s", file)
	}
	if _, err := s.Export("", testPassword, false); err != nil {
		t.Fatal(err)
	}
	writeFile(t, keyPath, []byte(armor.Header+"\nnot age at all\n-----END AGE ENCRYPTED FILE-----\n"))
	s.SetPassphrase(func() (string, error) { return "x", nil }, false)
	_, err := s.Export("", testPassword, false)
	if e := wantCode(t, err, certportal.Internal); !strings.Contains(e.Message, "damaged") {
		t.Errorf("a damaged key file says %q", e.Message)
	}
}

// scryptWorkFactor returns the work factor in an armored age file's scrypt
// stanza ("-> scrypt SALT N").
func scryptWorkFactor(t *testing.T, file []byte) string {
	t.Helper()
	sc := bufio.NewScanner(armor.NewReader(bytes.NewReader(file)))
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) == 4 && f[0] == "->" && f[1] == "scrypt" {
			return f[3]
		}
	}
	t.Fatal("no scrypt stanza in the age header")
	return ""
}
