package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/smallstep/pkcs7"

	"github.com/certportal/certportal/internal/loadgen"
)

// EST re-enrollment over the network (issue 17): each worker holds one
// account's current certificate and, on a new mutual-TLS connection per
// request, POSTs /.well-known/est/simplereenroll with a CSR and goes on
// with the certificate it got back. Beside it, on the same serve process
// and at the same concurrency, new-connection sign-ins (GET /api/whoami),
// so the ratio is what enrollment costs on top of a handshake: the CSR's
// signature check, the signature of the certificate, and the superseding
// transaction (one SQLite commit and fsync for one client; concurrent
// clients' transactions share commits, see sqlite/group.go).
//
// It runs on a data directory of its own, with renew_window as long as a
// certificate lives so that a fresh certificate may be renewed at once,
// and its own accounts (est1, est2, ...), so the other measurements'
// data stay as they were.

// estConc are the concurrency levels of the EST figures: one client (the
// latency of one enrollment), and enough to keep both cores and the
// database's one writer busy.
var estConc = []int{1, 8}

// estReenrolls measures and adds the EST rows to the report.
func (r *report) estReenrolls(ctx context.Context, o options, fx *fixture) error {
	logf("EST re-enrollment and sign-in on new connections, concurrency %v", estConc)
	efx, err := newESTFixture(ctx, fx)
	if err != nil {
		return err
	}
	serve, err := efx.startServe(ctx)
	if err != nil {
		return err
	}
	defer serve.stop()
	workers := make([]*estWorker, estConc[len(estConc)-1])
	for i := range workers {
		if workers[i], err = newESTWorker(ctx, efx, serve.addr, fmt.Sprintf("est%d", i+1)); err != nil {
			return err
		}
	}
	signinTLS := workers[0].tls.Clone()
	signinTLS.GetClientCertificate = nil
	signinTLS.Certificates = []tls.Certificate{*workers[0].current()}
	// Warm up both (first connections, page faults, CPU frequency).
	if _, err := loadgen.Run(ctx, loadgen.Config{URL: "https://" + serve.addr + "/api/whoami", Concurrency: 2, Duration: time.Second, TLS: signinTLS}); err != nil {
		return err
	}
	if _, err := reenrollFor(ctx, workers[:2], time.Second); err != nil {
		return err
	}
	signinTLS.Certificates = []tls.Certificate{*workers[0].current()}
	for _, c := range estConc {
		si, err := loadgen.Run(ctx, loadgen.Config{URL: "https://" + serve.addr + "/api/whoami", Concurrency: c, Duration: o.step, TLS: signinTLS})
		if err != nil {
			return err
		}
		if si.Requests == 0 {
			return fmt.Errorf("EST: no sign-in succeeded: %v", si.FirstError)
		}
		est, err := reenrollFor(ctx, workers[:c], o.step)
		if err != nil {
			return err
		}
		logf("  c=%-3d EST re-enrollments %6.0f/s (p50 %v, p99 %v)  sign-ins %6.0f/s (p50 %v)", c,
			est.Rate(), est.Latency.Quantile(0.5).Round(time.Microsecond), est.Latency.Quantile(0.99).Round(time.Microsecond),
			si.Rate(), si.Latency.Quantile(0.5).Round(time.Microsecond))
		r.add(fmt.Sprintf("EST re-enrollment (simplereenroll, new mutual-TLS connection each, each client with the certificate it got last; SQLite), c=%d / new-connection sign-ins on the same serve, c=%d", c, c),
			est.Rate(), si.Rate(), "/s", "(for reading)", true)
		r.notes = append(r.notes, fmt.Sprintf("EST c=%d: re-enrollment p50 %v, p99 %v; sign-in p50 %v, p99 %v; %d re-enrollments, %d failed.",
			c, est.Latency.Quantile(0.5).Round(time.Microsecond), est.Latency.Quantile(0.99).Round(time.Microsecond),
			si.Latency.Quantile(0.5).Round(time.Microsecond), si.Latency.Quantile(0.99).Round(time.Microsecond), est.Requests, est.Errors))
		// The sign-in certificate was superseded by the re-enrollments.
		signinTLS.Certificates = []tls.Certificate{*workers[0].current()}
	}
	return nil
}

// newESTFixture makes the EST measurement's data directory: init (P-256),
// and a renewal window as long as a certificate lives.
func newESTFixture(ctx context.Context, fx *fixture) (*fixture, error) {
	efx := &fixture{work: fx.work, data: filepath.Join(fx.work, "est-data"), binary: fx.binary}
	if out, err := exec.CommandContext(ctx, efx.binary, "init", "--data", efx.data, "--key-type", "p256").CombinedOutput(); err != nil {
		return nil, fmt.Errorf("certportal init: %v\n%s", err, out)
	}
	path := filepath.Join(efx.data, "config.json")
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var cfg map[string]any
	if err := json.Unmarshal(b, &cfg); err != nil {
		return nil, err
	}
	cfg["renew_window"] = "9600h" // 400 days: longer than a certificate lives
	if b, err = json.MarshalIndent(cfg, "", "  "); err != nil {
		return nil, err
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		return nil, err
	}
	root, err := readPEMCert(filepath.Join(efx.data, "ca", "root.crt"))
	if err != nil {
		return nil, err
	}
	roots := x509.NewCertPool()
	roots.AddCert(root)
	efx.client = &tls.Config{RootCAs: roots, CurvePreferences: []tls.CurveID{tls.X25519}, ServerName: "127.0.0.1"}
	return efx, nil
}

// estWorker is one EST client: an account, its key and CSR (sent again at
// every re-enrollment), and the certificate it holds now.
type estWorker struct {
	client *http.Client
	tls    *tls.Config
	url    string
	body   []byte // the base64 CSR

	mu   sync.Mutex
	cert *tls.Certificate
}

func (w *estWorker) current() *tls.Certificate {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.cert
}

// newESTWorker adds the account id and gets its first certificate by
// simpleenroll (HTTP Basic).
func newESTWorker(ctx context.Context, efx *fixture, addr, id string) (*estWorker, error) {
	pw := filepath.Join(efx.work, "est-pw")
	if err := os.WriteFile(pw, []byte(userPassword+"\n"), 0o600); err != nil {
		return nil, err
	}
	if out, err := exec.CommandContext(ctx, efx.binary, "user", "add", "--data", efx.data, "--id", id, "--email", id+"@example.com", "--password-file", pw).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("certportal user add: %v\n%s", err, out)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: id}}, key)
	if err != nil {
		return nil, err
	}
	w := &estWorker{url: "https://" + addr + "/.well-known/est/", body: []byte(base64.StdEncoding.EncodeToString(csr))}
	w.tls = efx.client.Clone()
	w.tls.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
		if c := w.current(); c != nil {
			return c, nil
		}
		return &tls.Certificate{}, nil
	}
	// A new connection for every request, and no session resumption (no
	// ClientSessionCache): every request pays a full handshake.
	w.client = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: w.tls, DisableKeepAlives: true}}
	leaf, err := w.post(ctx, "simpleenroll", func(req *http.Request) { req.SetBasicAuth(id, userPassword) })
	if err != nil {
		return nil, err
	}
	w.cert = &tls.Certificate{Certificate: [][]byte{leaf.Raw}, PrivateKey: key, Leaf: leaf}
	return w, nil
}

// post sends the CSR to an EST route and returns the certificate of the
// answer.
func (w *estWorker) post(ctx context.Context, route string, auth func(*http.Request)) (*x509.Certificate, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.url+route, bytes.NewReader(w.body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/pkcs10")
	if auth != nil {
		auth(req)
	}
	resp, err := w.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("EST %s: HTTP %d: %s", route, resp.StatusCode, strings.TrimSpace(string(body)))
	}
	der, err := base64.StdEncoding.DecodeString(strings.ReplaceAll(string(body), "\n", ""))
	if err != nil {
		return nil, fmt.Errorf("EST %s: the answer is not base64: %v", route, err)
	}
	p7, err := pkcs7.Parse(der)
	if err != nil || len(p7.Certificates) != 1 {
		return nil, fmt.Errorf("EST %s: the answer is not one certificate in PKCS#7: %v", route, err)
	}
	return p7.Certificates[0], nil
}

// reenroll re-enrolls once with the current certificate and keeps the new
// one.
func (w *estWorker) reenroll(ctx context.Context) error {
	leaf, err := w.post(ctx, "simplereenroll", nil)
	if err != nil {
		return err
	}
	w.mu.Lock()
	w.cert = &tls.Certificate{Certificate: [][]byte{leaf.Raw}, PrivateKey: w.cert.PrivateKey, Leaf: leaf}
	w.mu.Unlock()
	return nil
}

// reenrollFor runs the workers for d, each re-enrolling in a loop, and
// returns the rate and latencies in loadgen's terms. A failure stops the
// worker (its certificate may be gone) and is returned when nothing
// succeeded.
func reenrollFor(ctx context.Context, workers []*estWorker, d time.Duration) (*loadgen.Result, error) {
	var mu sync.Mutex
	res := &loadgen.Result{}
	var wg sync.WaitGroup
	start := time.Now()
	for _, w := range workers {
		wg.Go(func() {
			for time.Since(start) < d && ctx.Err() == nil {
				t := time.Now()
				err := w.reenroll(ctx)
				mu.Lock()
				if err != nil {
					res.Errors++
					if res.FirstError == nil {
						res.FirstError = err
					}
				} else {
					res.Requests++
					res.Latency.Record(time.Since(t))
				}
				mu.Unlock()
				if err != nil {
					return
				}
			}
		})
	}
	wg.Wait()
	res.Elapsed = time.Since(start)
	if res.Errors > 0 {
		return res, fmt.Errorf("EST re-enrollment: %d failed: %v", res.Errors, res.FirstError)
	}
	return res, nil
}
