package main

import (
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/certportal/certportal/internal/pgtest"
)

// TestPostgresEndToEnd runs the administrator's commands against a
// PostgreSQL database: init creates the schema there (and no SQLite file),
// the other commands find the database through the config or --db, and a
// second init on the same database is refused without touching it.
func TestPostgresEndToEnd(t *testing.T) {
	dsn := pgtest.FreshDatabase(t)
	data := filepath.Join(t.TempDir(), "data")
	ok(t, "", "init", "--data", data, "--db", dsn)
	if _, err := os.Stat(filepath.Join(data, dbFile)); !os.IsNotExist(err) {
		t.Errorf("init --db postgres:// made a SQLite file too (%v)", err)
	}
	cfg, err := loadConfig(data)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.DB != dsn {
		t.Errorf("config db = %q, want %q", cfg.DB, dsn)
	}

	ok(t, "", "user", "add", "--data", data, "--id", "Pat", "--email", "pat@example.com")
	pw := writeSecret(t, "a long p12 password")
	p12 := filepath.Join(t.TempDir(), "pat.p12")
	var issued certJSON
	if err := json.Unmarshal([]byte(ok(t, "", "cert", "issue", "--data", data, "--id", "pat", "--out", p12,
		"--password-file", pw, "--json")), &issued); err != nil {
		t.Fatal(err)
	}
	// Through the config, and through --db as every data command takes it.
	for _, args := range [][]string{
		{"cert", "list", "--data", data, "--json"},
		{"cert", "list", "--data", data, "--db", dsn, "--json"},
	} {
		var certs []certJSON
		if err := json.Unmarshal([]byte(ok(t, "", args...)), &certs); err != nil {
			t.Fatal(err)
		}
		if len(certs) != 1 || certs[0].Serial != issued.Serial || certs[0].User != "Pat" || certs[0].Status != "valid" {
			t.Errorf("%v: %+v, want the certificate %s of Pat, valid", args, certs, issued.Serial)
		}
	}
	ok(t, "", "cert", "revoke", "--data", data, "--serial", issued.Serial)
	if out := ok(t, "", "audit", "--data", data, "--verify"); !strings.Contains(out, "intact") {
		t.Errorf("audit --verify: %s", out)
	}

	// A second installation on the same database is refused, leaves no
	// data directory behind, and changes nothing in the database.
	other := filepath.Join(t.TempDir(), "other")
	fails(t, 1, "the database already has a certportal schema", "", "init", "--data", other, "--db", dsn)
	if _, err := os.Stat(other); !os.IsNotExist(err) {
		t.Errorf("the refused init left %s behind (%v)", other, err)
	}
	var certs []certJSON
	json.Unmarshal([]byte(ok(t, "", "cert", "list", "--data", data, "--json")), &certs)
	if len(certs) != 1 || certs[0].Status != "revoked" {
		t.Errorf("after the refused init: %+v", certs)
	}
}

// TestPostgresRefusals checks the clear messages of --db postgres://: a
// database without the schema, a password in the URL, a server that does
// not answer.
func TestPostgresRefusals(t *testing.T) {
	data := newData(t) // a SQLite installation; --db points elsewhere
	empty := pgtest.FreshDatabase(t)
	fails(t, 1, "no certportal schema; run certportal init", "", "user", "list", "--data", data, "--db", empty)

	u, _ := url.Parse(empty)
	u.User = url.UserPassword("postgres", "hunter2-in-url")
	msg := fails(t, 1, "PGPASSWORD", "", "user", "list", "--data", data, "--db", u.String())
	if strings.Contains(msg, "hunter2-in-url") {
		t.Errorf("the refusal repeats the password: %q", msg)
	}
	fails(t, 1, "PGPASSWORD", "", "init", "--data", filepath.Join(t.TempDir(), "d"), "--db", u.String())

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := fmt.Sprintf("postgres://postgres@%s/x?sslmode=disable&connect_timeout=5", l.Addr())
	l.Close()
	fails(t, 1, "not reachable", "", "user", "list", "--data", data, "--db", dead)
}
