package sqlite

import (
	"context"
	"database/sql"
	"encoding/base64"
	"errors"
	"time"

	"github.com/certportal/certportal"
)

// Audit log.

// auditTail is the audit chain's last record: its sequence number and
// hash (0 and "" for an empty log).
type auditTail struct {
	seq  int64
	hash string
}

// AppendAudit appends e to the log: Seq is the last one plus one, PrevHash
// the last hash ("" for the first), Hash = certportal.AuditHash(e). The
// writer lock makes appends serial. e.Time is cut to the microsecond first,
// the precision it is stored with, so the hash verifies when read back.
//
// In an Update the last record is read once per batch and then kept in
// the batch (batch.tail): an issuance appends three records, and the
// members of a batch append one after the other.
func (t *tx) AppendAudit(ctx context.Context, e *certportal.AuditEvent) error {
	var last auditTail
	if t.b != nil && t.b.tail != nil {
		last = *t.b.tail
	} else {
		err := t.queryRow(ctx, `SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1`).Scan(&last.seq, &last.hash)
		if err != nil && err != sql.ErrNoRows {
			return mapError(err, "", "")
		}
	}
	e.Seq, e.PrevHash = last.seq+1, last.hash
	e.Time = e.Time.Truncate(time.Microsecond).UTC()
	e.HashVersion, e.AccountKey = certportal.AuditHashVersion, certportal.IDKey(e.AccountID)
	e.Hash = certportal.AuditHash(e)
	_, err := t.exec(ctx, `INSERT INTO audit (seq, time, actor, account_id, account_key, action, detail, remote,
		prev_hash, hash, hash_version) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		e.Seq, e.Time.UnixMicro(), e.Actor, e.AccountID, e.AccountKey, e.Action, e.Detail, e.Remote,
		e.PrevHash, e.Hash, e.HashVersion)
	if err != nil {
		return mapError(err, "", "the audit log changed meanwhile; try again")
	}
	if t.b != nil {
		t.b.tail = &auditTail{seq: e.Seq, hash: e.Hash}
	}
	return nil
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
