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
