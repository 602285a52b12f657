package clientstore

import (
	"bytes"
	"encoding/asn1"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
)

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestBERToDER(t *testing.T) {
	tests := []struct {
		name    string
		ber     string
		der     string
		wantErr error
	}{
		{"DER unchanged", "30 06 02 01 03 04 01 aa", "30 06 02 01 03 04 01 aa", nil},
		{"indefinite SEQUENCE", "30 80 02 01 03 00 00", "30 03 02 01 03", nil},
		{"nested indefinite", "30 80 30 80 05 00 00 00 00 00", "30 04 30 02 05 00", nil},
		{"OCTET STRING in pieces", "24 80 04 02 01 02 04 01 03 00 00", "04 03 01 02 03", nil},
		{"OCTET STRING in nested pieces", "24 09 24 80 04 01 01 00 00 04 00", "04 01 01", nil},
		{"implicit [0] pieces kept for the schema", "a0 80 04 01 01 00 00", "a0 03 04 01 01", nil},
		{"primitive contents untouched", "04 04 30 80 00 00", "04 04 30 80 00 00", nil},
		{"non-minimal long length", "04 82 00 01 ff", "04 01 ff", nil},
		{"high tag number", "bf 81 00 80 05 00 00 00", "bf 81 00 02 05 00", nil},
		{"truncated", "30 05 02 01", "", errBERTruncated},
		{"no end-of-contents", "30 80 02 01 03", "", errBERTruncated},
		{"trailing data", "05 00 05 00", "", errBERTrailing},
		{"indefinite primitive", "04 80 01 00 00", "", errBERSyntax},
		{"end-of-contents alone", "00 00", "", errBERSyntax},
		{"piece of another type", "24 80 02 01 01 00 00", "", errBERSyntax},
		{"high tag number not minimal", "bf 80 30 00", "", errBERSyntax},
		{"low tag number in high form", "bf 1e 00", "", errBERSyntax},
		{"length of five octets", "04 85 00 00 00 00 01 ff", "", errBERSyntax},
		{"too deep", strings.Repeat("30 80 ", maxBERDepth+2) + strings.Repeat("00 00 ", maxBERDepth+2), "", errBERTooDeep},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := berToDER(unhex(t, tt.ber))
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("berToDER = %x, %v; want error %v", got, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if want := unhex(t, tt.der); !bytes.Equal(got, want) {
				t.Errorf("berToDER = % x, want % x", got, want)
			}
		})
	}
}

// FuzzBERToDER checks the converter on any input: it must not panic, and
// what it returns must be one element that encoding/asn1 reads with
// nothing left over, and that converts to itself.
//
//	go test -run '^$' -fuzz FuzzBERToDER -fuzztime 30s ./clientstore/
func FuzzBERToDER(f *testing.F) {
	for _, s := range []string{
		"30 80 02 01 03 00 00",
		"24 80 04 02 01 02 04 01 03 00 00",
		"30 80 30 80 05 00 00 00 a0 80 24 80 04 01 01 00 00 00 00 00 00",
		"bf 81 00 80 05 00 00 00",
		"04 82 00 01 ff",
	} {
		f.Add(unhex(f, s))
	}
	f.Fuzz(func(t *testing.T, ber []byte) {
		der, err := berToDER(ber)
		if err != nil {
			return
		}
		var v asn1.RawValue
		rest, err := asn1.Unmarshal(der, &v)
		if err != nil {
			t.Fatalf("berToDER(% x) = % x, which encoding/asn1 refuses: %v", ber, der, err)
		}
		if len(rest) != 0 {
			t.Fatalf("berToDER(% x) = % x, with %d bytes after the element", ber, der, len(rest))
		}
		again, err := berToDER(der)
		if err != nil || !bytes.Equal(again, der) {
			t.Fatalf("berToDER is not idempotent on % x: % x, %v", der, again, err)
		}
	})
}
