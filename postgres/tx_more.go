package postgres

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
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

// Audit log.

// AppendAudit appends e to the log: Seq is the last one plus one, PrevHash
// the last hash ("" for the first), Hash = certportal.AuditHash(e).
//
// The first statement advances the one row of audit_head and so locks it
// until the transaction ends: appends of every replica queue there, and
// each reads the head its predecessor committed (READ COMMITTED re-reads
// the row after the wait). e.Time is cut to the microsecond first, the
// precision it is stored with, so the hash verifies when read back.
func (t *tx) AppendAudit(ctx context.Context, e *certportal.AuditEvent) error {
	var seq int64
	var prev string
	err := t.tx.QueryRow(ctx, `UPDATE audit_head SET seq = seq + 1 WHERE id = 1 RETURNING seq, hash`).Scan(&seq, &prev)
	if err != nil {
		return mapError(err, "", "")
	}
	e.Seq, e.PrevHash = seq, prev
	e.Time = e.Time.Truncate(time.Microsecond).UTC()
	e.HashVersion, e.AccountKey = certportal.AuditHashVersion, certportal.IDKey(e.AccountID)
	e.Hash = certportal.AuditHash(e)
	_, err = t.tx.Exec(ctx, `WITH ins AS (INSERT INTO audit (seq, time, actor, account_id, account_key, action, detail,
		remote, prev_hash, hash, hash_version) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11))
		UPDATE audit_head SET hash = $10 WHERE id = 1`,
		e.Seq, e.Time, e.Actor, e.AccountID, e.AccountKey, e.Action, e.Detail, e.Remote,
		e.PrevHash, e.Hash, e.HashVersion)
	return mapError(err, "", "the audit log changed meanwhile; try again")
}

// ListAudit returns the records f selects, in sequence order.
func (t *tx) ListAudit(ctx context.Context, f certportal.AuditFilter) ([]certportal.AuditEvent, error) {
	q, args := `SELECT seq, time, actor, account_id, action, detail, remote, prev_hash, hash, hash_version, account_key
		FROM audit WHERE seq > $1`, []any{f.AfterSeq}
	if f.AccountID != "" {
		args = append(args, certportal.IDKey(f.AccountID))
		q += fmt.Sprintf(` AND account_key = $%d`, len(args))
	}
	q += ` ORDER BY seq`
	if f.Limit > 0 {
		args = append(args, f.Limit)
		q += fmt.Sprintf(` LIMIT $%d`, len(args))
	}
	rows, err := t.tx.Query(ctx, q, args...)
	if err != nil {
		return nil, mapError(err, "", "")
	}
	defer rows.Close()
	var out []certportal.AuditEvent
	for rows.Next() {
		var e certportal.AuditEvent
		var version int16
		if err := rows.Scan(&e.Seq, &e.Time, &e.Actor, &e.AccountID, &e.Action, &e.Detail, &e.Remote,
			&e.PrevHash, &e.Hash, &version, &e.AccountKey); err != nil {
			return nil, mapError(err, "", "")
		}
		e.Time, e.HashVersion = e.Time.UTC(), int(version)
		out = append(out, e)
	}
	return out, mapError(rows.Err(), "", "")
}

// CountAudit counts the records of an account ("" = any) with an action
// ("" = any) at or after since.
func (t *tx) CountAudit(ctx context.Context, accountID, action string, since time.Time) (int, error) {
	q, args := `SELECT count(*) FROM audit WHERE time >= $1`, []any{since}
	if accountID != "" {
		args = append(args, certportal.IDKey(accountID))
		q += fmt.Sprintf(` AND account_key = $%d`, len(args))
	}
	if action != "" {
		args = append(args, action)
		q += fmt.Sprintf(` AND action = $%d`, len(args))
	}
	var n int
	err := t.tx.QueryRow(ctx, q, args...).Scan(&n)
	return n, mapError(err, "", "")
}

// CRLs.

// keepCRLs is how many signed CRLs are kept per issuer: the latest is the
// one served; a few before it help an administrator compare.
const keepCRLs = 5

// NextCRLNumber returns the next CRL number of an issuer: 1, 2, 3, ...
// The one statement is atomic across replicas (the row stays locked until
// the commit), so no number is handed out twice; a number taken by a
// transaction that rolls back is skipped, never reused.
func (t *tx) NextCRLNumber(ctx context.Context, issuer string) (int64, error) {
	var n int64
	err := t.tx.QueryRow(ctx, `INSERT INTO crl_numbers (issuer, last) VALUES ($1, 1)
		ON CONFLICT (issuer) DO UPDATE SET last = crl_numbers.last + 1 RETURNING last`, issuer).Scan(&n)
	return n, mapError(err, "", "")
}

// SaveCRL stores a signed CRL and drops all but the latest few of its
// issuer. Conflict when that number is stored already.
func (t *tx) SaveCRL(ctx context.Context, c *certportal.CRL) error {
	tag, err := t.tx.Exec(ctx, `INSERT INTO crls (issuer, number, this_update, next_update, der, revocations) VALUES ($1, $2, $3, $4, $5, $6)
		ON CONFLICT DO NOTHING`,
		c.Issuer, c.Number, ts(c.ThisUpdate), ts(c.NextUpdate), c.DER, c.Revocations)
	if err != nil {
		return mapError(err, "", "")
	}
	if tag.RowsAffected() == 0 {
		return errf(certportal.Conflict, "CRL number %d of %s is stored already", c.Number, c.Issuer)
	}
	_, err = t.tx.Exec(ctx, `DELETE FROM crls WHERE issuer = $1 AND number NOT IN
		(SELECT number FROM crls WHERE issuer = $1 ORDER BY number DESC LIMIT $2)`, c.Issuer, keepCRLs)
	return mapError(err, "", "")
}

// LatestCRL returns the CRL of an issuer with the highest number.
func (t *tx) LatestCRL(ctx context.Context, issuer string) (*certportal.CRL, error) {
	var c certportal.CRL
	var this, next *time.Time
	err := t.tx.QueryRow(ctx, `SELECT issuer, number, this_update, next_update, der, revocations FROM crls
		WHERE issuer = $1 ORDER BY number DESC LIMIT 1`, issuer).Scan(&c.Issuer, &c.Number, &this, &next, &c.DER, &c.Revocations)
	if err != nil {
		return nil, mapError(err, fmt.Sprintf("no CRL has been signed for %s yet", issuer), "")
	}
	c.ThisUpdate, c.NextUpdate = fromTS(this), fromTS(next)
	return &c, nil
}

// AuditV2From is the first sequence number with hash version 2.
func (t *tx) AuditV2From(ctx context.Context) (int64, error) {
	var n int64
	err := t.tx.QueryRow(ctx, `SELECT v2_from FROM audit_meta WHERE id = 1`).Scan(&n)
	return n, mapError(err, "the audit log's hash versions are not recorded", "")
}

// LastAudit returns the newest record's sequence number and hash.
func (t *tx) LastAudit(ctx context.Context) (int64, string, error) {
	var seq int64
	var hash string
	err := t.tx.QueryRow(ctx, `SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1`).Scan(&seq, &hash)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, "", nil
	}
	return seq, hash, mapError(err, "", "")
}

// AddCheckpoint stores a signed checkpoint.
func (t *tx) AddCheckpoint(ctx context.Context, c *certportal.AuditCheckpoint) error {
	_, err := t.tx.Exec(ctx, `INSERT INTO audit_checkpoints (seq, hash, time, public_key, signature) VALUES ($1, $2, $3, $4, $5)`,
		c.Seq, c.Hash, c.Time.UTC().Format(time.RFC3339Nano), base64.StdEncoding.EncodeToString(c.PublicKey), base64.StdEncoding.EncodeToString(c.Signature))
	return mapError(err, "", "a checkpoint of that record exists already")
}

// Checkpoints lists the stored checkpoints in sequence order.
func (t *tx) Checkpoints(ctx context.Context) ([]certportal.AuditCheckpoint, error) {
	rows, err := t.tx.Query(ctx, `SELECT seq, hash, time, public_key, signature FROM audit_checkpoints ORDER BY seq`)
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
