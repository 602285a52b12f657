package web

import (
	"context"
	"crypto/tls"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// CertSource gives the HTTPS listener its certificate at each handshake,
// so the certificate can change while the server runs: connections made
// before keep theirs, the next new connection gets the new one.
type CertSource interface {
	Certificate() *tls.Certificate
}

// StaticCert is a CertSource that never changes.
type StaticCert struct{ Cert *tls.Certificate }

// Certificate returns the certificate.
func (s StaticCert) Certificate() *tls.Certificate { return s.Cert }

// CertReloader is a CertSource that swaps its certificate atomically when
// the files it was read from change (a renewal by another replica sharing
// DATA/ca, or an administrator's new --tls-cert), on Reload (SIGHUP), and,
// when Renew is set, when the certificate is due for renewal. A file that
// cannot be loaded keeps the old certificate and is logged.
type CertReloader struct {
	// Load reads the certificate and key files.
	Load func() (*tls.Certificate, error)
	// Files are the paths Load reads; Poll reloads when one changes.
	Files []string
	// Due reports whether a certificate should be renewed; Renew issues
	// and stores a new one. Both nil: no renewal (--tls-cert).
	Due   func(*tls.Certificate) bool
	Renew func() (*tls.Certificate, error)
	Log   *slog.Logger

	cur atomic.Pointer[tls.Certificate]

	mu     sync.Mutex // serialises Poll and Reload
	seen   []os.FileInfo
	failed bool // the last attempt to load changed files failed
}

// NewCertReloader loads the certificate once (an error here stops the
// server from starting) and returns the reloader.
func NewCertReloader(load func() (*tls.Certificate, error), log *slog.Logger, files ...string) (*CertReloader, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r := &CertReloader{Load: load, Files: files, Log: log}
	r.seen = r.stat()
	c, err := load()
	if err != nil {
		return nil, err
	}
	r.cur.Store(c)
	return r, nil
}

// Certificate returns the certificate in use.
func (r *CertReloader) Certificate() *tls.Certificate { return r.cur.Load() }

// stat returns the FileInfo of each watched file (nil when missing).
func (r *CertReloader) stat() []os.FileInfo {
	out := make([]os.FileInfo, len(r.Files))
	for i, f := range r.Files {
		out[i], _ = os.Stat(f)
	}
	return out
}

// changed reports whether any watched file differs from what was seen:
// another inode (an atomic rename), another size or modification time.
func changed(old, now []os.FileInfo) bool {
	for i := range now {
		a, b := old[i], now[i]
		if (a == nil) != (b == nil) {
			return true
		}
		if a != nil && (!os.SameFile(a, b) || !a.ModTime().Equal(b.ModTime()) || a.Size() != b.Size()) {
			return true
		}
	}
	return false
}

// Reload reads the files now and switches to them if they load; otherwise
// it keeps the certificate in use, logs and returns the error.
func (r *CertReloader) Reload() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.seen = r.stat()
	return r.reload("reload requested")
}

func (r *CertReloader) reload(why string) error {
	c, err := r.Load()
	if err != nil {
		r.failed = true
		r.Log.Error("TLS certificate not reloaded; the one in use stays", "why", why, "err", err)
		return err
	}
	r.failed = false
	r.swap(c, why)
	return nil
}

func (r *CertReloader) swap(c *tls.Certificate, why string) {
	old := r.cur.Swap(c)
	if old != nil && c.Leaf != nil && old.Leaf != nil && old.Leaf.Equal(c.Leaf) {
		return
	}
	if c.Leaf != nil {
		r.Log.Info("TLS certificate switched", "why", why, "serial", c.Leaf.SerialNumber.Text(16), "not_after", c.Leaf.NotAfter)
	}
}

// Poll reloads the files when they changed since they were last read and
// renews the certificate when it is due. The file check comes first, so a
// replica that sees another's renewal on disk does not renew again.
func (r *CertReloader) Poll() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if now := r.stat(); changed(r.seen, now) {
		r.seen = now
		_ = r.reload("the certificate files changed")
	}
	if r.Renew == nil || r.Due == nil || !r.Due(r.cur.Load()) {
		return
	}
	c, err := r.Renew()
	if err != nil {
		r.Log.Error("TLS certificate renewal failed; will retry", "err", err)
		return
	}
	// Our own write is not a change to reload.
	r.seen = r.stat()
	r.swap(c, "renewed")
}

// Run calls Poll every interval and Reload at each value from hup (SIGHUP)
// until ctx ends.
func (r *CertReloader) Run(ctx context.Context, interval time.Duration, hup <-chan os.Signal) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			r.Poll()
		case <-hup:
			_ = r.Reload()
		}
	}
}
