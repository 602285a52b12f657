package postgres

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/certportal/certportal"
)

// The admin console's reads (certportal.ConsoleTx). Each query reads an
// index in the order it answers; TestConsoleQueryPlans holds them to it.

// emailKey is the expression accounts_email indexes: lower-cased, compared
// byte-wise like the IDs.
const emailKey = `(lower(email) COLLATE "C")`

// SearchAccounts reads the ID part of a page from the primary key (a
// range, in order), and only when that part ends within the page, the
// e-mail part from accounts_email (a range, in order, skipping accounts
// whose ID matched). Either reads at most offset+limit index entries
// (plus the accounts whose ID and e-mail both match, which are fewer than
// that when the e-mail part is read at all), whatever the number of
// accounts.
const (
	searchByID = `SELECT ` + accountCols + ` FROM accounts WHERE id_key >= $1 AND id_key < $2
		ORDER BY id_key LIMIT $3 OFFSET $4`
	countByID     = `SELECT count(*) FROM (SELECT 1 FROM accounts WHERE id_key >= $1 AND id_key < $2 LIMIT $3) AS ids`
	searchByEmail = `SELECT ` + accountCols + ` FROM accounts
		WHERE ` + emailKey + ` >= $1 AND ` + emailKey + ` < $2 AND NOT (id_key >= $1 AND id_key < $2)
		ORDER BY ` + emailKey + `, id_key LIMIT $3 OFFSET $4`
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
		if err := t.tx.QueryRow(ctx, countByID, lo, hi, offset).Scan(&n); err != nil {
			return nil, mapError(err, "", "")
		}
	}
	more, err := t.queryAccounts(ctx, searchByEmail, lo, hi, limit-len(out), max(offset-n, 0))
	return append(out, more...), err
}

// StaffAccounts lists the helpdesk and admin accounts, by ID.
func (t *tx) StaffAccounts(ctx context.Context) ([]certportal.Account, error) {
	return t.queryAccounts(ctx, `SELECT `+accountCols+` FROM accounts WHERE role <> 'user' ORDER BY id_key`)
}

func (t *tx) queryAccounts(ctx context.Context, q string, args ...any) ([]certportal.Account, error) {
	rows, err := t.tx.Query(ctx, q, args...)
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
	err := t.tx.QueryRow(ctx, `SELECT count(*) FROM accounts`).Scan(&n)
	return n, mapError(err, "", "")
}

// Lockouts lists an account's lockouts that end after now, latest first.
func (t *tx) Lockouts(ctx context.Context, accountID string, now time.Time) ([]certportal.Lockout, error) {
	rows, err := t.tx.Query(ctx, `SELECT remote, until FROM lockouts WHERE account_key = $1 AND until > $2
		ORDER BY until DESC, remote`, certportal.IDKey(accountID), now)
	if err != nil {
		return nil, mapError(err, "", "")
	}
	defer rows.Close()
	var out []certportal.Lockout
	for rows.Next() {
		var l certportal.Lockout
		if err := rows.Scan(&l.Remote, &l.Until); err != nil {
			return nil, mapError(err, "", "")
		}
		l.Until = l.Until.UTC()
		out = append(out, l)
	}
	return out, mapError(rows.Err(), "", "")
}

// SearchAudit lists the records q selects, newest first. With an account
// it reads audit_account backwards, else the sequence backwards; either
// way it stops after the limit.
func (t *tx) SearchAudit(ctx context.Context, q certportal.AuditQuery) ([]certportal.AuditEvent, error) {
	s, args := `SELECT seq, time, actor, account_id, action, detail, remote, prev_hash, hash FROM audit WHERE true`, []any{}
	add := func(cond string, v any) {
		args = append(args, v)
		s += fmt.Sprintf(cond, len(args))
	}
	if q.AccountID != "" {
		add(` AND account_key = $%d`, certportal.IDKey(q.AccountID))
	}
	if q.Action != "" {
		add(` AND action = $%d`, q.Action)
	}
	if !q.From.IsZero() {
		add(` AND time >= $%d`, q.From)
	}
	if !q.To.IsZero() {
		add(` AND time < $%d`, q.To)
	}
	if q.BeforeSeq > 0 {
		add(` AND seq < $%d`, q.BeforeSeq)
	}
	s += ` ORDER BY seq DESC`
	if q.Limit > 0 {
		add(` LIMIT $%d`, q.Limit)
	}
	rows, err := t.tx.Query(ctx, s, args...)
	if err != nil {
		return nil, mapError(err, "", "")
	}
	defer rows.Close()
	var out []certportal.AuditEvent
	for rows.Next() {
		var e certportal.AuditEvent
		if err := rows.Scan(&e.Seq, &e.Time, &e.Actor, &e.AccountID, &e.Action, &e.Detail, &e.Remote,
			&e.PrevHash, &e.Hash); err != nil {
			return nil, mapError(err, "", "")
		}
		e.Time = e.Time.UTC()
		out = append(out, e)
	}
	return out, mapError(rows.Err(), "", "")
}

// CertificateCounts counts each issuer's certificates by state at now.
func (t *tx) CertificateCounts(ctx context.Context, now time.Time) ([]certportal.CertificateCount, error) {
	rows, err := t.tx.Query(ctx, `SELECT issuer,
		count(*) FILTER (WHERE revoked IS NULL AND not_after > $1),
		count(*) FILTER (WHERE revoked IS NULL AND not_after <= $1),
		count(*) FILTER (WHERE revoked IS NOT NULL)
		FROM certificates GROUP BY issuer ORDER BY issuer`, now)
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
	rows, err := t.tx.Query(ctx, `SELECT c.serial, a.id, c.issuer, c.not_before, c.not_after, c.thumbprint, c.sha256,
		c.issued, c.revoked, c.reason FROM certificates c JOIN accounts a ON a.id_key = c.account
		WHERE c.serial > $1 ORDER BY c.serial LIMIT $2`, afterSerial, limit)
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

func scanMails(rows pgx.Rows) ([]certportal.QueuedMail, error) {
	defer rows.Close()
	var out []certportal.QueuedMail
	for rows.Next() {
		var m certportal.QueuedMail
		var sent *time.Time
		if err := rows.Scan(&m.ID, &m.AccountID, &m.Kind, &m.To, &m.Subject, &m.Body, &m.Created, &m.NextTry,
			&m.Attempts, &m.LastError, &sent); err != nil {
			return nil, mapError(err, "", "")
		}
		m.Created, m.NextTry, m.Sent = m.Created.UTC(), m.NextTry.UTC(), fromTS(sent)
		out = append(out, m)
	}
	return out, mapError(rows.Err(), "", "")
}

// QueueMail adds a mail to the outbox; NotFound for an unknown account.
func (t *tx) QueueMail(ctx context.Context, m *certportal.QueuedMail) error {
	// The account is checked in the statement, so an unknown one does not
	// abort the transaction with a foreign-key violation.
	err := t.tx.QueryRow(ctx, `INSERT INTO mail_outbox (account, account_id, kind, mail_to, subject, body, created, next_try)
		SELECT id_key, $2, $3, $4, $5, $6, $7, $8 FROM accounts WHERE id_key = $1 RETURNING id`,
		certportal.IDKey(m.AccountID), m.AccountID, m.Kind, m.To, m.Subject, m.Body, m.Created, m.NextTry).Scan(&m.ID)
	return mapError(err, fmt.Sprintf("no user with ID %q", m.AccountID), "")
}

// ClaimMail takes the due mails, oldest first, until leaseUntil; a mail
// another replica is claiming is skipped, not waited for.
func (t *tx) ClaimMail(ctx context.Context, now, leaseUntil time.Time, limit int) ([]certportal.QueuedMail, error) {
	rows, err := t.tx.Query(ctx, `UPDATE mail_outbox SET next_try = $1 WHERE id IN
		(SELECT id FROM mail_outbox WHERE sent IS NULL AND next_try <= $2 ORDER BY next_try, id LIMIT $3
		 FOR UPDATE SKIP LOCKED)
		RETURNING `+mailCols, leaseUntil, now, limit)
	if err != nil {
		return nil, mapError(err, "", "")
	}
	out, err := scanMails(rows)
	slices.SortFunc(out, func(a, b certportal.QueuedMail) int { return int(a.ID - b.ID) })
	return out, err
}

// PrepareMail writes the recipient, subject and body of an unsent mail.
func (t *tx) PrepareMail(ctx context.Context, id int64, to, subject, body string) error {
	tag, err := t.tx.Exec(ctx, `UPDATE mail_outbox SET mail_to = $1, subject = $2, body = $3 WHERE id = $4 AND sent IS NULL`,
		to, subject, body, id)
	if err != nil {
		return mapError(err, "", "")
	}
	return notFoundIfNone(tag.RowsAffected(), "the mail is sent already or does not exist")
}

// MailSent marks a mail sent and erases its body.
func (t *tx) MailSent(ctx context.Context, id int64, at time.Time) error {
	tag, err := t.tx.Exec(ctx, `UPDATE mail_outbox SET sent = $1, body = '' WHERE id = $2 AND sent IS NULL`, at, id)
	if err != nil {
		return mapError(err, "", "")
	}
	return notFoundIfNone(tag.RowsAffected(), "the mail is sent already or does not exist")
}

// MailFailed counts a failed attempt and sets the next.
func (t *tx) MailFailed(ctx context.Context, id int64, next time.Time, why string) error {
	tag, err := t.tx.Exec(ctx, `UPDATE mail_outbox SET attempts = attempts + 1, next_try = $1, last_error = $2
		WHERE id = $3 AND sent IS NULL`, next, why, id)
	if err != nil {
		return mapError(err, "", "")
	}
	return notFoundIfNone(tag.RowsAffected(), "the mail is sent already or does not exist")
}

// PendingMail counts the mails not yet sent.
func (t *tx) PendingMail(ctx context.Context) (int, error) {
	var n int
	err := t.tx.QueryRow(ctx, `SELECT count(*) FROM mail_outbox WHERE sent IS NULL`).Scan(&n)
	return n, mapError(err, "", "")
}

// QueuedMails lists an account's mails, oldest first.
func (t *tx) QueuedMails(ctx context.Context, accountID string) ([]certportal.QueuedMail, error) {
	rows, err := t.tx.Query(ctx, `SELECT `+mailCols+` FROM mail_outbox WHERE account = $1 ORDER BY id`, certportal.IDKey(accountID))
	if err != nil {
		return nil, mapError(err, "", "")
	}
	return scanMails(rows)
}
