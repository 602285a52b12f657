package sqlite

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/certportal/certportal"
)

// queryPlan returns SQLite's plan of a query, one line per step.
func queryPlan(t *testing.T, db *DB, q string, args ...any) string {
	t.Helper()
	rows, err := db.read.QueryContext(context.Background(), "EXPLAIN QUERY PLAN "+q, args...)
	if err != nil {
		t.Fatalf("EXPLAIN QUERY PLAN: %v", err)
	}
	defer rows.Close()
	var lines []string
	for rows.Next() {
		var id, parent, unused int
		var detail string
		if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
			t.Fatal(err)
		}
		lines = append(lines, detail)
	}
	return strings.Join(lines, "\n")
}

// TestConsoleQueryPlans holds the console's queries to their indexes, so
// a missing or unusable index fails here rather than as a slow page with
// 100,000 accounts (the figures are in docs/BENCHMARKS.md): each step
// must search an index and none may scan a table. Sorting is allowed only
// where the rows are few whatever the database's size: one account's
// certificates and lockouts.
func TestConsoleQueryPlans(t *testing.T) {
	db := openTemp(t)
	lo, hi, _ := certportal.PrefixRange("ann")
	now := time.Now().UnixMicro()
	for _, tc := range []struct {
		name  string
		query string
		args  []any
		uses  []string
		sorts bool // may sort (few rows)
	}{
		{"SearchAccounts by ID", searchByID, []any{lo, hi, 51, 0}, []string{"sqlite_autoindex_accounts_1"}, false},
		{"SearchAccounts count", countByID, []any{lo, hi, 100}, []string{"sqlite_autoindex_accounts_1"}, false},
		{"SearchAccounts by e-mail", searchByEmail, []any{lo, hi, lo, hi, 51, 0}, []string{"accounts_email"}, false},
		{"StaffAccounts", `SELECT ` + accountCols + ` FROM accounts WHERE role <> 'user' ORDER BY id_key`, nil,
			[]string{"accounts_staff"}, false},
		{"Account", `SELECT ` + accountCols + ` FROM accounts WHERE id_key = ?`, []any{"ann"},
			[]string{"sqlite_autoindex_accounts_1"}, false},
		{"ListCertificates of an account", `SELECT ` + certCols + ` WHERE 1 AND c.account = ? ORDER BY c.issued, c.serial`, []any{"ann"},
			[]string{"certificates_account"}, true},
		{"Lockouts", `SELECT remote, until FROM lockouts WHERE account_key = ? AND until > ? ORDER BY until DESC, remote`, []any{"ann", now},
			[]string{"sqlite_autoindex_lockouts_1"}, true},
		{"SearchAudit of an account", `SELECT seq, time, actor, account_id, action, detail, remote, prev_hash, hash FROM audit WHERE 1 AND account_key = ? ORDER BY seq DESC LIMIT ?`,
			[]any{"ann", 20}, []string{"audit_account"}, false},
		{"QueuedMails", `SELECT ` + mailCols + ` FROM mail_outbox WHERE account = ? ORDER BY id`, []any{"ann"},
			[]string{"mail_outbox_account"}, false},
		{"ClaimMail", `SELECT id FROM mail_outbox WHERE sent IS NULL AND next_try <= ? ORDER BY next_try, id LIMIT ?`, []any{now, 20},
			[]string{"mail_outbox_due"}, false},
		{"Inventory", `SELECT c.serial FROM certificates c JOIN accounts a ON a.id_key = c.account WHERE c.serial > ? ORDER BY c.serial LIMIT ?`,
			[]any{"", 1000}, []string{"sqlite_autoindex_certificates_1"}, false},
	} {
		plan := queryPlan(t, db, tc.query, tc.args...)
		for _, idx := range tc.uses {
			if !strings.Contains(plan, idx) {
				t.Errorf("%s does not use %s:\n%s", tc.name, idx, plan)
			}
		}
		for _, line := range strings.Split(plan, "\n") {
			if strings.HasPrefix(line, "SCAN ") && !strings.Contains(line, "USING") && !strings.HasPrefix(line, "SCAN (subquery") ||
				strings.Contains(line, "TEMP B-TREE") && !tc.sorts {
				t.Errorf("%s: the step %q reads without an index:\n%s", tc.name, line, plan)
			}
		}
		t.Logf("%s:\n%s", tc.name, plan)
	}
}
