package ca_test

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"encoding/base64"
	"io"
	"os"
	"path/filepath"
	"testing"

	"filippo.io/age/armor"

	"github.com/certportal/certportal"
	"github.com/certportal/certportal/ca"
	"golang.org/x/crypto/ocsp"
)

// FuzzParseOCSPRequest feeds arbitrary bytes to the OCSP request parser,
// seeded with requests openssl makes (with and without nonce, SHA-1 and
// SHA-256) and hand-built odd ones. Whatever parses must satisfy the
// documented invariants and be answerable.
func FuzzParseOCSPRequest(f *testing.F) {
	p := shared(f)
	dir := f.TempDir()
	leaf, _ := issue(f, p, "fuzz", ca.P256)
	iss := writeCert(f, dir, "issuing.pem", p.Issuing)
	leafF := writeCert(f, dir, "leaf.pem", leaf)
	for i, extra := range [][]string{nil, {"-no_nonce"}, {"-sha256"}, {"-sha256", "-no_nonce"}} {
		req := dir + "/req" + string(rune('0'+i))
		mustRun(f, "", "openssl", append(append([]string{"ocsp", "-issuer", iss}, extra...), "-cert", leafF, "-reqout", req)...)
		der, err := os.ReadFile(req)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(der)
	}
	s := goodSpec(f, p, leaf.SerialNumber, crypto.SHA1)
	s.count = 2
	f.Add(buildRequest(f, s))
	s = goodSpec(f, p, leaf.SerialNumber, crypto.SHA256)
	s.nonceValue = octets(f, make([]byte, 33))
	f.Add(buildRequest(f, s))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, der []byte) {
		req, err := p.ParseOCSPRequest(der)
		if err != nil {
			if certportal.ErrorCodeOf(err) != certportal.Invalid {
				t.Fatalf("error code %q, want Invalid: %v", certportal.ErrorCodeOf(err), err)
			}
			return
		}
		if req.Serial == nil || req.Serial.Sign() <= 0 || req.Serial.BitLen() > 160 ||
			(req.HashAlgorithm != crypto.SHA1 && req.HashAlgorithm != crypto.SHA256) ||
			(req.Nonce != nil && (len(req.Nonce) < 1 || len(req.Nonce) > 32)) {
			t.Fatalf("parsed request breaks the invariants: %+v", req)
		}
		resp, err := p.OCSPResponse(req, ca.OCSPStatus{Known: true})
		if err != nil {
			t.Fatal(err)
		}
		if !req.KnownIssuer {
			return
		}
		r, err := ocsp.ParseResponse(resp, nil)
		if err != nil || r.SerialNumber.Cmp(req.Serial) != 0 {
			t.Fatalf("the answer does not parse or names another serial: %v", err)
		}
	})
}

// FuzzVerifyClient feeds arbitrary DER, as a TLS client may present it, to
// x509.ParseCertificate and VerifyClient: only this CA's valid leaves pass,
// and every failure is Forbidden "unknown" or "expired".
func FuzzVerifyClient(f *testing.F) {
	p := shared(f)
	other := newOther(f)
	good, _ := issue(f, p, "fuzz", ca.P256)
	foreign, _ := issue(f, other, "fuzz", ca.P256)
	for _, c := range []*x509.Certificate{good, foreign, p.Issuing, p.Root, p.TLSCA} {
		f.Add(c.Raw)
	}
	f.Fuzz(func(t *testing.T, der []byte) {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return
		}
		got, err := p.VerifyClient([]*x509.Certificate{c, p.Issuing})
		if err == nil {
			if got != c || c.CheckSignatureFrom(p.Issuing) != nil {
				t.Fatal("VerifyClient accepted a certificate the issuing CA did not sign")
			}
			return
		}
		var e *certportal.Error
		if !errorsAs(err, &e) || e.Code != certportal.Forbidden || (e.Message != "unknown" && e.Message != "expired") {
			t.Fatalf("VerifyClient error %#v", err)
		}
	})
}

// FuzzOpenRootKey feeds arbitrary files and passphrases to the parser of
// the --root-key file, seeded with a real exported key (armored and
// binary), damaged and hostile ones. It must never panic; it gives either
// a key or an Invalid / Unauthorized error, never both or neither.
func FuzzOpenRootKey(f *testing.F) {
	ca.SetRootKeyWorkFactor(f, 10)
	ca.SetMaxRootKeyWorkFactor(f, 12)
	p := shared(f)
	const pass = "correct horse battery"
	plain := keyPEMBytes(f, loadKey(f, filepath.Join(p.Dir, ca.RootKeyFile)))
	good, err := ca.SealRootKey(plain, pass)
	if err != nil {
		f.Fatal(err)
	}
	bin, err := io.ReadAll(armor.NewReader(bytes.NewReader(good)))
	if err != nil {
		f.Fatal(err)
	}
	notPEM, _ := ca.SealRootKey([]byte("hello"), pass)
	salt := base64.RawStdEncoding.EncodeToString(make([]byte, 16))
	for _, seed := range []struct {
		data []byte
		pass string
	}{
		{good, pass}, {bin, pass}, {good, "wrong passphrase"}, {good[:len(good)/2], pass},
		{bin[:len(bin)-1], pass}, {notPEM, pass}, {plain, pass}, {nil, pass}, {good, ""},
		{[]byte("age-encryption.org/v1\n-> scrypt " + salt + " 30\nAAAA\n--- " + salt + "\n"), pass},
		{[]byte("-----BEGIN AGE ENCRYPTED FILE-----\n-----END AGE ENCRYPTED FILE-----\n"), pass},
	} {
		f.Add(seed.data, seed.pass)
	}
	f.Fuzz(func(t *testing.T, data []byte, passphrase string) {
		key, err := ca.OpenRootKey(data, passphrase)
		switch {
		case err == nil && (key == nil || key.Public() == nil):
			t.Fatal("no error and no key")
		case err != nil && key != nil:
			t.Fatalf("a key and an error: %v", err)
		case err != nil:
			if c := certportal.ErrorCodeOf(err); c != certportal.Invalid && c != certportal.Unauthorized {
				t.Fatalf("error code %q: %v", c, err)
			}
		}
	})
}
