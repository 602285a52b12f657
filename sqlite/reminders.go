package sqlite

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/certportal/certportal"
)

// Expiry reminders.

// ExpiringCertificates returns the unrevoked certificates whose notAfter
// is after after and not after before, soonest expiry first.
func (t *tx) ExpiringCertificates(ctx context.Context, after, before time.Time) ([]certportal.Certificate, error) {
	return t.queryCerts(ctx, `SELECT `+certCols+` WHERE c.revoked IS NULL AND c.not_after > ? AND c.not_after <= ?
		ORDER BY c.not_after, c.serial`, after.UnixMicro(), before.UnixMicro())
}

// ClaimReminder records the reminder days before the expiry of serial. It
// returns false and changes nothing when that reminder is recorded
// already; NotFound for an unknown serial. Updates are serialised (one
// writer), so two claims of one reminder cannot both succeed.
func (t *tx) ClaimReminder(ctx context.Context, serial string, days int, at time.Time) (bool, error) {
	serial = strings.ToUpper(serial)
	res, err := t.exec(ctx, `INSERT INTO reminders (serial, days, sent) VALUES (?, ?, ?) ON CONFLICT DO NOTHING`,
		serial, days, at.UnixMicro())
	if code, ok := isConstraint(err); ok && code == sqliteConstraintForeignKey {
		return false, &certportal.Error{Code: certportal.NotFound, Op: op, Err: err, Message: fmt.Sprintf("no certificate with serial %s", serial)}
	}
	if err != nil {
		return false, mapError(err, "", "")
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, mapError(err, "", "")
	}
	return n == 1, nil
}
