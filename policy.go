package certportal

import (
	"slices"
	"time"
)

// Policy holds the portal's limits (SPEC.md "Accounts" and "The portal"):
// lockout, recovery, sessions, temporary passwords, renewal and expiry
// reminders. A zero field means its default; Resolved fills them in, and is
// the one place the defaults are written. The fixed limits (password and
// PKCS#12 password lengths, PBKDF2 iterations) are constants beside the
// checks that use them.
type Policy struct {
	// TempPasswordTTL is how long a mailed temporary password is valid
	// (24 h).
	TempPasswordTTL time.Duration
	// LockoutThreshold wrong passwords for an ID from one address within
	// LockoutWindow lock password sign-in for LockoutDuration (5, 15 min,
	// 15 min).
	LockoutThreshold int
	LockoutWindow    time.Duration
	LockoutDuration  time.Duration
	// SessionIdle and SessionMax bound a session (30 min idle, 12 h in
	// all); an account has at most MaxSessions (20), the oldest ending.
	SessionIdle time.Duration
	SessionMax  time.Duration
	MaxSessions int
	// RecoveriesPerDay limits recoveries per account (3); a recovery's
	// confirmation is valid for TicketTTL (5 min).
	RecoveriesPerDay int
	TicketTTL        time.Duration
	// RenewWindow is how long before its expiry a certificate may be
	// renewed without a password (30 days, the first reminder's lead).
	RenewWindow time.Duration
	// ReminderDays are the days before a certificate's expiry on which
	// its user is reminded by mail. nil means 30, 7 and 1; an empty,
	// non-nil list sends no reminders.
	ReminderDays []int
}

// Resolved returns p with every zero field set to its default, and the
// reminder days positive, distinct and smallest first (in a slice of
// their own).
func (p Policy) Resolved() Policy {
	dur := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	num := func(n *int, v int) {
		if *n <= 0 {
			*n = v
		}
	}
	dur(&p.TempPasswordTTL, 24*time.Hour)
	num(&p.LockoutThreshold, 5)
	dur(&p.LockoutWindow, 15*time.Minute)
	dur(&p.LockoutDuration, 15*time.Minute)
	dur(&p.SessionIdle, 30*time.Minute)
	dur(&p.SessionMax, 12*time.Hour)
	num(&p.MaxSessions, 20)
	num(&p.RecoveriesPerDay, 3)
	dur(&p.TicketTTL, 5*time.Minute)
	dur(&p.RenewWindow, 30*24*time.Hour)
	days := p.ReminderDays
	if days == nil {
		days = []int{30, 7, 1}
	}
	p.ReminderDays = []int{}
	for _, d := range days {
		if d > 0 && !slices.Contains(p.ReminderDays, d) {
			p.ReminderDays = append(p.ReminderDays, d)
		}
	}
	slices.Sort(p.ReminderDays)
	return p
}
