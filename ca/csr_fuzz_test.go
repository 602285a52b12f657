package ca_test

import (
	"encoding/pem"
	"slices"
	"testing"

	"github.com/certportal/certportal"
	"github.com/certportal/certportal/ca"
)

// FuzzParseCSR feeds the CSR parser (DER and PEM) anything, seeded with
// requests for every key type and broken ones: it must never panic, refuse
// with an Invalid error that says why, and accept only requests whose key
// is of an allowed type, for which IssueCSR then issues.
func FuzzParseCSR(f *testing.F) {
	p := shared(f)
	for _, kt := range []ca.KeyType{ca.P256, ca.P384, ca.RSA2048} {
		der := hostileCSR(f, mustKey(f, kt))
		f.Add(der)
		broken := slices.Clone(der)
		broken[len(broken)-4] ^= 0x10
		f.Add(broken)
		f.Add(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))
	}
	f.Add([]byte{})
	f.Add([]byte{0x30, 0x80, 0x00, 0x00})
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, parse := range []func([]byte) (*ca.CSR, error){ca.ParseCSR, ca.ParseCSRPEM} {
			csr, err := parse(data)
			if err != nil {
				if certportal.ErrorCodeOf(err) != certportal.Invalid || certportal.ErrorMessage(err) == "" {
					t.Fatalf("refusal %v, want Invalid with a message", err)
				}
				continue
			}
			if err := ca.CheckPublicKey(csr.PublicKey()); err != nil {
				t.Fatalf("accepted a request whose key is refused: %v", err)
			}
			if !slices.Contains(ca.KeyTypes, csr.KeyType()) {
				t.Fatalf("accepted key type %s", csr.KeyType())
			}
			if _, err := p.IssueCSR(ca.LeafRequest{ID: "fuzz", Email: "fuzz@example.com"}, csr); err != nil {
				t.Fatalf("IssueCSR for an accepted request: %v", err)
			}
		}
	})
}
