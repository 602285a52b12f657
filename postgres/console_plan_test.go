package postgres

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/certportal/certportal"
)

// TestConsoleQueryPlans holds the console's queries to their indexes, so
// a missing or unusable index fails here rather than as a slow page with
// 100,000 accounts (the figures are in docs/BENCHMARKS.md). The test
// tables are small, where a sequential scan is the cheapest plan, so the
// plans are made with sequential scans, bitmap scans and sorts priced out
// (enable_seqscan, enable_bitmapscan, enable_sort off): a query that an
// index can serve in order then uses it, and one that cannot still shows
// a Seq Scan or a Sort. Sorting is allowed only where the rows are few
// whatever the database's size: one account's rows.
func TestConsoleQueryPlans(t *testing.T) {
	db, _ := openFresh(t)
	ctx := context.Background()
	lo, hi, _ := certportal.PrefixRange("ann")
	now := time.Now()
	tx, err := db.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck
	for _, set := range []string{"enable_seqscan", "enable_bitmapscan", "enable_sort"} {
		if _, err := tx.Exec(ctx, `SET LOCAL `+set+` = off`); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name  string
		query string
		args  []any
		uses  []string
		sorts bool
	}{
		{"SearchAccounts by ID", searchByID, []any{lo, hi, 51, 0}, []string{"accounts_pkey"}, false},
		{"SearchAccounts count", countByID, []any{lo, hi, 100}, []string{"accounts_pkey"}, false},
		{"SearchAccounts by e-mail", searchByEmail, []any{lo, hi, 51, 0}, []string{"accounts_email"}, false},
		{"StaffAccounts", `SELECT ` + accountCols + ` FROM accounts WHERE role <> 'user' ORDER BY id_key`, nil, []string{"accounts_staff"}, false},
		{"ListCertificates of an account", `SELECT ` + certCols + ` WHERE true AND c.account = $1 ORDER BY c.issued, c.serial`, []any{"ann"}, []string{"certificates_account"}, true},
		{"Lockouts", `SELECT remote, until FROM lockouts WHERE account_key = $1 AND until > $2 ORDER BY until DESC, remote`, []any{"ann", now}, []string{"lockouts_pkey"}, true},
		{"SearchAudit of an account", `SELECT seq FROM audit WHERE true AND account_key = $1 ORDER BY seq DESC LIMIT $2`, []any{"ann", 20}, []string{"audit_account"}, false},
		{"QueuedMails", `SELECT ` + mailCols + ` FROM mail_outbox WHERE account = $1 ORDER BY id`, []any{"ann"}, []string{"mail_outbox_account"}, false},
		{"ClaimMail", `SELECT id FROM mail_outbox WHERE sent IS NULL AND next_try <= $1 ORDER BY next_try, id LIMIT $2`, []any{now, 20}, []string{"mail_outbox_due"}, false},
		{"Inventory", `SELECT c.serial FROM certificates c JOIN accounts a ON a.id_key = c.account WHERE c.serial > $1 ORDER BY c.serial LIMIT $2`, []any{"", 1000}, []string{"certificates_pkey"}, false},
	} {
		rows, err := tx.Query(ctx, "EXPLAIN "+tc.query, tc.args...)
		if err != nil {
			t.Fatalf("%s: EXPLAIN: %v", tc.name, err)
		}
		var lines []string
		for rows.Next() {
			var l string
			if err := rows.Scan(&l); err != nil {
				t.Fatal(err)
			}
			lines = append(lines, l)
		}
		rows.Close()
		plan := strings.Join(lines, "\n")
		for _, idx := range tc.uses {
			if !strings.Contains(plan, idx) {
				t.Errorf("%s does not use %s:\n%s", tc.name, idx, plan)
			}
		}
		if strings.Contains(plan, "Seq Scan") || strings.Contains(plan, "Sort") && !tc.sorts {
			t.Errorf("%s reads or sorts without an index:\n%s", tc.name, plan)
		}
		t.Logf("%s:\n%s", tc.name, plan)
	}
}
