// Package testpki gives tests a throw-away certportal CA and a settable
// clock. The CA is real (ca.Create then ca.Load in a t.TempDir()), with
// P-256 keys so it costs about a millisecond.
package testpki

import (
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/certportal/certportal/ca"
)

// Clock is a fixed clock that tests move by hand. It is safe for
// concurrent use; pass its Now method wherever a func() time.Time goes.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// NewClock returns a clock stopped at t.
func NewClock(t time.Time) *Clock { return &Clock{t: t} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Set stops the clock at t.
func (c *Clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

// Advance moves the clock by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// PKI is a throw-away CA: the loaded Authority, the directory Create wrote
// (root.crt, issuing.crt, ... as in production) and the clock it runs on.
type PKI struct {
	*ca.Authority
	Dir            string
	Clock          *Clock
	InstallationID string
}

// New creates a CA in a fresh temporary directory and loads it, with its
// root key (as init and ca rollover have it) and a root CRL (number 1) in
// root.crl, as init leaves the directory. The clock starts at the current
// time (to the second), so the certificates also verify with outside tools
// such as openssl that use the real clock. Options may change the
// ca.InitOptions before Create runs; Dir, Now are preset.
func New(t testing.TB, options ...func(*ca.InitOptions)) *PKI {
	t.Helper()
	clock := NewClock(time.Now().UTC().Truncate(time.Second))
	dir := filepath.Join(t.TempDir(), "ca")
	opts := ca.InitOptions{Dir: dir, Now: clock.Now, KeyType: ca.P256}
	for _, o := range options {
		o(&opts)
	}
	id, err := ca.Create(opts)
	if err != nil {
		t.Fatalf("testpki: creating a CA: %v", err)
	}
	a, err := ca.Load(opts.Dir, opts.URL)
	if err != nil {
		t.Fatalf("testpki: loading the CA: %v", err)
	}
	a.Now = clock.Now
	if err := a.LoadRootKey(); err != nil {
		t.Fatalf("testpki: loading the root key: %v", err)
	}
	crl, err := a.SignRootCRL(1, nil, ca.DefaultRootCRLLifetime)
	if err == nil {
		err = a.SaveRootCRL(crl)
	}
	if err != nil {
		t.Fatalf("testpki: signing the root CRL: %v", err)
	}
	return &PKI{Authority: a, Dir: opts.Dir, Clock: clock, InstallationID: id}
}
