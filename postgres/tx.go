package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/certportal/certportal"
)

// tx is a certportal.Tx over one pgx transaction. pgx prepares and caches
// each query text per connection by itself, so a hot query is parsed once
// per connection.
//
// A statement that fails inside a PostgreSQL transaction aborts it: every
// later statement fails until the rollback. The inserts that may meet a
// duplicate in normal operation therefore use ON CONFLICT DO NOTHING and
// report the Conflict themselves, so the transaction stays usable (as in
// the sqlite store) and can, for instance, tell which rule was broken.
type tx struct {
	tx pgx.Tx
}

var _ certportal.Tx = (*tx)(nil)

// ts is a time as a query argument: the zero time is NULL.
func ts(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t
}

// fromTS is a scanned, possibly NULL, time in UTC.
func fromTS(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return t.UTC()
}

// notFoundIfNone returns NotFound (with message) when a statement changed
// no row.
func notFoundIfNone(n int64, message string) error {
	if n == 0 {
		return errf(certportal.NotFound, "%s", message)
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
	exp, created, updated *time.Time
	method, status, role  string
}

func (r *accountRow) dest() []any {
	return []any{&r.a.ID, &r.a.Email, &r.a.PasswordHash, &r.exp, &r.method, &r.status, &r.created, &r.updated, &r.role}
}

func (r *accountRow) account() *certportal.Account {
	r.a.PasswordExpires, r.a.Created, r.a.Updated = fromTS(r.exp), fromTS(r.created), fromTS(r.updated)
	r.a.Method, r.a.Status = certportal.SignInMethod(r.method), certportal.AccountStatus(r.status)
	r.a.Role = certportal.Role(r.role)
	return &r.a
}

func scanAccount(s pgx.Row) (*certportal.Account, error) {
	var r accountRow
	if err := s.Scan(r.dest()...); err != nil {
		return nil, err
	}
	return r.account(), nil
}

// CreateAccount adds an account; Conflict when its ID is taken in any case.
func (t *tx) CreateAccount(ctx context.Context, a *certportal.Account) error {
	tag, err := t.tx.Exec(ctx, `INSERT INTO accounts (id_key, `+accountCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
		ON CONFLICT DO NOTHING`,
		certportal.IDKey(a.ID), a.ID, a.Email, a.PasswordHash, ts(a.PasswordExpires),
		string(a.Method), string(a.Status), ts(a.Created), ts(a.Updated), string(a.RoleOf()))
	if err != nil {
		return mapError(err, "", "")
	}
	if tag.RowsAffected() == 0 {
		return errf(certportal.Conflict, "the user ID %q is taken", a.ID)
	}
	return nil
}

// Account returns the account with id (any case).
func (t *tx) Account(ctx context.Context, id string) (*certportal.Account, error) {
	a, err := scanAccount(t.tx.QueryRow(ctx, `SELECT `+accountCols+` FROM accounts WHERE id_key = $1`, certportal.IDKey(id)))
	if err != nil {
		return nil, mapError(err, fmt.Sprintf("no user with ID %q", id), "")
	}
	return a, nil
}

// LockAccount reads an account and locks its row until the transaction
// ends (SELECT ... FOR UPDATE): another transaction, of this replica or
// another, that locks the same account waits, then reads what this one
// committed.
func (t *tx) LockAccount(ctx context.Context, id string) (*certportal.Account, error) {
	a, err := scanAccount(t.tx.QueryRow(ctx, `SELECT `+accountCols+` FROM accounts WHERE id_key = $1 FOR UPDATE`,
		certportal.IDKey(id)))
	if err != nil {
		return nil, mapError(err, fmt.Sprintf("no user with ID %q", id), "")
	}
	return a, nil
}

// UpdateAccount writes every field of a but its ID and Created.
func (t *tx) UpdateAccount(ctx context.Context, a *certportal.Account) error {
	tag, err := t.tx.Exec(ctx, `UPDATE accounts SET email = $1, password_hash = $2, password_expires = $3,
		method = $4, status = $5, updated = $6, role = $7 WHERE id_key = $8`,
		a.Email, a.PasswordHash, ts(a.PasswordExpires), string(a.Method), string(a.Status),
		ts(a.Updated), string(a.RoleOf()), certportal.IDKey(a.ID))
	if err != nil {
		return mapError(err, "", "")
	}
	return notFoundIfNone(tag.RowsAffected(), fmt.Sprintf("no user with ID %q", a.ID))
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
	nb, na, issued, revoked *time.Time
	reason                  int32
}

func (r *certRow) dest() []any {
	return []any{&r.c.Serial, &r.c.AccountID, &r.c.Issuer, &r.nb, &r.na, &r.c.Thumbprint, &r.c.SHA256, &r.c.DER,
		&r.issued, &r.revoked, &r.reason}
}

func (r *certRow) cert() *certportal.Certificate {
	r.c.NotBefore, r.c.NotAfter, r.c.Issued, r.c.Revoked = fromTS(r.nb), fromTS(r.na), fromTS(r.issued), fromTS(r.revoked)
	r.c.Reason = certportal.RevocationReason(r.reason)
	return &r.c
}

func scanCert(s pgx.Row) (*certportal.Certificate, error) {
	var r certRow
	if err := s.Scan(r.dest()...); err != nil {
		return nil, err
	}
	return r.cert(), nil
}

// lookupQuery is Lookup's one statement: certCols and the account's, for
// an array of fingerprints.
var lookupQuery = `SELECT ` + strings.Replace(certCols, " FROM ",
	", "+accountColsOf("a")+" FROM ", 1) +
	` WHERE c.sha256 = ANY($1)`

// statusesQuery is Statuses' one statement: certCols for an array of
// serials.
const statusesQuery = `SELECT ` + certCols + ` WHERE c.serial = ANY($1)`

// InsertCertificate records a certificate. Conflict for an existing serial
// or fingerprint, or a second valid certificate of one account; NotFound
// for an unknown account. A Conflict leaves the transaction usable.
func (t *tx) InsertCertificate(ctx context.Context, c *certportal.Certificate) error {
	serial, sum, key := strings.ToUpper(c.Serial), strings.ToUpper(c.SHA256), certportal.IDKey(c.AccountID)
	der := c.DER
	if der == nil {
		der = []byte{}
	}
	// The account is checked in the statement, so an unknown one does not
	// abort the transaction with a foreign-key violation either.
	tag, err := t.tx.Exec(ctx, `INSERT INTO certificates (serial, account, issuer, not_before, not_after,
		thumbprint, sha256, der, issued, revoked, reason)
		SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11
		WHERE EXISTS (SELECT 1 FROM accounts WHERE id_key = $2)
		ON CONFLICT DO NOTHING`,
		serial, key, c.Issuer, ts(c.NotBefore), ts(c.NotAfter),
		strings.ToUpper(c.Thumbprint), sum, der, ts(c.Issued), ts(c.Revoked), int32(c.Reason))
	if err != nil {
		return mapError(err, "", fmt.Sprintf("the certificate %s conflicts with one in the database", serial))
	}
	if tag.RowsAffected() == 1 {
		return nil
	}
	// Say which rule the certificate broke.
	var account, serialTaken, sumTaken bool
	err = t.tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM accounts WHERE id_key = $1),
		EXISTS (SELECT 1 FROM certificates WHERE serial = $2),
		EXISTS (SELECT 1 FROM certificates WHERE sha256 = $3)`, key, serial, sum).Scan(&account, &serialTaken, &sumTaken)
	if err != nil {
		return mapError(err, "", "")
	}
	switch {
	case !account:
		return errf(certportal.NotFound, "no user with ID %q", c.AccountID)
	case serialTaken:
		return conflict(certportal.ErrSerialTaken, "a certificate with serial %s exists already", serial)
	case sumTaken:
		return conflict(certportal.ErrFingerprintTaken, "a certificate with SHA-256 fingerprint %s exists already", sum)
	}
	return conflict(certportal.ErrValidCertificateExists, "the user %q already has a valid certificate; revoke it first", c.AccountID)
}

// conflict is a Conflict error whose cause is why.
func conflict(why error, format string, args ...any) error {
	return &certportal.Error{Code: certportal.Conflict, Op: op, Err: why, Message: fmt.Sprintf(format, args...)}
}

// Certificate returns the certificate with a serial (upper-case hex).
func (t *tx) Certificate(ctx context.Context, serial string) (*certportal.Certificate, error) {
	c, err := scanCert(t.tx.QueryRow(ctx, `SELECT `+certCols+` WHERE c.serial = $1`, strings.ToUpper(serial)))
	if err != nil {
		return nil, mapError(err, fmt.Sprintf("no certificate with serial %s", serial), "")
	}
	return c, nil
}

// CertificateBySHA256 returns the certificate whose DER has that SHA-256.
// This is the lookup of every request made with a client certificate.
func (t *tx) CertificateBySHA256(ctx context.Context, fingerprint string) (*certportal.Certificate, error) {
	c, err := scanCert(t.tx.QueryRow(ctx, `SELECT `+certCols+` WHERE c.sha256 = $1`, strings.ToUpper(fingerprint)))
	if err != nil {
		return nil, mapError(err, "the certificate is not one this portal issued", "")
	}
	return c, nil
}

// ListCertificates returns the certificates f selects, oldest first.
func (t *tx) ListCertificates(ctx context.Context, f certportal.CertFilter) ([]certportal.Certificate, error) {
	q, args := `SELECT `+certCols+` WHERE true`, []any{}
	if f.AccountID != "" {
		q += ` AND c.account = $1`
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
	err := t.tx.QueryRow(ctx, `UPDATE certificates SET revoked = $1, reason = $2 WHERE serial = $3 AND revoked IS NULL RETURNING issuer`,
		at, int32(reason), serial).Scan(&issuer)
	if err == nil {
		// Counted in the same transaction: the CRL check compares this
		// count with the one a stored CRL covers. The row stays locked
		// until the commit, so counts follow the commit order.
		_, err = t.tx.Exec(ctx, `INSERT INTO crl_state (issuer, revocations) VALUES ($1, 1)
			ON CONFLICT (issuer) DO UPDATE SET revocations = crl_state.revocations + 1`, issuer)
		return mapError(err, "", "")
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return mapError(err, "", "")
	}
	var one int
	if err := t.tx.QueryRow(ctx, `SELECT 1 FROM certificates WHERE serial = $1`, serial).Scan(&one); err != nil {
		return mapError(err, fmt.Sprintf("no certificate with serial %s", serial), "")
	}
	return errf(certportal.Conflict, "the certificate with serial %s is revoked already", serial)
}

// RevocationCount returns how many revocations of issuer's certificates
// have committed.
func (t *tx) RevocationCount(ctx context.Context, issuer string) (int64, error) {
	var n int64
	err := t.tx.QueryRow(ctx, `SELECT COALESCE((SELECT revocations FROM crl_state WHERE issuer = $1), 0)`, issuer).Scan(&n)
	return n, mapError(err, "", "")
}

// Revocations lists the revoked certificates of issuer whose notAfter is
// not before expiredBefore, in serial order, for a CRL.
func (t *tx) Revocations(ctx context.Context, issuer string, expiredBefore time.Time) ([]certportal.Revocation, error) {
	rows, err := t.tx.Query(ctx, `SELECT serial, revoked, reason FROM certificates
		WHERE issuer = $1 AND revoked IS NOT NULL AND not_after >= $2 ORDER BY serial`,
		issuer, expiredBefore)
	if err != nil {
		return nil, mapError(err, "", "")
	}
	defer rows.Close()
	var out []certportal.Revocation
	for rows.Next() {
		var r certportal.Revocation
		var at *time.Time
		var reason int32
		if err := rows.Scan(&r.Serial, &at, &reason); err != nil {
			return nil, mapError(err, "", "")
		}
		r.Time, r.Reason = fromTS(at), certportal.RevocationReason(reason)
		out = append(out, r)
	}
	return out, mapError(rows.Err(), "", "")
}

// queryCerts runs a query that selects certCols and returns the
// certificates it finds, in the query's order.
func (t *tx) queryCerts(ctx context.Context, q string, args ...any) ([]certportal.Certificate, error) {
	rows, err := t.tx.Query(ctx, q, args...)
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
