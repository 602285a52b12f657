// Package loadgen is certbench's load generator: N workers send HTTPS
// (or plain HTTP) requests to a server on this machine, each on a new
// connection (a full TLS handshake every time) or on one kept-alive
// connection, until a number of requests or a time is reached, and record
// every latency.
//
// It is our own rather than wrk or hey because one generator must drive
// certportal and nginx alike with client certificates, pin the TLS key
// exchange group, refuse session resumption (so "new connection" means a
// full handshake), and stay bounded. It speaks just enough HTTP/1.1 to do
// that, which keeps its own CPU cost low: on a 2-core machine it competes
// with the server it measures, for nginx and certportal alike.
package loadgen

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Config says what to send and how much.
type Config struct {
	// URL is an https:// (or plain http://, without TLS) address on the
	// loopback interface (localhost, 127.0.0.0/8 or ::1); anything else is
	// refused, so the generator cannot be turned on someone else's server.
	URL string
	// Method is GET when empty. Body and ContentType are sent with it.
	Method      string
	Body        []byte
	ContentType string
	// Concurrency is the number of workers, each with its own connection
	// (at least 1).
	Concurrency int
	// Requests bounds the total number of requests; Duration bounds the
	// run's time. At least one must be set; the run stops at the first.
	Requests int
	Duration time.Duration
	// KeepAlive sends every request of a worker on one connection; without
	// it each request opens a new TCP and TLS connection.
	KeepAlive bool
	// TLS is the client's TLS configuration (certificate, roots, curve).
	// Session resumption is always off.
	TLS *tls.Config
	// Expect is the status every answer must have (200 when 0); others
	// count as errors.
	Expect int
}

// Result is what a run measured.
type Result struct {
	// Requests is the number of requests answered with the expected
	// status; Errors counts the rest (wrong status, failed connection).
	Requests int
	Errors   int
	// FirstError is the first error seen, for the report.
	FirstError error
	Elapsed    time.Duration
	// Latency holds the latency of every successful request, including
	// the connection set-up in new-connection mode.
	Latency Histogram
}

// Rate is the successful requests per second.
func (r *Result) Rate() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Requests) / r.Elapsed.Seconds()
}

// Run sends the load described by cfg and returns what it measured. It
// returns an error only for a configuration it refuses; failed requests are
// counted in Result.Errors.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("loadgen: %q is not an https:// or http:// URL", cfg.URL)
	}
	if err := checkLoopback(u.Hostname()); err != nil {
		return nil, err
	}
	if cfg.Requests <= 0 && cfg.Duration <= 0 {
		return nil, errors.New("loadgen: set Requests or Duration, so the run ends")
	}
	if cfg.Concurrency < 1 {
		cfg.Concurrency = 1
	}
	if cfg.Method == "" {
		cfg.Method = http.MethodGet
	}
	if cfg.Expect == 0 {
		cfg.Expect = http.StatusOK
	}
	addr := u.Host
	var tc *tls.Config // nil for http://
	if u.Scheme == "https" {
		if u.Port() == "" {
			addr = net.JoinHostPort(u.Hostname(), "443")
		}
		tc = &tls.Config{}
		if cfg.TLS != nil {
			tc = cfg.TLS.Clone()
		}
		tc.ClientSessionCache = nil // every new connection is a full handshake
		if tc.ServerName == "" {
			tc.ServerName = u.Hostname()
		}
		tc.NextProtos = []string{"http/1.1"}
	} else if u.Port() == "" {
		addr = net.JoinHostPort(u.Hostname(), "80")
	}
	req := buildRequest(cfg, u)

	if cfg.Duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, cfg.Duration)
		defer cancel()
	}
	var budget atomic.Int64
	budget.Store(int64(cfg.Requests))
	take := func() bool {
		if ctx.Err() != nil {
			return false
		}
		return cfg.Requests <= 0 || budget.Add(-1) >= 0
	}
	var (
		total    lockedHistogram
		ok, bad  atomic.Int64
		firstErr atomic.Pointer[error]
		wg       sync.WaitGroup
	)
	start := time.Now()
	for range cfg.Concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w := worker{addr: addr, tls: tc, req: req, expect: cfg.Expect, keep: cfg.KeepAlive}
			defer total.merge(&w.hist) // also when the time is up mid-request
			defer w.close()
			for take() {
				t0 := time.Now()
				err := w.do(ctx)
				if err != nil {
					if ctx.Err() != nil && cfg.Requests <= 0 {
						return // the time is up; this one does not count
					}
					bad.Add(1)
					firstErr.CompareAndSwap(nil, &err)
					continue
				}
				w.hist.Record(time.Since(t0))
				ok.Add(1)
			}
		}()
	}
	wg.Wait()
	res := &Result{Requests: int(ok.Load()), Errors: int(bad.Load()), Elapsed: time.Since(start), Latency: total.h}
	if p := firstErr.Load(); p != nil {
		res.FirstError = *p
	}
	return res, nil
}

// checkLoopback refuses a host that is not this machine.
func checkLoopback(host string) error {
	if host == "localhost" {
		return nil
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("loadgen: %s is not a loopback address; the load generator only targets this machine", host)
	}
	return nil
}

// buildRequest returns the bytes of the one request every worker sends.
func buildRequest(cfg Config, u *url.URL) []byte {
	var b bytes.Buffer
	path := u.RequestURI()
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: certportal-loadgen\r\n", cfg.Method, path, u.Host)
	if !cfg.KeepAlive {
		b.WriteString("Connection: close\r\n")
	}
	if cfg.Body != nil || cfg.Method == http.MethodPost {
		if cfg.ContentType != "" {
			fmt.Fprintf(&b, "Content-Type: %s\r\n", cfg.ContentType)
		}
		fmt.Fprintf(&b, "Content-Length: %d\r\n", len(cfg.Body))
	}
	b.WriteString("\r\n")
	b.Write(cfg.Body)
	return b.Bytes()
}

// worker is one connection's loop.
type worker struct {
	addr   string
	tls    *tls.Config // nil: plain HTTP
	req    []byte
	expect int
	keep   bool
	conn   net.Conn
	br     *bufio.Reader
	hist   Histogram
}

var dialer = net.Dialer{Timeout: 10 * time.Second}

// do sends one request and reads the whole answer.
func (w *worker) do(ctx context.Context) error {
	if w.conn == nil {
		raw, err := dialer.DialContext(ctx, "tcp", w.addr)
		if err != nil {
			return err
		}
		w.conn = raw
		if w.tls != nil {
			c := tls.Client(raw, w.tls)
			if err := c.HandshakeContext(ctx); err != nil {
				raw.Close()
				return err
			}
			w.conn = c
		}
		if w.br == nil {
			w.br = bufio.NewReaderSize(w.conn, 16<<10)
		} else {
			w.br.Reset(w.conn)
		}
	}
	err := w.roundTrip()
	if err != nil || !w.keep {
		w.close()
	}
	return err
}

func (w *worker) roundTrip() error {
	_ = w.conn.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := w.conn.Write(w.req); err != nil {
		return err
	}
	resp, err := http.ReadResponse(w.br, nil)
	if err != nil {
		return err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil {
		return err
	}
	if resp.StatusCode != w.expect {
		return fmt.Errorf("loadgen: status %d, want %d", resp.StatusCode, w.expect)
	}
	if w.keep && (resp.Close || strings.EqualFold(resp.Header.Get("Connection"), "close")) {
		w.close()
	}
	return nil
}

func (w *worker) close() {
	if w.conn != nil {
		w.conn.Close()
		w.conn = nil
	}
}
