package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"

	"github.com/certportal/certportal/sqlite"
)

// TestVersion checks `certportal version` twice: on the test binary (no
// -ldflags: "dev", the Go version and the schema), and on a release-style
// build with -X main.version and the VCS stamp, where the version and the
// commit must be the ones given.
func TestVersion(t *testing.T) {
	schema := sqlite.KnownSchemaVersion()
	migrations, err := filepath.Glob("../../sqlite/migrations/*.sql")
	if err != nil || len(migrations) == 0 {
		t.Fatalf("no migrations found: %v", err)
	}
	if newest := filepath.Base(migrations[len(migrations)-1]); !strings.HasPrefix(newest, fmt.Sprintf("%05d_", schema)) {
		t.Errorf("the binary knows schema %d, the newest migration is %s", schema, newest)
	}

	out := ok(t, "", "version")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "certportal ") {
		t.Fatalf("version prints:\n%s", out)
	}
	if !strings.Contains(lines[1], runtime.Version()) || !strings.Contains(lines[2], fmt.Sprintf("schema %d ", schema)) {
		t.Errorf("version does not name the Go version %s and schema %d:\n%s", runtime.Version(), schema, out)
	}
	var v versionInfo
	if err := json.Unmarshal([]byte(ok(t, "", "version", "--json")), &v); err != nil {
		t.Fatal(err)
	}
	if v.GoVersion != runtime.Version() || v.Schema != schema || v.Version == "" {
		t.Errorf("version --json = %+v", v)
	}

	// A release build: -X main.version and the VCS stamp from this checkout.
	if _, err := exec.LookPath("git"); err != nil {
		t.Fatal("git is needed to check the VCS stamp of a build: install git")
	}
	if err := exec.Command("git", "rev-parse", "--git-dir").Run(); err != nil {
		t.Fatalf("the VCS stamp is checked on a git checkout; this is not one: %v", err)
	}
	release := filepath.Join(t.TempDir(), "certportal")
	build := exec.Command("go", "build", "-buildvcs=true", "-ldflags", "-X main.version=v9.8.7-test", "-o", release, ".")
	if b, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, b)
	}
	b, err := exec.Command(release, "version", "--json").Output()
	if err != nil {
		t.Fatalf("version: %v", err)
	}
	v = versionInfo{}
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	if v.Version != "v9.8.7-test" {
		t.Errorf("-X main.version=v9.8.7-test gives version %q", v.Version)
	}
	if !regexp.MustCompile(`^[0-9a-f]{40}$`).MatchString(v.Revision) {
		t.Fatalf("the revision is %q, want a commit hash", v.Revision)
	}
	// Other commits may land meanwhile: the stamp must be a real commit.
	if err := exec.Command("git", "cat-file", "-e", v.Revision+"^{commit}").Run(); err != nil {
		t.Errorf("the revision %s is not a commit of this repository", v.Revision)
	}
	if v.Time == "" {
		t.Error("the build has no VCS time")
	}
	b, _ = exec.Command(release, "--version").Output()
	if !strings.Contains(string(b), "v9.8.7-test ("+v.Revision[:12]) {
		t.Errorf("--version prints %q", b)
	}
	os.Remove(release)
}
