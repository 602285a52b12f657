package clientstore

import (
	"slices"
	"strings"
	"testing"

	"github.com/certportal/certportal"
	pkcs12 "software.sslmate.com/src/go-pkcs12"
)

// FuzzImport feeds Import damaged PKCS#12 files, seeded from real ones of
// every writer. Import must never panic, must fail with an Invalid
// *certportal.Error that does not show the library's text, and must not
// write anything when it fails.
//
//	go test -run '^$' -fuzz FuzzImport -fuzztime 30s ./clientstore/
func FuzzImport(f *testing.F) {
	p := newPKI(f, "p256", "alice")
	r := newPKI(f, "rsa2048", "bob")
	for _, m := range p12Makers {
		f.Add(m.make(f, p, f.TempDir()))
	}
	f.Add(r.p12(f, pkcs12.LegacyDES))
	f.Add(r.p12(f, pkcs12.LegacyRC2))
	f.Add([]byte{0x30, 0x03, 0x02, 0x01, 0x03})
	s, err := Open(f.TempDir())
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		before := snapshot(t, s.Dir())
		got, err := s.Import(data, testPassword)
		if err == nil {
			if len(got) == 0 || got[0].Store != Personal || !got[0].HasKey {
				t.Fatalf("Import succeeded without a personal certificate and key: %+v", got)
			}
			return
		}
		e := wantCode(t, err, certportal.Invalid)
		if strings.Contains(e.Message, "pkcs12:") || strings.Contains(e.Message, "asn1:") || strings.Contains(e.Message, "x509:") {
			t.Fatalf("message %q shows a library error", e.Message)
		}
		if after := snapshot(t, s.Dir()); !slices.Equal(before, after) {
			t.Fatalf("a failed import changed the store:\nbefore %v\nafter  %v", before, after)
		}
	})
}
