package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/certportal/certportal"
)

// testExpiringCertificates checks the reminder run's query: unrevoked
// certificates whose notAfter lies in (after, before], soonest first.
func testExpiringCertificates(t *testing.T, s certportal.Store) {
	ctx := context.Background()
	day := 24 * time.Hour
	mk := func(id string, notAfter time.Time) *certportal.Certificate {
		c := NewCert(id, "SOP-ICA1", base)
		c.NotAfter = notAfter.Truncate(time.Microsecond)
		return c
	}
	soon, later, far := mk("ann", base.Add(10*day)), mk("bob", base.Add(3*day)), mk("cid", base.Add(40*day))
	revoked, expired := mk("dan", base.Add(5*day)), mk("eve", base.Add(-day))
	edgeIn, edgeOut := mk("fay", base.Add(30*day)), mk("gus", base)
	all := []*certportal.Certificate{soon, later, far, revoked, expired, edgeIn, edgeOut}
	update(t, s, func(tx certportal.Tx) error {
		for _, c := range all {
			if err := tx.CreateAccount(ctx, newAccount(c.AccountID)); err != nil {
				return err
			}
			if err := tx.InsertCertificate(ctx, c); err != nil {
				return err
			}
		}
		return tx.RevokeCertificate(ctx, revoked.Serial, base, certportal.ReasonKeyCompromise)
	})
	view(t, s, func(tx certportal.Tx) error {
		got, err := tx.ExpiringCertificates(ctx, base, base.Add(30*day))
		if err != nil {
			return err
		}
		// later (3 days), soon (10 days), edgeIn (exactly 30 days: included);
		// edgeOut expires exactly at after (excluded), expired before it,
		// far after before, and revoked is revoked.
		want := []*certportal.Certificate{later, soon, edgeIn}
		if len(got) != len(want) {
			var names []string
			for _, c := range got {
				names = append(names, c.AccountID)
			}
			t.Fatalf("ExpiringCertificates returned %v, want bob, ann, fay", names)
		}
		for i := range want {
			sameCert(t, &got[i], want[i])
		}
		none, err := tx.ExpiringCertificates(ctx, base.Add(50*day), base.Add(60*day))
		if len(none) != 0 {
			t.Errorf("ExpiringCertificates of an empty range returned %d certificates", len(none))
		}
		return err
	})
}

// testClaimReminder checks that a reminder is claimed once: a second claim
// (in a later transaction or concurrently) returns false, a claim rolled
// back with its transaction can be made again, and the transaction stays
// usable after a refused claim.
func testClaimReminder(t *testing.T, s certportal.Store) {
	ctx := context.Background()
	c := NewCert("hal", "SOP-ICA1", base)
	update(t, s, func(tx certportal.Tx) error {
		if err := tx.CreateAccount(ctx, newAccount("hal")); err != nil {
			return err
		}
		return tx.InsertCertificate(ctx, c)
	})
	claim := func(serial string, days int) (bool, error) {
		var ok bool
		err := s.Update(ctx, func(tx certportal.Tx) error {
			var err error
			ok, err = tx.ClaimReminder(ctx, serial, days, base)
			return err
		})
		return ok, err
	}
	// A claim whose transaction fails (the mail could not be sent) is
	// undone, so the next run claims it again.
	errMail := errors.New("mail server down")
	err := s.Update(ctx, func(tx certportal.Tx) error {
		ok, err := tx.ClaimReminder(ctx, c.Serial, 30, base)
		if err != nil || !ok {
			return fmt.Errorf("first claim: %v, %v", ok, err)
		}
		return errMail
	})
	if !errors.Is(err, errMail) {
		t.Fatalf("Update: %v, want the function's error", err)
	}
	tests := []struct {
		what   string
		serial string
		days   int
		want   bool
	}{
		{"claim after a rolled-back claim", c.Serial, 30, true},
		{"second claim", c.Serial, 30, false},
		{"another threshold", c.Serial, 7, true},
		{"serial in lower case", toLower(c.Serial), 7, false},
	}
	for _, tt := range tests {
		ok, err := claim(tt.serial, tt.days)
		if err != nil || ok != tt.want {
			t.Errorf("%s: ClaimReminder = %v, %v; want %v", tt.what, ok, err, tt.want)
		}
	}
	_, err = claim("0123456789ABCDEF", 7)
	wantCode(t, "claim for an unknown serial", err, certportal.NotFound)
	// A refused claim leaves the transaction usable (PostgreSQL aborts a
	// transaction on a failed statement).
	update(t, s, func(tx certportal.Tx) error {
		if ok, err := tx.ClaimReminder(ctx, c.Serial, 7, base); err != nil || ok {
			return fmt.Errorf("claim of a claimed reminder: %v, %v", ok, err)
		}
		if ok, err := tx.ClaimReminder(ctx, c.Serial, 1, base); err != nil || !ok {
			return fmt.Errorf("claim after a refused one in the same transaction: %v, %v", ok, err)
		}
		return tx.AppendAudit(ctx, &certportal.AuditEvent{Time: base, Actor: "system", AccountID: "hal", Action: certportal.ActionReminderSent})
	})

	// Many transactions claim one new reminder at once, each holding its
	// claim a moment before committing: exactly one gets it.
	const workers = 20
	var won atomic.Int32
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for range workers {
		wg.Go(func() {
			err := s.Update(ctx, func(tx certportal.Tx) error {
				ok, err := tx.ClaimReminder(ctx, c.Serial, 3, base)
				if err != nil || !ok {
					return err
				}
				time.Sleep(5 * time.Millisecond) // the mail goes out here
				won.Add(1)
				return nil
			})
			if err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("concurrent claim: %v", err)
	}
	if n := won.Load(); n != 1 {
		t.Errorf("%d concurrent claims of one reminder succeeded, want 1", n)
	}
}

func toLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}
