package postgres

import (
	"context"
	"strings"
	"time"

	"github.com/certportal/certportal"
)

// Expiry reminders.

// ExpiringCertificates returns the unrevoked certificates whose notAfter
// is after after and not after before, soonest expiry first.
func (t *tx) ExpiringCertificates(ctx context.Context, after, before time.Time) ([]certportal.Certificate, error) {
	return t.queryCerts(ctx, `SELECT `+certCols+` WHERE c.revoked IS NULL AND c.not_after > $1 AND c.not_after <= $2
		ORDER BY c.not_after, c.serial`, after, before)
}

// ClaimReminder records the reminder days before the expiry of serial. It
// returns false and changes nothing when that reminder is recorded
// already; NotFound for an unknown serial. A claim of a key that another
// transaction inserted and has not yet committed waits for it (the
// primary key's lock), then does nothing if it committed and inserts if it
// rolled back: so across replicas exactly one claim of a reminder commits.
// The statement never violates a constraint, so the transaction stays
// usable whatever it finds.
func (t *tx) ClaimReminder(ctx context.Context, serial string, days int, at time.Time) (bool, error) {
	serial = strings.ToUpper(serial)
	tag, err := t.tx.Exec(ctx, `INSERT INTO reminders (serial, days, sent)
		SELECT $1, $2, $3 WHERE EXISTS (SELECT 1 FROM certificates WHERE serial = $1)
		ON CONFLICT DO NOTHING`, serial, days, at)
	if err != nil {
		return false, mapError(err, "", "")
	}
	if tag.RowsAffected() == 1 {
		return true, nil
	}
	var known bool
	if err := t.tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM certificates WHERE serial = $1)`, serial).Scan(&known); err != nil {
		return false, mapError(err, "", "")
	}
	if !known {
		return false, errf(certportal.NotFound, "no certificate with serial %s", serial)
	}
	return false, nil
}
