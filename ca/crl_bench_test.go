package ca_test

import (
	"crypto/rand"
	"encoding/hex"
	"slices"
	"strings"
	"testing"

	"github.com/certportal/certportal"
)

// benchRevocations returns n revocations as the database lists them:
// canonical upper-case hex serials (no leading zero byte), unique, sorted.
func benchRevocations(n int) []certportal.Revocation {
	serials := make([]string, n)
	b := make([]byte, 16)
	for i := range serials {
		rand.Read(b)
		b[0] = b[0]&0x7f | 0x10
		serials[i] = strings.ToUpper(hex.EncodeToString(b))
	}
	slices.Sort(serials)
	out := make([]certportal.Revocation, n)
	for i, s := range serials {
		out[i] = certportal.Revocation{Serial: s, Reason: certportal.ReasonSuperseded}
	}
	return out
}

// BenchmarkSignCRL100k signs an issuing CA's CRL of 100,000 entries, the
// cost every CRL refresh pays when that many unexpired certificates are
// revoked.
func BenchmarkSignCRL100k(b *testing.B) {
	p := shared(b)
	revs := benchRevocations(100_000)
	now := p.Clock.Now()
	for i := range revs {
		revs[i].Time = now
	}
	for b.Loop() {
		if _, _, _, err := p.SignCRL("SOP-ICA1", 1, revs); err != nil {
			b.Fatal(err)
		}
	}
}
