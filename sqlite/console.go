package sqlite

import (
	"context"
	"database/sql"
	"slices"
	"time"

	"github.com/certportal/certportal"
)

// The admin console's reads (certportal.ConsoleTx). Each query reads an
// index in the order it answers; TestConsoleQueryPlans holds them to it.

// SearchAccounts reads the ID part of a page from the primary key (a
// range, in order), and only when that part ends within the page, the
// e-mail part from accounts_email (a range, in order, skipping accounts
// whose ID matched). Either reads at most offset+limit index entries
// (plus the accounts whose ID and e-mail both match, which are fewer than
// that when the e-mail part is read at all), whatever the number of
// accounts.
const (
	searchByID = `SELECT ` + accountCols + ` FROM accounts WHERE id_key >= ? AND id_key < ?
		ORDER BY id_key LIMIT ? OFFSET ?`
	countByID     = `SELECT COUNT(*) FROM (SELECT 1 FROM accounts WHERE id_key >= ? AND id_key < ? LIMIT ?)`
	searchByEmail = `SELECT ` + accountCols + ` FROM accounts
		WHERE lower(email) >= ? AND lower(email) < ? AND NOT (id_key >= ? AND id_key < ?)
		ORDER BY lower(email), id_key LIMIT ? OFFSET ?`
)

// SearchAccounts lists accounts by ID prefix, then by e-mail prefix.
func (t *tx) SearchAccounts(ctx context.Context, prefix string, offset, limit int) ([]certportal.Account, error) {
	lo, hi, ok := certportal.PrefixRange(prefix)
	if !ok || limit <= 0 {
		return nil, nil
	}
	offset = max(offset, 0)
	out, err := t.queryAccounts(ctx, searchByID, lo, hi, limit, offset)
	if err != nil || len(out) == limit {
		return out, err
	}
	// Every account whose ID matches is before this page's end: n of them.
	n := offset + len(out)
	if len(out) == 0 && offset > 0 {
		if err := t.queryRow(ctx, countByID, lo, hi, offset).Scan(&n); err != nil {
			return nil, mapError(err, "", "")
		}
	}
	more, err := t.queryAccounts(ctx, searchByEmail, lo, hi, lo, hi, limit-len(out), max(offset-n, 0))
	return append(out, more...), err
}

// StaffAccounts lists the helpdesk and admin accounts, by ID.
func (t *tx) StaffAccounts(ctx context.Context) ([]certportal.Account, error) {
	return t.queryAccounts(ctx, `SELECT `+accountCols+` FROM accounts WHERE role <> 'user' ORDER BY id_key`)
}

func (t *tx) queryAccounts(ctx context.Context, q string, args ...any) ([]certportal.Account, error) {
	rows, err := t.query(ctx, q, args...)
	if err != nil {
		return nil, mapError(err, "", "")
	}
	defer rows.Close()
	var out []certportal.Account
	for rows.Next() {
		a, err := scanAccount(rows)
		if err != nil {
			return nil, mapError(err, "", "")
		}
		out = append(out, *a)
	}
	return out, mapError(rows.Err(), "", "")
}

// CountAccounts counts every account.
func (t *tx) CountAccounts(ctx context.Context) (int, error) {
	var n int
	err := t.queryRow(ctx, `SELECT COUNT(*) FROM accounts`).Scan(&n)
	return n, mapError(err, "", "")
}

// Lockouts lists an account's lockouts that end after now, latest first.
func (t *tx) Lockouts(ctx context.Context, accountID string, now time.Time) ([]certportal.Lockout, error) {
	rows, err := t.query(ctx, `SELECT remote, until FROM lockouts WHERE account_key = ? AND until > ?
		ORDER BY until DESC, remote`, certportal.IDKey(accountID), now.UnixMicro())
	if err != nil {
		return nil, mapError(err, "", "")
	}
	defer rows.Close()
	var out []certportal.Lockout
	for rows.Next() {
		var l certportal.Lockout
		var until sql.NullInt64
		if err := rows.Scan(&l.Remote, &until); err != nil {
			return nil, mapError(err, "", "")
		}
		l.Until = fromMicros(until)
		out = append(out, l)
	}
	return out, mapError(rows.Err(), "", "")
}

// SearchAudit lists the records q selects, newest first. With an account
// it reads audit_account backwards, else the sequence backwards; either
// way it stops after the limit.
func (t *tx) SearchAudit(ctx context.Context, q certportal.AuditQuery) ([]certportal.AuditEvent, error) {
	s, args := `SELECT seq, time, actor, account_id, action, detail, remote, prev_hash, hash FROM audit WHERE 1`, []any{}
	if q.AccountID != "" {
		s += ` AND account_key = ?`
		args = append(args, certportal.IDKey(q.AccountID))
	}
	if q.Action != "" {
		s += ` AND action = ?`
		args = append(args, q.Action)
	}
	if !q.From.IsZero() {
		s += ` AND time >= ?`
		args = append(args, q.From.UnixMicro())
	}
	if !q.To.IsZero() {
		s += ` AND time < ?`
		args = append(args, q.To.UnixMicro())
	}
	if q.BeforeSeq > 0 {
		s += ` AND seq < ?`
		args = append(args, q.BeforeSeq)
	}
	limit := int64(q.Limit)
	if limit <= 0 {
		limit = -1
	}
	rows, err := t.query(ctx, s+` ORDER BY seq DESC LIMIT ?`, append(args, limit)...)
	if err != nil {
		return nil, mapError(err, "", "")
	}
	defer rows.Close()
	var out []certportal.AuditEvent
	for rows.Next() {
		var e certportal.AuditEvent
		var at int64
		if err := rows.Scan(&e.Seq, &at, &e.Actor, &e.AccountID, &e.Action, &e.Detail, &e.Remote,
			&e.PrevHash, &e.Hash); err != nil {
			return nil, mapError(err, "", "")
		}
		e.Time = time.UnixMicro(at).UTC()
		out = append(out, e)
	}
	return out, mapError(rows.Err(), "", "")
}

// CertificateCounts counts each issuer's certificates by state at now.
func (t *tx) CertificateCounts(ctx context.Context, now time.Time) ([]certportal.CertificateCount, error) {
	rows, err := t.query(ctx, `SELECT issuer,
		COALESCE(SUM(revoked IS NULL AND not_after > ?1), 0),
		COALESCE(SUM(revoked IS NULL AND not_after <= ?1), 0),
		COALESCE(SUM(revoked IS NOT NULL), 0)
		FROM certificates GROUP BY issuer ORDER BY issuer`, now.UnixMicro())
	if err != nil {
		return nil, mapError(err, "", "")
	}
	defer rows.Close()
	var out []certportal.CertificateCount
	for rows.Next() {
		var c certportal.CertificateCount
		if err := rows.Scan(&c.Issuer, &c.Valid, &c.Expired, &c.Revoked); err != nil {
			return nil, mapError(err, "", "")
		}
		out = append(out, c)
	}
	return out, mapError(rows.Err(), "", "")
}

// Inventory returns a page of certificates in serial order, without DER.
func (t *tx) Inventory(ctx context.Context, afterSerial string, limit int) ([]certportal.Certificate, error) {
	rows, err := t.query(ctx, `SELECT c.serial, a.id, c.issuer, c.not_before, c.not_after, c.thumbprint, c.sha256,
		c.issued, c.revoked, c.reason FROM certificates c JOIN accounts a ON a.id_key = c.account
		WHERE c.serial > ? ORDER BY c.serial LIMIT ?`, afterSerial, limit)
	if err != nil {
		return nil, mapError(err, "", "")
	}
	defer rows.Close()
	var out []certportal.Certificate
	for rows.Next() {
		var r certRow
		if err := rows.Scan(&r.c.Serial, &r.c.AccountID, &r.c.Issuer, &r.nb, &r.na, &r.c.Thumbprint, &r.c.SHA256,
			&r.issued, &r.revoked, &r.reason); err != nil {
			return nil, mapError(err, "", "")
		}
		out = append(out, *r.cert())
	}
	return out, mapError(rows.Err(), "", "")
}

// The mail outbox (certportal.OutboxTx).

const mailCols = `id, account_id, kind, mail_to, subject, body, created, next_try, attempts, last_error, sent`

func scanMails(rows *sql.Rows) ([]certportal.QueuedMail, error) {
	defer rows.Close()
	var out []certportal.QueuedMail
	for rows.Next() {
		var m certportal.QueuedMail
		var created, next, sent sql.NullInt64
		if err := rows.Scan(&m.ID, &m.AccountID, &m.Kind, &m.To, &m.Subject, &m.Body, &created, &next,
			&m.Attempts, &m.LastError, &sent); err != nil {
			return nil, mapError(err, "", "")
		}
		m.Created, m.NextTry, m.Sent = fromMicros(created), fromMicros(next), fromMicros(sent)
		out = append(out, m)
	}
	return out, mapError(rows.Err(), "", "")
}

// QueueMail adds a mail to the outbox; NotFound for an unknown account.
func (t *tx) QueueMail(ctx context.Context, m *certportal.QueuedMail) error {
	err := t.queryRow(ctx, `INSERT INTO mail_outbox (account, account_id, kind, mail_to, subject, body, created, next_try)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`,
		certportal.IDKey(m.AccountID), m.AccountID, m.Kind, m.To, m.Subject, m.Body, m.Created.UnixMicro(),
		m.NextTry.UnixMicro()).Scan(&m.ID)
	if code, ok := isConstraint(err); ok && code == sqliteConstraintForeignKey {
		return errf(certportal.NotFound, "no user with ID %q", m.AccountID)
	}
	return mapError(err, "", "")
}

// ClaimMail takes the due mails, oldest first, until leaseUntil.
func (t *tx) ClaimMail(ctx context.Context, now, leaseUntil time.Time, limit int) ([]certportal.QueuedMail, error) {
	rows, err := t.query(ctx, `UPDATE mail_outbox SET next_try = ? WHERE id IN
		(SELECT id FROM mail_outbox WHERE sent IS NULL AND next_try <= ? ORDER BY next_try, id LIMIT ?)
		RETURNING `+mailCols, leaseUntil.UnixMicro(), now.UnixMicro(), limit)
	if err != nil {
		return nil, mapError(err, "", "")
	}
	out, err := scanMails(rows)
	slices.SortFunc(out, func(a, b certportal.QueuedMail) int { return int(a.ID - b.ID) })
	return out, err
}

// PrepareMail writes the recipient, subject and body of an unsent mail.
func (t *tx) PrepareMail(ctx context.Context, id int64, to, subject, body string) error {
	res, err := t.exec(ctx, `UPDATE mail_outbox SET mail_to = ?, subject = ?, body = ? WHERE id = ? AND sent IS NULL`,
		to, subject, body, id)
	if err != nil {
		return mapError(err, "", "")
	}
	return affected(res, "the mail is sent already or does not exist")
}

// MailSent marks a mail sent and erases its body.
func (t *tx) MailSent(ctx context.Context, id int64, at time.Time) error {
	res, err := t.exec(ctx, `UPDATE mail_outbox SET sent = ?, body = '' WHERE id = ? AND sent IS NULL`, at.UnixMicro(), id)
	if err != nil {
		return mapError(err, "", "")
	}
	return affected(res, "the mail is sent already or does not exist")
}

// MailFailed counts a failed attempt and sets the next.
func (t *tx) MailFailed(ctx context.Context, id int64, next time.Time, why string) error {
	res, err := t.exec(ctx, `UPDATE mail_outbox SET attempts = attempts + 1, next_try = ?, last_error = ?
		WHERE id = ? AND sent IS NULL`, next.UnixMicro(), why, id)
	if err != nil {
		return mapError(err, "", "")
	}
	return affected(res, "the mail is sent already or does not exist")
}

// PendingMail counts the mails not yet sent.
func (t *tx) PendingMail(ctx context.Context) (int, error) {
	var n int
	err := t.queryRow(ctx, `SELECT COUNT(*) FROM mail_outbox WHERE sent IS NULL`).Scan(&n)
	return n, mapError(err, "", "")
}

// QueuedMails lists an account's mails, oldest first.
func (t *tx) QueuedMails(ctx context.Context, accountID string) ([]certportal.QueuedMail, error) {
	rows, err := t.query(ctx, `SELECT `+mailCols+` FROM mail_outbox WHERE account = ? ORDER BY id`, certportal.IDKey(accountID))
	if err != nil {
		return nil, mapError(err, "", "")
	}
	return scanMails(rows)
}
