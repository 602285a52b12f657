package clientstore

import (
	"strings"
	"testing"

	"github.com/certportal/certportal"
	pkcs12 "software.sslmate.com/src/go-pkcs12"
)

// TestImportDamaged flips one byte at a time across files of several
// writers, inside the MAC'ed content and outside it, and wants every
// flipped file refused as damaged, never as a wrong password: the
// password is right, so some part of the file still opens with it, or its
// structure no longer parses. The same files with a wrong password say
// the password is wrong.
func TestImportDamaged(t *testing.T) {
	p := newPKI(t, "p256", "alice")
	files := []struct {
		name   string
		data   []byte
		stride int // NSS files use 600,000 iterations: try fewer bytes
	}{
		{"go-pkcs12 Modern2023", p.p12(t, pkcs12.Modern2023), 3},
		{"go-pkcs12 LegacyDES", p.p12(t, pkcs12.LegacyDES), 3},
		{"openssl default", opensslP12(t, p, t.TempDir()), 3},
		{"openssl -legacy", opensslP12(t, p, t.TempDir(), "-legacy"), 3},
		{"pk12util -o", nssP12(t, p, t.TempDir()), 0},
	}
	s := openStore(t)
	for _, f := range files {
		t.Run(f.name, func(t *testing.T) {
			stride := f.stride
			if stride == 0 {
				stride = len(f.data) / 16
			}
			counts := map[string]int{}
			for i := 0; i < len(f.data); i += stride {
				data := append([]byte(nil), f.data...)
				data[i] ^= 0x01
				got, err := s.Import(data, testPassword)
				if err == nil {
					t.Errorf("byte %d flipped: imported %d certificates", i, len(got))
					continue
				}
				e := wantCode(t, err, certportal.Invalid)
				counts[e.Message]++
				if !strings.Contains(e.Message, "damaged") || strings.Contains(e.Message, "password is wrong") {
					t.Errorf("byte %d of %d flipped: %q, want a message that says damaged (cause: %v)", i, len(f.data), e.Message, e.Err)
				}
			}
			t.Logf("%v", counts)
			_, err := s.Import(f.data, "not the password")
			if e := wantCode(t, err, certportal.Invalid); e.Message != "the PKCS#12 password is wrong" {
				t.Errorf("wrong password: %q", e.Message)
			}
		})
	}
}
