package certportal

import (
	"crypto/ed25519"
	"crypto/rand"
	"strings"
	"testing"
	"time"
)

func TestCheckpointRoundTrip(t *testing.T) {
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	c := SignCheckpoint(key, 42, strings.Repeat("ab", 32), time.Date(2026, 12, 3, 10, 0, 0, 123, time.UTC))
	if !c.Verify() {
		t.Fatal("a fresh checkpoint does not verify")
	}
	got, err := ParseCheckpoint(c.String())
	if err != nil || !got.Verify() || got.Seq != 42 || got.String() != c.String() {
		t.Fatalf("round trip: %+v, %v", got, err)
	}
	for _, bad := range []string{
		"", c.String() + " ", " " + c.String(), strings.Replace(c.String(), " 42 ", " 042 ", 1),
		strings.Replace(c.String(), "abab", "ABAB", 1), strings.Replace(c.String(), "Z", "+00:00", 1),
		strings.Replace(c.String(), "certportal-audit-checkpoint-v1", "certportal-audit-checkpoint-v2", 1),
	} {
		if _, err := ParseCheckpoint(bad); err == nil {
			t.Errorf("ParseCheckpoint(%q) accepted it", bad)
		}
	}
	forged := *got
	forged.Hash = strings.Repeat("cd", 32)
	if forged.Verify() {
		t.Error("a checkpoint with another hash verifies")
	}
}

// FuzzParseCheckpoint: any line either fails to parse or parses into a
// checkpoint whose line is the input itself.
func FuzzParseCheckpoint(f *testing.F) {
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	f.Add(SignCheckpoint(key, 1, strings.Repeat("00", 32), time.Unix(0, 0)).String())
	f.Add(SignCheckpoint(key, 9223372036854775807, strings.Repeat("ff", 32), time.Date(2099, 1, 1, 0, 0, 0, 999999999, time.UTC)).String())
	f.Add("certportal-audit-checkpoint-v1 1 x y z w")
	f.Add("")
	f.Fuzz(func(t *testing.T, line string) {
		c, err := ParseCheckpoint(line)
		if err != nil {
			return
		}
		if c.String() != line {
			t.Fatalf("parsed %q, writes %q", line, c.String())
		}
		_ = c.Verify()
	})
}
