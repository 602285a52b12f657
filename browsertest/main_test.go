package browsertest

import (
	"bytes"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/certportal/certportal/internal/freeport"
)

// updateGuide makes the stories write their screenshots to docs/guide/.
// Without it the screenshots are still taken, so every run exercises the
// code that makes them.
var updateGuide = flag.Bool("update-guide", false, "write the screenshots to ../docs/guide/*.png")

// binary is the certportal command, built once for all the stories.
var binary string

func TestMain(m *testing.M) {
	flag.Parse()
	dir, err := os.MkdirTemp("", "certportal-browsertest-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "certportal")
	build := exec.Command("go", "build", "-o", binary, "../cmd/certportal")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "go build ../cmd/certportal: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// The outside programs the stories need, and the Debian package of each.
var tools = []struct{ path, pkg string }{
	{chromiumPath, "chromium"},
	{"certutil", "libnss3-tools"},
	{"pk12util", "libnss3-tools"},
	{"openssl", "openssl"},
}

// needTools fails the test (never skips it) when a tool is missing, naming
// the package that brings it.
func needTools(t *testing.T) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool.path); err != nil {
			t.Fatalf("%s is missing: install it with `apt-get install -y %s` (the browser tests cannot run without it)", tool.path, tool.pkg)
		}
	}
}

// run runs a program that must succeed and returns its standard output.
func run(t *testing.T, env []string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	if env != nil {
		cmd.Env = append(os.Environ(), env...)
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\nstdout: %s\nstderr: %s", name, strings.Join(args, " "), err, out.String(), errb.String())
	}
	return out.String()
}

// cli runs the certportal binary as an administrator would.
func cli(t *testing.T, args ...string) string {
	t.Helper()
	return run(t, nil, binary, args...)
}

// writeSecret writes a secret to a 0600 file, the way the commands and the
// NSS tools take passwords (never as an argument).
func writeSecret(t *testing.T, secret string) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(f, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

// freePort returns a loopback port nobody listens on.
func freePort(t *testing.T) string {
	t.Helper()
	addr, err := freeport.Addr()
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(addr)
	return port
}

// waitHTTP waits until url answers.
func waitHTTP(t *testing.T, url string, logs func() string) {
	t.Helper()
	for range 150 {
		if resp, err := http.Get(url); err == nil {
			resp.Body.Close()
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("serve did not start:\n%s", logs())
}
