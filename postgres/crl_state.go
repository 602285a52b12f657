package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/certportal/certportal"
)

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
