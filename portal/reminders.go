package portal

import (
	"context"
	"strconv"
	"time"

	"github.com/certportal/certportal"
)

// reminderDays returns the configured thresholds, positive and distinct,
// smallest first.
func (s *Service) reminderDays() []int { return s.Config.Policy.Resolved().ReminderDays }

// dueReminder returns the threshold whose reminder is due for a certificate
// that expires at notAfter: the smallest one already reached, or 0 when
// none is. Only that one is sent, so a portal that was down for a while (or
// a certificate issued shortly before its issuer expires) sends one mail,
// not every reminder it missed.
func dueReminder(days []int, notAfter, now time.Time) int {
	left := notAfter.Sub(now)
	for _, d := range days { // smallest first
		if left <= time.Duration(d)*24*time.Hour {
			return d
		}
	}
	return 0
}

// daysLeft is the whole days until notAfter, counted up: 36 hours is 2.
func daysLeft(notAfter, now time.Time) int {
	return int((notAfter.Sub(now) + 24*time.Hour - 1) / (24 * time.Hour))
}

// SendReminders mails the expiry reminders that are due and returns how
// many it sent. Each (certificate, threshold) goes out once however many
// replicas call it at the same time: in one transaction per reminder it
// claims the reminder's row (Tx.ClaimReminder), sends the mail and audits
// it (ActionReminderSent), so a replica that claims a reminder another one
// is sending waits for that transaction and then finds it done. If the mail
// cannot be sent the transaction rolls back, the claim with it, and the
// next run tries again; the run stops there (the mail server is likely
// down for the others too) and returns an Unavailable error. Only
// unrevoked, unexpired certificates of active accounts are reminded.
// cmd/certportal calls it from serve's housekeeping, at start and hourly.
func (s *Service) SendReminders(ctx context.Context) (int, error) {
	days := s.reminderDays()
	if len(days) == 0 {
		return 0, nil
	}
	now := s.now()
	var certs []certportal.Certificate
	err := s.Store.View(ctx, func(tx certportal.Tx) error {
		var err error
		certs, err = tx.ExpiringCertificates(ctx, now, now.Add(time.Duration(days[len(days)-1])*24*time.Hour))
		return err
	})
	if err != nil {
		return 0, err
	}
	sent := 0
	for i := range certs {
		d := dueReminder(days, certs[i].NotAfter, now)
		if d == 0 {
			continue
		}
		ok, err := s.sendReminder(ctx, &certs[i], d, now)
		if err != nil {
			return sent, err
		}
		if ok {
			sent++
		}
	}
	return sent, nil
}

// sendReminder claims, sends and audits one reminder in one transaction,
// and reports whether this call sent it.
func (s *Service) sendReminder(ctx context.Context, c *certportal.Certificate, d int, now time.Time) (bool, error) {
	system := Actor{Name: "system", Remote: "-"}
	sent, mailFailed := false, false
	var acc *certportal.Account
	err := s.Store.Update(ctx, func(tx certportal.Tx) error {
		sent, mailFailed = false, false
		// Read again inside the transaction: the certificate may have been
		// renewed or revoked, or the account cancelled, since the list.
		cur, err := tx.Certificate(ctx, c.Serial)
		if err != nil {
			return err
		}
		if cur.IsRevoked() || !now.Before(cur.NotAfter) {
			return nil
		}
		acc, err = tx.Account(ctx, cur.AccountID)
		if err != nil {
			return err
		}
		if acc.Status != certportal.StatusActive {
			return nil
		}
		claimed, err := tx.ClaimReminder(ctx, cur.Serial, d, now)
		if err != nil || !claimed {
			return err
		}
		left := daysLeft(cur.NotAfter, now)
		m := ReminderExpiry(acc.Email, acc.ID, cur.Serial, cur.NotAfter, left, s.Config.PortalURL)
		// The mail goes out inside the transaction, after the claim and
		// before the audit record: a failure rolls the claim back (to be
		// retried by the next run), and the audit head is locked only
		// after the send. fn is not re-run after the send in normal
		// operation: a READ COMMITTED claim or audit append waits for
		// locks but is not cancelled for serialisation, and the only lock
		// this transaction holds while it waits for the audit head is the
		// claim's key, which no append holder waits for. A crash between
		// the send and the commit sends the reminder again next run: a
		// duplicate rather than a lost reminder.
		if err := s.Mailer.Send(ctx, m); err != nil {
			mailFailed = true
			s.Log.Warn("reminder mail failed; it will be tried again", "account", acc.ID, "serial", cur.Serial, "days", d, "err", err)
			return certportal.WrapError(certportal.Unavailable, err, "the reminder mail could not be sent; it will be tried again at the next run")
		}
		sent = true
		return s.audit(ctx, tx, system, acc.ID, certportal.ActionReminderSent,
			"serial "+cur.Serial+": "+strconv.Itoa(d)+"-day reminder, "+strconv.Itoa(left)+" days left, expires "+cur.NotAfter.Format(time.RFC3339))
	})
	if err != nil && mailFailed {
		s.auditAlone(ctx, system, acc.ID, certportal.ActionMailFailed, "reminder for serial "+c.Serial+"; will be retried")
	}
	return sent && err == nil, err
}
