package ca_test

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"io"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"filippo.io/age"
	"filippo.io/age/armor"

	"github.com/certportal/certportal"
	"github.com/certportal/certportal/ca"
	"github.com/certportal/certportal/internal/testpki"
)

// keyPEMBytes encodes a key as PKCS#8 PEM, the plaintext of a root key file.
func keyPEMBytes(t testing.TB, k crypto.Signer) []byte {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

// TestLoadLeavesTheRootKeyAlone: a loaded Authority holds no root key and
// cannot sign with the root; Load does not even read root.key (garbage in
// it does not matter) and works without it.
func TestLoadLeavesTheRootKeyAlone(t *testing.T) {
	p := testpki.New(t)
	rootKey := filepath.Join(p.Dir, ca.RootKeyFile)
	if err := os.WriteFile(rootKey, []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	a, err := ca.Load(p.Dir, "")
	if err != nil {
		t.Fatalf("Load with a damaged root.key: %v (it must not read it)", err)
	}
	if a.HasRootKey() || !a.RootKeyInDir() {
		t.Errorf("HasRootKey %v RootKeyInDir %v, want false true", a.HasRootKey(), a.RootKeyInDir())
	}
	if err := a.LoadRootKey(); certportal.ErrorCodeOf(err) != certportal.Invalid {
		t.Errorf("LoadRootKey of a damaged root.key: %v, want Invalid", err)
	}
	if err := os.Remove(rootKey); err != nil {
		t.Fatal(err)
	}
	if a, err = ca.Load(p.Dir, ""); err != nil {
		t.Fatalf("Load without root.key: %v", err)
	}
	if a.RootKeyInDir() {
		t.Error("RootKeyInDir after root.key was removed")
	}
	// Everything the portal does still works.
	if _, _, err := a.Issue(ca.LeafRequest{ID: "alice"}); err != nil {
		t.Errorf("Issue without the root key: %v", err)
	}
	if _, _, _, err := a.SignCRL("SOP-ICA1", 2, nil); err != nil {
		t.Errorf("the issuing CA's CRL without the root key: %v", err)
	}
	if _, err := a.RootCRL(); err != nil {
		t.Errorf("RootCRL without the root key: %v", err)
	}
	// Nothing signs with the root.
	if _, _, _, err := a.SignCRL("SOP-RCA", 2, nil); certportal.ErrorCodeOf(err) != certportal.Unavailable {
		t.Errorf("SignCRL(root) without the key: %v, want Unavailable", err)
	}
	if _, err := a.SignRootCRL(2, nil, ca.DefaultRootCRLLifetime); certportal.ErrorCodeOf(err) != certportal.Unavailable {
		t.Errorf("SignRootCRL without the key: %v, want Unavailable", err)
	}
	before, _ := os.ReadDir(p.Dir)
	if _, err := a.Rollover(ca.RolloverOptions{}); certportal.ErrorCodeOf(err) != certportal.Unavailable || !strings.Contains(err.Error(), "--root-key") {
		t.Errorf("Rollover without the key: %v, want Unavailable naming --root-key", err)
	}
	if after, _ := os.ReadDir(p.Dir); len(after) != len(before) {
		t.Errorf("a refused rollover wrote files: %d entries, then %d", len(before), len(after))
	}
	if err := a.LoadRootKey(); certportal.ErrorCodeOf(err) != certportal.NotFound || !strings.Contains(err.Error(), "--root-key") {
		t.Errorf("LoadRootKey without root.key: %v, want NotFound naming --root-key", err)
	}
}

// TestExportRootKey moves the root key into an encrypted file: root.key is
// gone, the file is 0600 age armor and decrypts to the same key, which
// then signs a rollover. Refusals (short passphrase, existing file) leave
// root.key and the file as they were.
func TestExportRootKey(t *testing.T) {
	p := testpki.New(t)
	keyPath := filepath.Join(p.Dir, ca.RootKeyFile)
	orig := loadKey(t, keyPath)
	out := filepath.Join(t.TempDir(), "root-key.age")
	const pass = "correct horse battery"

	a, err := ca.Load(p.Dir, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := a.ExportRootKey(out, "eleven char"); certportal.ErrorCodeOf(err) != certportal.Invalid || !strings.Contains(err.Error(), "at least 12") {
		t.Errorf("a passphrase of 11 characters: %v, want Invalid", err)
	}
	if err := os.WriteFile(out, []byte("keep me"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := a.ExportRootKey(out, pass); certportal.ErrorCodeOf(err) != certportal.Conflict {
		t.Errorf("an existing --out: %v, want Conflict", err)
	}
	if b, _ := os.ReadFile(out); string(b) != "keep me" {
		t.Errorf("a refused export replaced the existing file")
	}
	if _, err := os.Stat(keyPath); err != nil {
		t.Fatalf("a refused export removed root.key: %v", err)
	}
	os.Remove(out)

	if err := a.ExportRootKey(out, pass); err != nil {
		t.Fatalf("ExportRootKey: %v", err)
	}
	if _, err := os.Stat(keyPath); !os.IsNotExist(err) {
		t.Errorf("root.key is still there after the export: %v", err)
	}
	if a.HasRootKey() {
		t.Error("the Authority kept the root key after the export")
	}
	fi, err := os.Stat(out)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("the exported file: %v, %v; want mode 0600", fi, err)
	}
	data, _ := os.ReadFile(out)
	if !bytes.HasPrefix(data, []byte("-----BEGIN AGE ENCRYPTED FILE-----\n")) || bytes.Contains(data, []byte("PRIVATE KEY")) {
		t.Errorf("the exported file is not age armor:\n%s", data)
	}
	entries, _ := os.ReadDir(filepath.Dir(out))
	if len(entries) != 1 {
		t.Errorf("the export left %d files next to --out, want only it", len(entries))
	}
	key, err := ca.OpenRootKey(data, pass)
	if err != nil {
		t.Fatalf("OpenRootKey: %v", err)
	}
	if !key.(interface{ Equal(crypto.PrivateKey) bool }).Equal(orig) {
		t.Fatal("the file decrypts to another key")
	}
	if _, err := ca.OpenRootKey(data, pass+"x"); certportal.ErrorCodeOf(err) != certportal.Unauthorized || !strings.Contains(err.Error(), "passphrase") {
		t.Errorf("a wrong passphrase: %v, want Unauthorized", err)
	}
	if err := a.ExportRootKey(filepath.Join(t.TempDir(), "again"), pass); certportal.ErrorCodeOf(err) != certportal.NotFound {
		t.Errorf("a second export: %v, want NotFound", err)
	}

	// Another CA's key is refused; the exported one signs.
	other := newOther(t)
	if err := a.UseRootKey(loadKey(t, filepath.Join(other.Dir, ca.RootKeyFile))); certportal.ErrorCodeOf(err) != certportal.Invalid {
		t.Errorf("UseRootKey with another CA's root key: %v, want Invalid", err)
	}
	if err := a.UseRootKey(key); err != nil {
		t.Fatal(err)
	}
	ica2, err := a.Rollover(ca.RolloverOptions{})
	if err != nil {
		t.Fatalf("Rollover with the exported key: %v", err)
	}
	if err := ica2.CheckSignatureFrom(p.Root); err != nil {
		t.Errorf("the new issuing CA is not signed by the root: %v", err)
	}
}

// TestOpenRootKeyRefusesHostileFiles: files that are not exported root
// keys are refused as Invalid, fast, whatever they ask for.
func TestOpenRootKeyRefusesHostileFiles(t *testing.T) {
	ca.SetRootKeyWorkFactor(t, 10)
	p := shared(t)
	const pass = "correct horse battery"
	good, err := ca.SealRootKey(keyPEMBytes(t, loadKey(t, filepath.Join(p.Dir, ca.RootKeyFile))), pass)
	if err != nil {
		t.Fatal(err)
	}
	sealed := func(plain []byte) []byte {
		b, err := ca.SealRootKey(plain, pass)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	salt := base64.RawStdEncoding.EncodeToString(make([]byte, 16))
	body := base64.RawStdEncoding.EncodeToString(make([]byte, 32))
	hostileHeader := func(logN string) []byte {
		return []byte("age-encryption.org/v1\n-> scrypt " + salt + " " + logN + "\n" + body + "\n--- " + base64.RawStdEncoding.EncodeToString(make([]byte, 32)) + "\n")
	}
	var x25519 bytes.Buffer
	id, _ := age.GenerateX25519Identity()
	w, _ := age.Encrypt(&x25519, id.Recipient())
	w.Write(keyPEMBytes(t, loadKey(t, filepath.Join(p.Dir, ca.RootKeyFile))))
	w.Close()
	for _, tt := range []struct {
		name string
		data []byte
		code certportal.ErrorCode
	}{
		{"empty", nil, certportal.Invalid},
		{"plain PEM key", keyPEMBytes(t, loadKey(t, filepath.Join(p.Dir, ca.RootKeyFile))), certportal.Invalid},
		{"truncated", good[:len(good)/2], certportal.Invalid},
		{"huge", bytes.Repeat([]byte("A"), 1<<20), certportal.Invalid},
		{"work factor 2^30", hostileHeader("30"), certportal.Invalid},
		{"work factor 2^20", hostileHeader("20"), certportal.Invalid},
		{"not PEM inside", sealed([]byte("hello")), certportal.Invalid},
		{"a certificate inside", sealed(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: p.Root.Raw})), certportal.Invalid},
		{"to a key, not a passphrase", x25519.Bytes(), certportal.Unauthorized},
	} {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			key, err := ca.OpenRootKey(tt.data, pass)
			if key != nil || certportal.ErrorCodeOf(err) != tt.code {
				t.Errorf("OpenRootKey: %v, %v; want %s", key, err, tt.code)
			}
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("refusing took %v", d)
			}
		})
	}
	// The binary form (age without armor) opens too.
	bin, err := io.ReadAll(armor.NewReader(bytes.NewReader(good)))
	if err != nil {
		t.Fatal(err)
	}
	if key, err := ca.OpenRootKey(bin, pass); err != nil || !key.(interface{ Equal(crypto.PrivateKey) bool }).Equal(loadKey(t, filepath.Join(p.Dir, ca.RootKeyFile))) {
		t.Errorf("OpenRootKey of the binary form: %v", err)
	}
}

// TestRootCRLFile: the root CRL that testpki signed (as init does) is read
// from root.crl, verifies with openssl against root.crt and lasts a year;
// a new one with a higher number replaces it and is read at once; a lower
// or equal number, a foreign CRL or garbage is refused.
func TestRootCRLFile(t *testing.T) {
	p := testpki.New(t)
	crl, err := p.RootCRL()
	if err != nil {
		t.Fatal(err)
	}
	if crl.Number.Int64() != 1 || crl.NextUpdate.Sub(crl.ThisUpdate) != ca.DefaultRootCRLLifetime {
		t.Errorf("root CRL number %v, lifetime %v; want 1 and a year", crl.Number, crl.NextUpdate.Sub(crl.ThisUpdate))
	}
	path := filepath.Join(p.Dir, ca.RootCRLFile)
	rootF := writeCert(t, t.TempDir(), "root.pem", p.Root)
	if out := mustRun(t, "", "openssl", "crl", "-in", path, "-CAfile", rootF, "-noout"); !strings.Contains(out, "verify OK") {
		t.Errorf("openssl crl -CAfile root: %s", out)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o644 {
		t.Errorf("root.crl has mode %v, want 0644 (it is public)", fi.Mode().Perm())
	}

	same, err := p.SignRootCRL(1, nil, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.SaveRootCRL(same); certportal.ErrorCodeOf(err) != certportal.Conflict {
		t.Errorf("saving a root CRL with the number in place: %v, want Conflict", err)
	}
	next, err := p.SignRootCRL(2, []certportal.Revocation{{Serial: "7F01", Time: p.Clock.Now(), Reason: certportal.ReasonKeyCompromise}}, 20*365*24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if !next.NextUpdate.Equal(p.Root.NotAfter) {
		t.Errorf("a root CRL asked to last 20 years has nextUpdate %v, want the root's end %v", next.NextUpdate, p.Root.NotAfter)
	}
	if err := p.SaveRootCRL(next); err != nil {
		t.Fatal(err)
	}
	got, err := p.RootCRL()
	if err != nil || got.Number.Cmp(big.NewInt(2)) != 0 || !bytes.Equal(got.DER, next.DER) {
		t.Fatalf("after saving number 2, RootCRL gives %v, %v", got, err)
	}

	// A CRL of another CA is refused by SaveRootCRL and, planted in the
	// file, by RootCRL: it is never published as the root's.
	other := newOther(t)
	foreign, err := other.SignRootCRL(99, nil, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.SaveRootCRL(foreign); certportal.ErrorCodeOf(err) != certportal.Invalid {
		t.Errorf("SaveRootCRL of another CA's CRL: %v, want Invalid", err)
	}
	for name, data := range map[string][]byte{
		"foreign": pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: foreign.DER}),
		"garbage": []byte("garbage that is long enough to change the size"),
		"cert":    pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: p.Root.Raw}),
	} {
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := p.RootCRL(); certportal.ErrorCodeOf(err) != certportal.Invalid {
			t.Errorf("RootCRL of a %s root.crl: %v, want Invalid", name, err)
		}
	}
	// DER is read as well as PEM.
	if err := os.WriteFile(path, next.DER, 0o644); err != nil {
		t.Fatal(err)
	}
	if got, err := p.RootCRL(); err != nil || got.Number.Int64() != 2 {
		t.Errorf("RootCRL of a DER root.crl: %v, %v", got, err)
	}
	os.Remove(path)
	if _, err := p.RootCRL(); certportal.ErrorCodeOf(err) != certportal.NotFound {
		t.Errorf("RootCRL without root.crl: %v, want NotFound", err)
	}
}

// TestExportRefusesALinkedRootKey: removing a symbolic link named root.key
// would leave the key where it points, so the export refuses.
func TestExportRefusesALinkedRootKey(t *testing.T) {
	p := testpki.New(t)
	keyPath := filepath.Join(p.Dir, ca.RootKeyFile)
	elsewhere := filepath.Join(t.TempDir(), "root.key")
	if err := os.Rename(keyPath, elsewhere); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(elsewhere, keyPath); err != nil {
		t.Fatal(err)
	}
	a, err := ca.Load(p.Dir, "")
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "root-key.age")
	if err := a.ExportRootKey(out, "correct horse battery"); certportal.ErrorCodeOf(err) != certportal.Invalid || !strings.Contains(err.Error(), "regular file") {
		t.Errorf("exporting a linked root.key: %v, want Invalid", err)
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("a refused export wrote %s", out)
	}
	if _, err := os.Lstat(keyPath); err != nil {
		t.Errorf("a refused export removed the link: %v", err)
	}
}
