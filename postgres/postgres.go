// Package postgres is certportal's storage for several replicas: a
// certportal.Store on one PostgreSQL database, through pgx (pgxpool).
//
// Every replica opens its own pool on the same database, and the database
// alone keeps the rules true across them:
//
//   - Update runs in a READ COMMITTED transaction. LockAccount is SELECT ...
//     FOR UPDATE, so two replicas changing one account queue on its row.
//   - AppendAudit locks the one row of audit_head until the transaction
//     ends, so sequence numbers and the hash chain never fork.
//   - NextCRLNumber is one atomic INSERT ... ON CONFLICT DO UPDATE ...
//     RETURNING, so a CRL number is never handed out twice.
//   - Unique indexes (serial, SHA-256, one unrevoked certificate per
//     account) are the safety net under portal's rules.
//
// An Update that fails with a serialization failure or a deadlock (SQLSTATE
// 40001, 40P01) is run again from the start, a few times. View runs in a
// read-only REPEATABLE READ transaction: one consistent snapshot.
//
// Migrations are embedded and applied by goose (through pgx's database/sql
// driver, for goose only) under an advisory lock, so replicas starting
// together migrate once.
package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"net"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"

	"github.com/certportal/certportal"
)

//go:embed migrations/*.sql
var migrations embed.FS

// op prefixes every error of this package, as STYLE asks ("postgres: ...").
const op = "postgres"

// defaultMaxConns is the pool size when the URL does not set
// pool_max_conns: enough for a replica's concurrent requests (a request
// holds a connection for one short transaction), small enough that a few
// replicas stay far below PostgreSQL's default max_connections of 100.
const defaultMaxConns = 10

// hotConns is the size of the pool of per-request reads: portal keeps one
// Lookup and one Statuses statement in flight (batch.go) and the signed-in
// pages read their sessions.
const hotConns = 4

// maxAttempts is how often Update runs fn when PostgreSQL aborts it with
// a serialization failure or a deadlock: such aborts are rare under READ
// COMMITTED (a deadlock needs two transactions taking the same locks in
// opposite orders) and the second run almost always succeeds.
const maxAttempts = 5

// migrateLock is the key of the advisory lock held while the schema is
// checked and migrated ("certportal" in ASCII, as a 64-bit number).
const migrateLock int64 = 0x6365727470727400

// DB is a certportal.Store on one PostgreSQL database. It is safe for
// concurrent use, and several DBs (replicas) may share one database.
type DB struct {
	pool *pgxpool.Pool
	// hot runs the per-request reads (Lookup, Statuses, LookupSession) on
	// connections of their own with plan_cache_mode=force_generic_plan:
	// their statements are prepared once, and PostgreSQL's default would
	// plan `= ANY($1)` anew on every execution (a custom plan for the
	// array's length, about 90 µs of the server's CPU against 15 µs to
	// run it). Every other query keeps its custom plans on pool.
	hot    *pgxpool.Pool
	closed atomic.Bool
}

var _ certportal.Store = (*DB)(nil)

// Open connects to the database named by dsn, a postgres:// (or
// postgresql://) URL. The password never comes from the URL (command lines
// and config files are seen by others): a URL with one is refused
// (Invalid); pgx reads PGPASSWORD or ~/.pgpass (PGPASSFILE) instead.
//
// The schema:
//   - create is true (certportal init): an empty database gets the schema;
//     a database that has a certportal schema already is refused (Conflict),
//     so init never reuses another installation's data, and so is one
//     that holds other tables.
//   - create is false: an empty database is NotFound ("run certportal
//     init"); a schema older than this binary is upgraded at once (the
//     migrations run under an advisory lock, once, whichever replica starts
//     first); a newer one is refused (Conflict) and left unchanged.
func Open(ctx context.Context, dsn string, create bool) (*DB, error) {
	cfg, err := parseDSN(dsn)
	if err != nil {
		return nil, err
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, mapError(err, "", "")
	}
	hcfg := cfg.Copy()
	hcfg.MaxConns = hotConns
	hcfg.ConnConfig.RuntimeParams["plan_cache_mode"] = "force_generic_plan"
	hot, err := pgxpool.NewWithConfig(ctx, hcfg)
	if err != nil {
		pool.Close()
		return nil, mapError(err, "", "")
	}
	db := &DB{pool: pool, hot: hot}
	if err := db.Ping(ctx); err != nil {
		db.closePools()
		return nil, err
	}
	if err := db.migrate(ctx, create); err != nil {
		db.closePools()
		return nil, err
	}
	return db, nil
}

// parseDSN checks dsn and returns the pool's configuration.
func parseDSN(dsn string) (*pgxpool.Config, error) {
	if !strings.HasPrefix(dsn, "postgres://") && !strings.HasPrefix(dsn, "postgresql://") {
		return nil, errf(certportal.Invalid, "the database URL must start with postgres:// or postgresql://")
	}
	u, err := url.Parse(dsn)
	if err != nil {
		return nil, errf(certportal.Invalid, "the PostgreSQL URL is malformed")
	}
	_, hasPw := u.User.Password()
	for k := range u.Query() {
		if strings.EqualFold(k, "password") {
			hasPw = true
		}
	}
	if hasPw {
		return nil, errf(certportal.Invalid,
			"the PostgreSQL URL must not contain a password (command lines and config files are seen by others); use PGPASSWORD or ~/.pgpass instead")
	}
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		// pgx's message names the bad part; the URL has no secret.
		return nil, &certportal.Error{Code: certportal.Invalid, Op: op, Err: err,
			Message: "the PostgreSQL URL is malformed: " + unwrapMessage(err)}
	}
	if !strings.Contains(u.RawQuery, "pool_max_conns") {
		cfg.MaxConns = defaultMaxConns
	}
	// A dead connection (the server restarted) is found by the ping on
	// acquire when it has been idle, and dropped when a query fails on it;
	// the health check also drops idle ones the server closed meanwhile.
	cfg.HealthCheckPeriod = 15 * time.Second
	return cfg, nil
}

// Unverified reports whether dsn connects to a PostgreSQL server that is
// not on this machine without verifying it: sslmode other than verify-full
// or verify-ca (pgx's default, prefer, encrypts when it can but accepts
// any certificate, or none). hosts are the remote hosts it names. A host
// on this machine (localhost, a loopback address, a Unix socket) needs no
// TLS.
func Unverified(dsn string) (hosts []string, sslmode string, unverified bool) {
	u, err := url.Parse(dsn)
	if err != nil {
		return nil, "", false
	}
	q := u.Query()
	sslmode = q.Get("sslmode")
	if sslmode == "" {
		sslmode = "prefer"
	}
	names := strings.Split(u.Host, ",")
	if h := q.Get("host"); h != "" {
		names = append(names, strings.Split(h, ",")...)
	}
	for _, n := range names {
		if h, _, err := net.SplitHostPort(n); err == nil {
			n = h
		}
		n = strings.Trim(n, "[]")
		ip := net.ParseIP(n)
		if n == "" || strings.HasPrefix(n, "/") || strings.EqualFold(n, "localhost") || ip != nil && ip.IsLoopback() {
			continue
		}
		hosts = append(hosts, n)
	}
	verified := sslmode == "verify-full" || sslmode == "verify-ca"
	return hosts, sslmode, len(hosts) > 0 && !verified
}

// unwrapMessage returns the innermost message of err, without the
// connection string that pgx's ParseConfigError repeats.
func unwrapMessage(err error) string {
	var pe *pgconn.ParseConfigError
	if errors.As(err, &pe) {
		if inner := errors.Unwrap(pe); inner != nil {
			return inner.Error()
		}
	}
	return "check its host, port and options"
}

// migrate checks the schema and applies the embedded migrations, holding an
// advisory lock so replicas (or init and serve) never migrate at once.
func (db *DB) migrate(ctx context.Context, create bool) error {
	conn, err := db.pool.Acquire(ctx)
	if err != nil {
		return mapError(err, "", "")
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1)`, migrateLock); err != nil {
		return mapError(err, "", "")
	}
	defer conn.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1)`, migrateLock) //nolint:errcheck // the session ends with the pool anyway

	var hasGoose bool
	var tables int
	err = conn.QueryRow(ctx, `SELECT to_regclass('goose_db_version') IS NOT NULL,
		(SELECT count(*) FROM pg_catalog.pg_tables WHERE schemaname = current_schema())`).Scan(&hasGoose, &tables)
	if err != nil {
		return mapError(err, "", "")
	}
	switch {
	case !hasGoose && tables > 0:
		return errf(certportal.Conflict,
			"the database holds other tables but no certportal schema; give certportal a database of its own")
	case !hasGoose && !create:
		return errf(certportal.NotFound,
			"the database has no certportal schema; run certportal init --db with this URL first")
	case hasGoose && create:
		return errf(certportal.Conflict,
			"the database already has a certportal schema; certportal init never reuses one (use an empty database, or leave out init)")
	}

	sub, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return err
	}
	sqldb := stdlib.OpenDBFromPool(db.pool)
	defer sqldb.Close() // does not close the pool
	p, err := goose.NewProvider(goose.DialectPostgres, sqldb, sub)
	if err != nil {
		return &certportal.Error{Code: certportal.Internal, Op: op, Err: err, Message: "the embedded migrations are unreadable"}
	}
	if hasGoose {
		current, target, err := p.GetVersions(ctx)
		if err != nil {
			return mapError(err, "", "")
		}
		if current > target {
			return errf(certportal.Conflict,
				"the database was created by a newer certportal (schema %d); this binary knows up to %d", current, target)
		}
		if current == target {
			return nil
		}
	}
	if _, err := p.Up(ctx); err != nil {
		return mapError(err, "", "")
	}
	return nil
}

// SchemaVersion returns the version of the newest migration applied.
func (db *DB) SchemaVersion(ctx context.Context) (int64, error) {
	var v int64
	err := db.pool.QueryRow(ctx, `SELECT COALESCE(MAX(version_id), 0) FROM goose_db_version WHERE is_applied`).Scan(&v)
	if err != nil {
		return 0, mapError(err, "", "")
	}
	return v, nil
}

// Update runs fn in a READ COMMITTED transaction and commits when fn
// returns nil. Rows fn locks (LockAccount, AppendAudit, NextCRLNumber)
// stay locked until the commit, across every replica.
//
// When PostgreSQL aborts the transaction with a serialization failure or a
// deadlock, fn runs again from the start (up to five times), so fn must
// not act outside the transaction in a way that is harmful to repeat.
// If fn returns an error or panics, nothing it wrote is kept; a panic is
// passed on after the rollback.
func (db *DB) Update(ctx context.Context, fn func(certportal.Tx) error) error {
	var err error
	for attempt := 1; ; attempt++ {
		err = db.run(ctx, pgx.TxOptions{IsoLevel: pgx.ReadCommitted, AccessMode: pgx.ReadWrite}, fn)
		if attempt == maxAttempts || !retryable(err) {
			return err
		}
		// A short random pause, so the transactions that collided do not
		// collide again.
		select {
		case <-time.After(time.Duration(attempt) * time.Duration(1+rand.IntN(10)) * time.Millisecond):
		case <-ctx.Done():
			return err
		}
	}
}

// View runs fn in a read-only REPEATABLE READ transaction: it sees one
// consistent snapshot of the database, and writes inside it fail.
func (db *DB) View(ctx context.Context, fn func(certportal.Tx) error) error {
	return db.run(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, fn)
}

func (db *DB) run(ctx context.Context, opts pgx.TxOptions, fn func(certportal.Tx) error) error {
	if db.closed.Load() {
		return errClosed
	}
	ptx, err := db.begin(ctx, opts)
	if err != nil {
		return err
	}
	done := false
	defer func() {
		if !done {
			// fn panicked: undo its writes, then let the panic go on.
			ptx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // the panic matters more
		}
	}()
	ferr := fn(&tx{tx: ptx})
	done = true
	if ferr != nil {
		ptx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // fn's error is the one to report
		db.lostConnection(ctx, ferr)
		return ferr
	}
	if err := ptx.Commit(ctx); err != nil {
		db.lostConnection(ctx, err)
		return mapError(err, "", "the change conflicts with the data in the database")
	}
	return nil
}

// begin starts a transaction. When the connection it got turned out to
// be dead (the server restarted, or ended it), the pool is reset, since its
// other idle connections died the same way, and begin tries again.
func (db *DB) begin(ctx context.Context, opts pgx.TxOptions) (pgx.Tx, error) {
	for i := 0; ; i++ {
		ptx, err := db.pool.BeginTx(ctx, opts)
		if err == nil {
			return ptx, nil
		}
		if i == 2 || !db.lostConnection(ctx, err) {
			return nil, mapError(err, "", "")
		}
	}
}

// lostConnection reports whether err says the connection to the server was
// lost; when it does, it resets the pool, so every connection opened before
// the loss is replaced by a fresh one instead of failing one request each.
func (db *DB) lostConnection(ctx context.Context, err error) bool {
	if ctx.Err() != nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var pe *pgconn.PgError
	var ce *certportal.Error
	switch {
	case errors.As(err, &pe):
		if !strings.HasPrefix(pe.Code, "08") && !strings.HasPrefix(pe.Code, "57P") {
			return false
		}
	case errors.Is(err, pgx.ErrNoRows), errors.Is(err, pgx.ErrTxCommitRollback):
		return false
	case errors.As(err, &ce) && ce.Err == nil:
		return false // a refusal of certportal's, not a failure of the link
	}
	db.pool.Reset()
	db.hot.Reset()
	return true
}

// Ping reports whether the database answers (Unavailable when not).
func (db *DB) Ping(ctx context.Context) error {
	if db.closed.Load() {
		return errClosed
	}
	var err error
	for i := 0; ; i++ {
		var one int
		if err = db.pool.QueryRow(ctx, "SELECT 1").Scan(&one); err == nil {
			return nil
		}
		if i == 2 || !db.lostConnection(ctx, err) {
			return mapError(err, "", "")
		}
	}
}

// Lookup is the hot path's read: one statement on the pool, outside any
// transaction (no BEGIN or COMMIT round trips); pgx prepares it once per
// connection and reuses it. The statement sees one committed state. The
// fingerprints travel as one text[], so any number of them is one round
// trip.
func (db *DB) Lookup(ctx context.Context, fingerprints []string) (map[string]certportal.Found, error) {
	out := make(map[string]certportal.Found, len(fingerprints))
	err := db.queryKeys(ctx, lookupQuery, fingerprints, func(rows pgx.Rows) error {
		var cr certRow
		var ar accountRow
		if err := rows.Scan(append(cr.dest(), ar.dest()...)...); err != nil {
			return err
		}
		c := cr.cert()
		out[c.SHA256] = certportal.Found{Cert: c, Account: ar.account()}
		return nil
	})
	return out, err
}

// Statuses is the OCSP responder's read: one statement, like Lookup.
func (db *DB) Statuses(ctx context.Context, serials []string) (map[string]*certportal.Certificate, error) {
	out := make(map[string]*certportal.Certificate, len(serials))
	err := db.queryKeys(ctx, statusesQuery, serials, func(rows pgx.Rows) error {
		c, err := scanCert(rows)
		if err == nil {
			out[c.Serial] = c
		}
		return err
	})
	return out, err
}

// queryKeys runs query on the pool with keys (upper-cased) as its one
// text[] argument, and calls row for each row.
func (db *DB) queryKeys(ctx context.Context, query string, keys []string, row func(pgx.Rows) error) error {
	if db.closed.Load() {
		return errClosed
	}
	upper := make([]string, len(keys))
	for i, k := range keys {
		upper[i] = strings.ToUpper(k)
	}
	rows, err := db.hot.Query(ctx, query, upper)
	if err == nil {
		for rows.Next() {
			if err = row(rows); err != nil {
				break
			}
		}
		rows.Close()
		if err == nil {
			err = rows.Err()
		}
	}
	if err != nil {
		db.lostConnection(ctx, err)
		return mapError(err, "", "")
	}
	return nil
}

// LookupSession is the signed-in request's read: one statement on the
// per-request pool, like Lookup.
func (db *DB) LookupSession(ctx context.Context, id string) (*certportal.Session, *certportal.Account, *certportal.Certificate, error) {
	if db.closed.Load() {
		return nil, nil, nil, errClosed
	}
	var sr sessionRow
	var ar accountRow
	var cr certStatusRow
	err := db.hot.QueryRow(ctx, lookupSessionQuery, id).Scan(append(append(sr.dest(), ar.dest()...), cr.dest()...)...)
	if err != nil {
		db.lostConnection(ctx, err)
		return nil, nil, nil, mapError(err, "the session has ended; sign in again", "")
	}
	sess := sr.session()
	return sess, ar.account(), cr.cert(sess), nil
}

// Close closes every connection of the pool.
func (db *DB) Close() error {
	if db.closed.Swap(true) {
		return nil
	}
	db.closePools()
	return nil
}

func (db *DB) closePools() {
	db.hot.Close()
	db.pool.Close()
}

var errClosed = &certportal.Error{Code: certportal.Unavailable, Op: op, Message: "the database is closed"}

// errf returns a *certportal.Error of this package.
func errf(code certportal.ErrorCode, format string, args ...any) error {
	return &certportal.Error{Code: code, Op: op, Message: fmt.Sprintf(format, args...)}
}

// SQLSTATE codes certportal reacts to.
const (
	sqlUniqueViolation     = "23505"
	sqlForeignKeyViolation = "23503"
	sqlSerializationFail   = "40001"
	sqlDeadlock            = "40P01"
	sqlReadOnlyTx          = "25006"
	sqlInvalidPassword     = "28P01"
	sqlInvalidAuth         = "28000"
	sqlNoDatabase          = "3D000"
	sqlQueryCanceled       = "57014"
	sqlUndefinedTable      = "42P01"
)

// retryable reports whether err is an abort that running the whole
// transaction again may cure.
func retryable(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == sqlSerializationFail || pe.Code == sqlDeadlock)
}

// mapError turns a database error into a *certportal.Error: no row is
// NotFound (with notFound as the message), a unique violation is Conflict
// (with conflict), a connection failure or a server going down is
// Unavailable. An error that is already a *certportal.Error is returned as
// it is. The cause is kept in Err, for logs and for retryable.
func mapError(err error, notFound, conflict string) error {
	if err == nil {
		return nil
	}
	var ce *certportal.Error
	if errors.As(err, &ce) {
		return err
	}
	e := &certportal.Error{Code: certportal.Internal, Op: op, Err: err, Message: "the database failed unexpectedly"}
	var pe *pgconn.PgError
	var connErr *pgconn.ConnectError
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		e.Code, e.Message = certportal.NotFound, notFound
		if notFound == "" {
			e.Message = "the record does not exist"
		}
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded), pgconn.Timeout(err):
		e.Code, e.Message = certportal.Unavailable, "the database did not answer in time; try again"
	case errors.Is(err, pgx.ErrTxCommitRollback):
		e.Code, e.Message = certportal.Conflict, conflict
		if conflict == "" {
			e.Message = "the change was rolled back because a step of it failed"
		}
	case errors.As(err, &connErr) && !(errors.As(err, &pe) && (strings.HasPrefix(pe.Code, "28") || pe.Code == sqlNoDatabase)):
		// The server could not be reached, or refused a new session
		// for a passing reason (starting up, shutting down, too many
		// connections, connections to the database switched off).
		e.Code, e.Message = certportal.Unavailable, "the database is not reachable; check that PostgreSQL is running"
	case errors.As(err, &pe):
		mapPgError(e, pe, conflict)
	default:
		// Anything else from pgx that is not the server's answer is a
		// failure to reach it: refused, reset, closed, DNS.
		e.Code, e.Message = certportal.Unavailable, "the database is not reachable; check that PostgreSQL is running"
	}
	return e
}

// mapPgError fills e from an error the server reported.
func mapPgError(e *certportal.Error, pe *pgconn.PgError, conflict string) {
	switch {
	case pe.Code == sqlUniqueViolation:
		e.Code, e.Message = certportal.Conflict, conflict
		if conflict == "" {
			e.Message = "the change conflicts with the data in the database"
		}
	case pe.Code == sqlForeignKeyViolation:
		e.Code, e.Message = certportal.NotFound, "the record refers to a user that does not exist"
	case pe.Code == sqlSerializationFail, pe.Code == sqlDeadlock:
		e.Code, e.Message = certportal.Unavailable, "the database is busy with a conflicting change; try again in a moment"
	case pe.Code == sqlReadOnlyTx:
		e.Message = "a read-only transaction tried to write"
	case pe.Code == sqlInvalidPassword, pe.Code == sqlInvalidAuth:
		e.Code, e.Message = certportal.Unavailable,
			"PostgreSQL refused the sign-in; check the user in the URL and the password in PGPASSWORD or ~/.pgpass"
	case pe.Code == sqlNoDatabase:
		e.Code, e.Message = certportal.NotFound, "the database named in the URL does not exist on the server; create it first (createdb)"
	case pe.Code == sqlQueryCanceled:
		e.Code, e.Message = certportal.Unavailable, "the database did not answer in time; try again"
	case pe.Code == sqlUndefinedTable:
		e.Message = "the database schema is incomplete; is this a certportal database?"
	case strings.HasPrefix(pe.Code, "08"), strings.HasPrefix(pe.Code, "53"), strings.HasPrefix(pe.Code, "57P"):
		// Connection exceptions, insufficient resources (too many
		// connections, disk full), the server shutting down or starting.
		e.Code, e.Message = certportal.Unavailable, "the database is not reachable or is restarting; try again in a moment"
	}
}
