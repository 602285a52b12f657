package certportal

import (
	"math/big"
	"strings"
	"testing"
	"time"
)

func TestNormalizeHex(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"AB12", "AB12"},
		{"ab:12", "AB12"},
		{"ab 12", "AB12"},
		{"\u200eab12cd", "AB12CD"}, // as Windows copies a thumbprint
		{"abc", "0ABC"},
	} {
		got, err := NormalizeHex(c.in)
		if err != nil || got != c.want {
			t.Errorf("NormalizeHex(%q) = %q, %v; want %q", c.in, got, err, c.want)
		}
	}
	for _, bad := range []string{"", "xyz", "12-34", ":::"} {
		if _, err := NormalizeHex(bad); ErrorCodeOf(err) != Invalid {
			t.Errorf("NormalizeHex(%q): %v, want Invalid", bad, err)
		}
	}
}

func TestSerials(t *testing.T) {
	if s := FormatSerial(big.NewInt(1)); s != "01" {
		t.Errorf("FormatSerial(1) = %q, want 01", s)
	}
	if s := FormatSerial(big.NewInt(0xABC)); s != "0ABC" {
		t.Errorf("FormatSerial(0xABC) = %q", s)
	}
	for _, in := range []string{"1", "01", "0x01", "00:01"} {
		if got, err := NormalizeSerial(in); err != nil || got != "01" {
			t.Errorf("NormalizeSerial(%q) = %q, %v; want 01", in, got, err)
		}
	}
	if _, err := NormalizeSerial(strings.Repeat("ab", 21)); err == nil {
		t.Error("a 21-byte serial was accepted")
	}
}

func TestValidateIDAndEmail(t *testing.T) {
	for _, ok := range []string{"a", "alice", "A.B_c@d-e", strings.Repeat("x", 64)} {
		if err := ValidateID(ok); err != nil {
			t.Errorf("ValidateID(%q): %v", ok, err)
		}
	}
	for _, bad := range []string{"", "al ice", "alice!", "ålice", strings.Repeat("x", 65)} {
		if err := ValidateID(bad); ErrorCodeOf(err) != Invalid {
			t.Errorf("ValidateID(%q): %v, want Invalid", bad, err)
		}
	}
	for _, ok := range []string{"a@example.com", "first.last+tag@sub.example.org"} {
		if err := ValidateEmail(ok); err != nil {
			t.Errorf("ValidateEmail(%q): %v", ok, err)
		}
	}
	for _, bad := range []string{"", "a", "a@", "@b", "A <a@b.c>", "a@[1.2.3.4]", "jörg@example.com", "a b@c.d"} {
		if err := ValidateEmail(bad); ErrorCodeOf(err) != Invalid {
			t.Errorf("ValidateEmail(%q): %v, want Invalid", bad, err)
		}
	}
}

func TestParseReason(t *testing.T) {
	for name, want := range map[string]RevocationReason{
		"": ReasonNone, "none": ReasonNone, "keyCompromise": ReasonKeyCompromise, "SUPERSEDED": ReasonSuperseded,
		"cessationOfOperation": ReasonCessationOfOperation, "affiliationChanged": ReasonAffiliationChanged,
		"privilegeWithdrawn": ReasonPrivilegeWithdrawn,
	} {
		if got, err := ParseReason(name); err != nil || got != want {
			t.Errorf("ParseReason(%q) = %v, %v; want %v", name, got, err, want)
		}
	}
	for _, bad := range []string{"unspecified", "certificateHold", "bored"} {
		if _, err := ParseReason(bad); ErrorCodeOf(err) != Invalid {
			t.Errorf("ParseReason(%q): %v, want Invalid", bad, err)
		}
	}
}

func TestVerifyAuditChain(t *testing.T) {
	var events []AuditEvent
	prev := ""
	for i := 1; i <= 3; i++ {
		e := AuditEvent{Seq: int64(i), Time: time.Unix(int64(i), 0), Actor: "admin", Action: "x", PrevHash: prev}
		e.Hash = AuditHash(&e)
		prev = e.Hash
		events = append(events, e)
	}
	if _, err := VerifyAuditChain(events); err != nil {
		t.Fatalf("an intact chain: %v", err)
	}
	tampered := append([]AuditEvent(nil), events...)
	tampered[1].Detail = "changed"
	if seq, err := VerifyAuditChain(tampered); err == nil || seq != 2 {
		t.Errorf("an altered record: seq %d, %v", seq, err)
	}
	if seq, err := VerifyAuditChain([]AuditEvent{events[0], events[2]}); err == nil || seq != 3 {
		t.Errorf("a deleted record: seq %d, %v", seq, err)
	}
	// A record whose own hash is right but that links to another chain.
	relinked := append([]AuditEvent(nil), events...)
	relinked[1].PrevHash = "0000"
	relinked[1].Hash = AuditHash(&relinked[1])
	if seq, err := VerifyAuditChain(relinked); err == nil || seq != 2 {
		t.Errorf("a record linked to another chain: seq %d, %v", seq, err)
	}
}
