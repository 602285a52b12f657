package storetest

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/certportal/certportal"
)

func testSessions(t *testing.T, s certportal.Store) {
	ctx := context.Background()
	mk := func(id, account string, expires time.Time) *certportal.Session {
		return &certportal.Session{ID: id, AccountID: account, Remote: "192.0.2.1", Created: base, LastSeen: base, Expires: expires}
	}
	s1 := mk("s1", "Mia", base.Add(12*time.Hour))
	s1.CertSerial = "7A01"
	s2 := mk("s2", "mia", base.Add(12*time.Hour))
	s3 := mk("s3", "MIA", base.Add(time.Minute))
	s4 := mk("s4", "ned", base.Add(time.Minute))
	update(t, s, func(tx certportal.Tx) error {
		for _, id := range []string{"Mia", "ned"} {
			if err := tx.CreateAccount(ctx, newAccount(id)); err != nil {
				return err
			}
		}
		for _, x := range []*certportal.Session{s1, s2, s3, s4} {
			if err := tx.CreateSession(ctx, x); err != nil {
				return err
			}
		}
		return nil
	})
	touched := base.Add(5 * time.Minute)
	update(t, s, func(tx certportal.Tx) error { return tx.TouchSession(ctx, "s1", touched) })
	view(t, s, func(tx certportal.Tx) error {
		got, err := tx.Session(ctx, "s1")
		if err != nil {
			return err
		}
		if got.ID != "s1" || got.AccountID != "Mia" && got.AccountID != "mia" || got.CertSerial != "7A01" || got.Remote != s1.Remote {
			t.Errorf("Session: got %+v, want %+v", got, s1)
		}
		sameTime(t, "Created", got.Created, base)
		sameTime(t, "LastSeen", got.LastSeen, touched)
		sameTime(t, "Expires", got.Expires, s1.Expires)
		return nil
	})
	exists := func(id string) bool {
		var ok bool
		view(t, s, func(tx certportal.Tx) error {
			_, err := tx.Session(ctx, id)
			if certportal.ErrorCodeOf(err) == certportal.NotFound {
				return nil
			}
			ok = err == nil
			return err
		})
		return ok
	}
	check := func(step string, want map[string]bool) {
		t.Helper()
		for id, w := range want {
			if got := exists(id); got != w {
				t.Errorf("%s: session %s exists = %v, want %v", step, id, got, w)
			}
		}
	}
	update(t, s, func(tx certportal.Tx) error { return tx.DeleteExpiredSessions(ctx, base.Add(time.Hour)) })
	check("DeleteExpiredSessions", map[string]bool{"s1": true, "s2": true, "s3": false, "s4": false})
	update(t, s, func(tx certportal.Tx) error { return tx.DeleteSessions(ctx, "MIA", "s1") })
	check("DeleteSessions(keep s1)", map[string]bool{"s1": true, "s2": false})
	update(t, s, func(tx certportal.Tx) error { return tx.CreateSession(ctx, mk("s5", "ned", base.Add(time.Hour))) })
	update(t, s, func(tx certportal.Tx) error { return tx.DeleteSessions(ctx, "mia", "") })
	check("DeleteSessions(all)", map[string]bool{"s1": false, "s5": true})
	update(t, s, func(tx certportal.Tx) error { return tx.DeleteSession(ctx, "s5") })
	check("DeleteSession", map[string]bool{"s5": false})

	// TrimSessions keeps the newest n with keep, whatever its age.
	update(t, s, func(tx certportal.Tx) error {
		for i, id := range []string{"t1", "t2", "t3", "t4"} {
			sess := mk(id, "ned", base.Add(time.Hour))
			sess.Created = base.Add(time.Duration(i) * time.Minute)
			if err := tx.CreateSession(ctx, sess); err != nil {
				return err
			}
		}
		return nil
	})
	update(t, s, func(tx certportal.Tx) error { return tx.TrimSessions(ctx, "NED", "t1", 3) })
	check("TrimSessions(keep t1, 3)", map[string]bool{"t1": true, "t2": false, "t3": true, "t4": true})
	update(t, s, func(tx certportal.Tx) error { return tx.TrimSessions(ctx, "ned", "", 1) })
	check("TrimSessions(1)", map[string]bool{"t1": false, "t3": false, "t4": true})

	err := s.View(ctx, func(tx certportal.Tx) error { _, err := tx.Session(ctx, "s5"); return err })
	wantCode(t, "Session(deleted)", err, certportal.NotFound)
	err = s.Update(ctx, func(tx certportal.Tx) error { return tx.TouchSession(ctx, "s5", base) })
	wantCode(t, "TouchSession(deleted)", err, certportal.NotFound)
	err = s.Update(ctx, func(tx certportal.Tx) error { return tx.CreateSession(ctx, mk("s6", "nobody", base)) })
	if err == nil {
		t.Error("CreateSession for an unknown account succeeded")
	}
}

func testLockouts(t *testing.T, s certportal.Store) {
	ctx := context.Background()
	const a, b = "192.0.2.1", "198.51.100.7"
	update(t, s, func(tx certportal.Tx) error {
		for i := range 4 {
			if err := tx.AddFailure(ctx, "olga", a, base.Add(time.Duration(i)*time.Minute)); err != nil {
				return err
			}
		}
		if err := tx.AddFailure(ctx, "OLGA", b, base); err != nil {
			return err
		}
		return tx.AddFailure(ctx, "unknown-id", a, base)
	})
	count := func(key, remote string, since time.Time) int {
		var n int
		view(t, s, func(tx certportal.Tx) error {
			var err error
			n, err = tx.CountFailures(ctx, key, remote, since)
			return err
		})
		return n
	}
	for _, tc := range []struct {
		key, remote string
		since       time.Time
		want        int
	}{
		{"olga", a, base, 4},
		{"olga", a, base.Add(2 * time.Minute), 2},
		{"olga", b, base, 1},
		{"unknown-id", a, base, 1},
		{"olga", "203.0.113.9", base, 0},
	} {
		if got := count(tc.key, tc.remote, tc.since); got != tc.want {
			t.Errorf("CountFailures(%s, %s, %v) = %d, want %d", tc.key, tc.remote, tc.since, got, tc.want)
		}
	}
	update(t, s, func(tx certportal.Tx) error { return tx.ClearFailures(ctx, "olga", b) })
	if got := count("olga", b, base); got != 0 {
		t.Errorf("after ClearFailures: %d failures", got)
	}
	if got := count("olga", a, base); got != 4 {
		t.Errorf("ClearFailures cleared another address: %d failures left, want 4", got)
	}

	until := base.Add(15 * time.Minute)
	locked := func(key, remote string) time.Time {
		var u time.Time
		view(t, s, func(tx certportal.Tx) error {
			var err error
			u, err = tx.LockedUntil(ctx, key, remote)
			return err
		})
		return u
	}
	if u := locked("olga", a); !u.IsZero() {
		t.Errorf("LockedUntil before any lockout = %v, want zero", u)
	}
	update(t, s, func(tx certportal.Tx) error { return tx.SetLockout(ctx, "olga", a, base) })
	update(t, s, func(tx certportal.Tx) error { return tx.SetLockout(ctx, "olga", a, until) }) // replaces
	update(t, s, func(tx certportal.Tx) error { return tx.SetLockout(ctx, "olga", b, until) })
	update(t, s, func(tx certportal.Tx) error { return tx.SetLockout(ctx, "pete", a, until) })
	sameTime(t, "LockedUntil", locked("OLGA", a), until)
	update(t, s, func(tx certportal.Tx) error { return tx.Unlock(ctx, "Olga") })
	if u := locked("olga", a); !u.IsZero() {
		t.Errorf("after Unlock, LockedUntil = %v", u)
	}
	if u := locked("olga", b); !u.IsZero() {
		t.Errorf("after Unlock, LockedUntil(other address) = %v", u)
	}
	if got := count("olga", a, base); got != 0 {
		t.Errorf("after Unlock: %d failures", got)
	}
	sameTime(t, "another account's lockout", locked("pete", a), until)
	if got := count("unknown-id", a, base); got != 1 {
		t.Errorf("Unlock cleared another account's failures")
	}
}

func testTickets(t *testing.T, s certportal.Store) {
	ctx := context.Background()
	tk := &certportal.Ticket{ID: "t1", AccountID: "Quinn", Expires: base.Add(5 * time.Minute)}
	update(t, s, func(tx certportal.Tx) error {
		if err := tx.CreateAccount(ctx, newAccount("Quinn")); err != nil {
			return err
		}
		return tx.CreateTicket(ctx, tk)
	})
	err := s.Update(ctx, func(tx certportal.Tx) error { return tx.CreateTicket(ctx, tk) })
	wantCode(t, "duplicate ticket", err, certportal.Conflict)
	update(t, s, func(tx certportal.Tx) error {
		got, err := tx.ConsumeTicket(ctx, "t1")
		if err != nil {
			return err
		}
		if got.ID != "t1" || got.AccountID != "Quinn" && got.AccountID != "quinn" {
			t.Errorf("ConsumeTicket = %+v, want %+v", got, tk)
		}
		sameTime(t, "ticket Expires", got.Expires, tk.Expires)
		return nil
	})
	for _, id := range []string{"t1", "never"} {
		err := s.Update(ctx, func(tx certportal.Tx) error { _, err := tx.ConsumeTicket(ctx, id); return err })
		wantCode(t, "ConsumeTicket("+id+")", err, certportal.NotFound)
	}
	// A ticket consumed in a failed Update is still there.
	update(t, s, func(tx certportal.Tx) error {
		return tx.CreateTicket(ctx, &certportal.Ticket{ID: "t2", AccountID: "quinn", Expires: base})
	})
	s.Update(ctx, func(tx certportal.Tx) error {
		tx.ConsumeTicket(ctx, "t2")
		return errors.New("stop")
	})
	update(t, s, func(tx certportal.Tx) error { _, err := tx.ConsumeTicket(ctx, "t2"); return err })

	// Ticket reads without consuming.
	update(t, s, func(tx certportal.Tx) error {
		return tx.CreateTicket(ctx, &certportal.Ticket{ID: "peek", AccountID: "quinn", Expires: base})
	})
	for range 2 {
		view(t, s, func(tx certportal.Tx) error {
			tk, err := tx.Ticket(ctx, "peek")
			if err == nil && (tk.ID != "peek" || certportal.IDKey(tk.AccountID) != "quinn" || !tk.Expires.Equal(base)) {
				t.Errorf("Ticket(peek) = %+v", tk)
			}
			return err
		})
	}
	update(t, s, func(tx certportal.Tx) error { _, err := tx.ConsumeTicket(ctx, "peek"); return err })
	err = s.View(ctx, func(tx certportal.Tx) error { _, err := tx.Ticket(ctx, "peek"); return err })
	wantCode(t, "Ticket(consumed)", err, certportal.NotFound)

	// DeleteTickets deletes every ticket of one account, no other.
	update(t, s, func(tx certportal.Tx) error {
		if err := tx.CreateAccount(ctx, newAccount("Rita")); err != nil {
			return err
		}
		for _, tk := range []certportal.Ticket{{ID: "q1", AccountID: "quinn"}, {ID: "q2", AccountID: "quinn"}, {ID: "r1", AccountID: "rita"}} {
			tk.Expires = base
			if err := tx.CreateTicket(ctx, &tk); err != nil {
				return err
			}
		}
		return tx.DeleteTickets(ctx, "QUINN")
	})
	for id, want := range map[string]certportal.ErrorCode{"q1": certportal.NotFound, "q2": certportal.NotFound, "r1": ""} {
		err := s.Update(ctx, func(tx certportal.Tx) error { _, err := tx.ConsumeTicket(ctx, id); return err })
		if certportal.ErrorCodeOf(err) != want {
			t.Errorf("ConsumeTicket(%s) after DeleteTickets(quinn): %v, want %q", id, err, want)
		}
	}
}

// testAttemptsSerialised runs what portal does before it checks a
// password, from 40 goroutines at once for one (ID, address): lock the
// pair, count, and add an attempt while fewer than 5 are counted. Exactly 5
// are admitted, and another address is not held up by the first.
func testAttemptsSerialised(t *testing.T, s certportal.Store) {
	ctx := context.Background()
	const workers, limit = 40, 5
	var mu sync.Mutex
	admitted := map[string]int{}
	var wg sync.WaitGroup
	for i := range workers {
		remote := []string{"192.0.2.50", "2001:db8::/64"}[i%2]
		wg.Go(func() {
			ok := false
			err := s.Update(ctx, func(tx certportal.Tx) error {
				ok = false
				if err := tx.LockAttempts(ctx, "paula", remote); err != nil {
					return err
				}
				n, err := tx.CountFailures(ctx, "paula", remote, base)
				if err != nil || n >= limit {
					return err
				}
				ok = true
				return tx.AddFailure(ctx, "PAULA", remote, base.Add(time.Second))
			})
			if err != nil {
				t.Error(err)
			}
			if ok {
				mu.Lock()
				admitted[remote]++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	for _, remote := range []string{"192.0.2.50", "2001:db8::/64"} {
		if admitted[remote] != limit {
			t.Errorf("%d attempts admitted from %s, want %d", admitted[remote], remote, limit)
		}
	}
}
