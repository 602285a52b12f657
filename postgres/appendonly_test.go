package postgres

import (
	"context"
	"io/fs"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"

	"github.com/certportal/certportal"
)

// TestAuditAppendOnly: the database itself refuses UPDATE, DELETE and
// TRUNCATE of audit records, of the recorded start of hash version 2 and
// of the signed checkpoints, whoever connects.
func TestAuditAppendOnly(t *testing.T) {
	db, dsn := openFresh(t)
	ctx := context.Background()
	if err := db.Update(ctx, func(tx certportal.Tx) error {
		return tx.AppendAudit(ctx, &certportal.AuditEvent{Actor: "admin", Action: "test", Detail: "one"})
	}); err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	for _, q := range []string{
		`UPDATE audit SET detail = 'changed' WHERE seq = 1`,
		`UPDATE audit SET account_key = 'someone' WHERE seq = 1`,
		`DELETE FROM audit WHERE seq = 1`,
		`TRUNCATE audit`,
		`UPDATE audit_meta SET v2_from = 100`,
		`DELETE FROM audit_meta`,
		`INSERT INTO audit_checkpoints VALUES (1, 'x', 't', 'k', 's')`,
		`UPDATE audit_checkpoints SET hash = 'y'`,
		`DELETE FROM audit_checkpoints`,
		`TRUNCATE audit_checkpoints`,
	} {
		_, err := conn.Exec(ctx, q)
		refused := err != nil && strings.Contains(err.Error(), "append-only")
		if strings.HasPrefix(q, "INSERT") {
			if err != nil {
				t.Fatalf("%s: %v", q, err)
			}
			continue
		}
		if !refused {
			t.Errorf("%s: %v, want it refused as append-only", q, err)
		}
	}
	var detail string
	if err := conn.QueryRow(ctx, `SELECT detail FROM audit WHERE seq = 1`).Scan(&detail); err != nil || detail != "one" {
		t.Errorf("record 1 reads %q, %v after the refused changes", detail, err)
	}
}

// TestAuditUpgradeKeepsOldHashes: an installation whose log was written
// before hash version 2 keeps its records' hashes (none is re-hashed); the
// migration records where version 2 starts, new records use it, and the
// whole log verifies. A record of the old part claimed as version 2, or a
// new one downgraded to version 1, does not.
func TestAuditUpgradeKeepsOldHashes(t *testing.T) {
	ctx := context.Background()
	db, dsn := openFresh(t)
	sub, err := fs.Sub(migrations, "migrations")
	if err != nil {
		t.Fatal(err)
	}
	sqldb := stdlib.OpenDBFromPool(db.pool)
	p, err := goose.NewProvider(goose.DialectPostgres, sqldb, sub)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.DownTo(ctx, 5); err != nil {
		t.Fatal(err)
	}
	sqldb.Close()
	// Three records as the old code wrote them (JSON hash, version 1).
	conn := admin(t, dsn)
	prev := ""
	for i := int64(1); i <= 3; i++ {
		e := &certportal.AuditEvent{Seq: i, Time: time.Unix(1700000000+i, 0).UTC(), Actor: "admin", AccountID: "Old", Action: "old", Detail: "before v2", Remote: "cli", PrevHash: prev, HashVersion: 1}
		e.Hash = certportal.AuditHash(e)
		if _, err := conn.Exec(ctx, `INSERT INTO audit (seq, time, actor, account_id, account_key, action, detail, remote, prev_hash, hash)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`, e.Seq, e.Time, e.Actor, e.AccountID, "old", e.Action, e.Detail, e.Remote, e.PrevHash, e.Hash); err != nil {
			t.Fatal(err)
		}
		if _, err := conn.Exec(ctx, `UPDATE audit_head SET seq = $1, hash = $2`, e.Seq, e.Hash); err != nil {
			t.Fatal(err)
		}
		prev = e.Hash
	}
	db2 := openAgain(t, dsn) // migrates to the newest schema
	for range 2 {
		if err := db2.Update(ctx, func(tx certportal.Tx) error {
			return tx.AppendAudit(ctx, &certportal.AuditEvent{Time: time.Now(), Actor: "admin", Action: "new"})
		}); err != nil {
			t.Fatal(err)
		}
	}
	var events []certportal.AuditEvent
	var from int64
	if err := db2.View(ctx, func(tx certportal.Tx) error {
		var err error
		if events, err = tx.ListAudit(ctx, certportal.AuditFilter{}); err != nil {
			return err
		}
		from, err = tx.AuditV2From(ctx)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if from != 4 || len(events) != 5 || events[2].HashVersion != 1 || events[3].HashVersion != 2 {
		t.Fatalf("v2 from %d, %d records, versions %d/%d; want 4, 5, 1/2", from, len(events), events[2].HashVersion, events[3].HashVersion)
	}
	if bad, err := certportal.VerifyAudit(events, from, nil, nil); err != nil {
		t.Fatalf("the upgraded log does not verify at %d: %v", bad, err)
	}
	// A record of the new part passed off as version 1 (its hash
	// recomputed the old way) is refused, and so is the reverse.
	down := append([]certportal.AuditEvent(nil), events...)
	down[4].HashVersion = 1
	down[4].Hash = certportal.AuditHash(&down[4])
	if bad, err := certportal.VerifyAudit(down, from, nil, nil); err == nil || bad != 5 {
		t.Errorf("a downgraded record: %d, %v; want 5 refused", bad, err)
	}
}
