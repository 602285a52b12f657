package portal

import (
	"context"
	"strconv"
	"sync"
	"time"

	"github.com/certportal/certportal"
)

// The mail sender: it sends what the outbox holds (certportal.OutboxTx),
// after the transactions that queued it committed.
//
// Delivery is at least once. A mail is marked sent after the mailer took
// it (with the others of its batch, in one transaction); a crash between
// the two sends it again when the claim's lease ends.
// The other order (mark, then send) would lose the mail in that crash,
// and a lost temporary password leaves a new user with no way in, while a
// second copy of the same mail costs nothing: the copy carries the same
// temporary password (it was written into the outbox before the first
// send) and the same Message-ID (Mail.ID), so the .eml outbox writes the
// same file again and a mail client shows one message.

// mailWake lets Import and every issuance wake the sender at once rather
// than at its next round.
type mailWake struct {
	once sync.Once
	ch   chan struct{}
}

func (w *mailWake) c() chan struct{} {
	w.once.Do(func() { w.ch = make(chan struct{}, 1) })
	return w.ch
}

func (s *Service) wakeMailSender() {
	select {
	case s.outbox.c() <- struct{}{}:
	default:
	}
}

// mailLease is how long a claimed mail is reserved for the sender that
// claimed it: far longer than a batch takes to send, short enough that the
// mails of a sender that died go out a few minutes later.
const mailLease = 5 * time.Minute

// mailBatch is how many mails one claim takes.
const mailBatch = 20

// mailRetry is the wait before the next attempt after n failures: a
// minute, doubling, at most an hour.
func mailRetry(n int) time.Duration {
	if n >= 6 {
		return time.Hour
	}
	return time.Minute << n
}

// mailGather is how long the sender waits, once woken, before it claims:
// the mails queued meanwhile go out in the same batch. A portal under load
// issues many certificates a second, each with its notice; sent one by
// one, each would cost a claim and a mark (two commits, two fsyncs)
// competing with the requests for the database's one writer.
const mailGather = 200 * time.Millisecond

// RunMailSender sends queued mail until ctx ends: shortly (mailGather)
// after an issuance or an import queued some, and every interval (for
// retries, and for mails queued by another process or replica).
func (s *Service) RunMailSender(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if n, err := s.SendQueuedMail(ctx); err != nil && ctx.Err() == nil {
			s.Log.Warn("queued mail: not all could be sent; the sender tries again", "sent", n, "err", err)
		} else if n > 0 {
			s.Log.Info("queued mail sent", "count", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-s.outbox.c():
			select {
			case <-ctx.Done():
				return
			case <-time.After(mailGather):
			}
		}
	}
}

// SendQueuedMail sends every mail that is due, a batch at a time, and
// returns how many went out. A mail that fails is retried later
// (mailRetry) and does not stop the others; the error reports the last
// failure.
func (s *Service) SendQueuedMail(ctx context.Context) (int, error) {
	sent := 0
	var last error
	for ctx.Err() == nil {
		var batch []certportal.QueuedMail
		now := s.now()
		err := s.Store.Update(ctx, func(tx certportal.Tx) error {
			var err error
			batch, err = tx.ClaimMail(ctx, now, now.Add(mailLease), mailBatch)
			return err
		})
		if err != nil {
			return sent, err
		}
		if len(batch) == 0 {
			break
		}
		var out []*certportal.QueuedMail
		for i := range batch {
			ok, err := s.deliver(ctx, &batch[i])
			if err != nil {
				last = err
			}
			if ok {
				out = append(out, &batch[i])
			}
		}
		sent += len(out)
		s.markSent(ctx, out)
	}
	return sent, last
}

// markSent records, in one transaction, that the mails of a batch went
// out, each audited: one commit (one fsync) per batch rather than per mail,
// so the sender keeps up with a portal that issues a certificate, and
// queues its notice, on every request. A crash before this commit sends
// the batch again (at least once; see the top of this file).
func (s *Service) markSent(ctx context.Context, out []*certportal.QueuedMail) {
	if len(out) == 0 {
		return
	}
	now := s.now()
	err := s.Store.Update(ctx, func(tx certportal.Tx) error {
		for _, m := range out {
			if err := tx.MailSent(ctx, m.ID, now); err != nil {
				return err
			}
			if err := s.audit(ctx, tx, Actor{Name: "system", Remote: "-"}, m.AccountID, certportal.ActionMailSent, mailWhat(m)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		// Sent, but not recorded: the lease lapses and the same mails
		// (same IDs) go out again. See the top of this file.
		s.Log.Warn("queued mails went out but could not be marked sent; they will be sent again", "count", len(out), "err", err)
	}
}

// OutboxMailID is the stable ID of a queued mail (certportal.Mail.ID): its
// queue time, sortable like the .eml outbox's other names, and its number.
func OutboxMailID(m *certportal.QueuedMail) string {
	return m.Created.UTC().Format("20060102T150405.000000000Z") + "-q" + strconv.FormatInt(m.ID, 10)
}

// deliver sends one claimed mail and records a failure; ok says it went
// out, and the caller marks it sent (markSent).
func (s *Service) deliver(ctx context.Context, m *certportal.QueuedMail) (ok bool, err error) {
	if m.Kind == certportal.MailTemporaryPassword && m.To == "" {
		ready, err := s.prepareTemporaryPassword(ctx, m)
		if err != nil || !ready {
			if err != nil {
				s.mailFailed(ctx, m, err)
			}
			return false, err
		}
	}
	err = s.Mailer.Send(ctx, certportal.Mail{ID: OutboxMailID(m), To: []string{m.To}, Subject: m.Subject, Body: m.Body})
	if err != nil {
		s.mailFailed(ctx, m, err)
		return false, err
	}
	return true, nil
}

func mailWhat(m *certportal.QueuedMail) string {
	what := m.Kind
	switch m.Kind {
	case certportal.MailTemporaryPassword:
		what = "temporary password"
	case certportal.MailNotice:
		what = "notice: " + m.Subject
	}
	return what + " (queued mail " + strconv.FormatInt(m.ID, 10) + ")"
}

// mailFailed records a failed attempt, audited, and when to try again.
func (s *Service) mailFailed(ctx context.Context, m *certportal.QueuedMail, cause error) {
	s.Log.Warn("queued mail failed; it will be retried", "mail", m.ID, "account", m.AccountID, "attempt", m.Attempts+1, "err", cause)
	now := s.now()
	err := s.Store.Update(ctx, func(tx certportal.Tx) error {
		if err := tx.MailFailed(ctx, m.ID, now.Add(mailRetry(m.Attempts)), certportal.ErrorMessage(cause)); err != nil {
			return err
		}
		return s.audit(ctx, tx, Actor{Name: "system", Remote: "-"}, m.AccountID, certportal.ActionMailFailed,
			mailWhat(m)+"; will be retried")
	})
	if err != nil {
		s.Log.Error("a failed mail could not be recorded; it is retried when its lease ends", "mail", m.ID, "err", err)
	}
}

// prepareTemporaryPassword makes a new account's temporary password, sets
// it and writes the welcome mail into the outbox, in one transaction. The
// hash is made before, outside it (it takes tens of milliseconds). It
// returns false, having marked the mail done, when the account no longer
// needs it: cancelled, or given a password meanwhile (a reset).
func (s *Service) prepareTemporaryPassword(ctx context.Context, m *certportal.QueuedMail) (bool, error) {
	temp, err := GeneratePassword(s.Rand, 16)
	if err != nil {
		return false, err
	}
	hash, err := s.Hasher.Hash(ctx, temp)
	if err != nil {
		return false, err
	}
	now := s.now()
	expires := now.Add(s.Config.TempPasswordTTL)
	ready := false
	err = s.Store.Update(ctx, func(tx certportal.Tx) error {
		ready = false
		acc, err := tx.LockAccount(ctx, m.AccountID)
		if err != nil {
			return err
		}
		if acc.Status != certportal.StatusActive || acc.PasswordHash != "" {
			why := "the account has a password already"
			if acc.Status != certportal.StatusActive {
				why = "the account is cancelled"
			}
			if err := tx.MailSent(ctx, m.ID, now); err != nil {
				return err
			}
			return s.audit(ctx, tx, Actor{Name: "system", Remote: "-"}, acc.ID, certportal.ActionMailFailed,
				mailWhat(m)+" not sent: "+why)
		}
		acc.PasswordHash, acc.PasswordExpires, acc.Updated = hash, expires, now
		if err := tx.UpdateAccount(ctx, acc); err != nil {
			return err
		}
		w := WelcomeMail(acc.Email, acc.ID, temp, s.Config.PortalURL, expires)
		if err := tx.PrepareMail(ctx, m.ID, acc.Email, w.Subject, w.Body); err != nil {
			return err
		}
		m.To, m.Subject, m.Body = acc.Email, w.Subject, w.Body
		ready = true
		return nil
	})
	return ready, err
}
