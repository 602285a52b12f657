// Package sqlite is certportal's storage for one node: a certportal.Store on
// a single SQLite file, through modernc.org/sqlite (pure Go, no cgo).
//
// The file runs in WAL mode, so requests read while a change is written.
// Reads use a pool of read-only connections; every Update goes through one
// writer connection, in a transaction begun with BEGIN IMMEDIATE, so
// Updates from other processes wait for the write lock (busy_timeout)
// instead of failing with SQLITE_BUSY. Concurrent Updates in this process
// take turns in one shared transaction and commit together, one fsync for
// all (group commit, group.go).
// Migrations are embedded and applied by goose when the store is opened.
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pressly/goose/v3"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/certportal/certportal"
)

//go:embed migrations/*.sql
var migrations embed.FS

// op prefixes every error of this package, as STYLE asks ("sqlite: ...").
const op = "sqlite"

// busyTimeout is how long a statement waits for a lock held by another
// connection or process before it gives up: long enough to queue behind any
// real transaction (they take milliseconds), short enough that a request
// still gets an answer ("the database is busy") within a browser's patience.
const busyTimeout = 10 * time.Second

// DB is a certportal.Store on one SQLite file. It is safe for concurrent use.
type DB struct {
	write *sql.DB // one connection, for the Updates' shared transactions
	w     writer  // the Updates' turns and open transaction (group.go)
	read  *sql.DB // read-only connections for View
	path  string
	// closed makes calls after Close say Unavailable (database/sql's own
	// error for a closed pool is not exported to test for).
	closed atomic.Bool

	writeStmts stmtCache
	readStmts  stmtCache
	// cache keeps Lookup's and Statuses' rows while nothing has committed
	// since (lookupcache.go).
	cache lookupCache
}

var _ certportal.CachedStore = (*DB)(nil)

// dsn returns the data source name for path with the pragmas every
// connection gets.
//
// synchronous=FULL: with WAL, NORMAL is safe against a crash of the process
// but may lose the last commits on power loss. certportal must never lose an
// acknowledged revocation or hand out a CRL number twice (RFC 5280 §5.2.3),
// so each commit is synced; a commit costs one fsync, which the benchmarks
// show is affordable at the portal's write rate.
func dsn(path string, readOnly bool) string {
	q := fmt.Sprintf("?_pragma=busy_timeout(%d)&_pragma=foreign_keys(1)&_pragma=synchronous(FULL)",
		busyTimeout.Milliseconds())
	if readOnly {
		// query_only: a View that tries to write fails instead of writing.
		q += "&_pragma=query_only(1)"
	} else {
		// BEGIN IMMEDIATE takes the write lock when the transaction starts,
		// so two writers never both read and then fail to upgrade their
		// locks (SQLITE_BUSY that busy_timeout cannot help with).
		// temp_store=MEMORY keeps the sub-journal of the group commit's
		// savepoints (the pages a member changes, as they were) in
		// memory: past 64 KiB SQLite moves it to a temporary file, two
		// write system calls a page, while every other Update waits.
		q += "&_txlock=immediate&_pragma=journal_mode(WAL)&_pragma=temp_store(MEMORY)"
	}
	return path + q
}

// Open opens the database file at path, creating it when create is true,
// applies the embedded migrations, and returns the store. A file whose
// schema is newer than this binary knows is refused (Conflict) and left
// unchanged; a missing file with create false is NotFound.
func Open(ctx context.Context, path string, create bool) (*DB, error) {
	if path == "" || strings.ContainsAny(path, "?#") {
		// The driver reads options after a '?'.
		return nil, errf(certportal.Invalid, "the database path %q is empty or contains '?' or '#'; choose another", path)
	}
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		if !create {
			return nil, &certportal.Error{Code: certportal.NotFound, Op: op, Err: err,
				Message: fmt.Sprintf("no database at %s; run certportal init", path)}
		}
		// The file holds password hashes: create it 0600 before SQLite
		// does (with the umask's 0644). SQLite gives the -wal and -shm
		// files the mode of the database file.
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil && !errors.Is(err, fs.ErrExist) {
			return nil, openError(path, err)
		}
		if f != nil {
			f.Close()
		}
	} else if err != nil {
		return nil, &certportal.Error{Code: certportal.Unavailable, Op: op, Err: err,
			Message: fmt.Sprintf("cannot read the database at %s; check its permissions", path)}
	}
	hooks := &writeHooks{}
	wc, err := sqlite.NewConnector(dsn(path, false))
	if err != nil {
		return nil, openError(path, err)
	}
	w := sql.OpenDB(hookConnector{Connector: wc, hooks: hooks})
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxIdleTime(0)
	w.SetConnMaxLifetime(0)
	if err := migrate(ctx, w); err != nil {
		w.Close()
		var ce *certportal.Error
		if errors.As(err, &ce) {
			return nil, err
		}
		return nil, openError(path, err)
	}
	r, err := sql.Open("sqlite", dsn(path, true))
	if err != nil {
		w.Close()
		return nil, openError(path, err)
	}
	n := max(4, runtime.GOMAXPROCS(0))
	r.SetMaxOpenConns(n)
	r.SetMaxIdleConns(n) // keep them: a connection's prepared statements live with it
	r.SetConnMaxIdleTime(0)
	r.SetConnMaxLifetime(0)
	v, err := sql.Open("sqlite", dsn(path, true))
	if err != nil {
		w.Close()
		r.Close()
		return nil, openError(path, err)
	}
	v.SetMaxOpenConns(1)
	v.SetMaxIdleConns(1)
	v.SetConnMaxIdleTime(0)
	v.SetConnMaxLifetime(0)
	db := &DB{write: w, read: r, path: path}
	db.w.turn, db.w.hooks = make(chan struct{}, 1), hooks
	db.writeStmts.db = w
	db.readStmts.db = r
	db.cache.vdb, db.cache.path = v, path
	if err := db.Ping(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

func openError(path string, err error) error {
	return &certportal.Error{Code: certportal.Unavailable, Op: op, Err: err,
		Message: fmt.Sprintf("cannot open the database at %s; is it a certportal database, and is the disk writable?", path)}
}

// migrate brings the schema up to date, refusing a schema newer than the
// embedded migrations (an older binary must not write to it).
func migrate(ctx context.Context, w *sql.DB) error {
	sub, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return err
	}
	p, err := goose.NewProvider(goose.DialectSQLite3, w, sub)
	if err != nil {
		return err
	}
	// p.Close would close w, which the store keeps using.
	current, target, err := p.GetVersions(ctx)
	if err != nil {
		return err
	}
	if current > target {
		return errf(certportal.Conflict,
			"the database was created by a newer certportal (schema %d); this binary knows up to %d", current, target)
	}
	if current == target {
		return nil
	}
	_, err = p.Up(ctx)
	return err
}

// SchemaVersion returns the version of the newest migration applied.
func (db *DB) SchemaVersion(ctx context.Context) (int64, error) {
	var v int64
	err := db.read.QueryRowContext(ctx, `SELECT COALESCE(MAX(version_id), 0) FROM goose_db_version`).Scan(&v)
	if err != nil {
		return 0, mapError(err, "", "")
	}
	return v, nil
}

// View runs fn in a read-only transaction that sees one consistent state of
// the database. Writes inside it fail. (Update is in group.go.)
func (db *DB) View(ctx context.Context, fn func(certportal.Tx) error) (err error) {
	if db.closed.Load() {
		return errClosed
	}
	stx, err := db.read.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return mapError(err, "", "")
	}
	done := false
	defer func() {
		if !done {
			// fn panicked: end the transaction, then let the panic go on.
			stx.Rollback()
		}
	}()
	t := &tx{tx: stx, stmts: &db.readStmts}
	ferr := fn(t)
	done = true
	if ferr != nil {
		stx.Rollback()
	} else if cerr := stx.Commit(); cerr != nil {
		ferr = mapError(cerr, "", "")
	}
	// The connection is free again: prepare, for the next transactions,
	// the statements this one had to prepare for itself.
	t.fillCache(ctx)
	return ferr
}

// Ping reports whether the database answers (Unavailable when not).
// LookupSession is the signed-in request's read: one prepared statement
// on a read connection, like Lookup.
func (db *DB) LookupSession(ctx context.Context, id string) (*certportal.Session, *certportal.Account, *certportal.Certificate, error) {
	if db.closed.Load() {
		return nil, nil, nil, errClosed
	}
	stmt, ok := db.readStmts.lookup(lookupSessionQuery)
	if !ok {
		var err error
		if stmt, err = db.readStmts.prepare(ctx, lookupSessionQuery); err != nil {
			return nil, nil, nil, mapError(err, "", "")
		}
	}
	var sr sessionRow
	var ar accountRow
	var cr certStatusRow
	err := stmt.QueryRowContext(ctx, id).Scan(append(append(sr.dest(), ar.dest()...), cr.dest()...)...)
	if err != nil {
		return nil, nil, nil, mapError(err, "the session has ended; sign in again", "")
	}
	sess := sr.session()
	return sess, ar.account(), cr.cert(sess), nil
}

func (db *DB) Ping(ctx context.Context) error {
	if db.closed.Load() {
		return errClosed
	}
	var one int
	if err := db.read.QueryRowContext(ctx, "SELECT 1").Scan(&one); err != nil {
		return mapError(err, "", "")
	}
	return nil
}

// Close closes every connection. The WAL is checkpointed by SQLite when the
// last connection closes.
func (db *DB) Close() error {
	if db.closed.Swap(true) {
		return nil
	}
	db.cache.close()
	db.readStmts.close()
	db.writeStmts.close()
	err := errors.Join(db.read.Close(), db.write.Close())
	db.cache.releaseWAL() // after every connection of this store is closed
	if err != nil {
		return &certportal.Error{Code: certportal.Internal, Op: op, Err: err, Message: "closing the database failed"}
	}
	return nil
}

var errClosed = &certportal.Error{Code: certportal.Unavailable, Op: op, Message: "the database is closed"}

// stmtCache keeps one prepared statement per query text for a pool;
// database/sql prepares it once on each connection and a transaction
// borrows it with Tx.StmtContext, so a hot query is parsed once per
// connection rather than once per request.
type stmtCache struct {
	db *sql.DB
	m  sync.Map // query -> *sql.Stmt
	mu sync.Mutex
}

// lookup returns the cached statement for query, if there is one.
func (c *stmtCache) lookup(query string) (*sql.Stmt, bool) {
	s, ok := c.m.Load(query)
	if !ok {
		return nil, false
	}
	return s.(*sql.Stmt), true
}

// prepare prepares query on the pool and caches it. It needs a free
// connection, so it is never called while a transaction of the same pool is
// open in this goroutine (the writer pool has only one connection).
func (c *stmtCache) prepare(ctx context.Context, query string) (*sql.Stmt, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s, ok := c.m.Load(query); ok {
		return s.(*sql.Stmt), nil
	}
	s, err := c.db.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	c.m.Store(query, s)
	return s, nil
}

func (c *stmtCache) close() {
	c.m.Range(func(k, v any) bool {
		v.(*sql.Stmt).Close()
		c.m.Delete(k)
		return true
	})
}

// mapError turns a database error into a *certportal.Error: no row is
// NotFound (with notFound as the message), a constraint is Conflict (with
// conflict), a lock or I/O failure is Unavailable. An error that is
// already a *certportal.Error is returned as it is.
func mapError(err error, notFound, conflict string) error {
	if err == nil {
		return nil
	}
	var ce *certportal.Error
	if errors.As(err, &ce) {
		return err
	}
	e := &certportal.Error{Code: certportal.Internal, Op: op, Err: err, Message: "the database failed unexpectedly"}
	var se *sqlite.Error
	switch {
	case errors.Is(err, sql.ErrNoRows):
		e.Code, e.Message = certportal.NotFound, notFound
		if notFound == "" {
			e.Message = "the record does not exist"
		}
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		e.Code, e.Message = certportal.Unavailable, "the database did not answer in time; try again"
	case errors.Is(err, sql.ErrConnDone), errors.Is(err, sql.ErrTxDone):
		e.Code, e.Message = certportal.Unavailable, "the database connection is closed"
	case errors.As(err, &se):
		switch se.Code() & 0xff {
		case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED:
			e.Code, e.Message = certportal.Unavailable, "the database is busy; try again in a moment"
		case sqlite3.SQLITE_CONSTRAINT:
			e.Code, e.Message = certportal.Conflict, conflict
			if conflict == "" {
				e.Message = "the change conflicts with the data in the database"
			}
		case sqlite3.SQLITE_READONLY:
			e.Message = "a read-only transaction tried to write"
		case sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_IOERR, sqlite3.SQLITE_FULL,
			sqlite3.SQLITE_NOTADB, sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_PERM:
			e.Code, e.Message = certportal.Unavailable, "the database file cannot be read or written; check the disk and the file"
		}
	}
	return e
}

// sqliteConstraintForeignKey is the extended result code of a failed
// REFERENCES: the row names an account that does not exist.
const sqliteConstraintForeignKey = sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY

// isConstraint reports whether err is a constraint violation (and which:
// the extended result code).
func isConstraint(err error) (int, bool) {
	var se *sqlite.Error
	if errors.As(err, &se) && se.Code()&0xff == sqlite3.SQLITE_CONSTRAINT {
		return se.Code(), true
	}
	return 0, false
}
