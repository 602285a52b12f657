package ca_test

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"encoding/asn1"
	"math/big"
	"testing"
	"time"

	"github.com/certportal/certportal"
	"github.com/certportal/certportal/ca"
	"github.com/certportal/certportal/internal/testpki"
	"golang.org/x/crypto/ocsp"
)

// parseOCSP parses a response with x/crypto/ocsp and checks it is signed by
// the issuing CA and carries its certificate. ParseResponse is given no
// issuer because, given one, it insists that an embedded certificate be a
// delegated responder signed by that issuer, which the issuing CA itself
// is not; the signature and the certificate are checked here instead.
func parseOCSP(t *testing.T, p *testpki.PKI, der []byte) *ocsp.Response {
	t.Helper()
	r, err := ocsp.ParseResponse(der, nil)
	if err != nil {
		t.Fatalf("ocsp.ParseResponse: %v", err)
	}
	if r.Certificate == nil || !r.Certificate.Equal(p.Issuing) {
		t.Fatal("the response does not carry the issuing CA's certificate")
	}
	if err := r.CheckSignatureFrom(p.Issuing); err != nil {
		t.Fatalf("the response is not signed by the issuing CA: %v", err)
	}
	return r
}

// buildRequest encodes an OCSPRequest by hand, so tests can make the odd
// ones that openssl never sends.
type reqSpec struct {
	hashOID    asn1.ObjectIdentifier
	nameHash   []byte
	keyHash    []byte
	serial     *big.Int
	count      int            // CertIDs in the request list
	nonceValue []byte         // raw extnValue of the nonce; nil = no nonce
	extraExt   *extensionASN1 // another request extension
	trailing   bool           // garbage after the request
	version    int            // 0 = default (omitted)
	signature  bool           // an optionalSignature (ignored)
}

type extensionASN1 struct {
	ID       asn1.ObjectIdentifier
	Critical bool `asn1:"optional"`
	Value    []byte
}

type certIDASN1 struct {
	Hash     algID
	NameHash []byte
	KeyHash  []byte
	Serial   *big.Int
}

type algID struct {
	Algorithm  asn1.ObjectIdentifier
	Parameters asn1.RawValue `asn1:"optional"`
}

type requestASN1 struct{ Cert certIDASN1 }

func buildRequest(t testing.TB, s reqSpec) []byte {
	t.Helper()
	id := certIDASN1{algID{s.hashOID, asn1.NullRawValue}, s.nameHash, s.keyHash, s.serial}
	var list []requestASN1
	for range max(s.count, 1) {
		list = append(list, requestASN1{id})
	}
	var exts []extensionASN1
	if s.nonceValue != nil {
		exts = append(exts, extensionASN1{ID: asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 48, 1, 2}, Value: s.nonceValue})
	}
	if s.extraExt != nil {
		exts = append(exts, *s.extraExt)
	}
	type tbsASN1 struct {
		Version    int `asn1:"optional,explicit,tag:0"`
		List       []requestASN1
		Extensions []extensionASN1 `asn1:"optional,explicit,tag:2"`
	}
	type sigASN1 struct {
		Alg algID
		Sig asn1.BitString
	}
	type ocspReqASN1 struct {
		TBS tbsASN1
		Sig sigASN1 `asn1:"optional,explicit,tag:0"`
	}
	r := ocspReqASN1{TBS: tbsASN1{Version: s.version, List: list, Extensions: exts}}
	if s.signature {
		r.Sig = sigASN1{algID{Algorithm: asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 2}}, asn1.BitString{Bytes: []byte{1, 2}, BitLength: 16}}
	}
	der, err := asn1.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	if s.trailing {
		der = append(der, 0)
	}
	return der
}

var (
	oidSHA1   = asn1.ObjectIdentifier{1, 3, 14, 3, 2, 26}
	oidSHA256 = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 1}
)

// goodSpec returns a request for serial built the way x/crypto/ocsp
// builds its CertIDs.
func goodSpec(t testing.TB, p *testpki.PKI, serial *big.Int, h crypto.Hash) reqSpec {
	t.Helper()
	der, err := ocsp.CreateRequest(&fakeLeaf(p, serial).Certificate, p.Issuing, &ocsp.RequestOptions{Hash: h})
	if err != nil {
		t.Fatal(err)
	}
	r, err := ocsp.ParseRequest(der)
	if err != nil {
		t.Fatal(err)
	}
	oid := oidSHA1
	if h == crypto.SHA256 {
		oid = oidSHA256
	}
	return reqSpec{hashOID: oid, nameHash: r.IssuerNameHash, keyHash: r.IssuerKeyHash, serial: serial}
}

func octets(t testing.TB, b []byte) []byte {
	t.Helper()
	der, err := asn1.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func TestParseOCSPRequest(t *testing.T) {
	p := shared(t)
	serial := big.NewInt(0x7f1234)
	nonce := bytes.Repeat([]byte{7}, 32)
	with := func(h crypto.Hash, f func(*reqSpec)) []byte {
		s := goodSpec(t, p, serial, h)
		f(&s)
		return buildRequest(t, s)
	}
	tests := []struct {
		name  string
		der   []byte
		ok    bool
		check func(*ca.OCSPRequest) bool
	}{
		{"sha1", with(crypto.SHA1, func(*reqSpec) {}), true, func(r *ca.OCSPRequest) bool {
			return r.KnownIssuer && r.HashAlgorithm == crypto.SHA1 && r.Nonce == nil && r.Serial.Cmp(serial) == 0
		}},
		{"sha256", with(crypto.SHA256, func(*reqSpec) {}), true, func(r *ca.OCSPRequest) bool { return r.KnownIssuer && r.HashAlgorithm == crypto.SHA256 }},
		{"32-byte nonce", with(crypto.SHA1, func(s *reqSpec) { s.nonceValue = octets(t, nonce) }), true, func(r *ca.OCSPRequest) bool { return bytes.Equal(r.Nonce, nonce) }},
		{"1-byte nonce", with(crypto.SHA1, func(s *reqSpec) { s.nonceValue = octets(t, []byte{9}) }), true, func(r *ca.OCSPRequest) bool { return bytes.Equal(r.Nonce, []byte{9}) }},
		{"explicit v1 and a signature", with(crypto.SHA1, func(s *reqSpec) { s.signature = true }), true, func(r *ca.OCSPRequest) bool { return r.KnownIssuer }},
		{"other issuer", with(crypto.SHA1, func(s *reqSpec) { s.keyHash = bytes.Repeat([]byte{1}, 20) }), true, func(r *ca.OCSPRequest) bool { return !r.KnownIssuer }},
		{"sha1 hashes with sha256 OID", with(crypto.SHA1, func(s *reqSpec) { s.hashOID = oidSHA256 }), true, func(r *ca.OCSPRequest) bool { return !r.KnownIssuer }},
		{"unknown non-critical extension", with(crypto.SHA1, func(s *reqSpec) {
			s.extraExt = &extensionASN1{ID: asn1.ObjectIdentifier{1, 2, 3}, Value: []byte{5, 0}}
		}), true, func(r *ca.OCSPRequest) bool { return r.KnownIssuer }},
		{"33-byte nonce", with(crypto.SHA1, func(s *reqSpec) { s.nonceValue = octets(t, append(nonce, 1)) }), false, nil},
		{"empty nonce", with(crypto.SHA1, func(s *reqSpec) { s.nonceValue = octets(t, []byte{}) }), false, nil},
		{"raw nonce", with(crypto.SHA1, func(s *reqSpec) { s.nonceValue = []byte{1, 2, 3} }), false, nil},
		{"two CertIDs", with(crypto.SHA1, func(s *reqSpec) { s.count = 2 }), false, nil},
		{"md5", with(crypto.SHA1, func(s *reqSpec) { s.hashOID = asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 5} }), false, nil},
		{"version 2", with(crypto.SHA1, func(s *reqSpec) { s.version = 1 }), false, nil},
		{"negative serial", with(crypto.SHA1, func(s *reqSpec) { s.serial = big.NewInt(-5) }), false, nil},
		{"21-byte serial", with(crypto.SHA1, func(s *reqSpec) { s.serial = new(big.Int).Lsh(big.NewInt(1), 165) }), false, nil},
		{"critical unknown extension", with(crypto.SHA1, func(s *reqSpec) {
			s.extraExt = &extensionASN1{ID: asn1.ObjectIdentifier{1, 2, 3}, Critical: true, Value: []byte{5, 0}}
		}), false, nil},
		{"trailing garbage", with(crypto.SHA1, func(s *reqSpec) { s.trailing = true }), false, nil},
		{"empty", nil, false, nil},
		{"not DER", []byte("GET / HTTP/1.1\r\n"), false, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := p.ParseOCSPRequest(tt.der)
			if !tt.ok {
				if certportal.ErrorCodeOf(err) != certportal.Invalid {
					t.Fatalf("ParseOCSPRequest: %+v, %v; want Invalid", r, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseOCSPRequest: %v", err)
			}
			if !tt.check(r) {
				t.Errorf("parsed %+v", r)
			}
		})
	}
}

func TestOCSPResponse(t *testing.T) {
	p := testpki.New(t)
	leaf, _ := issue(t, p, "cache", ca.P256)
	req := &ca.OCSPRequest{Serial: leaf.SerialNumber, HashAlgorithm: crypto.SHA256, KnownIssuer: true}
	good := ca.OCSPStatus{Known: true}
	start := p.Clock.Now()

	r1, err := p.OCSPResponse(req, good)
	if err != nil {
		t.Fatal(err)
	}
	resp := parseOCSP(t, p, r1)
	if resp.Status != ocsp.Good || resp.SerialNumber.Cmp(leaf.SerialNumber) != 0 || resp.IssuerHash != crypto.SHA256 ||
		!resp.ThisUpdate.Equal(start) || !resp.ProducedAt.Equal(start) || !resp.NextUpdate.Equal(start.Add(24*time.Hour)) {
		t.Errorf("response: status %d serial %x hash %v this %v produced %v next %v", resp.Status, resp.SerialNumber, resp.IssuerHash, resp.ThisUpdate, resp.ProducedAt, resp.NextUpdate)
	}
	p.Clock.Advance(time.Hour)
	r2, _ := p.OCSPResponse(req, good)
	if !bytes.Equal(r1, r2) {
		t.Error("a second request without a nonce was signed afresh, not served from the cache")
	}
	// Another CertID hash is another cache entry with its own CertID.
	sha1Req := *req
	sha1Req.HashAlgorithm = crypto.SHA1
	r3, _ := p.OCSPResponse(&sha1Req, good)
	if parseOCSP(t, p, r3).IssuerHash != crypto.SHA1 {
		t.Error("a SHA-1 request got a SHA-256 CertID")
	}
	// A status change re-signs at once.
	revokedAt := start.Add(30 * time.Minute)
	revoked := ca.OCSPStatus{Known: true, Revoked: revokedAt, Reason: certportal.ReasonSuperseded}
	r4, _ := p.OCSPResponse(req, revoked)
	resp = parseOCSP(t, p, r4)
	if resp.Status != ocsp.Revoked || !resp.RevokedAt.Equal(revokedAt) || resp.RevocationReason != ocsp.Superseded || !resp.ThisUpdate.Equal(start.Add(time.Hour)) {
		t.Errorf("revoked: status %d at %v reason %d this %v", resp.Status, resp.RevokedAt, resp.RevocationReason, resp.ThisUpdate)
	}
	// The same status in another time zone is the same status.
	r5, _ := p.OCSPResponse(req, ca.OCSPStatus{Known: true, Revoked: revokedAt.In(time.FixedZone("X", 3600)), Reason: certportal.ReasonSuperseded})
	if !bytes.Equal(r4, r5) {
		t.Error("an equal status was re-signed")
	}
	// With 1/4 of the lifetime left the response is re-signed.
	p.Clock.Advance(17*time.Hour + 59*time.Minute)
	if r, _ := p.OCSPResponse(req, revoked); !bytes.Equal(r, r4) {
		t.Error("re-signed before 3/4 of the lifetime passed")
	}
	p.Clock.Advance(2 * time.Minute)
	r6, _ := p.OCSPResponse(req, revoked)
	if bytes.Equal(r6, r4) || !parseOCSP(t, p, r6).ThisUpdate.Equal(p.Clock.Now()) {
		t.Error("not re-signed with less than 1/4 of the lifetime left")
	}
	// No reason: the reason is left out.
	r7, _ := p.OCSPResponse(req, ca.OCSPStatus{Known: true, Revoked: revokedAt, Reason: certportal.ReasonNone})
	if resp := parseOCSP(t, p, r7); resp.Status != ocsp.Revoked || resp.RevocationReason != ocsp.Unspecified {
		t.Errorf("no reason: status %d reason %d", resp.Status, resp.RevocationReason)
	}
	// Unknown.
	r8, _ := p.OCSPResponse(req, ca.OCSPStatus{})
	if parseOCSP(t, p, r8).Status != ocsp.Unknown {
		t.Error("unknown serial not answered unknown")
	}
	// A nonce: fresh each time, echoed in responseExtensions.
	nreq := *req
	nreq.Nonce = []byte("abcdefghijklmnop")
	n1, _ := p.OCSPResponse(&nreq, good)
	n2, _ := p.OCSPResponse(&nreq, good)
	if bytes.Equal(n1, n2) {
		t.Error("nonce responses are cached (ECDSA signatures differ each time)")
	}
	ext, _ := asn1.Marshal(extensionASN1{ID: asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 48, 1, 2}, Value: octets(t, nreq.Nonce)})
	// x/crypto/ocsp does not expose responseExtensions: look for the
	// encoded extension inside its [1] EXPLICIT SEQUENCE OF wrapper.
	wrapped, _ := asn1.Marshal(asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 1, IsCompound: true,
		Bytes: append([]byte{0x30, byte(len(ext))}, ext...)})
	echoed := bytes.Contains(n1, wrapped)
	parseOCSP(t, p, n1)
	if !echoed {
		t.Error("the nonce is not echoed in responseExtensions")
	}
	// Another issuer: unauthorized.
	u, err := p.OCSPResponse(&ca.OCSPRequest{Serial: big.NewInt(1), HashAlgorithm: crypto.SHA1}, good)
	if err != nil || !bytes.Equal(u, ocsp.UnauthorizedErrorResponse) {
		t.Errorf("another issuer: %x, %v", u, err)
	}
}

// TestConcurrent runs issuance and OCSP from many goroutines; run it with
// -race to check the cache's locking.
func TestConcurrent(t *testing.T) {
	p := testpki.New(t)
	done := make(chan error)
	for i := range 8 {
		go func() {
			var err error
			for j := range 20 {
				req := &ca.OCSPRequest{Serial: big.NewInt(int64(1 + j%5)), HashAlgorithm: crypto.SHA1, KnownIssuer: true}
				if j%3 == 0 {
					req.Nonce = []byte{byte(i)}
				}
				if _, err = p.OCSPResponse(req, ca.OCSPStatus{Known: j%2 == 0}); err != nil {
					break
				}
				if j%10 == 0 {
					if _, _, err = p.Issue(ca.LeafRequest{ID: "c"}); err != nil {
						break
					}
				}
			}
			done <- err
		}()
	}
	for range 8 {
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
}

// TestSignaturesPerKeyType checks OCSP responses and CRLs signed by P-384
// and RSA issuing CAs, and the signature algorithms SPEC.md fixes.
func TestSignaturesPerKeyType(t *testing.T) {
	for _, tt := range []struct {
		kt   ca.KeyType
		want x509.SignatureAlgorithm
	}{{ca.P384, x509.ECDSAWithSHA384}, {ca.RSA2048, x509.SHA256WithRSA}} {
		t.Run(string(tt.kt), func(t *testing.T) {
			p := testpki.New(t, func(o *ca.InitOptions) { o.KeyType = tt.kt })
			der, err := p.OCSPResponse(&ca.OCSPRequest{Serial: big.NewInt(5), HashAlgorithm: crypto.SHA256, KnownIssuer: true, Nonce: []byte{1}}, ca.OCSPStatus{Known: true})
			if err != nil {
				t.Fatal(err)
			}
			if r := parseOCSP(t, p, der); r.SignatureAlgorithm != tt.want {
				t.Errorf("OCSP signed with %v, want %v", r.SignatureAlgorithm, tt.want)
			}
			for _, issuer := range []*x509.Certificate{p.Issuing, p.Root} {
				der, _, _, err := p.SignCRL(issuer.Subject.CommonName, 1, []certportal.Revocation{{Serial: "01", Time: p.Clock.Now()}})
				if err != nil {
					t.Fatal(err)
				}
				crl, err := x509.ParseRevocationList(der)
				if err != nil {
					t.Fatal(err)
				}
				if crl.SignatureAlgorithm != tt.want || crl.CheckSignatureFrom(issuer) != nil {
					t.Errorf("CRL of %s: %v, want %v and a valid signature", issuer.Subject.CommonName, crl.SignatureAlgorithm, tt.want)
				}
			}
		})
	}
}
