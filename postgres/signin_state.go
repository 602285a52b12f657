package postgres

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/certportal/certportal"
)

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
	WHERE s.id = $1`

// sessionRow receives the session columns of lookupSessionQuery.
type sessionRow struct {
	s                      certportal.Session
	created, seen, expires *time.Time
}

func (r *sessionRow) dest() []any {
	return []any{&r.s.ID, &r.s.AccountID, &r.s.CertSerial, &r.s.Remote, &r.created, &r.seen, &r.expires}
}

func (r *sessionRow) session() *certportal.Session {
	r.s.Created, r.s.LastSeen, r.s.Expires = fromTS(r.created), fromTS(r.seen), fromTS(r.expires)
	return &r.s
}

// certStatusRow receives the certificate columns of lookupSessionQuery.
type certStatusRow struct {
	found             bool
	notAfter, revoked *time.Time
	reason            *int32
}

func (r *certStatusRow) dest() []any { return []any{&r.found, &r.notAfter, &r.revoked, &r.reason} }

// cert is the bound certificate's status, nil when there is none.
func (r *certStatusRow) cert(sess *certportal.Session) *certportal.Certificate {
	if !r.found {
		return nil
	}
	c := &certportal.Certificate{Serial: sess.CertSerial, AccountID: sess.AccountID, NotAfter: fromTS(r.notAfter), Revoked: fromTS(r.revoked)}
	if r.reason != nil {
		c.Reason = certportal.RevocationReason(*r.reason)
	}
	return c
}

// CreateSession records a session; NotFound for an unknown account,
// Conflict for an ID in use.
func (t *tx) CreateSession(ctx context.Context, s *certportal.Session) error {
	key := certportal.IDKey(s.AccountID)
	tag, err := t.tx.Exec(ctx, `INSERT INTO sessions (id, account, cert_serial, remote, created, last_seen, expires)
		SELECT $1, $2, $3, $4, $5, $6, $7 WHERE EXISTS (SELECT 1 FROM accounts WHERE id_key = $2)
		ON CONFLICT DO NOTHING`,
		s.ID, key, s.CertSerial, s.Remote, ts(s.Created), ts(s.LastSeen), ts(s.Expires))
	if err != nil {
		return mapError(err, "", "the session exists already")
	}
	if tag.RowsAffected() == 1 {
		return nil
	}
	return t.refused(ctx, key, s.AccountID, "the session exists already")
}

// refused explains an insert that ON CONFLICT or the account check left
// out: NotFound when the account does not exist, else Conflict.
func (t *tx) refused(ctx context.Context, key, accountID, conflict string) error {
	var exists bool
	if err := t.tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM accounts WHERE id_key = $1)`, key).Scan(&exists); err != nil {
		return mapError(err, "", "")
	}
	if !exists {
		return errf(certportal.NotFound, "no user with ID %q", accountID)
	}
	return errf(certportal.Conflict, "%s", conflict)
}

// Session returns a session by its (hashed) ID.
func (t *tx) Session(ctx context.Context, id string) (*certportal.Session, error) {
	var s certportal.Session
	var created, seen, expires *time.Time
	err := t.tx.QueryRow(ctx, `SELECT `+sessionCols+` WHERE s.id = $1`, id).
		Scan(&s.ID, &s.AccountID, &s.CertSerial, &s.Remote, &created, &seen, &expires)
	if err != nil {
		return nil, mapError(err, "the session has ended; sign in again", "")
	}
	s.Created, s.LastSeen, s.Expires = fromTS(created), fromTS(seen), fromTS(expires)
	return &s, nil
}

// TouchSession sets when a session was last seen.
func (t *tx) TouchSession(ctx context.Context, id string, at time.Time) error {
	tag, err := t.tx.Exec(ctx, `UPDATE sessions SET last_seen = $1 WHERE id = $2`, ts(at), id)
	if err != nil {
		return mapError(err, "", "")
	}
	return notFoundIfNone(tag.RowsAffected(), "the session has ended; sign in again")
}

// DeleteSession ends a session; ending an ended one is not an error.
func (t *tx) DeleteSession(ctx context.Context, id string) error {
	_, err := t.tx.Exec(ctx, `DELETE FROM sessions WHERE id = $1`, id)
	return mapError(err, "", "")
}

// DeleteSessions ends every session of an account but keep ("" = all).
func (t *tx) DeleteSessions(ctx context.Context, accountID, keep string) error {
	_, err := t.tx.Exec(ctx, `DELETE FROM sessions WHERE account = $1 AND id <> $2`, certportal.IDKey(accountID), keep)
	return mapError(err, "", "")
}

// DeleteExpiredSessions removes the sessions whose absolute expiry is not
// after now.
func (t *tx) DeleteExpiredSessions(ctx context.Context, now time.Time) error {
	_, err := t.tx.Exec(ctx, `DELETE FROM sessions WHERE expires <= $1`, now)
	return mapError(err, "", "")
}

// TrimSessions ends the oldest sessions of an account but keep, so that n
// remain with keep.
func (t *tx) TrimSessions(ctx context.Context, accountID, keep string, n int) error {
	_, err := t.tx.Exec(ctx, `DELETE FROM sessions WHERE account = $1 AND id <> $2 AND id NOT IN
		(SELECT id FROM sessions WHERE account = $1 AND id <> $2 ORDER BY created DESC, id DESC LIMIT $3)`,
		certportal.IDKey(accountID), keep, othersKept(keep, n))
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

// LockAttempts takes a transaction-scoped advisory lock on (account,
// remote): attempts from every replica for the same pair queue there, and
// each one's later statements (READ COMMITTED) see what the one before
// committed.
func (t *tx) LockAttempts(ctx context.Context, accountKey, remote string) error {
	_, err := t.tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended($1, 7217))`,
		certportal.IDKey(accountKey)+" "+remote)
	return mapError(err, "", "")
}

// AddFailure records a wrong password for (account, remote) at a time.
func (t *tx) AddFailure(ctx context.Context, accountKey, remote string, at time.Time) error {
	_, err := t.tx.Exec(ctx, `INSERT INTO failures (account_key, remote, at) VALUES ($1, $2, $3)`,
		certportal.IDKey(accountKey), remote, at)
	return mapError(err, "", "")
}

// CountFailures counts the failures of (account, remote) at or after since.
func (t *tx) CountFailures(ctx context.Context, accountKey, remote string, since time.Time) (int, error) {
	var n int
	err := t.tx.QueryRow(ctx, `SELECT count(*) FROM failures WHERE account_key = $1 AND remote = $2 AND at >= $3`,
		certportal.IDKey(accountKey), remote, since).Scan(&n)
	return n, mapError(err, "", "")
}

// ClearFailures forgets the failures of (account, remote).
func (t *tx) ClearFailures(ctx context.Context, accountKey, remote string) error {
	_, err := t.tx.Exec(ctx, `DELETE FROM failures WHERE account_key = $1 AND remote = $2`, certportal.IDKey(accountKey), remote)
	return mapError(err, "", "")
}

// SetLockout locks (account, remote) until a time, replacing any lockout.
func (t *tx) SetLockout(ctx context.Context, accountKey, remote string, until time.Time) error {
	_, err := t.tx.Exec(ctx, `INSERT INTO lockouts (account_key, remote, until) VALUES ($1, $2, $3)
		ON CONFLICT (account_key, remote) DO UPDATE SET until = excluded.until`,
		certportal.IDKey(accountKey), remote, until)
	return mapError(err, "", "")
}

// LockedUntil returns the end of the lockout of (account, remote), or the
// zero time when there is none.
func (t *tx) LockedUntil(ctx context.Context, accountKey, remote string) (time.Time, error) {
	var until time.Time
	err := t.tx.QueryRow(ctx, `SELECT until FROM lockouts WHERE account_key = $1 AND remote = $2`,
		certportal.IDKey(accountKey), remote).Scan(&until)
	if errors.Is(err, pgx.ErrNoRows) {
		return time.Time{}, nil
	}
	if err != nil {
		return time.Time{}, mapError(err, "", "")
	}
	return until.UTC(), nil
}

// Unlock lifts every lockout and forgets every failure of an account.
func (t *tx) Unlock(ctx context.Context, accountKey string) error {
	key := certportal.IDKey(accountKey)
	if _, err := t.tx.Exec(ctx, `DELETE FROM lockouts WHERE account_key = $1`, key); err != nil {
		return mapError(err, "", "")
	}
	_, err := t.tx.Exec(ctx, `DELETE FROM failures WHERE account_key = $1`, key)
	return mapError(err, "", "")
}

// Tickets.

// CreateTicket records a recovery ticket; NotFound for an unknown account,
// Conflict for an ID in use.
func (t *tx) CreateTicket(ctx context.Context, tk *certportal.Ticket) error {
	key := certportal.IDKey(tk.AccountID)
	tag, err := t.tx.Exec(ctx, `INSERT INTO tickets (id, account, expires)
		SELECT $1, $2, $3 WHERE EXISTS (SELECT 1 FROM accounts WHERE id_key = $2)
		ON CONFLICT DO NOTHING`, tk.ID, key, ts(tk.Expires))
	if err != nil {
		return mapError(err, "", "the ticket exists already")
	}
	if tag.RowsAffected() == 1 {
		return nil
	}
	return t.refused(ctx, key, tk.AccountID, "the ticket exists already")
}

// Ticket reads a ticket without consuming it (and without a lock).
func (t *tx) Ticket(ctx context.Context, id string) (*certportal.Ticket, error) {
	var tk certportal.Ticket
	var expires *time.Time
	err := t.tx.QueryRow(ctx, `SELECT id, account, expires FROM tickets WHERE id = $1`, id).Scan(&tk.ID, &tk.AccountID, &expires)
	if err != nil {
		return nil, mapError(err, "the confirmation has expired or was used already; start the recovery again", "")
	}
	tk.Expires = fromTS(expires)
	return &tk, nil
}

// DeleteTickets deletes every ticket of an account.
func (t *tx) DeleteTickets(ctx context.Context, accountID string) error {
	_, err := t.tx.Exec(ctx, `DELETE FROM tickets WHERE account = $1`, certportal.IDKey(accountID))
	return mapError(err, "", "")
}

// ConsumeTicket deletes a ticket and returns it, with the account's ID as
// registered; NotFound when it was never issued or is used already. Two
// replicas consuming one ticket at once: one gets it, the other waits for
// the row and then finds it gone.
func (t *tx) ConsumeTicket(ctx context.Context, id string) (*certportal.Ticket, error) {
	var tk certportal.Ticket
	var expires *time.Time
	err := t.tx.QueryRow(ctx, `WITH d AS (DELETE FROM tickets WHERE id = $1 RETURNING id, account, expires)
		SELECT d.id, COALESCE(a.id, d.account), d.expires FROM d LEFT JOIN accounts a ON a.id_key = d.account`, id).
		Scan(&tk.ID, &tk.AccountID, &expires)
	if err != nil {
		return nil, mapError(err, "the confirmation has expired or was used already; start the recovery again", "")
	}
	tk.Expires = fromTS(expires)
	return &tk, nil
}
