package storetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/certportal/certportal"
)

func accountExists(t *testing.T, s certportal.Store, id string) bool {
	t.Helper()
	var found bool
	view(t, s, func(tx certportal.Tx) error {
		_, err := tx.Account(context.Background(), id)
		if certportal.ErrorCodeOf(err) == certportal.NotFound {
			return nil
		}
		found = err == nil
		return err
	})
	return found
}

func auditCount(t *testing.T, s certportal.Store) int {
	t.Helper()
	var n int
	view(t, s, func(tx certportal.Tx) error {
		events, err := tx.ListAudit(context.Background(), certportal.AuditFilter{})
		n = len(events)
		return err
	})
	return n
}

func testRollbackOnError(t *testing.T, s certportal.Store) {
	ctx := context.Background()
	errStop := errors.New("stop")
	err := s.Update(ctx, func(tx certportal.Tx) error {
		if err := tx.CreateAccount(ctx, newAccount("jack")); err != nil {
			return err
		}
		if err := tx.InsertCertificate(ctx, NewCert("jack", "SOP-ICA1", base)); err != nil {
			return err
		}
		if err := tx.AppendAudit(ctx, &certportal.AuditEvent{Time: base, Actor: "admin", AccountID: "jack", Action: certportal.ActionAccountCreated}); err != nil {
			return err
		}
		if _, err := tx.NextCRLNumber(ctx, "SOP-ICA1"); err != nil {
			return err
		}
		return errStop
	})
	if !errors.Is(err, errStop) {
		t.Fatalf("Update returned %v, want fn's error", err)
	}
	if accountExists(t, s, "jack") {
		t.Error("the account of a failed Update was kept")
	}
	if n := auditCount(t, s); n != 0 {
		t.Errorf("the audit record of a failed Update was kept (%d records)", n)
	}
	// The store still works, and the chain starts at 1.
	update(t, s, func(tx certportal.Tx) error {
		e := &certportal.AuditEvent{Time: base, Actor: "admin", Action: certportal.ActionCRLSigned}
		if err := tx.AppendAudit(ctx, e); err != nil {
			return err
		}
		if e.Seq != 1 {
			t.Errorf("after a rollback the first record has Seq %d, want 1", e.Seq)
		}
		return nil
	})
}

func testRollbackOnPanic(t *testing.T, s certportal.Store) {
	ctx := context.Background()
	func() {
		defer func() {
			if r := recover(); r != "boom" {
				t.Errorf("recovered %v, want the panic of fn passed on", r)
			}
		}()
		s.Update(ctx, func(tx certportal.Tx) error {
			if err := tx.CreateAccount(ctx, newAccount("kate")); err != nil {
				t.Errorf("CreateAccount: %v", err)
			}
			panic("boom")
		})
		t.Error("Update returned after fn panicked")
	}()
	if accountExists(t, s, "kate") {
		t.Error("the account of a panicked Update was kept")
	}
	// The store is usable after the panic (the writer was released).
	done := make(chan error, 1)
	go func() {
		done <- s.Update(ctx, func(tx certportal.Tx) error { return tx.CreateAccount(ctx, newAccount("kate")) })
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Update after a panic: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Update after a panic hangs: the transaction was not released")
	}
}

func testViewReadOnly(t *testing.T, s certportal.Store) {
	ctx := context.Background()
	err := s.View(ctx, func(tx certportal.Tx) error { return tx.CreateAccount(ctx, newAccount("leo")) })
	if err == nil {
		t.Error("CreateAccount in a View succeeded")
	}
	if accountExists(t, s, "leo") {
		t.Error("a View wrote an account")
	}
	if err := s.Ping(ctx); err != nil {
		t.Errorf("Ping: %v", err)
	}
}
