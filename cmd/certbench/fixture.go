package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"software.sslmate.com/src/go-pkcs12"

	"github.com/certportal/certportal/internal/freeport"
)

// fixture is what every measurement shares: a certportal data directory
// made by `certportal init` (P-256 keys throughout), a user "bench" with a
// certificate, and the client TLS configuration (the bench certificate, the
// root trusted, X25519 only).
type fixture struct {
	work, data string
	binary     string
	db         []string // --db URL for every command, or none (SQLite in data)
	client     *tls.Config
	leaf       *x509.Certificate
	issuing    *x509.Certificate
}

const (
	userPassword = "bench password 1"
	p12Password  = "bench p12 password"
)

func newFixture(ctx context.Context, o options, work string) (*fixture, error) {
	return makeFixture(ctx, o.certportal, work, "data", "")
}

// makeFixture makes the fixture in work/name, on the database db (a
// postgres:// URL) or, when db is "", on SQLite in the data directory.
func makeFixture(ctx context.Context, binary, work, name, db string) (*fixture, error) {
	fx := &fixture{work: work, data: filepath.Join(work, name), binary: binary}
	if db != "" {
		fx.db = []string{"--db", db}
	}
	pw := filepath.Join(work, "pw")
	p12pw := filepath.Join(work, "p12pw")
	if err := os.WriteFile(pw, []byte(userPassword+"\n"), 0o600); err != nil {
		return nil, err
	}
	if err := os.WriteFile(p12pw, []byte(p12Password+"\n"), 0o600); err != nil {
		return nil, err
	}
	p12 := filepath.Join(work, name+"-bench.p12")
	for _, args := range [][]string{
		{"init", "--data", fx.data, "--key-type", "p256"},
		{"user", "add", "--data", fx.data, "--id", "bench", "--email", "bench@example.com", "--password-file", pw},
		{"cert", "issue", "--data", fx.data, "--id", "bench", "--out", p12, "--password-file", p12pw},
	} {
		if out, err := exec.CommandContext(ctx, fx.binary, append(args, fx.db...)...).CombinedOutput(); err != nil {
			return nil, fmt.Errorf("certportal %s: %v\n%s", args[0], err, out)
		}
	}
	b, err := os.ReadFile(p12)
	if err != nil {
		return nil, err
	}
	key, leaf, chain, err := pkcs12.DecodeChain(b, p12Password)
	if err != nil {
		return nil, err
	}
	root, err := readPEMCert(filepath.Join(fx.data, "ca", "root.crt"))
	if err != nil {
		return nil, err
	}
	if fx.issuing, err = readPEMCert(filepath.Join(fx.data, "ca", "issuing.crt")); err != nil {
		return nil, err
	}
	_ = chain
	roots := x509.NewCertPool()
	roots.AddCert(root)
	fx.leaf = leaf
	fx.client = &tls.Config{
		RootCAs:      roots,
		Certificates: []tls.Certificate{{Certificate: [][]byte{leaf.Raw}, PrivateKey: key, Leaf: leaf}},
		// One group for certportal and nginx alike; Go would otherwise
		// offer the hybrid X25519MLKEM768, which nginx 1.22 lacks.
		CurvePreferences: []tls.CurveID{tls.X25519},
		ServerName:       "127.0.0.1",
	}
	return fx, nil
}

func readPEMCert(path string) (*x509.Certificate, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, fmt.Errorf("%s holds no PEM certificate", path)
	}
	return x509.ParseCertificate(blk.Bytes)
}

func freeAddr() (string, error) { return freeport.Addr() }

// process is a server started for a measurement.
type process struct {
	cmd   *exec.Cmd
	addr  string // HTTPS address
	plain string // plain-HTTP address (OCSP)
	logs  bytes.Buffer
}

// startServe runs `certportal serve` on the fixture's data directory with
// its defaults (GOMAXPROCS = the number of CPUs, no metrics listener) and
// extra flags, if any.
func (fx *fixture) startServe(ctx context.Context, extra ...string) (*process, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	plain, err := freeAddr()
	if err != nil {
		return nil, err
	}
	p := &process{addr: addr, plain: plain}
	args := append([]string{"serve", "--data", fx.data, "--listen", addr, "--http-listen", plain}, fx.db...)
	p.cmd = exec.CommandContext(ctx, fx.binary, append(args, extra...)...)
	p.cmd.Stdout, p.cmd.Stderr = &p.logs, &p.logs
	if err := p.cmd.Start(); err != nil {
		return nil, err
	}
	return p, p.waitHTTPS("/healthz")
}

// waitHTTPS waits until the server answers path over HTTPS.
func (p *process) waitHTTPS(path string) error {
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}, Timeout: time.Second}
	for range 100 {
		if resp, err := c.Get("https://" + p.addr + path); err == nil {
			resp.Body.Close()
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	p.stop()
	return fmt.Errorf("%s did not start:\n%s", filepath.Base(p.cmd.Path), p.logs.String())
}

func (p *process) stop() {
	p.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		p.cmd.Process.Kill()
		<-done
	}
}

// peakRSS returns VmHWM, the peak resident set of the process, in bytes.
func peakRSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("no VmHWM in /proc/%d/status", pid)
}

// nginxConf serves a static whoami.json over TLS with the portal's server
// certificate and key, requiring a client certificate from the portal's CA
// (ssl_verify_client on), X25519 only and no session resumption, like
// certportal in this benchmark. Two workers, one per core, as certportal's
// GOMAXPROCS.
const nginxConf = `worker_processes %d;
%s
pid %s/nginx.pid;
error_log %s/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    keepalive_requests 1000000;
    client_body_temp_path %s/tmp;
    proxy_temp_path %s/tmp;
    fastcgi_temp_path %s/tmp;
    uwsgi_temp_path %s/tmp;
    scgi_temp_path %s/tmp;
    server {
        listen %s ssl;
        ssl_certificate %s;
        ssl_certificate_key %s;
        ssl_client_certificate %s;
        ssl_verify_client on;
        ssl_verify_depth 2;
        ssl_ecdh_curve X25519;
        ssl_protocols TLSv1.3;
        ssl_session_tickets off;
        ssl_session_cache off;
        root %s;
        location = /api/whoami { default_type application/json; try_files /whoami.json =404; }
    }
    server {
        listen %s;
        root %s;
        # The OCSP responder's plain-HTTP answer as a static file: the
        # static module refuses POST (405), which becomes a GET of the file.
        location = /ocsp { default_type application/ocsp-response; error_page 405 =200 $uri; }
    }
}
`

// startNginx runs nginx in the foreground with nginxConf.
func (fx *fixture) startNginx(ctx context.Context, binary string, workers int) (*process, error) {
	dir := filepath.Join(fx.work, "nginx")
	if err := os.MkdirAll(filepath.Join(dir, "tmp"), 0o700); err != nil {
		return nil, err
	}
	chain := filepath.Join(dir, "clientca.pem")
	var pemCAs []byte
	for _, f := range []string{"issuing.crt", "root.crt"} {
		b, err := os.ReadFile(filepath.Join(fx.data, "ca", f))
		if err != nil {
			return nil, err
		}
		pemCAs = append(pemCAs, b...)
	}
	if err := os.WriteFile(chain, pemCAs, 0o600); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "whoami.json"), []byte(`{"id":"bench","method":"certificate","serial":"`+fmt.Sprintf("%X", fx.leaf.SerialNumber)+`"}`+"\n"), 0o644); err != nil {
		return nil, err
	}
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	plain, err := freeAddr()
	if err != nil {
		return nil, err
	}
	user := ""
	if os.Geteuid() == 0 {
		user = "user root;" // the data directory is 0700: workers must read it
	}
	conf := fmt.Sprintf(nginxConf, workers, user, dir, dir, dir, dir, dir, dir, dir, addr,
		filepath.Join(fx.data, "ca", "server.crt"), filepath.Join(fx.data, "ca", "server.key"), chain, dir, plain, dir)
	cf := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(cf, []byte(conf), 0o600); err != nil {
		return nil, err
	}
	p := &process{addr: addr, plain: plain}
	p.cmd = exec.CommandContext(ctx, binary, "-c", cf, "-p", dir, "-e", filepath.Join(dir, "error.log"), "-g", "daemon off;")
	p.cmd.Stdout, p.cmd.Stderr = &p.logs, &p.logs
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting nginx (scripts/bench installs it): %v", err)
	}
	// /healthz is not served by nginx; any TLS answer (even 400 for the
	// missing client certificate) means it is up.
	return p, p.waitHTTPS("/")
}
