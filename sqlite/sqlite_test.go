package sqlite

import (
	"bufio"
	"context"
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/certportal/certportal"
	"github.com/certportal/certportal/storetest"
)

func openTemp(t testing.TB) *DB {
	t.Helper()
	db, err := Open(context.Background(), filepath.Join(t.TempDir(), "certportal.db"), true)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// openPair opens two stores on one new file, as two processes would.
func openPair(t testing.TB) [2]*DB {
	t.Helper()
	path := filepath.Join(t.TempDir(), "shared.db")
	var dbs [2]*DB
	for i := range dbs {
		db, err := Open(context.Background(), path, i == 0)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		dbs[i] = db
	}
	return dbs
}

func TestStore(t *testing.T) {
	storetest.Run(t, func(t *testing.T) certportal.Store { return openTemp(t) })
}

func TestPragmas(t *testing.T) {
	db := openTemp(t)
	ctx := context.Background()
	tests := []struct {
		sql, want string
	}{
		{"PRAGMA journal_mode", "wal"},
		{"PRAGMA foreign_keys", "1"},
		{"PRAGMA synchronous", "2"}, // FULL
		{"PRAGMA busy_timeout", strconv.Itoa(int(busyTimeout.Milliseconds()))},
	}
	for _, tc := range tests {
		for name, pool := range map[string]*sql.DB{"writer": db.write, "reader": db.read} {
			var got string
			if err := pool.QueryRowContext(ctx, tc.sql).Scan(&got); err != nil {
				t.Fatalf("%s: %s: %v", name, tc.sql, err)
			}
			if !strings.EqualFold(got, tc.want) {
				t.Errorf("%s: %s = %q, want %q", name, tc.sql, got, tc.want)
			}
		}
	}
	var qo string
	if err := db.read.QueryRowContext(ctx, "PRAGMA query_only").Scan(&qo); err != nil || qo != "1" {
		t.Errorf("reader: query_only = %q (%v), want 1", qo, err)
	}
	// The savepoints' sub-journal stays in memory (dsn).
	var ts string
	if err := db.write.QueryRowContext(ctx, "PRAGMA temp_store").Scan(&ts); err != nil || ts != "2" {
		t.Errorf("writer: temp_store = %q (%v), want 2 (MEMORY)", ts, err)
	}
}

func TestReopenKeepsData(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "certportal.db")
	db, err := Open(ctx, path, true)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(ctx, func(tx certportal.Tx) error {
		return tx.CreateAccount(ctx, &certportal.Account{ID: "Zoe", Email: "zoe@example.com",
			Method: certportal.MethodPassword, Status: certportal.StatusActive, Created: time.Now()})
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{path, path + "-wal"} {
		st, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600 (it holds password hashes)", filepath.Base(f), st.Mode().Perm())
		}
	}
	v1, err := db.SchemaVersion(ctx)
	if err != nil || v1 < 1 {
		t.Fatalf("SchemaVersion = %d, %v", v1, err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if err := db.Ping(ctx); certportal.ErrorCodeOf(err) != certportal.Unavailable {
		t.Errorf("Ping after Close: %v, want Unavailable", err)
	}
	if err := db.View(ctx, func(certportal.Tx) error { return nil }); certportal.ErrorCodeOf(err) != certportal.Unavailable {
		t.Errorf("View after Close: %v, want Unavailable", err)
	}
	db, err = Open(ctx, path, false)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer db.Close()
	if v2, err := db.SchemaVersion(ctx); err != nil || v2 != v1 {
		t.Errorf("SchemaVersion after reopen = %d, %v; want %d", v2, err, v1)
	}
	err = db.View(ctx, func(tx certportal.Tx) error {
		a, err := tx.Account(ctx, "zoe")
		if err == nil && a.ID != "Zoe" {
			t.Errorf("account after reopen: %+v", a)
		}
		return err
	})
	if err != nil {
		t.Fatalf("after reopen: %v", err)
	}
}

func TestOpenErrors(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()

	missing := filepath.Join(dir, "missing.db")
	_, err := Open(ctx, missing, false)
	if certportal.ErrorCodeOf(err) != certportal.NotFound {
		t.Fatalf("Open(missing, create=false): %v, want NotFound", err)
	}
	if want := "no database at " + missing + "; run certportal init"; certportal.ErrorMessage(err) != want {
		t.Errorf("message %q, want %q", certportal.ErrorMessage(err), want)
	}
	if _, err := os.Stat(missing); !os.IsNotExist(err) {
		t.Errorf("Open(create=false) created the file")
	}

	// A database from a newer certportal: schema far beyond ours.
	path := filepath.Join(dir, "newer.db")
	db, err := Open(ctx, path, true)
	if err != nil {
		t.Fatal(err)
	}
	known, _ := db.SchemaVersion(ctx)
	if _, err := db.write.ExecContext(ctx, `INSERT INTO goose_db_version (version_id, is_applied) VALUES (9999, 1)`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	_, err = Open(ctx, path, false)
	if certportal.ErrorCodeOf(err) != certportal.Conflict {
		t.Fatalf("Open(newer schema): %v, want Conflict", err)
	}
	want := fmt.Sprintf("the database was created by a newer certportal (schema 9999); this binary knows up to %d", known)
	if certportal.ErrorMessage(err) != want {
		t.Errorf("message %q, want %q", certportal.ErrorMessage(err), want)
	}

	if _, err := Open(ctx, filepath.Join(dir, "a?b.db"), true); certportal.ErrorCodeOf(err) != certportal.Invalid {
		t.Errorf("Open(path with '?'): %v, want Invalid", err)
	}

	// Not a database at all.
	junk := filepath.Join(dir, "junk.db")
	if err := os.WriteFile(junk, []byte(strings.Repeat("not sqlite ", 1000)), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(ctx, junk, false); certportal.ErrorCodeOf(err) != certportal.Unavailable {
		t.Errorf("Open(junk): %v, want Unavailable", err)
	}
}

// crashEnv tells a re-executed test binary to be the crashing writer.
const crashEnv = "CERTPORTAL_SQLITE_CRASH_CHILD"

// TestCrashSafety kills a writing process with SIGKILL and checks that the
// database opens, is intact, and holds every write the child reported as
// committed.
func TestCrashSafety(t *testing.T) {
	if path := os.Getenv(crashEnv); path != "" {
		crashChild(path)
		return
	}
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "crash.db")
	db, err := Open(ctx, path, true)
	if err != nil {
		t.Fatal(err)
	}
	db.Close()

	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashSafety$")
	cmd.Env = append(os.Environ(), crashEnv+"="+path)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var committed []int
	sc := bufio.NewScanner(out)
	deadline := time.Now().Add(20 * time.Second)
	for sc.Scan() {
		line := sc.Text()
		n, ok := strings.CutPrefix(line, "committed ")
		if !ok || !strings.HasSuffix(n, ";") {
			continue
		}
		i, err := strconv.Atoi(strings.TrimSuffix(n, ";"))
		if err != nil {
			t.Fatalf("child said %q", line)
		}
		committed = append(committed, i)
		if len(committed) == 150 || time.Now().After(deadline) {
			// Mid-write: the child goes on writing until the signal lands.
			cmd.Process.Signal(syscall.SIGKILL)
			break
		}
	}
	for sc.Scan() { // drain what the child wrote before it died
		if n, ok := strings.CutPrefix(sc.Text(), "committed "); ok && strings.HasSuffix(n, ";") {
			i, _ := strconv.Atoi(strings.TrimSuffix(n, ";"))
			committed = append(committed, i)
		}
	}
	err = cmd.Wait()
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("the child was not killed by SIGKILL: %v", err)
	}
	if len(committed) < 10 {
		t.Fatalf("the child reported only %d commits", len(committed))
	}

	db, err = Open(ctx, path, false)
	if err != nil {
		t.Fatalf("open after the crash: %v", err)
	}
	defer db.Close()
	var check string
	if err := db.write.QueryRowContext(ctx, "PRAGMA integrity_check").Scan(&check); err != nil || check != "ok" {
		t.Fatalf("integrity_check = %q, %v", check, err)
	}
	err = db.View(ctx, func(tx certportal.Tx) error {
		for _, i := range committed {
			if _, err := tx.Account(ctx, fmt.Sprintf("crash%d", i)); err != nil {
				t.Errorf("commit %d reported by the child is lost: %v", i, err)
			}
		}
		events, err := tx.ListAudit(ctx, certportal.AuditFilter{})
		if err != nil {
			return err
		}
		if len(events) < len(committed) {
			t.Errorf("%d audit records, %d commits", len(events), len(committed))
		}
		if bad, err := certportal.VerifyAuditChain(events); err != nil {
			t.Errorf("audit chain broken at %d: %v", bad, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d commits reported before SIGKILL, all present", len(committed))
}

// crashChild writes accounts and audit records until it is killed,
// reporting each commit on standard output.
func crashChild(path string) {
	ctx := context.Background()
	db, err := Open(ctx, path, false)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(3)
	}
	for i := 0; ; i++ {
		err := db.Update(ctx, func(tx certportal.Tx) error {
			id := fmt.Sprintf("crash%d", i)
			if err := tx.CreateAccount(ctx, &certportal.Account{ID: id, Email: id + "@example.com",
				Method: certportal.MethodPassword, Status: certportal.StatusActive, Created: time.Now()}); err != nil {
				return err
			}
			return tx.AppendAudit(ctx, &certportal.AuditEvent{Time: time.Now(), Actor: "admin", AccountID: id,
				Action: certportal.ActionAccountCreated, Detail: strings.Repeat("x", 2000)})
		})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(4)
		}
		fmt.Fprintf(os.Stdout, "committed %d;\n", i)
	}
}

// TestTwoHandles runs concurrent Updates through two stores opened on one
// file, as two processes would (cmd's "user add" while "serve" runs): they
// must queue on the file's write lock, not fail with "database is locked".
func TestTwoHandles(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "shared.db")
	var dbs [2]*DB
	for i := range dbs {
		db, err := Open(ctx, path, true)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		dbs[i] = db
	}
	const n = 40
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			errs <- dbs[i%2].Update(ctx, func(tx certportal.Tx) error {
				// Read, then write: the pattern that fails with SQLITE_BUSY
				// when a transaction takes the write lock only at its
				// first write.
				id := fmt.Sprintf("two%d", i)
				if _, err := tx.CountAudit(ctx, id, "", time.Time{}); err != nil {
					return err
				}
				if err := tx.AppendAudit(ctx, &certportal.AuditEvent{Time: time.Now(), Actor: "admin", AccountID: id,
					Action: certportal.ActionAccountCreated}); err != nil {
					return err
				}
				return tx.CreateAccount(ctx, &certportal.Account{ID: id, Email: id + "@example.com",
					Method: certportal.MethodPassword, Status: certportal.StatusActive})
			})
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	err := dbs[1].View(ctx, func(tx certportal.Tx) error {
		events, err := tx.ListAudit(ctx, certportal.AuditFilter{})
		if err != nil {
			return err
		}
		if len(events) != n {
			t.Errorf("%d audit records, want %d", len(events), n)
		}
		if bad, err := certportal.VerifyAuditChain(events); err != nil {
			t.Errorf("audit chain broken at %d: %v", bad, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestQueryPlans checks that the hot and the large queries use their
// indexes: the per-request lookup by fingerprint, and the CRL's list of
// revocations (which must stay fast with a million certificates).
func TestQueryPlans(t *testing.T) {
	db := openTemp(t)
	ctx := context.Background()
	for _, tc := range []struct {
		query string
		index string
	}{
		{`SELECT ` + certCols + ` WHERE c.sha256 = 'AA'`, "certificates_sha256"},
		{`SELECT serial, revoked, reason FROM certificates WHERE issuer = 'X' AND revoked IS NOT NULL
			AND not_after >= 0 ORDER BY serial`, "COVERING INDEX certificates_revoked"},
		{`SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1`, "PRIMARY KEY"},
		{`SELECT COUNT(*) FROM audit WHERE time >= 0 AND account_key = 'a' AND action = 'x'`, "audit_action"},
		{`SELECT seq FROM audit WHERE seq > 0 AND account_key = 'a' ORDER BY seq LIMIT 10`, "audit_account"},
		{`SELECT ` + certCols + ` WHERE 1 AND c.account = 'a' AND c.revoked IS NULL ORDER BY c.issued, c.serial`, "certificates_"},
		{`SELECT COUNT(*) FROM failures WHERE account_key = 'a' AND remote = 'r' AND at >= 0`, "failures_key"},
	} {
		rows, err := db.read.QueryContext(ctx, "EXPLAIN QUERY PLAN "+tc.query)
		if err != nil {
			t.Fatal(err)
		}
		var plan []string
		for rows.Next() {
			var id, parent, notused int
			var detail string
			if err := rows.Scan(&id, &parent, &notused, &detail); err != nil {
				t.Fatal(err)
			}
			plan = append(plan, detail)
		}
		rows.Close()
		p := strings.Join(plan, "; ")
		t.Logf("%s", p)
		if !strings.Contains(p, tc.index) && !(tc.index == "PRIMARY KEY" && strings.Contains(p, "SCAN audit")) {
			t.Errorf("%s\nplan: %s\nwant the index %s", tc.query, p, tc.index)
		}
		if strings.Contains(p, "TEMP B-TREE") {
			t.Errorf("%s\nplan: %s\nsorts in a temporary table", tc.query, p)
		}
	}
}

// TestLookupSeesOtherHandle: Lookup's cache (lookupcache.go) answers only
// while nothing has committed; a change committed through a second store
// on the file, as `certportal cert revoke` in another process would, is
// seen at the next call.
func TestLookupSeesOtherHandle(t *testing.T) {
	dbs := openPair(t)
	// The store's own writer, another connection of the same process,
	// is covered by storetest's Lookup test.
	storetest.LookupSeesOtherStore(t, dbs[0], dbs[1])
}
