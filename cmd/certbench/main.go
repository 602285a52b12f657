// Command certbench measures certportal against the limits of the machine
// it runs on, as issue 8 asks: every figure next to a reference measured in
// the same run (the raw cryptography, or nginx doing the same TLS work), as
// a ratio, since absolute figures vary between machines. It writes a
// markdown table and a PNG plot of sign-in throughput against concurrency.
//
// Run it with scripts/bench, which installs nginx and PostgreSQL first:
//
//	scripts/bench            # about 5 minutes on 2 cores
//	go run ./cmd/certbench -out docs -certportal /path/to/certportal
//
// certportal runs as a real `certportal serve` process on its own data
// directory, nginx as a real nginx; the load generator (internal/loadgen)
// runs in this process and competes with both for the same cores.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

// options are certbench's flags.
type options struct {
	out        string        // directory for the table and the plot
	certportal string        // the certportal binary
	nginx      string        // the nginx binary
	pgDSN      string        // PostgreSQL server for the issuance figure
	step       time.Duration // length of one load step
	conc       []int         // concurrency levels of the sign-in sweep
	crlSizes   []int         // revoked entries of the CRL figures
	keep       bool          // keep the work directory, for profiling
	hot        bool          // only the hot path's ratios (kept-alive, PostgreSQL, OCSP)
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == "crl-child" {
		os.Exit(crlChild(os.Args[2:]))
	}
	var o options
	var conc, sizes string
	flag.StringVar(&o.out, "out", "docs", "write bench-results.md and bench-signin.png here")
	flag.StringVar(&o.certportal, "certportal", "", "the certportal binary (default: built from ./cmd/certportal)")
	flag.StringVar(&o.nginx, "nginx", "nginx", "the nginx binary")
	flag.StringVar(&o.pgDSN, "pg", envOr("CERTPORTAL_TEST_POSTGRES_DSN", "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"), "PostgreSQL server (a scratch database is created and dropped)")
	flag.DurationVar(&o.step, "step", 3*time.Second, "duration of each load step")
	flag.StringVar(&conc, "concurrency", "1,2,4,8,16,32,64", "concurrency levels of the sign-in sweep")
	flag.StringVar(&sizes, "crl", "10000,100000,1000000", "revoked entries of the CRL figures")
	flag.BoolVar(&o.keep, "keep", false, "keep the work directory (data dir, databases) and print where it is")
	flag.BoolVar(&o.hot, "hot", false, "measure only the hot path's ratios (kept-alive SQLite/nginx, PostgreSQL/SQLite, OCSP plain HTTP/nginx) and print them; writes nothing")
	flag.Parse()
	var err error
	if o.conc, err = ints(conc); err == nil {
		o.crlSizes, err = ints(sizes)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "certbench:", err)
		os.Exit(2)
	}
	if err := run(context.Background(), o); err != nil {
		fmt.Fprintln(os.Stderr, "certbench:", err)
		os.Exit(1)
	}
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func ints(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		var n int
		if _, err := fmt.Sscan(strings.TrimSpace(f), &n); err != nil || n <= 0 {
			return nil, fmt.Errorf("%q is not a list of positive numbers", s)
		}
		out = append(out, n)
	}
	return out, nil
}

// logf prints progress on standard error.
func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s  %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

func run(ctx context.Context, o options) error {
	start := time.Now()
	work, err := os.MkdirTemp("", "certbench-")
	if err != nil {
		return err
	}
	if o.keep {
		defer logf("kept the work directory %s", work)
	} else {
		defer os.RemoveAll(work)
	}
	if o.certportal == "" {
		o.certportal = filepath.Join(work, "certportal")
		logf("building certportal")
		if out, err := exec.Command("go", "build", "-o", o.certportal, "./cmd/certportal").CombinedOutput(); err != nil {
			return fmt.Errorf("go build ./cmd/certportal: %v\n%s", err, out)
		}
	}
	r := &report{machine: machine(), started: start}
	fx, err := newFixture(ctx, o, work)
	if err != nil {
		return err
	}
	if o.hot {
		return r.hotPath(ctx, o, fx)
	}
	logf("issuance (SQLite, PostgreSQL)")
	if err := r.issuance(ctx, o, fx); err != nil {
		return err
	}
	logf("sign-in by certificate against nginx, concurrency %v", o.conc)
	if err := r.signIns(ctx, o, fx); err != nil {
		return err
	}
	if err := r.estReenrolls(ctx, o, fx); err != nil {
		return err
	}
	logf("100 concurrent password sign-ins")
	if err := r.passwords(ctx, o, fx); err != nil {
		return err
	}
	logf("CRLs of %v entries", o.crlSizes)
	if err := r.crls(ctx, o, fx); err != nil {
		return err
	}
	r.elapsed = time.Since(start)
	if err := os.MkdirAll(o.out, 0o755); err != nil {
		return err
	}
	md := r.markdown()
	if err := os.WriteFile(filepath.Join(o.out, "bench-results.md"), []byte(md), 0o644); err != nil {
		return err
	}
	if err := writePlot(filepath.Join(o.out, "bench-signin.png"), r.sweep); err != nil {
		return err
	}
	if err := writeRatios(filepath.Join(o.out, "bench-ratios.png"), r.rows); err != nil {
		return err
	}
	fmt.Print(md)
	logf("done in %v; wrote %s, %s and %s", r.elapsed.Round(time.Second),
		filepath.Join(o.out, "bench-results.md"), filepath.Join(o.out, "bench-signin.png"), filepath.Join(o.out, "bench-ratios.png"))
	return nil
}

// machineInfo describes where the figures were measured.
type machineInfo struct {
	cpus              int
	model, ram, linux string
	goVersion         string
	loadBefore        string // /proc/loadavg when the run started
}

// loadavg returns the 1, 5 and 15 minute load averages: other work on the
// machine takes cores from both sides of every ratio, and the table says so.
func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

func machine() machineInfo {
	m := machineInfo{cpus: runtime.NumCPU(), goVersion: runtime.Version(), loadBefore: loadavg()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.model = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "MemTotal:"); ok {
				var kb int64
				fmt.Sscan(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), &kb)
				m.ram = fmt.Sprintf("%.1f GiB", float64(kb)/(1<<20))
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.linux = strings.TrimSpace(string(b))
	}
	return m
}
