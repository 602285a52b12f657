package ca_test

import (
	"crypto/x509"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/certportal/certportal"
)

// TestSignCRLSerialForms: the database's canonical, sorted serials take
// the fast path, anything else the careful one, and both produce the same
// entries: each serial once, by value, in the order given.
func TestSignCRLSerialForms(t *testing.T) {
	p := shared(t)
	now := p.Clock.Now()
	rev := func(serials ...string) []certportal.Revocation {
		out := make([]certportal.Revocation, len(serials))
		for i, s := range serials {
			out[i] = certportal.Revocation{Serial: s, Time: now, Reason: certportal.ReasonKeyCompromise}
		}
		return out
	}
	tests := []struct {
		name    string
		revoked []certportal.Revocation
		want    []string // serials as FormatSerial writes them, in CRL order
	}{
		{"canonical sorted", rev("0A", "10", "7F01", "7F02"), []string{"0A", "10", "7F01", "7F02"}},
		{"zero", rev("00", "01"), []string{"00", "01"}},
		{"unsorted", rev("7F02", "0A", "10"), []string{"7F02", "0A", "10"}},
		{"adjacent duplicate", rev("0A", "0A", "10"), []string{"0A", "10"}},
		{"distant duplicate", rev("0A", "10", "0A"), []string{"0A", "10"}},
		{"leading zero byte", rev("000A", "0A"), []string{"0A"}},
		{"lower case", rev("0a", "0A", "7f01"), []string{"0A", "7F01"}},
		{"colons", rev("7F:01", "7F01"), []string{"7F01"}},
		{"odd length", rev("A", "0B"), []string{"0A", "0B"}},
		{"20 bytes", rev(strings.Repeat("7F", 20)), []string{strings.Repeat("7F", 20)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			der, _, _, err := p.SignCRL("SOP-ICA1", 5, tt.revoked)
			if err != nil {
				t.Fatal(err)
			}
			crl, err := x509.ParseRevocationList(der)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, e := range crl.RevokedCertificateEntries {
				got = append(got, certportal.FormatSerial(e.SerialNumber))
				if e.ReasonCode != int(certportal.ReasonKeyCompromise) || !e.RevocationTime.Equal(now) {
					t.Errorf("entry %X: reason %d at %v", e.SerialNumber, e.ReasonCode, e.RevocationTime)
				}
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("entries %v, want %v", got, tt.want)
			}
		})
	}
	for _, bad := range []string{"zz", strings.Repeat("7F", 21), ""} {
		_, _, _, err := p.SignCRL("SOP-ICA1", 5, rev("0A", bad))
		if certportal.ErrorCodeOf(err) != certportal.Invalid {
			t.Errorf("serial %q: %v, want Invalid", bad, err)
		}
	}
}

// TestSignCRLManyEntries: a CRL of the size the fast path is for lists
// every serial it was given.
func TestSignCRLManyEntries(t *testing.T) {
	p := shared(t)
	revs := benchRevocations(5000)
	der, _, _, err := p.SignCRL("SOP-ICA1", 9, revs)
	if err != nil {
		t.Fatal(err)
	}
	crl, err := x509.ParseRevocationList(der)
	if err != nil {
		t.Fatal(err)
	}
	if len(crl.RevokedCertificateEntries) != len(revs) {
		t.Fatalf("%d entries, want %d", len(crl.RevokedCertificateEntries), len(revs))
	}
	for i, e := range crl.RevokedCertificateEntries {
		if got := fmt.Sprintf("%X", e.SerialNumber); got != revs[i].Serial {
			t.Fatalf("entry %d: %s, want %s", i, got, revs[i].Serial)
		}
		if !e.RevocationTime.Equal(crl.ThisUpdate) {
			t.Fatalf("entry %d: a zero revocation time became %v, want thisUpdate %v", i, e.RevocationTime, crl.ThisUpdate)
		}
	}
}
