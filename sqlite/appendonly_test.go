package sqlite

import (
	"context"
	"database/sql"
	"path/filepath"
	"strings"
	"testing"

	"github.com/certportal/certportal"
)

// TestAuditAppendOnly: the database itself refuses UPDATE and DELETE of
// audit records, of the recorded start of hash version 2 and of the signed
// checkpoints, from any connection (as the sqlite3 shell would make).
func TestAuditAppendOnly(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "portal.db")
	db, err := Open(ctx, path, true)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Update(ctx, func(tx certportal.Tx) error {
		return tx.AppendAudit(ctx, &certportal.AuditEvent{Actor: "admin", Action: "test", Detail: "one"})
	}); err != nil {
		t.Fatal(err)
	}
	raw, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	for _, q := range []string{
		`UPDATE audit SET detail = 'changed' WHERE seq = 1`,
		`UPDATE audit SET account_key = 'someone' WHERE seq = 1`,
		`DELETE FROM audit WHERE seq = 1`,
		`DELETE FROM audit`,
		`UPDATE audit_meta SET v2_from = 100`,
		`DELETE FROM audit_meta`,
		`INSERT INTO audit_checkpoints VALUES (1, 'x', 't', 'k', 's')`,
		`UPDATE audit_checkpoints SET hash = 'y'`,
		`DELETE FROM audit_checkpoints`,
	} {
		_, err := raw.ExecContext(ctx, q)
		if strings.HasPrefix(q, "INSERT") {
			if err != nil {
				t.Fatalf("%s: %v", q, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), "cannot be") {
			t.Errorf("%s: %v, want it refused", q, err)
		}
	}
	var detail string
	if err := raw.QueryRowContext(ctx, `SELECT detail FROM audit WHERE seq = 1`).Scan(&detail); err != nil || detail != "one" {
		t.Errorf("record 1 reads %q, %v after the refused changes", detail, err)
	}
}
