package sqlite

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/certportal/certportal"
)

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
