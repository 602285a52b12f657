package sqlite

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/certportal/certportal"
)

func addAccount(ctx context.Context, db *DB, id string) error {
	now := time.Now().UTC()
	return db.Update(ctx, func(tx certportal.Tx) error {
		if err := tx.CreateAccount(ctx, &certportal.Account{
			ID: id, Email: id + "@example.com", PasswordHash: "x",
			Method: certportal.MethodPassword, Status: certportal.StatusActive, Created: now, Updated: now,
		}); err != nil {
			return err
		}
		return tx.AppendAudit(ctx, &certportal.AuditEvent{Time: now, Actor: "admin", AccountID: id, Action: certportal.ActionAccountCreated, Remote: "cli"})
	})
}

// TestSnapshotWhileWriting takes a snapshot while another goroutine keeps
// committing: the copy opens, passes integrity_check, holds every account
// committed before the snapshot began, has an unbroken audit chain (no
// half of a transaction), and the writer was never stopped by it.
func TestSnapshotWhileWriting(t *testing.T) {
	ctx := context.Background()
	db := openTemp(t)
	for i := range 50 {
		if err := addAccount(ctx, db, fmt.Sprintf("before%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	var written atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if err := addAccount(ctx, db, fmt.Sprintf("during%d", i)); err != nil {
				t.Errorf("a write during the snapshot failed: %v", err)
				return
			}
			written.Add(1)
		}
	}()
	for written.Load() < 5 {
		time.Sleep(time.Millisecond)
	}
	path := filepath.Join(t.TempDir(), "snap.db")
	if err := db.Snapshot(ctx, path); err != nil {
		t.Fatalf("Snapshot: %v", err)
	}
	atBackup := written.Load()
	for written.Load() < atBackup+5 {
		time.Sleep(time.Millisecond) // the writer goes on after the snapshot
	}
	close(stop)
	wg.Wait()

	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("the snapshot has mode %v, want 0600 (it holds password hashes)", fi.Mode().Perm())
	}
	snap, err := Open(ctx, path, false)
	if err != nil {
		t.Fatalf("opening the snapshot: %v", err)
	}
	defer snap.Close()
	if err := snap.IntegrityCheck(ctx); err != nil {
		t.Fatalf("IntegrityCheck of the snapshot: %v", err)
	}
	err = snap.View(ctx, func(tx certportal.Tx) error {
		accs, err := tx.ListAccounts(ctx)
		if err != nil {
			return err
		}
		if len(accs) < 55 {
			t.Errorf("the snapshot holds %d accounts, want at least the 55 committed before it", len(accs))
		}
		for i := range 50 {
			if _, err := tx.Account(ctx, fmt.Sprintf("before%d", i)); err != nil {
				t.Errorf("before%d is missing from the snapshot: %v", i, err)
			}
		}
		events, err := tx.ListAudit(ctx, certportal.AuditFilter{})
		if err != nil {
			return err
		}
		if len(events) != len(accs) {
			t.Errorf("%d audit records for %d accounts: a transaction was cut in half", len(events), len(accs))
		}
		if bad, err := certportal.VerifyAuditChain(events); err != nil {
			t.Errorf("the snapshot's audit chain breaks at %d: %v", bad, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestSnapshotRefusals(t *testing.T) {
	ctx := context.Background()
	db := openTemp(t)
	dir := t.TempDir()
	existing := filepath.Join(dir, "existing.db")
	if err := os.WriteFile(existing, []byte("keep me"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, path string
		code       certportal.ErrorCode
	}{
		{"existing file", existing, certportal.Conflict},
		{"query in path", filepath.Join(dir, "a?mode=ro"), certportal.Invalid},
		{"missing directory", filepath.Join(dir, "no", "such", "dir.db"), certportal.Unavailable},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := db.Snapshot(ctx, c.path)
			if certportal.ErrorCodeOf(err) != c.code {
				t.Fatalf("Snapshot(%s) = %v (code %q), want code %q", c.path, err, certportal.ErrorCodeOf(err), c.code)
			}
		})
	}
	if b, _ := os.ReadFile(existing); string(b) != "keep me" {
		t.Errorf("a refused snapshot changed the existing file: %q", b)
	}
	db.Close()
	if err := db.Snapshot(ctx, filepath.Join(dir, "closed.db")); certportal.ErrorCodeOf(err) != certportal.Unavailable {
		t.Errorf("Snapshot after Close = %v, want Unavailable", err)
	}
}

// TestIntegrityCheckFindsDamage damages an index page of a copy (the
// file still opens) and expects IntegrityCheck to say so.
func TestIntegrityCheckFindsDamage(t *testing.T) {
	ctx := context.Background()
	db := openTemp(t)
	for i := range 300 {
		if err := addAccount(ctx, db, fmt.Sprintf("user%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(t.TempDir(), "snap.db")
	if err := db.Snapshot(ctx, path); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// Zero the second half of the file, past the schema on page 1.
	for i := len(b) / 2; i < len(b); i++ {
		b[i] = 0
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	damaged, err := Open(ctx, path, false)
	if err != nil {
		return // refused at open: as good as a failed check
	}
	defer damaged.Close()
	if err := damaged.IntegrityCheck(ctx); certportal.ErrorCodeOf(err) != certportal.Invalid {
		t.Fatalf("IntegrityCheck of a damaged file = %v, want Invalid", err)
	}
}

// TestKnownSchemaVersion checks that the version reported to
// administrators is the one a new database gets.
func TestKnownSchemaVersion(t *testing.T) {
	db := openTemp(t)
	applied, err := db.SchemaVersion(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if known := KnownSchemaVersion(); known != applied || known < 1 {
		t.Errorf("KnownSchemaVersion() = %d, a new database has schema %d", known, applied)
	}
}
