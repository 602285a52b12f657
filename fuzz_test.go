package certportal

import (
	"strings"
	"testing"
)

// The parsers of what users type (serials, thumbprints, IDs, addresses)
// never panic, and what they accept is canonical.

func FuzzNormalizeHex(f *testing.F) {
	for _, s := range []string{"AB12", "ab:12", "\u200eab 12", "0x01", "", "zz", strings.Repeat("f", 80)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if h, err := NormalizeHex(s); err == nil {
			if len(h)%2 != 0 || strings.ToUpper(h) != h || strings.Trim(h, "0123456789ABCDEF") != "" {
				t.Fatalf("NormalizeHex(%q) = %q is not canonical", s, h)
			}
			if again, err := NormalizeHex(h); err != nil || again != h {
				t.Fatalf("NormalizeHex is not idempotent on %q: %q %v", h, again, err)
			}
		}
		if n, err := NormalizeSerial(s); err == nil {
			if again, err := NormalizeSerial(n); err != nil || again != n {
				t.Fatalf("NormalizeSerial is not idempotent on %q: %q %v", n, again, err)
			}
		}
	})
}

func FuzzValidate(f *testing.F) {
	for _, s := range []string{"alice", "a@example.com", "a b@c", "ålice", "<a@b.c>", "a@[1.2.3.4]"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if ValidateID(s) == nil && (len(s) == 0 || len(s) > MaxIDLength) {
			t.Fatalf("ValidateID accepted %q", s)
		}
		if ValidateEmail(s) == nil {
			for i := 0; i < len(s); i++ {
				if s[i] <= ' ' || s[i] >= 0x7f {
					t.Fatalf("ValidateEmail accepted non-ASCII or a space in %q", s)
				}
			}
			if !strings.Contains(s, "@") {
				t.Fatalf("ValidateEmail accepted %q without @", s)
			}
		}
		_, _ = ParseReason(s)
	})
}
