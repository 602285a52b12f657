package main

import (
	"strings"
	"testing"
)

// TestDBPasswordNeverEchoed: a --db with a password, in URL or keyword
// form, well-formed or not, is refused without its password reaching the
// terminal (stderr and stdout), and init, backup and the other commands
// agree.
func TestDBPasswordNeverEchoed(t *testing.T) {
	data := newData(t)
	const secret = "Sekr3tPW"
	for _, dsn := range []string{
		"host=db.example.org user=portal password=" + secret + " dbname=portal",
		"host=db.example.org user=portal PASSWORD = " + secret,
		"postgres://portal:" + secret + "@db.example.org/portal",
		"postgres://portal@db.example.org/portal?password=" + secret,
		"postgres://portal:" + secret + "%zz@db.example.org/portal",
		"mysql://portal:" + secret + "@db.example.org/portal",
		"user=portal dbname=" + secret,
	} {
		for _, args := range [][]string{
			{"user", "list", "--data", data, "--db", dsn},
			{"backup", "--data", data, "--db", dsn, "--out", t.TempDir() + "/b.age", "--passphrase-file", writeSecret(t, "a long passphrase 123")},
		} {
			r := cli(t, "", args...)
			if r.code != 1 {
				t.Errorf("%s with --db %q: exit %d, want 1\n%s", args[0], dsn, r.code, r.stderr)
			}
			if strings.Contains(r.stderr+r.stdout, secret) {
				t.Errorf("%s with --db %q echoed the secret: %q", args[0], dsn, r.stderr)
			}
		}
	}
	r := cli(t, "", "user", "list", "--data", data, "--db", "host=db password="+secret)
	if !strings.Contains(r.stderr, "PGPASSWORD") {
		t.Errorf("a keyword --db with a password: %q, want the alternatives named", r.stderr)
	}
}

// TestUnverifiedPostgresWarned: a PostgreSQL server on another machine
// without sslmode=verify-full (or verify-ca) is named in one warning line
// before the connection is tried; a local one, or a verified one, is not.
func TestUnverifiedPostgresWarned(t *testing.T) {
	data := newData(t)
	for dsn, warned := range map[string]bool{
		"postgres://postgres@db.invalid:5432/x?connect_timeout=1":                                      true,
		"postgres://postgres@db.invalid:5432/x?connect_timeout=1&sslmode=require":                      true,
		"postgres://postgres@db.invalid:5432/x?connect_timeout=1&sslmode=verify-full":                  false,
		"postgres://postgres@db.invalid:5432/x?connect_timeout=1&sslmode=verify-ca":                    false,
		"postgres://postgres@127.0.0.1:1/x?connect_timeout=1":                                          false,
		"postgres://postgres@localhost:1/x?connect_timeout=1":                                          false,
		"postgres://postgres@[::1]:1/x?connect_timeout=1":                                              false,
		"postgres:///x?host=/var/run/postgresql&connect_timeout=1":                                     false,
		"postgres://postgres@127.0.0.1:1,db.invalid:5432/x?connect_timeout=1&target_session_attrs=any": true,
	} {
		r := cli(t, "", "user", "list", "--data", data, "--db", dsn)
		n := strings.Count(r.stderr, "is not verified")
		if warned && (n != 1 || !strings.Contains(r.stderr, "db.invalid") || !strings.Contains(r.stderr, "verify-full")) {
			t.Errorf("--db %s: %d warnings, want one naming the host and verify-full:\n%s", dsn, n, r.stderr)
		}
		if !warned && n != 0 {
			t.Errorf("--db %s: warned, want no warning:\n%s", dsn, r.stderr)
		}
	}
}
