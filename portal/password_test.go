package portal

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/certportal/certportal"
)

func TestHasherRoundTrip(t *testing.T) {
	h := NewHasher(2)
	ctx := context.Background()
	hash, err := h.Hash(ctx, "correct horse battery")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(hash, "$argon2id$v=19$m=19456,t=2,p=1$") {
		t.Fatalf("hash %q does not carry the argon2id parameters of SPEC.md", hash)
	}
	for _, c := range []struct {
		hash, pw string
		want     bool
	}{
		{hash, "correct horse battery", true},
		{hash, "correct horse batterY", false},
		{hash, "", false},
		{"", "certportal dummy password, never valid", false}, // the dummy never matches
		{"$argon2id$v=19$m=0,t=0,p=0$$", "x", false},
		{"garbage", "x", false},
	} {
		got, err := h.Verify(ctx, c.hash, c.pw)
		if err != nil || got != c.want {
			t.Errorf("Verify(%q, %q) = %v, %v; want %v", c.hash, c.pw, got, err, c.want)
		}
	}
}

// TestHasherIsBounded: when every worker is busy, a hash waits, and gives
// up with Unavailable when its request is gone, instead of taking memory.
func TestHasherIsBounded(t *testing.T) {
	h := NewHasher(1)
	h.sem <- struct{}{} // the one worker is busy
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := h.Verify(ctx, "", "x"); certportal.ErrorCodeOf(err) != certportal.Unavailable {
		t.Fatalf("Verify with all workers busy: %v, want Unavailable", err)
	}
	<-h.sem
	if ok, err := h.Verify(context.Background(), "", "x"); err != nil || ok {
		t.Fatalf("Verify after the worker is free: %v %v", ok, err)
	}
}

func TestGeneratePassword(t *testing.T) {
	seen := map[string]bool{}
	for i := 0; i < 200; i++ {
		p, err := GeneratePassword(randReader, 16)
		if err != nil || len(p) != 16 || seen[p] {
			t.Fatalf("GeneratePassword: %q %v (seen before: %v)", p, err, seen[p])
		}
		seen[p] = true
		if strings.ContainsAny(p, "0O1lI") {
			t.Errorf("password %q contains a look-alike character", p)
		}
		if err := certportal.ValidatePassword(p); err != nil {
			t.Errorf("a generated password is not a valid password: %v", err)
		}
	}
}
