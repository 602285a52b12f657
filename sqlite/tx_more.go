package sqlite

import (
	"context"
	"database/sql"
	"encoding/base64"
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

// Audit log.

// AppendAudit appends e to the log: Seq is the last one plus one, PrevHash
// the last hash ("" for the first), Hash = certportal.AuditHash(e). The
// writer lock makes appends serial. e.Time is cut to the microsecond first,
// the precision it is stored with, so the hash verifies when read back.
func (t *tx) AppendAudit(ctx context.Context, e *certportal.AuditEvent) error {
	var seq int64
	var prev string
	err := t.queryRow(ctx, `SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1`).Scan(&seq, &prev)
	if err != nil && err != sql.ErrNoRows {
		return mapError(err, "", "")
	}
	e.Seq, e.PrevHash = seq+1, prev
	e.Time = e.Time.Truncate(time.Microsecond).UTC()
	e.HashVersion, e.AccountKey = certportal.AuditHashVersion, certportal.IDKey(e.AccountID)
	e.Hash = certportal.AuditHash(e)
	_, err = t.exec(ctx, `INSERT INTO audit (seq, time, actor, account_id, account_key, action, detail, remote,
		prev_hash, hash, hash_version) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		e.Seq, e.Time.UnixMicro(), e.Actor, e.AccountID, e.AccountKey, e.Action, e.Detail, e.Remote,
		e.PrevHash, e.Hash, e.HashVersion)
	return mapError(err, "", "the audit log changed meanwhile; try again")
}

// ListAudit returns the records f selects, in sequence order.
func (t *tx) ListAudit(ctx context.Context, f certportal.AuditFilter) ([]certportal.AuditEvent, error) {
	limit := int64(f.Limit)
	if limit <= 0 {
		limit = -1 // SQLite: no limit
	}
	q, args := `SELECT seq, time, actor, account_id, action, detail, remote, prev_hash, hash, hash_version, account_key
		FROM audit WHERE seq > ?`, []any{f.AfterSeq}
	if f.AccountID != "" {
		q += ` AND account_key = ?`
		args = append(args, certportal.IDKey(f.AccountID))
	}
	rows, err := t.query(ctx, q+` ORDER BY seq LIMIT ?`, append(args, limit)...)
	if err != nil {
		return nil, mapError(err, "", "")
	}
	defer rows.Close()
	var out []certportal.AuditEvent
	for rows.Next() {
		var e certportal.AuditEvent
		var at int64
		if err := rows.Scan(&e.Seq, &at, &e.Actor, &e.AccountID, &e.Action, &e.Detail, &e.Remote,
			&e.PrevHash, &e.Hash, &e.HashVersion, &e.AccountKey); err != nil {
			return nil, mapError(err, "", "")
		}
		e.Time = time.UnixMicro(at).UTC()
		out = append(out, e)
	}
	return out, mapError(rows.Err(), "", "")
}

// CountAudit counts the records of an account ("" = any) with an action
// ("" = any) at or after since.
func (t *tx) CountAudit(ctx context.Context, accountID, action string, since time.Time) (int, error) {
	q, args := `SELECT COUNT(*) FROM audit WHERE time >= ?`, []any{since.UnixMicro()}
	if accountID != "" {
		q += ` AND account_key = ?`
		args = append(args, certportal.IDKey(accountID))
	}
	if action != "" {
		q += ` AND action = ?`
		args = append(args, action)
	}
	var n int
	err := t.queryRow(ctx, q, args...).Scan(&n)
	return n, mapError(err, "", "")
}

// CRLs.

// keepCRLs is how many signed CRLs are kept per issuer: the latest is the
// one served; a few before it help an administrator compare.
const keepCRLs = 5

// NextCRLNumber returns the next CRL number of an issuer: 1, 2, 3, ...
// Numbers are committed with the transaction that takes them.
func (t *tx) NextCRLNumber(ctx context.Context, issuer string) (int64, error) {
	var n int64
	err := t.queryRow(ctx, `INSERT INTO crl_numbers (issuer, last) VALUES (?, 1)
		ON CONFLICT (issuer) DO UPDATE SET last = last + 1 RETURNING last`, issuer).Scan(&n)
	return n, mapError(err, "", "")
}

// SaveCRL stores a signed CRL and drops all but the latest few of its
// issuer. Conflict when that number is stored already.
func (t *tx) SaveCRL(ctx context.Context, c *certportal.CRL) error {
	_, err := t.exec(ctx, `INSERT INTO crls (issuer, number, this_update, next_update, der, revocations) VALUES (?, ?, ?, ?, ?, ?)`,
		c.Issuer, c.Number, micros(c.ThisUpdate), micros(c.NextUpdate), c.DER, c.Revocations)
	if err != nil {
		return mapError(err, "", fmt.Sprintf("CRL number %d of %s is stored already", c.Number, c.Issuer))
	}
	_, err = t.exec(ctx, `DELETE FROM crls WHERE issuer = ? AND number NOT IN
		(SELECT number FROM crls WHERE issuer = ? ORDER BY number DESC LIMIT ?)`, c.Issuer, c.Issuer, keepCRLs)
	return mapError(err, "", "")
}

// LatestCRL returns the CRL of an issuer with the highest number.
func (t *tx) LatestCRL(ctx context.Context, issuer string) (*certportal.CRL, error) {
	var c certportal.CRL
	var this, next sql.NullInt64
	err := t.queryRow(ctx, `SELECT issuer, number, this_update, next_update, der, revocations FROM crls
		WHERE issuer = ? ORDER BY number DESC LIMIT 1`, issuer).Scan(&c.Issuer, &c.Number, &this, &next, &c.DER, &c.Revocations)
	if err != nil {
		return nil, mapError(err, fmt.Sprintf("no CRL has been signed for %s yet", issuer), "")
	}
	c.ThisUpdate, c.NextUpdate = fromMicros(this), fromMicros(next)
	return &c, nil
}

// AuditV2From is the first sequence number with hash version 2.
func (t *tx) AuditV2From(ctx context.Context) (int64, error) {
	var n int64
	err := t.queryRow(ctx, `SELECT v2_from FROM audit_meta WHERE id = 1`).Scan(&n)
	return n, mapError(err, "the audit log's hash versions are not recorded", "")
}

// LastAudit returns the newest record's sequence number and hash.
func (t *tx) LastAudit(ctx context.Context) (int64, string, error) {
	var seq int64
	var hash string
	err := t.queryRow(ctx, `SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1`).Scan(&seq, &hash)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, "", nil
	}
	return seq, hash, mapError(err, "", "")
}

// AddCheckpoint stores a signed checkpoint.
func (t *tx) AddCheckpoint(ctx context.Context, c *certportal.AuditCheckpoint) error {
	_, err := t.exec(ctx, `INSERT INTO audit_checkpoints (seq, hash, time, public_key, signature) VALUES (?, ?, ?, ?, ?)`,
		c.Seq, c.Hash, c.Time.UTC().Format(time.RFC3339Nano), base64.StdEncoding.EncodeToString(c.PublicKey), base64.StdEncoding.EncodeToString(c.Signature))
	return mapError(err, "", "a checkpoint of that record exists already")
}

// Checkpoints lists the stored checkpoints in sequence order.
func (t *tx) Checkpoints(ctx context.Context) ([]certportal.AuditCheckpoint, error) {
	rows, err := t.query(ctx, `SELECT seq, hash, time, public_key, signature FROM audit_checkpoints ORDER BY seq`)
	if err != nil {
		return nil, mapError(err, "", "")
	}
	defer rows.Close()
	var out []certportal.AuditCheckpoint
	for rows.Next() {
		var seq int64
		var hash, at, pub, sig string
		if err := rows.Scan(&seq, &hash, &at, &pub, &sig); err != nil {
			return nil, mapError(err, "", "")
		}
		c, err := certportal.CheckpointFromColumns(seq, hash, at, pub, sig)
		if err != nil {
			return nil, err
		}
		out = append(out, *c)
	}
	return out, mapError(rows.Err(), "", "")
}
