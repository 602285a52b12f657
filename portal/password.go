package portal

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"io"
	"strings"
	"sync/atomic"

	"golang.org/x/crypto/argon2"

	"github.com/certportal/certportal"
)

// Argon2id parameters from SPEC.md (OWASP's minimum recommendation:
// m=19 MiB, t=2, p=1). They are written into each hash, so they can be
// raised later without invalidating stored passwords.
const (
	argonMemory  = 19 * 1024 // KiB
	argonTime    = 2
	argonThreads = 1
	argonKeyLen  = 32
	argonSaltLen = 16
)

// Hasher hashes and verifies passwords with argon2id. Each hash takes
// 19 MiB for tens of milliseconds, so at most Workers run at once: a flood
// of sign-ins queues instead of exhausting memory.
type Hasher struct {
	sem   chan struct{}
	dummy string
	Rand  io.Reader
	// runs counts the argon2 computations, so that a test can tell
	// that an unknown ID costs one, as a wrong password does, without
	// timing it.
	runs atomic.Int64
}

// idKey is argon2.IDKey, counted.
func (h *Hasher) idKey(password, salt []byte, t, mem uint32, p uint8, keyLen uint32) []byte {
	h.runs.Add(1)
	return argon2.IDKey(password, salt, t, mem, p, keyLen)
}

// NewHasher returns a Hasher that runs at most workers hashes at once.
func NewHasher(workers int) *Hasher {
	if workers < 1 {
		workers = 1
	}
	h := &Hasher{sem: make(chan struct{}, workers), Rand: rand.Reader}
	// The dummy only has to cost what a real verification costs: the same
	// parameters with a random salt and a random key, which no password
	// matches. Making it needs no argon2 run, so start-up stays cheap.
	b := make([]byte, argonSaltLen+argonKeyLen)
	if _, err := io.ReadFull(rand.Reader, b); err != nil {
		panic(err) // only fails if the system's random source does
	}
	h.dummy = phc(b[:argonSaltLen], b[argonSaltLen:])
	return h
}

func (h *Hasher) acquire(ctx context.Context) error {
	select {
	case h.sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return certportal.WrapError(certportal.Unavailable, fmt.Errorf("%w: %w", ErrBusy, ctx.Err()), "the portal is busy; try again in a moment")
	}
}

func (h *Hasher) release() { <-h.sem }

// Hash returns the PHC-format argon2id hash of password.
func (h *Hasher) Hash(ctx context.Context, password string) (string, error) {
	salt := make([]byte, argonSaltLen)
	if _, err := io.ReadFull(h.Rand, salt); err != nil {
		return "", err
	}
	if err := h.acquire(ctx); err != nil {
		return "", err
	}
	defer h.release()
	key := h.idKey([]byte(certportal.NormalizePassword(password)), salt, argonTime, argonMemory, argonThreads, argonKeyLen)
	return phc(salt, key), nil
}

// phc encodes a salt and key with the current parameters in the PHC string
// format.
func phc(salt, key []byte) string {
	enc := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, argonMemory, argonTime, argonThreads,
		enc.EncodeToString(salt), enc.EncodeToString(key))
}

// Verify reports whether password, in its NFC form, matches the PHC hash
// encoded. An empty
// or malformed hash is checked against a dummy hash, so the time taken does
// not tell whether an account exists.
func (h *Hasher) Verify(ctx context.Context, encoded, password string) (bool, error) {
	valid := true
	mem, t, p, salt, key, ok := parsePHC(encoded)
	if !ok {
		valid = false
		mem, t, p, salt, key, _ = parsePHC(h.dummy)
	}
	if err := h.acquire(ctx); err != nil {
		return false, err
	}
	defer h.release()
	nfc := certportal.NormalizePassword(password)
	got := h.idKey([]byte(nfc), salt, t, mem, p, uint32(len(key)))
	if subtle.ConstantTimeCompare(got, key) == 1 {
		return valid, nil
	}
	if nfc != password && valid {
		// A hash made before passwords were normalised, from a
		// password typed in another form: checked as it was set.
		got = h.idKey([]byte(password), salt, t, mem, p, uint32(len(key)))
		return subtle.ConstantTimeCompare(got, key) == 1, nil
	}
	return false, nil
}

// Burn spends the time of one verification, for unknown or locked IDs.
func (h *Hasher) Burn(ctx context.Context, password string) {
	_, _ = h.Verify(ctx, "", password)
}

func parsePHC(s string) (mem, t uint32, p uint8, salt, key []byte, ok bool) {
	parts := strings.Split(s, "$")
	if len(parts) != 6 || parts[1] != "argon2id" {
		return
	}
	var v int
	if _, err := fmt.Sscanf(parts[2], "v=%d", &v); err != nil || v != argon2.Version {
		return
	}
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &mem, &t, &p); err != nil || mem == 0 || t == 0 || p == 0 || mem > 1<<22 {
		return
	}
	enc := base64.RawStdEncoding
	var err error
	if salt, err = enc.DecodeString(parts[4]); err != nil {
		return
	}
	if key, err = enc.DecodeString(parts[5]); err != nil || len(key) < 16 || len(key) > 64 {
		return
	}
	ok = true
	return
}

// passwordAlphabet leaves out characters people confuse (0/O, 1/l/I).
const passwordAlphabet = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789"

// GeneratePassword returns a random password of n characters from an
// alphabet without look-alike characters; 16 characters carry about 93 bits.
func GeneratePassword(r io.Reader, n int) (string, error) {
	b := make([]byte, n)
	out := make([]byte, 0, n)
	for len(out) < n {
		if _, err := io.ReadFull(r, b); err != nil {
			return "", err
		}
		for _, c := range b {
			// Rejection sampling keeps the distribution uniform.
			if int(c) < 256-256%len(passwordAlphabet) && len(out) < n {
				out = append(out, passwordAlphabet[int(c)%len(passwordAlphabet)])
			}
		}
	}
	return string(out), nil
}

// newToken returns a random 256-bit token (for cookies and tickets) and the
// SHA-256 hex under which the database keeps it.
func newToken(r io.Reader) (token, id string, err error) {
	b := make([]byte, 32)
	if _, err := io.ReadFull(r, b); err != nil {
		return "", "", err
	}
	token = base64.RawURLEncoding.EncodeToString(b)
	return token, tokenID(token), nil
}
