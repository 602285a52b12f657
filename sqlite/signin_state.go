package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/certportal/certportal"
)

// errf returns a *certportal.Error of this package.
func errf(code certportal.ErrorCode, format string, args ...any) error {
	return &certportal.Error{Code: code, Op: op, Message: fmt.Sprintf(format, args...)}
}

// Sessions.

const sessionCols = `s.id, a.id, s.cert_serial, s.remote, s.created, s.last_seen, s.expires
	FROM sessions s JOIN accounts a ON a.id_key = s.account`

// lookupSessionQuery is LookupSession's one statement: the session, its
// account, and the status of the certificate it is bound to, if any.
var lookupSessionQuery = `SELECT s.id, a.id, s.cert_serial, s.remote, s.created, s.last_seen, s.expires,
	` + accountColsOf("a") + `,
	c.serial IS NOT NULL, c.not_after, c.revoked, c.reason
	FROM sessions s JOIN accounts a ON a.id_key = s.account
	LEFT JOIN certificates c ON s.cert_serial <> '' AND c.serial = s.cert_serial
	WHERE s.id = ?`

// sessionRow receives the session columns of lookupSessionQuery.
type sessionRow struct {
	s                      certportal.Session
	created, seen, expires sql.NullInt64
}

func (r *sessionRow) dest() []any {
	return []any{&r.s.ID, &r.s.AccountID, &r.s.CertSerial, &r.s.Remote, &r.created, &r.seen, &r.expires}
}

func (r *sessionRow) session() *certportal.Session {
	r.s.Created, r.s.LastSeen, r.s.Expires = fromMicros(r.created), fromMicros(r.seen), fromMicros(r.expires)
	return &r.s
}

// certStatusRow receives the certificate columns of lookupSessionQuery.
type certStatusRow struct {
	found             bool
	notAfter, revoked sql.NullInt64
	reason            sql.NullInt64
}

func (r *certStatusRow) dest() []any { return []any{&r.found, &r.notAfter, &r.revoked, &r.reason} }

// cert is the bound certificate's status, nil when there is none.
func (r *certStatusRow) cert(sess *certportal.Session) *certportal.Certificate {
	if !r.found {
		return nil
	}
	c := &certportal.Certificate{Serial: sess.CertSerial, AccountID: sess.AccountID, NotAfter: fromMicros(r.notAfter), Revoked: fromMicros(r.revoked)}
	if r.reason.Valid {
		c.Reason = certportal.RevocationReason(r.reason.Int64)
	}
	return c
}

// CreateSession records a session; NotFound for an unknown account.
func (t *tx) CreateSession(ctx context.Context, s *certportal.Session) error {
	_, err := t.exec(ctx, `INSERT INTO sessions (id, account, cert_serial, remote, created, last_seen, expires)
		VALUES (?, ?, ?, ?, ?, ?, ?)`,
		s.ID, certportal.IDKey(s.AccountID), s.CertSerial, s.Remote, micros(s.Created), micros(s.LastSeen), micros(s.Expires))
	if code, ok := isConstraint(err); ok && code == sqliteConstraintForeignKey {
		return &certportal.Error{Code: certportal.NotFound, Op: op, Err: err, Message: fmt.Sprintf("no user with ID %q", s.AccountID)}
	}
	return mapError(err, "", "the session exists already")
}

// Session returns a session by its (hashed) ID.
func (t *tx) Session(ctx context.Context, id string) (*certportal.Session, error) {
	var s certportal.Session
	var created, seen, expires sql.NullInt64
	err := t.queryRow(ctx, `SELECT `+sessionCols+` WHERE s.id = ?`, id).
		Scan(&s.ID, &s.AccountID, &s.CertSerial, &s.Remote, &created, &seen, &expires)
	if err != nil {
		return nil, mapError(err, "the session has ended; sign in again", "")
	}
	s.Created, s.LastSeen, s.Expires = fromMicros(created), fromMicros(seen), fromMicros(expires)
	return &s, nil
}

// TouchSession sets when a session was last seen.
func (t *tx) TouchSession(ctx context.Context, id string, at time.Time) error {
	res, err := t.exec(ctx, `UPDATE sessions SET last_seen = ? WHERE id = ?`, micros(at), id)
	if err != nil {
		return mapError(err, "", "")
	}
	return affected(res, "the session has ended; sign in again")
}

// DeleteSession ends a session; ending an ended one is not an error.
func (t *tx) DeleteSession(ctx context.Context, id string) error {
	_, err := t.exec(ctx, `DELETE FROM sessions WHERE id = ?`, id)
	return mapError(err, "", "")
}

// DeleteSessions ends every session of an account but keep ("" = all).
func (t *tx) DeleteSessions(ctx context.Context, accountID, keep string) error {
	_, err := t.exec(ctx, `DELETE FROM sessions WHERE account = ? AND id <> ?`, certportal.IDKey(accountID), keep)
	return mapError(err, "", "")
}

// DeleteExpiredSessions removes the sessions whose absolute expiry is not
// after now.
func (t *tx) DeleteExpiredSessions(ctx context.Context, now time.Time) error {
	_, err := t.exec(ctx, `DELETE FROM sessions WHERE expires <= ?`, now.UnixMicro())
	return mapError(err, "", "")
}

// TrimSessions ends the oldest sessions of an account but keep, so that n
// remain with keep.
func (t *tx) TrimSessions(ctx context.Context, accountID, keep string, n int) error {
	key := certportal.IDKey(accountID)
	_, err := t.exec(ctx, `DELETE FROM sessions WHERE account = ? AND id <> ? AND id NOT IN
		(SELECT id FROM sessions WHERE account = ? AND id <> ? ORDER BY created DESC, id DESC LIMIT ?)`,
		key, keep, key, keep, othersKept(keep, n))
	return mapError(err, "", "")
}

// othersKept is how many sessions TrimSessions keeps besides keep.
func othersKept(keep string, n int) int {
	if keep != "" {
		n--
	}
	return max(n, 0)
}

// Failures and lockouts. Keys are lower-cased like account IDs, so callers
// may pass either.

// LockAttempts is a no-op: an Update holds SQLite's one write lock from
// BEGIN IMMEDIATE to its end, across connections and processes, which
// serialises every attempt already.
func (t *tx) LockAttempts(ctx context.Context, accountKey, remote string) error { return nil }

// AddFailure records a wrong password for (account, remote) at a time.
func (t *tx) AddFailure(ctx context.Context, accountKey, remote string, at time.Time) error {
	_, err := t.exec(ctx, `INSERT INTO failures (account_key, remote, at) VALUES (?, ?, ?)`,
		certportal.IDKey(accountKey), remote, at.UnixMicro())
	return mapError(err, "", "")
}

// CountFailures counts the failures of (account, remote) at or after since.
func (t *tx) CountFailures(ctx context.Context, accountKey, remote string, since time.Time) (int, error) {
	var n int
	err := t.queryRow(ctx, `SELECT COUNT(*) FROM failures WHERE account_key = ? AND remote = ? AND at >= ?`,
		certportal.IDKey(accountKey), remote, since.UnixMicro()).Scan(&n)
	return n, mapError(err, "", "")
}

// ClearFailures forgets the failures of (account, remote).
func (t *tx) ClearFailures(ctx context.Context, accountKey, remote string) error {
	_, err := t.exec(ctx, `DELETE FROM failures WHERE account_key = ? AND remote = ?`, certportal.IDKey(accountKey), remote)
	return mapError(err, "", "")
}

// SetLockout locks (account, remote) until a time, replacing any lockout.
func (t *tx) SetLockout(ctx context.Context, accountKey, remote string, until time.Time) error {
	_, err := t.exec(ctx, `INSERT INTO lockouts (account_key, remote, until) VALUES (?, ?, ?)
		ON CONFLICT (account_key, remote) DO UPDATE SET until = excluded.until`,
		certportal.IDKey(accountKey), remote, until.UnixMicro())
	return mapError(err, "", "")
}

// LockedUntil returns the end of the lockout of (account, remote), or the
// zero time when there is none.
func (t *tx) LockedUntil(ctx context.Context, accountKey, remote string) (time.Time, error) {
	var until sql.NullInt64
	err := t.queryRow(ctx, `SELECT until FROM lockouts WHERE account_key = ? AND remote = ?`,
		certportal.IDKey(accountKey), remote).Scan(&until)
	if err == sql.ErrNoRows {
		return time.Time{}, nil
	}
	if err != nil {
		return time.Time{}, mapError(err, "", "")
	}
	return fromMicros(until), nil
}

// Unlock lifts every lockout and forgets every failure of an account.
func (t *tx) Unlock(ctx context.Context, accountKey string) error {
	key := certportal.IDKey(accountKey)
	if _, err := t.exec(ctx, `DELETE FROM lockouts WHERE account_key = ?`, key); err != nil {
		return mapError(err, "", "")
	}
	_, err := t.exec(ctx, `DELETE FROM failures WHERE account_key = ?`, key)
	return mapError(err, "", "")
}

// Tickets.

// CreateTicket records a recovery ticket; NotFound for an unknown account.
func (t *tx) CreateTicket(ctx context.Context, tk *certportal.Ticket) error {
	_, err := t.exec(ctx, `INSERT INTO tickets (id, account, expires) VALUES (?, ?, ?)`,
		tk.ID, certportal.IDKey(tk.AccountID), micros(tk.Expires))
	if code, ok := isConstraint(err); ok && code == sqliteConstraintForeignKey {
		return &certportal.Error{Code: certportal.NotFound, Op: op, Err: err, Message: fmt.Sprintf("no user with ID %q", tk.AccountID)}
	}
	return mapError(err, "", "the ticket exists already")
}

// Ticket reads a ticket without consuming it.
func (t *tx) Ticket(ctx context.Context, id string) (*certportal.Ticket, error) {
	var tk certportal.Ticket
	var expires sql.NullInt64
	err := t.queryRow(ctx, `SELECT id, account, expires FROM tickets WHERE id = ?`, id).Scan(&tk.ID, &tk.AccountID, &expires)
	if err != nil {
		return nil, mapError(err, "the confirmation has expired or was used already; start the recovery again", "")
	}
	tk.Expires = fromMicros(expires)
	return &tk, nil
}

// DeleteTickets deletes every ticket of an account.
func (t *tx) DeleteTickets(ctx context.Context, accountID string) error {
	_, err := t.exec(ctx, `DELETE FROM tickets WHERE account = ?`, certportal.IDKey(accountID))
	return mapError(err, "", "")
}

// ConsumeTicket deletes a ticket and returns it; NotFound when it was never
// issued or is used already.
func (t *tx) ConsumeTicket(ctx context.Context, id string) (*certportal.Ticket, error) {
	var tk certportal.Ticket
	var expires sql.NullInt64
	err := t.queryRow(ctx, `DELETE FROM tickets WHERE id = ? RETURNING id, account, expires`, id).
		Scan(&tk.ID, &tk.AccountID, &expires)
	if err != nil {
		return nil, mapError(err, "the confirmation has expired or was used already; start the recovery again", "")
	}
	tk.Expires = fromMicros(expires)
	// Return the ID as registered, as every other read does.
	var reg string
	switch err := t.queryRow(ctx, `SELECT id FROM accounts WHERE id_key = ?`, tk.AccountID).Scan(&reg); {
	case err == nil:
		tk.AccountID = reg
	case !errors.Is(err, sql.ErrNoRows): // an account that is gone keeps the key
		return nil, mapError(err, "", "")
	}
	return &tk, nil
}
