package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/certportal/certportal"
)

// tx is a certportal.Tx over one database/sql transaction: a View's, or
// one member's turn in an Update's batch (group.go).
type tx struct {
	tx    *sql.Tx
	stmts *stmtCache
	local map[string]*sql.Stmt // queries prepared for this transaction only
	// b is the batch of an Update, nil in a View. Its statements run
	// with run, the Update's ctx without its cancellation (see use).
	b     *batch
	run   context.Context
	ended atomic.Bool // the member's turn is over: its tx takes no statement
}

var _ certportal.Tx = (*tx)(nil)

// stmt returns a prepared statement for query bound to the transaction:
// the cached one when there is one (in an Update, bound to the batch's
// transaction once for all its members), else one prepared on the
// transaction's connection (and cached after the transaction, see
// fillCache).
func (t *tx) stmt(ctx context.Context, query string) (*sql.Stmt, error) {
	if t.b != nil {
		if s, ok := t.b.bound[query]; ok {
			return s, nil
		}
	}
	if s, ok := t.stmts.lookup(query); ok {
		s = t.tx.StmtContext(ctx, s)
		if t.b != nil {
			// Bound once per batch: database/sql makes, registers
			// and at the end closes a statement for each binding.
			t.b.bound[query] = s
		}
		return s, nil
	}
	if s, ok := t.local[query]; ok {
		return s, nil
	}
	s, err := t.tx.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	if t.local == nil {
		t.local = make(map[string]*sql.Stmt)
	}
	t.local[query] = s
	return s, nil
}

// fillCache prepares on the pool the queries this transaction missed. A
// failure only means the next transaction prepares them again.
func (t *tx) fillCache(ctx context.Context) {
	for q := range t.local {
		if _, ok := t.stmts.lookup(q); !ok {
			t.stmts.prepare(ctx, q) //nolint:errcheck // best effort
		}
	}
	t.local = nil
}

// use returns the context to run a statement with, or why none may run.
// In an Update's batch, an interrupted write would roll back the whole
// shared transaction (sqlite3_interrupt), so the caller's ctx is checked
// here and the statement runs with t.run, which never ends (made once per
// member: the driver reads no values, and a context that can end costs it
// a goroutine per statement); no statement runs after the member's turn or
// once SQLite has ended the transaction by itself (it would run, and
// commit, on its own).
func (t *tx) use(ctx context.Context) (context.Context, error) {
	if t.b == nil {
		return ctx, nil
	}
	if t.ended.Load() {
		return nil, sql.ErrTxDone
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := t.b.check(); err != nil {
		return nil, err
	}
	return t.run, nil
}

func (t *tx) exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	ctx, err := t.use(ctx)
	if err != nil {
		return nil, err
	}
	s, err := t.stmt(ctx, query)
	if err != nil {
		return nil, err
	}
	return s.ExecContext(ctx, args...)
}

func (t *tx) queryRow(ctx context.Context, query string, args ...any) *row {
	ctx, err := t.use(ctx)
	if err != nil {
		return &row{err: err}
	}
	s, err := t.stmt(ctx, query)
	if err != nil {
		return &row{err: err}
	}
	return &row{r: s.QueryRowContext(ctx, args...)}
}

func (t *tx) query(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	ctx, err := t.use(ctx)
	if err != nil {
		return nil, err
	}
	s, err := t.stmt(ctx, query)
	if err != nil {
		return nil, err
	}
	return s.QueryContext(ctx, args...)
}

// row is a *sql.Row that may carry a preparation error.
type row struct {
	r   *sql.Row
	err error
}

func (r *row) Scan(dest ...any) error {
	if r.err != nil {
		return r.err
	}
	return r.r.Scan(dest...)
}

// scanner is what *row and *sql.Rows have in common.
type scanner interface{ Scan(dest ...any) error }

// Times are stored as integer Unix microseconds (PostgreSQL's precision);
// the zero time is NULL.

func micros(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UnixMicro()
}

func fromMicros(n sql.NullInt64) time.Time {
	if !n.Valid {
		return time.Time{}
	}
	return time.UnixMicro(n.Int64).UTC()
}

// affected returns NotFound (with message) when res changed no row.
func affected(res sql.Result, notFound string) error {
	n, err := res.RowsAffected()
	if err != nil {
		return mapError(err, "", "")
	}
	if n == 0 {
		return &certportal.Error{Code: certportal.NotFound, Op: op, Message: notFound}
	}
	return nil
}

// Accounts.

const accountCols = `id, email, password_hash, password_expires, method, status, created, updated, role`

// accountColsOf is accountCols qualified with a table alias, for joins.
func accountColsOf(alias string) string {
	return alias + "." + strings.ReplaceAll(accountCols, ", ", ", "+alias+".")
}

// accountRow receives the columns accountCols names.
type accountRow struct {
	a                     certportal.Account
	exp, created, updated sql.NullInt64
	method, status, role  string
}

func (r *accountRow) dest() []any {
	return []any{&r.a.ID, &r.a.Email, &r.a.PasswordHash, &r.exp, &r.method, &r.status, &r.created, &r.updated, &r.role}
}

func (r *accountRow) account() *certportal.Account {
	r.a.PasswordExpires, r.a.Created, r.a.Updated = fromMicros(r.exp), fromMicros(r.created), fromMicros(r.updated)
	r.a.Method, r.a.Status = certportal.SignInMethod(r.method), certportal.AccountStatus(r.status)
	r.a.Role = certportal.Role(r.role)
	return &r.a
}

func scanAccount(s scanner) (*certportal.Account, error) {
	var r accountRow
	if err := s.Scan(r.dest()...); err != nil {
		return nil, err
	}
	return r.account(), nil
}

// CreateAccount adds an account; Conflict when its ID is taken in any case.
func (t *tx) CreateAccount(ctx context.Context, a *certportal.Account) error {
	_, err := t.exec(ctx, `INSERT INTO accounts (id_key, `+accountCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		certportal.IDKey(a.ID), a.ID, a.Email, a.PasswordHash, micros(a.PasswordExpires),
		string(a.Method), string(a.Status), micros(a.Created), micros(a.Updated), string(a.RoleOf()))
	return mapError(err, "", fmt.Sprintf("the user ID %q is taken", a.ID))
}

// Account returns the account with id (any case).
func (t *tx) Account(ctx context.Context, id string) (*certportal.Account, error) {
	a, err := scanAccount(t.queryRow(ctx, `SELECT `+accountCols+` FROM accounts WHERE id_key = ?`, certportal.IDKey(id)))
	if err != nil {
		return nil, mapError(err, fmt.Sprintf("no user with ID %q", id), "")
	}
	return a, nil
}

// LockAccount reads an account for a change. An Update holds the database's
// only write lock from its first statement (BEGIN IMMEDIATE), so the
// account is locked already; this is a read.
func (t *tx) LockAccount(ctx context.Context, id string) (*certportal.Account, error) {
	return t.Account(ctx, id)
}

// UpdateAccount writes every field of a but its ID and Created.
func (t *tx) UpdateAccount(ctx context.Context, a *certportal.Account) error {
	res, err := t.exec(ctx, `UPDATE accounts SET email = ?, password_hash = ?, password_expires = ?,
		method = ?, status = ?, updated = ?, role = ? WHERE id_key = ?`,
		a.Email, a.PasswordHash, micros(a.PasswordExpires), string(a.Method), string(a.Status),
		micros(a.Updated), string(a.RoleOf()), certportal.IDKey(a.ID))
	if err != nil {
		return mapError(err, "", "")
	}
	return affected(res, fmt.Sprintf("no user with ID %q", a.ID))
}

// ListAccounts returns every account, ordered by ID (case-insensitively).
func (t *tx) ListAccounts(ctx context.Context) ([]certportal.Account, error) {
	return t.queryAccounts(ctx, `SELECT `+accountCols+` FROM accounts ORDER BY id_key`)
}

// Certificates.

// certCols selects a certificate with the account's ID as registered.
const certCols = `c.serial, a.id, c.issuer, c.not_before, c.not_after, c.thumbprint, c.sha256, c.der,
	c.issued, c.revoked, c.reason FROM certificates c JOIN accounts a ON a.id_key = c.account`

// certRow receives the columns certCols names.
type certRow struct {
	c                       certportal.Certificate
	nb, na, issued, revoked sql.NullInt64
	reason                  int64
}

func (r *certRow) dest() []any {
	return []any{&r.c.Serial, &r.c.AccountID, &r.c.Issuer, &r.nb, &r.na, &r.c.Thumbprint, &r.c.SHA256, &r.c.DER,
		&r.issued, &r.revoked, &r.reason}
}

func (r *certRow) cert() *certportal.Certificate {
	r.c.NotBefore, r.c.NotAfter, r.c.Issued, r.c.Revoked = fromMicros(r.nb), fromMicros(r.na), fromMicros(r.issued), fromMicros(r.revoked)
	r.c.Reason = certportal.RevocationReason(r.reason)
	return &r.c
}

func scanCert(s scanner) (*certportal.Certificate, error) {
	var r certRow
	if err := s.Scan(r.dest()...); err != nil {
		return nil, err
	}
	return r.cert(), nil
}

// lookupQuery is Lookup's one statement: certCols and the account's, for
// the fingerprints in a JSON array.
var lookupQuery = `SELECT ` + strings.Replace(certCols, " FROM ",
	", "+accountColsOf("a")+" FROM ", 1) +
	` WHERE c.sha256 IN (SELECT value FROM json_each(?))`

// statusesQuery is Statuses' one statement: certCols for the serials in a
// JSON array.
const statusesQuery = `SELECT ` + certCols + ` WHERE c.serial IN (SELECT value FROM json_each(?))`

// InsertCertificate records a certificate. Conflict for an existing serial
// or fingerprint, or a second valid certificate of one account; NotFound
// for an unknown account.
func (t *tx) InsertCertificate(ctx context.Context, c *certportal.Certificate) error {
	serial, sum := strings.ToUpper(c.Serial), strings.ToUpper(c.SHA256)
	der := c.DER
	if der == nil {
		der = []byte{}
	}
	_, err := t.exec(ctx, `INSERT INTO certificates (serial, account, issuer, not_before, not_after,
		thumbprint, sha256, der, issued, revoked, reason) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		serial, certportal.IDKey(c.AccountID), c.Issuer, micros(c.NotBefore), micros(c.NotAfter),
		strings.ToUpper(c.Thumbprint), sum, der, micros(c.Issued), micros(c.Revoked), int64(c.Reason))
	code, ok := isConstraint(err)
	if !ok {
		return mapError(err, "", "")
	}
	// Say which rule the certificate broke; the statement failed alone,
	// the transaction goes on.
	msg := fmt.Sprintf("the user %q already has a valid certificate; revoke it first", c.AccountID)
	why := certportal.ErrValidCertificateExists
	var one int
	switch {
	case code == sqliteConstraintForeignKey:
		return &certportal.Error{Code: certportal.NotFound, Op: op, Err: err, Message: fmt.Sprintf("no user with ID %q", c.AccountID)}
	case t.queryRow(ctx, `SELECT 1 FROM certificates WHERE serial = ?`, serial).Scan(&one) == nil:
		msg, why = fmt.Sprintf("a certificate with serial %s exists already", serial), certportal.ErrSerialTaken
	case t.queryRow(ctx, `SELECT 1 FROM certificates WHERE sha256 = ?`, sum).Scan(&one) == nil:
		msg, why = fmt.Sprintf("a certificate with SHA-256 fingerprint %s exists already", sum), certportal.ErrFingerprintTaken
	}
	return &certportal.Error{Code: certportal.Conflict, Op: op, Err: fmt.Errorf("%w: %w", why, err), Message: msg}
}

// Certificate returns the certificate with a serial (upper-case hex).
func (t *tx) Certificate(ctx context.Context, serial string) (*certportal.Certificate, error) {
	c, err := scanCert(t.queryRow(ctx, `SELECT `+certCols+` WHERE c.serial = ?`, strings.ToUpper(serial)))
	if err != nil {
		return nil, mapError(err, fmt.Sprintf("no certificate with serial %s", serial), "")
	}
	return c, nil
}

// CertificateBySHA256 returns the certificate whose DER has that SHA-256.
// This is the lookup of every request made with a client certificate.
func (t *tx) CertificateBySHA256(ctx context.Context, fingerprint string) (*certportal.Certificate, error) {
	c, err := scanCert(t.queryRow(ctx, `SELECT `+certCols+` WHERE c.sha256 = ?`, strings.ToUpper(fingerprint)))
	if err != nil {
		return nil, mapError(err, "the certificate is not one this portal issued", "")
	}
	return c, nil
}

// ListCertificates returns the certificates f selects, oldest first.
func (t *tx) ListCertificates(ctx context.Context, f certportal.CertFilter) ([]certportal.Certificate, error) {
	// Each filter is its own statement text, so SQLite plans each with
	// its index (an "? = '' OR" test would hide the index from it).
	q, args := `SELECT `+certCols+` WHERE 1`, []any{}
	if f.AccountID != "" {
		q += ` AND c.account = ?`
		args = append(args, certportal.IDKey(f.AccountID))
	}
	if f.Unrevoked {
		q += ` AND c.revoked IS NULL`
	}
	q += ` ORDER BY c.issued, c.serial`
	return t.queryCerts(ctx, q, args...)
}

// RevokeCertificate marks a certificate revoked at a time, for a reason.
// NotFound for an unknown serial, Conflict for a revoked certificate.
func (t *tx) RevokeCertificate(ctx context.Context, serial string, at time.Time, reason certportal.RevocationReason) error {
	serial = strings.ToUpper(serial)
	if at.IsZero() {
		return errf(certportal.Invalid, "a revocation needs a time")
	}
	var issuer string
	err := t.queryRow(ctx, `UPDATE certificates SET revoked = ?, reason = ? WHERE serial = ? AND revoked IS NULL RETURNING issuer`,
		micros(at), int64(reason), serial).Scan(&issuer)
	if err == nil {
		// Counted in the same transaction: the CRL check compares
		// this count with the one a stored CRL covers.
		_, err = t.exec(ctx, `INSERT INTO crl_state (issuer, revocations) VALUES (?, 1)
			ON CONFLICT (issuer) DO UPDATE SET revocations = revocations + 1`, issuer)
		return mapError(err, "", "")
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return mapError(err, "", "")
	}
	var one int
	if err := t.queryRow(ctx, `SELECT 1 FROM certificates WHERE serial = ?`, serial).Scan(&one); err != nil {
		return mapError(err, fmt.Sprintf("no certificate with serial %s", serial), "")
	}
	return &certportal.Error{Code: certportal.Conflict, Op: op,
		Message: fmt.Sprintf("the certificate with serial %s is revoked already", serial)}
}

// RevocationCount returns how many revocations of issuer's certificates
// have committed.
func (t *tx) RevocationCount(ctx context.Context, issuer string) (int64, error) {
	var n int64
	err := t.queryRow(ctx, `SELECT COALESCE((SELECT revocations FROM crl_state WHERE issuer = ?), 0)`, issuer).Scan(&n)
	return n, mapError(err, "", "")
}

// Revocations lists the revoked certificates of issuer whose notAfter is
// not before expiredBefore, in serial order, for a CRL.
func (t *tx) Revocations(ctx context.Context, issuer string, expiredBefore time.Time) ([]certportal.Revocation, error) {
	rows, err := t.query(ctx, `SELECT serial, revoked, reason FROM certificates
		WHERE issuer = ? AND revoked IS NOT NULL AND not_after >= ? ORDER BY serial`,
		issuer, expiredBefore.UnixMicro())
	if err != nil {
		return nil, mapError(err, "", "")
	}
	defer rows.Close()
	var out []certportal.Revocation
	for rows.Next() {
		var r certportal.Revocation
		var at sql.NullInt64
		var reason int64
		if err := rows.Scan(&r.Serial, &at, &reason); err != nil {
			return nil, mapError(err, "", "")
		}
		r.Time, r.Reason = fromMicros(at), certportal.RevocationReason(reason)
		out = append(out, r)
	}
	return out, mapError(rows.Err(), "", "")
}

// queryCerts runs a query that selects certCols and returns the
// certificates it finds, in the query's order.
func (t *tx) queryCerts(ctx context.Context, q string, args ...any) ([]certportal.Certificate, error) {
	rows, err := t.query(ctx, q, args...)
	if err != nil {
		return nil, mapError(err, "", "")
	}
	defer rows.Close()
	var out []certportal.Certificate
	for rows.Next() {
		c, err := scanCert(rows)
		if err != nil {
			return nil, mapError(err, "", "")
		}
		out = append(out, *c)
	}
	return out, mapError(rows.Err(), "", "")
}
