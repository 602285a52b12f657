package postgres

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"

	"github.com/certportal/certportal"
	"github.com/certportal/certportal/internal/pgtest"
	"github.com/certportal/certportal/storetest"
)

// openFresh opens a store on a fresh database and closes it at the end.
func openFresh(t testing.TB) (*DB, string) {
	t.Helper()
	dsn := pgtest.FreshDatabase(t)
	db, err := Open(context.Background(), dsn, true)
	if err != nil {
		t.Fatalf("Open(%s, create): %v", dsn, err)
	}
	t.Cleanup(func() { db.Close() })
	return db, dsn
}

// openAgain opens another handle (another replica) on dsn.
func openAgain(t testing.TB, dsn string) *DB {
	t.Helper()
	db, err := Open(context.Background(), dsn, false)
	if err != nil {
		t.Fatalf("Open(%s): %v", dsn, err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// admin connects to dsn directly, for what the store does not offer
// (changing the version table, ending connections).
func admin(t testing.TB, dsn string) *pgx.Conn {
	t.Helper()
	c, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

func TestStore(t *testing.T) {
	storetest.Run(t, func(t *testing.T) certportal.Store {
		db, _ := openFresh(t)
		return db
	})
}

func TestOpenSchemaStates(t *testing.T) {
	ctx := context.Background()

	t.Run("empty database without create", func(t *testing.T) {
		dsn := pgtest.FreshDatabase(t)
		_, err := Open(ctx, dsn, false)
		if certportal.ErrorCodeOf(err) != certportal.NotFound {
			t.Fatalf("Open(empty, create=false): %v, want NotFound", err)
		}
		want := "the database has no certportal schema; run certportal init --db with this URL first"
		if got := certportal.ErrorMessage(err); got != want {
			t.Errorf("message %q, want %q", got, want)
		}
		var n int
		if err := admin(t, dsn).QueryRow(ctx, `SELECT count(*) FROM pg_tables WHERE schemaname = 'public'`).Scan(&n); err != nil || n != 0 {
			t.Errorf("Open(create=false) created %d tables (%v)", n, err)
		}
	})

	t.Run("create on a certportal database", func(t *testing.T) {
		_, dsn := openFresh(t)
		_, err := Open(ctx, dsn, true)
		if certportal.ErrorCodeOf(err) != certportal.Conflict {
			t.Fatalf("second Open(create): %v, want Conflict", err)
		}
		if got := certportal.ErrorMessage(err); !strings.HasPrefix(got, "the database already has a certportal schema") {
			t.Errorf("message %q", got)
		}
	})

	t.Run("create on a database of another application", func(t *testing.T) {
		dsn := pgtest.FreshDatabase(t)
		if _, err := admin(t, dsn).Exec(ctx, `CREATE TABLE invoices (id int)`); err != nil {
			t.Fatal(err)
		}
		_, err := Open(ctx, dsn, true)
		if certportal.ErrorCodeOf(err) != certportal.Conflict {
			t.Fatalf("Open(foreign tables, create): %v, want Conflict", err)
		}
	})

	t.Run("newer schema", func(t *testing.T) {
		db, dsn := openFresh(t)
		known, err := db.SchemaVersion(ctx)
		if err != nil || known < 1 {
			t.Fatalf("SchemaVersion = %d, %v", known, err)
		}
		if _, err := admin(t, dsn).Exec(ctx, `INSERT INTO goose_db_version (version_id, is_applied) VALUES (9999, true)`); err != nil {
			t.Fatal(err)
		}
		_, err = Open(ctx, dsn, false)
		if certportal.ErrorCodeOf(err) != certportal.Conflict {
			t.Fatalf("Open(newer schema): %v, want Conflict", err)
		}
		want := fmt.Sprintf("the database was created by a newer certportal (schema 9999); this binary knows up to %d", known)
		if got := certportal.ErrorMessage(err); got != want {
			t.Errorf("message %q, want %q", got, want)
		}
	})

	t.Run("older schema is upgraded", func(t *testing.T) {
		db, dsn := openFresh(t)
		known, _ := db.SchemaVersion(ctx)
		// Pretend the last migration has not run yet: roll it back with its
		// own Down section (which is tested so too).
		sub, err := fs.Sub(migrations, "migrations")
		if err != nil {
			t.Fatal(err)
		}
		sqldb := stdlib.OpenDBFromPool(db.pool)
		p, err := goose.NewProvider(goose.DialectPostgres, sqldb, sub)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := p.Down(ctx); err != nil {
			t.Fatalf("rolling back migration %d: %v", known, err)
		}
		sqldb.Close()
		if v, err := db.SchemaVersion(ctx); err != nil || v != known-1 {
			t.Fatalf("after rolling back: schema %d (%v), want %d", v, err, known-1)
		}
		db2 := openAgain(t, dsn)
		if v, err := db2.SchemaVersion(ctx); err != nil || v != known {
			t.Errorf("after the upgrade: schema %d (%v), want %d", v, err, known)
		}
		err = db2.Update(ctx, func(tx certportal.Tx) error {
			return tx.CreateAccount(ctx, &certportal.Account{ID: "up", Email: "up@example.com",
				Method: certportal.MethodPassword, Status: certportal.StatusActive})
		})
		if err != nil {
			t.Errorf("the upgraded schema does not work: %v", err)
		}
	})
}

func TestOpenRefusals(t *testing.T) {
	ctx := context.Background()
	server := pgtest.ServerDSN(t)
	u, _ := url.Parse(server)
	// A port where nothing listens: bind one, then close it.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadPort := l.Addr().(*net.TCPAddr).Port
	l.Close()

	withPassword := *u
	withPassword.User = url.UserPassword("postgres", "s3cret-in-url")
	tests := []struct {
		name string
		dsn  string
		code certportal.ErrorCode
		want string // in the message
	}{
		{"password in the URL", withPassword.String(), certportal.Invalid, "PGPASSWORD or ~/.pgpass"},
		{"password as a parameter", "postgres://postgres@127.0.0.1/x?password=s3cret-in-url", certportal.Invalid, "PGPASSWORD"},
		{"not a URL", "host=127.0.0.1 dbname=x", certportal.Invalid, "postgres://"},
		{"bad option", "postgres://postgres@127.0.0.1/x?sslmode=sometimes", certportal.Invalid, "malformed"},
		{"no server", fmt.Sprintf("postgres://postgres@127.0.0.1:%d/x?sslmode=disable&connect_timeout=5", deadPort),
			certportal.Unavailable, "not reachable"},
		{"no such database", strings.Replace(server, u.Path, "/certportal_test_does_not_exist", 1), certportal.NotFound, "does not exist"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			db, err := Open(ctx, tc.dsn, true)
			if err == nil {
				db.Close()
				t.Fatalf("Open(%s) succeeded", tc.dsn)
			}
			if got := certportal.ErrorCodeOf(err); got != tc.code {
				t.Fatalf("Open: %v (code %s), want %s", err, got, tc.code)
			}
			msg := certportal.ErrorMessage(err)
			if !strings.Contains(msg, tc.want) {
				t.Errorf("message %q does not contain %q", msg, tc.want)
			}
			if strings.Contains(err.Error(), "s3cret-in-url") {
				t.Errorf("the error repeats the password: %v", err)
			}
			if !strings.HasPrefix(err.Error(), "postgres: ") {
				t.Errorf("error %q lacks the package prefix", err)
			}
		})
	}
}

func TestPingAfterClose(t *testing.T) {
	db, _ := openFresh(t)
	ctx := context.Background()
	db.Close()
	if err := db.Ping(ctx); certportal.ErrorCodeOf(err) != certportal.Unavailable {
		t.Errorf("Ping after Close: %v, want Unavailable", err)
	}
	if err := db.View(ctx, func(certportal.Tx) error { return nil }); certportal.ErrorCodeOf(err) != certportal.Unavailable {
		t.Errorf("View after Close: %v, want Unavailable", err)
	}
}

// TestRecoversAfterConnectionsDie ends every server connection of the
// store, as a PostgreSQL restart does, and checks that the pool recovers
// by itself: Ping answers, and Updates and Views work, without reopening.
func TestRecoversAfterConnectionsDie(t *testing.T) {
	db, dsn := openFresh(t)
	ctx := context.Background()
	// Fill the pool with several connections.
	var wg sync.WaitGroup
	for range 5 {
		wg.Go(func() {
			db.View(ctx, func(tx certportal.Tx) error { time.Sleep(50 * time.Millisecond); return nil })
		})
	}
	wg.Wait()
	name := strings.TrimPrefix(mustParse(t, dsn).Path, "/")
	var killed int
	err := admin(t, pgtest.ServerDSN(t)).QueryRow(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
		WHERE datname = $1 AND pid <> pg_backend_pid()`, name).Scan(&killed)
	if err != nil {
		t.Fatal(err)
	}
	if killed == 0 {
		t.Fatal("no connection of the store was found to end")
	}
	if err := db.Ping(ctx); err != nil {
		t.Errorf("Ping after the server ended %d connections: %v", killed, err)
	}
	for i := range 5 {
		id := fmt.Sprintf("again%d", i)
		err := db.Update(ctx, func(tx certportal.Tx) error {
			return tx.CreateAccount(ctx, &certportal.Account{ID: id, Email: id + "@example.com",
				Method: certportal.MethodPassword, Status: certportal.StatusActive})
		})
		if err != nil {
			t.Errorf("Update %d after the connections died: %v", i, err)
		}
	}
	err = db.View(ctx, func(tx certportal.Tx) error {
		list, err := tx.ListAccounts(ctx)
		if err == nil && len(list) != 5 {
			t.Errorf("%d accounts, want 5", len(list))
		}
		return err
	})
	if err != nil {
		t.Errorf("View after the connections died: %v", err)
	}
}

func mustParse(t testing.TB, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func TestViewRefusesWrites(t *testing.T) {
	db, _ := openFresh(t)
	ctx := context.Background()
	err := db.View(ctx, func(tx certportal.Tx) error { _, err := tx.NextCRLNumber(ctx, "SOP-ICA1"); return err })
	if err == nil {
		t.Fatal("NextCRLNumber in a View succeeded")
	}
	if msg := certportal.ErrorMessage(err); !strings.Contains(msg, "read-only") {
		t.Errorf("message %q, want one that says the transaction is read-only", msg)
	}
}

// TestUnavailableWhileDatabaseRefuses switches connections to the store's
// database off and ends its sessions, as a server restart does: Ping,
// View and Update say Unavailable (web answers 503), and all work again,
// without reopening, when connections are allowed back.
func TestUnavailableWhileDatabaseRefuses(t *testing.T) {
	db, dsn := openFresh(t)
	ctx := context.Background()
	name := strings.TrimPrefix(mustParse(t, dsn).Path, "/")
	c := admin(t, pgtest.ServerDSN(t))
	set := func(allow bool) {
		t.Helper()
		if _, err := c.Exec(ctx, fmt.Sprintf("ALTER DATABASE %s ALLOW_CONNECTIONS %t", name, allow)); err != nil {
			t.Fatal(err)
		}
	}
	set(false)
	t.Cleanup(func() { c.Exec(ctx, fmt.Sprintf("ALTER DATABASE %s ALLOW_CONNECTIONS true", name)) })
	if _, err := c.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1`, name); err != nil {
		t.Fatal(err)
	}
	ops := map[string]func() error{
		"Ping": func() error { return db.Ping(ctx) },
		"View": func() error {
			return db.View(ctx, func(tx certportal.Tx) error { _, err := tx.ListAccounts(ctx); return err })
		},
		"Update": func() error {
			return db.Update(ctx, func(tx certportal.Tx) error { _, err := tx.NextCRLNumber(ctx, "SOP-ICA1"); return err })
		},
	}
	for what, op := range ops {
		err := op()
		if certportal.ErrorCodeOf(err) != certportal.Unavailable {
			t.Errorf("%s while the database refuses connections: %v, want Unavailable", what, err)
		} else if msg := certportal.ErrorMessage(err); !strings.Contains(msg, "not reachable") {
			t.Errorf("%s: message %q", what, msg)
		}
	}
	set(true)
	for what, op := range ops {
		if err := op(); err != nil {
			t.Errorf("%s after connections are allowed again: %v", what, err)
		}
	}
}

// TestHotReadsUseGenericPlans: the per-request reads run on connections
// that plan their prepared statements once (plan_cache_mode
// force_generic_plan), so PostgreSQL does not plan `= ANY($1)` anew per
// execution; every other query keeps the server's default.
func TestHotReadsUseGenericPlans(t *testing.T) {
	db, _ := openFresh(t)
	ctx := context.Background()
	var hot, other string
	if err := db.hot.QueryRow(ctx, "SHOW plan_cache_mode").Scan(&hot); err != nil {
		t.Fatal(err)
	}
	if err := db.pool.QueryRow(ctx, "SHOW plan_cache_mode").Scan(&other); err != nil {
		t.Fatal(err)
	}
	if hot != "force_generic_plan" || other != "auto" {
		t.Fatalf("plan_cache_mode: per-request reads %q, other queries %q; want force_generic_plan and auto", hot, other)
	}
	// The lookup still uses its indexes under a generic plan.
	var plan string
	rows, err := db.hot.Query(ctx, "EXPLAIN "+lookupQuery, []string{"AB"})
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			t.Fatal(err)
		}
		plan += line + "\n"
	}
	rows.Close()
	if !strings.Contains(plan, "certificates_sha256") || strings.Contains(plan, "Seq Scan") {
		t.Fatalf("the lookup's generic plan does not use the fingerprint index:\n%s", plan)
	}
}

// TestPoolSizes pins the connections one serve may open (docs/deploy.md
// says 14): 10 on the transactions' pool when the URL sets none, 4 on the
// per-request reads' pool. Each pool hands out exactly that many at once;
// one more waits.
func TestPoolSizes(t *testing.T) {
	db, _ := openFresh(t)
	for _, p := range []struct {
		name string
		pool *pgxpool.Pool
		size int
	}{{"transactions", db.pool, 10}, {"per-request reads", db.hot, 4}} {
		var held []*pgxpool.Conn
		// Released before openFresh's Close, which waits for every
		// acquired connection, also when a check below fails.
		release := func() {
			for _, c := range held {
				c.Release()
			}
			held = nil
		}
		t.Cleanup(release)
		for i := range p.size {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			c, err := p.pool.Acquire(ctx)
			cancel()
			if err != nil {
				t.Fatalf("%s pool: connection %d: %v", p.name, i+1, err)
			}
			held = append(held, c)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		c, err := p.pool.Acquire(ctx)
		cancel()
		if err == nil {
			c.Release()
			t.Errorf("%s pool: connection %d was handed out, want at most %d", p.name, p.size+1, p.size)
		} else if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("%s pool: connection %d: %v, want a wait that times out", p.name, p.size+1, err)
		}
		release()
	}
}
