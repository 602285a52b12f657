package main

import (
	"context"
	"crypto"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"golang.org/x/crypto/ocsp"

	"github.com/certportal/certportal/internal/loadgen"
)

// point is one step of the sign-in sweep.
type point struct {
	conc                  int
	portal, nginx         float64 // requests per second
	portalP99, nginxP99   time.Duration
	portalErrs, nginxErrs int
}

// load runs the load generator against https://addr+path.
func load(ctx context.Context, fx *fixture, addr, path string, conc int, keep bool, d time.Duration, body []byte, ctype string, expect int) (*loadgen.Result, error) {
	return loadURL(ctx, fx, "https://"+addr+path, conc, keep, d, body, ctype, expect)
}

// loadURL runs the load generator against an https:// or http:// URL.
func loadURL(ctx context.Context, fx *fixture, u string, conc int, keep bool, d time.Duration, body []byte, ctype string, expect int) (*loadgen.Result, error) {
	cfg := loadgen.Config{
		URL: u, Concurrency: conc, Duration: d, KeepAlive: keep,
		TLS: fx.client, Expect: expect, Body: body, ContentType: ctype,
	}
	if body != nil {
		cfg.Method = "POST"
	}
	res, err := loadgen.Run(ctx, cfg)
	if err != nil {
		return nil, err
	}
	if res.Requests == 0 {
		return nil, fmt.Errorf("no request to %s succeeded: %v", cfg.URL, res.FirstError)
	}
	return res, nil
}

// signIns runs the sweep of GET /api/whoami by client certificate on new
// connections against nginx, then the kept-alive figure and OCSP.
func (r *report) signIns(ctx context.Context, o options, fx *fixture) error {
	serve, ngx, err := startBoth(ctx, o, fx, false)
	if err != nil {
		return err
	}
	defer serve.stop()
	defer ngx.stop()
	best := point{}
	for _, c := range o.conc {
		pr, err := load(ctx, fx, serve.addr, "/api/whoami", c, false, o.step, nil, "", 200)
		if err != nil {
			return err
		}
		nr, err := load(ctx, fx, ngx.addr, "/api/whoami", c, false, o.step, nil, "", 200)
		if err != nil {
			return err
		}
		pt := point{conc: c, portal: pr.Rate(), nginx: nr.Rate(), portalP99: pr.Latency.Quantile(0.99), nginxP99: nr.Latency.Quantile(0.99), portalErrs: pr.Errors, nginxErrs: nr.Errors}
		logf("  c=%-3d certportal %7.0f/s (p99 %v)  nginx %7.0f/s (p99 %v)", c, pt.portal, pt.portalP99.Round(time.Microsecond), pt.nginx, pt.nginxP99.Round(time.Microsecond))
		r.sweep = append(r.sweep, pt)
		if pt.portal > best.portal {
			best = pt
		}
	}
	// The peak of each, wherever it falls, and the same concurrency.
	peakN := 0.0
	for _, p := range r.sweep {
		peakN = max(peakN, p.nginx)
	}
	r.add(fmt.Sprintf("Sign-in by certificate, new TLS connection each (full handshake X25519, chain check, revocation lookup, /api/whoami), peak over c=%v / nginx peak", o.conc), best.portal, peakN, "/s", "≥ 1.0", best.portal >= peakN)
	if err := r.keptAlive(ctx, o, fx, serve, ngx); err != nil {
		return err
	}
	reqDER, err := ocsp.CreateRequest(fx.leaf, fx.issuing, &ocsp.RequestOptions{Hash: crypto.SHA1})
	if err != nil {
		return err
	}
	return r.ocspFigure(ctx, o, fx, serve, ngx, reqDER)
}

// startBoth starts serve and nginx on fx and warms both up (first
// connections, page faults, CPU frequency) on kept-alive or new
// connections.
func startBoth(ctx context.Context, o options, fx *fixture, keep bool, extra ...string) (serve, ngx *process, err error) {
	if serve, err = fx.startServe(ctx, extra...); err != nil {
		return nil, nil, err
	}
	if ngx, err = fx.startNginx(ctx, o.nginx, runtime.NumCPU()); err != nil {
		serve.stop()
		return nil, nil, err
	}
	for _, p := range []*process{serve, ngx} {
		if _, err = load(ctx, fx, p.addr, "/api/whoami", 4, keep, time.Second, nil, "", 200); err != nil {
			serve.stop()
			ngx.stop()
			return nil, nil, err
		}
	}
	return serve, ngx, nil
}

// errNoPostgres is startPostgresServe's error when the server does not
// answer: the figure is then reported missing, not failed.
var errNoPostgres = errors.New("PostgreSQL not reachable")

// startPostgresServe makes a scratch database on o's PostgreSQL server, a
// fixture on it (its own client certificate), and a serve on it, warmed up
// on kept-alive connections; stop stops serve and drops the database.
func startPostgresServe(ctx context.Context, o options, fx *fixture, extra ...string) (dsn string, stop func(), serve *process, pfx *fixture, err error) {
	dsn, drop, err := scratchPostgres(ctx, o.pgDSN)
	if err != nil {
		return "", nil, nil, nil, fmt.Errorf("%w: %v", errNoPostgres, err)
	}
	if pfx, err = makeFixture(ctx, fx.binary, fx.work, "pgdata", dsn); err == nil {
		if serve, err = pfx.startServe(ctx, extra...); err == nil {
			if _, err = load(ctx, pfx, serve.addr, "/api/whoami", 4, true, time.Second, nil, "", 200); err != nil {
				serve.stop()
			}
		}
	}
	if err != nil {
		drop()
		return "", nil, nil, nil, err
	}
	return dsn, func() { serve.stop(); drop() }, serve, pfx, nil
}

// hotPath is -hot: the kept-alive whoami and the OCSP-over-plain-HTTP
// steps alone, certportal beside nginx, printed with each side's CPU time
// per request (its processes' user+system time over the step / requests):
// a figure that moves much less than the rates when other work shares the
// cores, for trying a change to the hot path in a minute. With
// CERTBENCH_PROFILE=PREFIX, both serves run with --pprof and each
// certportal step of the first round leaves a CPU profile of most of its
// length in PREFIX-whoami-sqlite.prof, PREFIX-ocsp-plain.prof and
// PREFIX-whoami-postgres.prof.
func (r *report) hotPath(ctx context.Context, o options, fx *fixture) error {
	prof := os.Getenv("CERTBENCH_PROFILE")
	pprofArgs := func() ([]string, string, error) {
		if prof == "" {
			return nil, "", nil
		}
		m, err := freeAddr()
		return []string{"--metrics-listen", m, "--pprof"}, m, err
	}
	extra, metrics, err := pprofArgs()
	if err != nil {
		return err
	}
	sqliteExtra, sqliteMetrics, err := pprofArgs()
	if err != nil {
		return err
	}
	serve, ngx, err := startBoth(ctx, o, fx, true, sqliteExtra...)
	if err != nil {
		return err
	}
	defer serve.stop()
	defer ngx.stop()
	reqDER, err := ocsp.CreateRequest(fx.leaf, fx.issuing, &ocsp.RequestOptions{Hash: crypto.SHA1})
	if err != nil {
		return err
	}
	if err := ocspAnswerFile(fx, serve, reqDER); err != nil {
		return err
	}
	var pserve *process
	var pfx *fixture
	var pgStatements func() float64
	if dsn, stop, p, pf, err := startPostgresServe(ctx, o, fx, extra...); errors.Is(err, errNoPostgres) {
		fmt.Println(err)
	} else if err != nil {
		return err
	} else {
		defer stop()
		pserve, pfx = p, pf
		// Transactions in the scratch database, as PostgreSQL counts
		// them (a lone statement is one), once its statistics are out.
		pgStatements = func() float64 {
			time.Sleep(11 * time.Second) // an idle backend reports its statistics within 10 s
			c, err := pgx.Connect(ctx, dsn)
			if err != nil {
				return 0
			}
			defer c.Close(ctx)
			var n float64
			c.QueryRow(ctx, "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = current_database()").Scan(&n)
			return n
		}
	}
	round := 0
	profTags := map[string]string{"kept-alive whoami certportal": "whoami-sqlite", "OCSP plain certportal": "ocsp-plain", "kept-alive whoami PostgreSQL": "whoami-postgres"}
	step := func(name string, p *process, u string, body []byte, ctype string) (float64, error) {
		fx := fx
		if p == pserve {
			fx = pfx // its own database knows its own client certificate
		}
		var stBefore float64
		if p == pserve {
			stBefore = pgStatements()
		}
		var profDone chan error
		if tag := profTags[name]; prof != "" && round == 0 && tag != "" {
			m, file := sqliteMetrics, prof+"-"+tag+".prof"
			if p == pserve {
				m = metrics
			}
			secs := max(1, int(o.step.Seconds())-1)
			profDone = make(chan error, 1)
			go func() {
				profDone <- fetchProfile(fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", m, secs), file)
			}()
		}
		before, pgBefore := cpuTime(p.cmd.Process.Pid), postgresCPU()
		res, err := loadURL(ctx, fx, u, keptAliveConc, true, o.step, body, ctype, 200)
		if err != nil {
			return 0, err
		}
		cpu := cpuTime(p.cmd.Process.Pid) - before
		pgCPU := postgresCPU() - pgBefore
		n := float64(res.Requests + res.Errors)
		fmt.Printf("%-28s %8.0f /s  %6.1f µs CPU per request", name, res.Rate(), cpu.Seconds()*1e6/n)
		if p == pserve {
			fmt.Printf(", PostgreSQL's server processes %.1f µs, %.2f statements per request", pgCPU.Seconds()*1e6/n, (pgStatements()-stBefore-1)/n)
		}
		fmt.Println()
		if profDone != nil {
			if err := <-profDone; err != nil {
				return 0, err
			}
		}
		return res.Rate(), nil
	}
	for range 2 {
		a, err := step("kept-alive whoami certportal", serve, "https://"+serve.addr+"/api/whoami", nil, "")
		if err != nil {
			return err
		}
		b, err := step("kept-alive whoami nginx", ngx, "https://"+ngx.addr+"/api/whoami", nil, "")
		if err != nil {
			return err
		}
		c, err := step("OCSP plain certportal", serve, "http://"+serve.plain+"/ocsp", reqDER, "application/ocsp-request")
		if err != nil {
			return err
		}
		d, err := step("OCSP plain nginx", ngx, "http://"+ngx.plain+"/ocsp", reqDER, "application/ocsp-request")
		if err != nil {
			return err
		}
		pg := 0.0
		if pserve != nil {
			if pg, err = step("kept-alive whoami PostgreSQL", pserve, "https://"+pserve.addr+"/api/whoami", nil, ""); err != nil {
				return err
			}
		}
		fmt.Printf("ratios: kept-alive %.2f  OCSP plain %.2f  PostgreSQL/SQLite %.2f  (load %s)\n", a/b, c/d, pg/a, loadavg())
		round++
	}
	return nil
}

// cpuTime is the user+system time of process pid and its children (nginx's
// workers), from /proc.
func cpuTime(pid int) time.Duration {
	ticks := func(p string) int64 {
		b, err := os.ReadFile("/proc/" + p + "/stat")
		if err != nil {
			return 0
		}
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
		// f[1] is the parent, f[11] and f[12] utime and stime (stat(5)).
		var u, st int64
		fmt.Sscan(f[11], &u)
		fmt.Sscan(f[12], &st)
		return u + st
	}
	total := ticks(strconv.Itoa(pid))
	dirs, _ := os.ReadDir("/proc")
	for _, d := range dirs {
		b, err := os.ReadFile("/proc/" + d.Name() + "/stat")
		if err != nil {
			continue
		}
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 || i+2 > len(s) {
			continue
		}
		if f := strings.Fields(s[i+2:]); len(f) > 1 && f[1] == strconv.Itoa(pid) {
			total += ticks(d.Name())
		}
	}
	return time.Duration(total) * time.Second / 100 // USER_HZ
}

// postgresCPU is the user+system time of this machine's PostgreSQL server
// processes (all of them: the benchmark's backends are among them).
func postgresCPU() time.Duration {
	var total time.Duration
	dirs, _ := os.ReadDir("/proc")
	for _, d := range dirs {
		if b, err := os.ReadFile("/proc/" + d.Name() + "/comm"); err == nil && strings.TrimSpace(string(b)) == "postgres" {
			if pid, err := strconv.Atoi(d.Name()); err == nil {
				total += cpuTime(pid)
			}
		}
	}
	return total
}

// fetchProfile saves what url (a pprof endpoint) answers into file.
func fetchProfile(url, file string) error {
	resp, err := http.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	return os.WriteFile(file, b, 0o644)
}

// passwords sends 100 password sign-ins at once (POST /login, each on its
// own new connection) to a freshly started serve, and reads its peak RSS.
// Each is another user's: SPEC counts an attempt before its password is
// checked and admits at most 5 at once per ID and address, so 100 at once
// for one ID would mostly be refused unchecked.
func (r *report) passwords(ctx context.Context, o options, fx *fixture) error {
	const n = 100
	pw := filepath.Join(fx.work, "pw")
	for i := range n {
		id := fmt.Sprintf("pw%03d", i)
		args := append([]string{"user", "add", "--data", fx.data, "--id", id, "--email", id + "@example.com", "--password-file", pw}, fx.db...)
		if out, err := exec.CommandContext(ctx, fx.binary, args...).CombinedOutput(); err != nil {
			return fmt.Errorf("certportal user add: %v\n%s", err, out)
		}
	}
	serve, err := fx.startServe(ctx)
	if err != nil {
		return err
	}
	defer serve.stop()
	before, err := peakRSS(serve.cmd.Process.Pid)
	if err != nil {
		return err
	}
	results := make([]*loadgen.Result, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		body := []byte(url.Values{"id": {fmt.Sprintf("pw%03d", i)}, "password": {userPassword}}.Encode())
		wg.Go(func() {
			results[i], errs[i] = loadgen.Run(ctx, loadgen.Config{
				URL: "https://" + serve.addr + "/login", Method: "POST", Body: body,
				ContentType: "application/x-www-form-urlencoded", Concurrency: 1, Requests: 1,
				TLS: fx.client, Expect: 303,
			})
		})
	}
	wg.Wait()
	res := &loadgen.Result{}
	for i := range n {
		if errs[i] != nil {
			return errs[i]
		}
		res.Requests += results[i].Requests
		res.Errors += results[i].Errors
		if res.FirstError == nil {
			res.FirstError = results[i].FirstError
		}
		res.Latency.Merge(&results[i].Latency)
	}
	if res.Errors > 0 {
		return fmt.Errorf("password sign-ins: %d of 100 failed: %v", res.Errors, res.FirstError)
	}
	hwm, err := peakRSS(serve.cmd.Process.Pid)
	if err != nil {
		return err
	}
	p99 := res.Latency.Quantile(0.99)
	r.add("100 concurrent password sign-ins: peak RSS of serve (VmHWM) / 512 MiB goal", float64(hwm)/(1<<20), 512, " MiB", "≤ 1.0", hwm <= 512<<20)
	r.add("100 concurrent password sign-ins: p99 latency / 1 s goal", p99.Seconds()*1000, 1000, " ms", "≤ 1.0", p99 <= time.Second)
	r.notes = append(r.notes, fmt.Sprintf("Password sign-ins: serve's VmHWM was %.0f MiB after start-up, %.0f MiB after the 100 sign-ins; p50 %v, p99 %v, max %v (argon2id m=19 MiB, t=2, p=1 per SPEC).",
		float64(before)/(1<<20), float64(hwm)/(1<<20), res.Latency.Quantile(0.5).Round(time.Millisecond), p99.Round(time.Millisecond), res.Latency.Max().Round(time.Millisecond)))
	return nil
}
