package certportal

import (
	"reflect"
	"slices"
	"testing"
	"time"
)

// TestPolicyDefaults pins every default of SPEC.md, so that changing one by
// a unit breaks a test.
func TestPolicyDefaults(t *testing.T) {
	p := Policy{}.Resolved()
	want := Policy{
		TempPasswordTTL: 24 * time.Hour, LockoutThreshold: 5, LockoutWindow: 15 * time.Minute,
		LockoutDuration: 15 * time.Minute, SessionIdle: 30 * time.Minute, SessionMax: 12 * time.Hour,
		MaxSessions: 20, RecoveriesPerDay: 3, TicketTTL: 5 * time.Minute, RenewWindow: 30 * 24 * time.Hour,
		ReminderDays: []int{1, 7, 30},
	}
	days := p.ReminderDays
	if !reflect.DeepEqual(p, want) {
		t.Errorf("Policy{}.Resolved() = %+v, want %+v", p, want)
	}
	// Set values stay; reminder days are cleaned; an empty list stays empty.
	q := Policy{LockoutThreshold: 7, ReminderDays: []int{7, 0, -1, 7, 2}}.Resolved()
	if q.LockoutThreshold != 7 || !slices.Equal(q.ReminderDays, []int{2, 7}) {
		t.Errorf("Resolved kept %d, %v", q.LockoutThreshold, q.ReminderDays)
	}
	if r := (Policy{ReminderDays: []int{}}).Resolved(); r.ReminderDays == nil || len(r.ReminderDays) != 0 {
		t.Errorf("an empty reminder list became %v", r.ReminderDays)
	}
	// Resolved hands out its own slice: changing it changes no default.
	p.ReminderDays = days
	p.ReminderDays[0] = 99
	if Policy.Resolved(Policy{}).ReminderDays[0] != 1 {
		t.Error("the default reminder days can be changed through a resolved policy")
	}
}
